package restored

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inet"
	"github.com/seamless-linux/seamless/internal/netlock"
)

// enterRoot moves the daemon into the real root, once: it started in the
// initramfs, and PID 1 has switched root since (an anchor only runs after
// the switch). The real root is PID 1's.
func (d *daemon) enterRoot() error {
	if d.root {
		return nil
	}
	moved, err := d.rootMoved()
	if err != nil {
		return err
	}
	if moved {
		if err := d.chroot(); err != nil {
			return err
		}
	}
	d.root = true
	return nil
}

// awaitRoot waits, at most until deadline, for PID 1 to switch to the real
// root, and follows it there: the outcome of the restore is recorded on
// the real root's disk, even when no unit was left to restore.
func (d *daemon) awaitRoot(deadline time.Time) error {
	for !d.root {
		moved, err := d.rootMoved()
		if err != nil {
			return err
		}
		if moved {
			return d.enterRoot()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the system did not switch to its real root in time")
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

// rootMoved reports whether PID 1's root differs from the daemon's. When
// PID 1 is out of reach (another user namespace, in tests), it cannot have
// switched root under the daemon either: the daemon is where it belongs.
func (d *daemon) rootMoved() (bool, error) {
	moved, reachable, err := pid1Moved(d.proc)
	if !reachable {
		d.root = true
	}
	return moved, err
}

// pid1Moved reports whether PID 1's root (through proc) differs from this
// process's, and whether PID 1 could be seen at all.
func pid1Moved(proc *os.File) (moved, reachable bool, err error) {
	fd, err := unix.Openat(int(proc.Fd()), "1/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == unix.EACCES {
		return false, false, nil
	}
	if err != nil {
		return false, true, fmt.Errorf("find the real root: %w", err)
	}
	defer unix.Close(fd)
	var theirs, mine unix.Stat_t
	if err := unix.Fstat(fd, &theirs); err != nil {
		return false, true, err
	}
	if err := unix.Stat("/", &mine); err != nil {
		return false, true, err
	}
	return theirs.Dev != mine.Dev || theirs.Ino != mine.Ino, true, nil
}

// loadPeerDiag has the kernel load what answers unixPeerInode (unix_diag,
// a module in Debian's kernels) as soon as PID 1 has switched to the real
// root, whose /lib/modules the kernel's modprobe then reads: the first
// anchor's pinning no longer waits for the module (0.2 s under emulation
// while the boot goes on). On kernels with SO_PEERPIDFD (6.5) nothing
// needs it, and a query costs nothing. It gives up when done closes.
// switched is pid1Moved, given for tests.
func loadPeerDiag(switched func() (moved, reachable bool, err error), done <-chan struct{}) {
	if usePeerPIDFD && peerPIDFDWorks() {
		return
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		moved, reachable, err := switched()
		if err != nil || !reachable {
			return
		}
		if moved {
			// Any query loads the module; what it answers does not matter.
			unixPeerInode(0)
			return
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

func (d *daemon) chroot() error {
	fd, err := unix.Openat(int(d.proc.Fd()), "1/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("find the real root: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Fchdir(fd); err != nil {
		return fmt.Errorf("enter the real root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("enter the real root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	fmt.Fprintln(d.opts.Log, "moved into the real root")
	return nil
}

// unlock removes the network lock of a tree that will not be restored, so
// that the service started cold can take its ports; a lock that is not
// there is no error (see netlock.Drop).
func unlock(t *image.Tree) error {
	if t == nil || netlock.Disabled() {
		return nil
	}
	byLock, err := inet.ImageFlows(t)
	if err != nil {
		return err
	}
	for name := range byLock {
		if err := netlock.Drop(nil, name); err != nil {
			return err
		}
	}
	return nil
}
