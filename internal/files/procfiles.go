package files

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/proc"
)

// Namespace files and pidfds: descriptors of kernel objects that belong to
// processes. They are carried when those processes are the tree's own,
// which the restore recreates, and refused otherwise.

// nsEntries are the entries of /proc/PID/ns.
var nsEntries = []string{"cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time",
	"time_for_children", "user", "uts"}

// namespaceOf finds a process of s (the holder first) in the namespace
// that link ("net:[4026531840]") names, and the /proc/PID/ns entry of it.
func namespaceOf(s *Scope, holder int, link string) (int, string, bool) {
	for _, pid := range append([]int{holder}, s.PIDs...) {
		for _, e := range nsEntries {
			if l, err := os.Readlink(proc.Path(pid, "ns", e)); err == nil && l == link {
				return pid, e, true
			}
		}
	}
	return 0, "", false
}

func checkNamespace(s *Scope, d *desc) error {
	if _, _, ok := namespaceOf(s, d.pid, d.link); !ok {
		return fmt.Errorf("namespace file %s (of a namespace that no process of the tree is in)", d.link)
	}
	return nil
}

func dumpNamespace(d *Dumper, ds *desc, f *image.File) error {
	pid, e, ok := namespaceOf(d.Scope, ds.pid, ds.link)
	if !ok {
		return checkNamespace(d.Scope, ds)
	}
	f.NSPID, f.NS = pid, e
	return nil
}

// openNamespace opens the namespace that the restored process NSPID is in:
// the tree is restored into the restorer's (the unit's) namespaces.
func openNamespace(_ *Opener, f *image.File) (*os.File, error) {
	return os.OpenFile(proc.Path(f.NSPID, "ns", f.NS), unix.O_RDONLY|unix.O_CLOEXEC, 0)
}

// pidfdThread is PIDFD_THREAD (O_EXCL): a pidfd of one thread.
const pidfdThread = unix.O_EXCL

func checkPidfd(s *Scope, d *desc) error {
	pid := d.info.pidfdPID
	switch {
	case pid < 0:
		return fmt.Errorf("pidfd of a process that has exited (and been reaped)")
	case pid == 0:
		return fmt.Errorf("pidfd of a process in another PID namespace")
	}
	tgid := pid
	if d.info.flags&pidfdThread != 0 {
		if st, err := proc.ReadStatus(pid, pid); err == nil {
			tgid = st.Int("Tgid")
		}
	}
	if !s.Has(tgid) {
		return fmt.Errorf("pidfd of process %d (outside the tree)", pid)
	}
	return nil
}

func dumpPidfd(_ *Dumper, ds *desc, f *image.File) error {
	f.PidfdPID = ds.info.pidfdPID
	return nil
}

// openPidfd opens a pidfd of the restored process (or thread) PidfdPID.
func openPidfd(_ *Opener, f *image.File) (*os.File, error) {
	flags := 0
	if f.Flags&unix.O_NONBLOCK != 0 {
		flags |= unix.PIDFD_NONBLOCK
	}
	if f.Flags&pidfdThread != 0 {
		flags |= pidfdThread
	}
	fd, err := unix.PidfdOpen(f.PidfdPID, flags)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", f.PidfdPID, err)
	}
	return os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(f.PidfdPID)), nil
}
