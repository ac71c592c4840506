package restored

import (
	"fmt"
	"io"

	"github.com/seamless-linux/seamless/internal/contract"
)

// NotBootedReason is what the units of an update whose image never
// reached a boot are recorded with.
const NotBootedReason = "this boot did not receive the image (no " + contract.ImageParam + "= on its command line: the machine came up through the firmware or another boot entry)"

// SettleNotBooted ends an update that this boot did not come from: the
// last update handed its image over, but the kernel command line names no
// image (the kexec failed and the machine rebooted through the firmware,
// the restorer initramfs could not mount the root, somebody chose another
// boot entry). The carried units were started cold by this boot as by any
// reboot: they are recorded so, and a disk image, which nothing will read
// now, is removed (root is the real root's mount point, "/" at boot). It
// runs at every boot (seamless-checkpoint.service's start) and does nothing
// on the boot of an update or when no update is open.
func SettleNotBooted(cmdline, root string, log io.Writer) error {
	if contract.ImageFromCmdline(cmdline) != "" {
		return nil // the restore daemon has it
	}
	st, err := contract.ReadStatus()
	if err != nil || st == nil || st.State != contract.UpdateHandedOver {
		return err
	}
	var out []contract.UnitOutcome
	for _, u := range st.Units {
		if u.Outcome == contract.Carried {
			out = append(out, contract.UnitOutcome{Unit: u.Unit, Outcome: contract.Cold, Reason: NotBootedReason})
		}
	}
	if err := contract.RecordRestore(Release(), out); err != nil {
		return fmt.Errorf("record the update %s -> %s as not booted: %w", st.From, st.To, err)
	}
	fmt.Fprintf(log, "seamless: the update %s -> %s was not booted: %d carried units started cold\n", st.From, st.To, len(out))
	if st.Store != "disk" || st.Image == "" {
		return nil
	}
	di, err := openDiskImage(root, contract.Disk(st.Image).String())
	if err != nil {
		return fmt.Errorf("its disk image stays: %w", err)
	}
	defer di.close()
	return di.remove(log)
}
