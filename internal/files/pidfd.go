package files

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/proc"
)

// pidfds (image.FilePidfd) of processes and threads of the tree, which the
// restore recreates with their PIDs; a pidfd of any other process is
// refused (after a reboot its PID names another process, or none).

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
	f.Pidfd = &image.Pidfd{PID: ds.info.pidfdPID}
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
	fd, err := unix.PidfdOpen(f.Pidfd.PID, flags)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", f.Pidfd.PID, err)
	}
	return os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(f.Pidfd.PID)), nil
}
