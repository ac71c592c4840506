package task

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/proc"
)

// CheckUserNS refuses a process that runs in a user namespace other than
// seamless's own: systemd's PrivateUsers=, a container, `unshare -U`.
// Its IDs and capabilities mean what they mean only inside that namespace
// (its root is nobody outside), while the restore would rebuild it with
// the same numbers in seamless's namespace, where they mean more. Nor can
// it be rebuilt inside one: creating a thread or child with its TID
// (clone3 set_tid) takes CAP_CHECKPOINT_RESTORE in the namespace that owns
// the PID namespace, which no process inside a user namespace below it has.
func CheckUserNS(pid int) error {
	var mine, its unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &mine); err != nil {
		return fmt.Errorf("user namespace of seamless: %w", err)
	}
	if err := unix.Stat(proc.Path(pid, "ns", "user"), &its); err != nil {
		if os.IsNotExist(err) {
			return err
		}
		return fmt.Errorf("process %d user namespace: %w", pid, err)
	}
	if mine.Dev != its.Dev || mine.Ino != its.Ino {
		return fmt.Errorf("process %d runs in a user namespace of its own (systemd's PrivateUsers=, a container): "+
			"its user IDs and capabilities hold only there, and the restore cannot rebuild it inside one; "+
			"for a unit, a drop-in with PrivateUsers=no lets it be carried", pid)
	}
	return nil
}
