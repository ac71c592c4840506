package files

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/proc"
)

// pidfds of processes and threads of the tree, which the restore
// recreates with their PIDs; a pidfd of any other process is refused
// (after a reboot its PID names another process, or none).

// KindPidfd is a pidfd (pidfd_open) of a process or thread of the tree.
const KindPidfd = "pidfd"

// Before pidfs, a pidfd was an anonymous inode ("anon_inode:[pidfd]").
var pidfdKind = &kind{name: KindPidfd, record: func() image.FileRecord { return new(Pidfd) },
	is: func(_ *Scope, d *desc) bool {
		return d.anon() && (d.link == "anon_inode:[pidfd]" || strings.HasPrefix(d.link, "pidfd:"))
	},
	check: checkPidfd, dump: dumpPidfd, open: openPidfd}

// Pidfd is the record of a pidfd: the process (or, with PIDFD_THREAD in
// File.Flags, thread) it refers to.
type Pidfd struct {
	PID int `json:"pid"`
}

// Validate has nothing to check on its own (see Link).
func (*Pidfd) Validate(*image.Checker) error { return nil }

// Link checks that the process or thread is the tree's.
func (p *Pidfd) Link(l *image.Links) error {
	if !l.Process(p.PID) && !l.Thread(p.PID) {
		return fmt.Errorf("pidfd of %d, which is not in the tree", p.PID)
	}
	return nil
}

// pidfdThread is PIDFD_THREAD (O_EXCL): a pidfd of one thread.
const pidfdThread = unix.O_EXCL

// checkPidfd refuses a pidfd of a process outside the scope.
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

// dumpPidfd records the PID (or TID) the pidfd refers to.
func dumpPidfd(_ *Dumper, ds *desc, f *image.File) error {
	f.Record = &Pidfd{PID: ds.info.pidfdPID}
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
	pid := recordOf[Pidfd](f).PID
	fd, err := unix.PidfdOpen(pid, flags)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	return os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid)), nil
}
