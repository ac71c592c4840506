package image

import "fmt"

// FilePidfd is a pidfd (pidfd_open) of a process or thread of the tree.
const FilePidfd = "pidfd"

// Pidfd is the process (or, with PIDFD_THREAD in File.Flags, thread) a
// pidfd refers to.
type Pidfd struct {
	PID int `json:"pid"`
}

func validatePidfd(f *File, _ *checker) error { return need(f.Pidfd, "pidfd") }

func linkPidfd(f *File, l *links) error {
	if pid := f.Pidfd.PID; l.procs[pid] == nil && !l.tids[pid] {
		return fmt.Errorf("pidfd of %d, which is not in the tree", pid)
	}
	return nil
}
