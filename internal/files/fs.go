package files

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/fileref"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/proc"
)

// The root and working directory of a process. Both are restored from
// directories the restorer opens (the working directory by descriptor,
// fchdir), so that a path seen from outside a chroot still leads there; a
// working directory that was deleted is recreated.

// CheckFS tells why the root or working directory of pid cannot be
// restored, without stopping it; nil if they can.
func CheckFS(pid int) error {
	_, err := fsObject(pid, nil)
	return err
}

// DumpFS records a deleted working directory of p (p.Cwd and p.Root hold
// the paths /proc shows) as an object to recreate.
func (d *Dumper) DumpFS(p *image.Process) error {
	ref, err := fsObject(p.PID, d.Refs)
	if err != nil {
		return err
	}
	if ref != nil {
		p.Cwd, p.CwdFile = ref.Path, ref
	}
	return nil
}

// fsObject checks the root and working directory of pid and, when the
// working directory was deleted and c is not nil, records it in c.
func fsObject(pid int, c *fileref.Dumper) (*image.Ref, error) {
	root, err := os.Readlink(proc.Path(pid, "root"))
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	if strings.HasSuffix(root, " (deleted)") {
		return nil, fmt.Errorf("process %d: its root directory %s is not supported", pid, root)
	}
	cwd, err := os.Readlink(proc.Path(pid, "cwd"))
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	name, deleted := strings.CutSuffix(cwd, " (deleted)")
	if !deleted {
		return nil, nil
	}
	h, err := os.OpenFile(proc.Path(pid, "cwd"), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("process %d working directory: %w", pid, err)
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return nil, fmt.Errorf("process %d working directory: %w", pid, err)
	}
	if err := fileref.CheckUnreachable(h, name, &st); err != nil {
		return nil, fmt.Errorf("process %d working directory: %w", pid, err)
	}
	if c == nil {
		return nil, nil
	}
	ref, err := c.RefFile(h, name, true)
	if err != nil {
		return nil, fmt.Errorf("process %d working directory: %w", pid, err)
	}
	return ref, nil
}

// RestoreFS gives the process t its root (chroot) and working directory
// (fchdir to a directory the restorer opened: its path is the one seen
// from outside a chroot). Descriptors are installed before: /dev/tty is
// opened inside the process, by a path that the chroot would change.
func RestoreFS(t *inject.Target, p *image.Process, o *Opener) error {
	if p.Root != "/" {
		addr, err := t.PutString(0, p.Root)
		if err != nil {
			return err
		}
		if _, err := t.Call(unix.SYS_CHROOT, addr); err != nil {
			return fmt.Errorf("process %d: chroot %s: %w", p.PID, p.Root, err)
		}
	}
	var dir *os.File
	var err error
	if p.CwdFile != nil {
		dir, err = o.Refs.Reopen(p.CwdFile, unix.O_RDONLY|unix.O_DIRECTORY)
	} else {
		dir, err = os.OpenFile(p.Cwd, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return fmt.Errorf("process %d: working directory %s: %w", p.PID, p.Cwd, err)
	}
	fd, err := t.SendFile(dir)
	dir.Close()
	if err != nil {
		return err
	}
	_, err = t.Call(unix.SYS_FCHDIR, uintptr(fd))
	t.Call(unix.SYS_CLOSE, uintptr(fd))
	if err != nil {
		return fmt.Errorf("process %d: working directory %s: %w", p.PID, p.Cwd, err)
	}
	return nil
}
