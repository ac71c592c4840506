// Package update is the old-kernel side of a seamless update: the plan,
// the preflight, the intent recorded for shutdown, the start of
// kexec.target, and the checkpoint that runs while the system shuts down
// and hands the image to the new kernel. What it leaves for the new kernel
// (the intent, the image's layout and location, the record of the update)
// is defined in internal/contract.
package update
