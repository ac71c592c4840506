// Package restored is the new-kernel side of a seamless update: the restore
// daemon. It starts in the initramfs (stage 1), before anything else can
// take the PIDs the preserved services had: it verifies the image the old
// kernel handed over, keeps its files open (the initramfs is emptied at the
// switch to the real root, and the image is not copied), reserves every
// PID and TID, and lives on across the switch as "@seamless-restored".
// Each preserved unit then starts, through a generated drop-in, with an
// anchor as its ExecStart, which asks the daemon over a unix socket to
// rebuild the unit's processes inside the unit's cgroup and mount
// namespace. The daemon exits when every unit is restored or started cold.
package restored

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/contract"
)

// DefaultRestoreTimeout bounds a unit's restore unless the daemon is told
// otherwise.
const DefaultRestoreTimeout = 5 * time.Minute

// mkdirs creates the daemon's directories: the run directory can be
// traversed by the anchors of units that run as other users (to reach the
// socket), but not listed; the image links are root's alone.
func mkdirs() error {
	if err := os.MkdirAll(contract.RunDir, 0o711); err != nil {
		return err
	}
	if err := os.Chmod(contract.RunDir, 0o711); err != nil {
		return err
	}
	return os.MkdirAll(contract.IncomingDir(), 0o700)
}

// recordOutcomes puts the outcome of the units that have one into the
// record of the last update (on disk), for `seamless status`. When final,
// the units still waiting are recorded as started cold.
func recordOutcomes(s *contract.State, final bool, log io.Writer) {
	var out []contract.UnitOutcome
	for _, u := range s.Units {
		o := contract.UnitOutcome{Unit: u.Unit, Outcome: u.State, Reason: u.Reason, RestoreMs: u.RestoreMs, MainPID: u.MainPID, Warnings: u.Warnings}
		if u.Waiting() {
			if !final {
				continue
			}
			o.Outcome, o.Reason = contract.Cold, "the restore daemon ended before the unit asked"
		}
		out = append(out, o)
	}
	if s.Error != "" && len(out) == 0 {
		out = append(out, contract.UnitOutcome{Unit: "(image)", Outcome: contract.Cold, Reason: s.Error})
	}
	// Right after the switch to the real root, the root file system may
	// still be read-only: systemd remounts it early in the boot.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := contract.RecordRestore(Release(), out)
		if err == nil {
			return
		}
		if !errors.Is(err, syscall.EROFS) || time.Now().After(deadline) {
			fmt.Fprintf(log, "record the outcome: %v\n", err)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// Release is the running kernel's release (uname -r).
func Release() string {
	var uts unix.Utsname
	unix.Uname(&uts)
	return unix.ByteSliceToString(uts.Release[:])
}
