// Package contract is what the old kernel's update pipeline and the new
// kernel's restore agree on, and the only place that knows it: the intent
// `seamless update` leaves for the checkpoint at shutdown, the kernel
// command-line parameter that tells the new kernel where the image is
// (seamless.image=), the layout of the image (one directory per unit, with
// unit.json and one image per process tree), the run directory, the record
// of the last update with the outcome of each unit (written under a lock:
// the restore daemon and the anchors complete it at the same time), and the
// state of the restore daemon.
//
// Both sides import it; neither imports the other (layering_test.go).
package contract

import "path/filepath"

// Where state lives. RunDir is a tmpfs, lost at the kexec (the new kernel's
// daemon creates it again in the initramfs's /run, which becomes the real
// root's); StateDir is on disk. Only tests move them (the seamless command
// reads SEAMLESS_RUN_DIR and SEAMLESS_STATE_DIR).
var (
	RunDir   = "/run/seamless"
	StateDir = "/var/lib/seamless"
)

// IntentPath is the pending update's intent, in RunDir.
func IntentPath() string { return filepath.Join(RunDir, "intent.json") }

// StatusPath is the record of the last update, in StateDir.
func StatusPath() string { return filepath.Join(StateDir, "last-update.json") }

// StatePath is the restore daemon's state, root's alone (0600): reasons may
// quote the image, which holds process memory.
func StatePath() string { return filepath.Join(RunDir, "restore.json") }

// PublicStatePath is the part of the daemon's state anyone may read (0644),
// for an unprivileged `seamless status`: units, their states and main PIDs.
func PublicStatePath() string { return filepath.Join(RunDir, "restore-public.json") }

// SocketPath is where the restore daemon listens for the anchors.
func SocketPath() string { return filepath.Join(RunDir, "restore.sock") }

// IncomingDir holds, for each tree of the image, a directory of symbolic
// links to the image files the daemon keeps open.
func IncomingDir() string { return filepath.Join(RunDir, "incoming") }

// StageDir is where the checkpoint at shutdown mounts the tmpfs it writes a
// RAM-store image into.
func StageDir() string { return filepath.Join(RunDir, "stage") }

// SetDirs moves RunDir and StateDir ("" leaves one where it is), and
// returns what moves them back: tests use private directories.
func SetDirs(run, state string) (restore func()) {
	oldRun, oldState := RunDir, StateDir
	if run != "" {
		RunDir = run
	}
	if state != "" {
		StateDir = state
	}
	return func() { RunDir, StateDir = oldRun, oldState }
}
