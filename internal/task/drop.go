package task

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/ptrace"
)

// Drop frees each span ([start, end)) of the private memory of the
// stopped process pid, whose thread-group leader is leader, with
// madvise(MADV_DONTNEED) run inside it: process_madvise(2) takes only the
// advices that never lose data.
//
// From the first drop on, the leader carries PTRACE_O_EXITKILL: should
// seamless die before it has put the memory back, the kernel kills the
// process rather than let it run without it.
func Drop(pid int, leader *image.Thread, spans [][2]uint64) error {
	if len(spans) == 0 {
		return nil
	}
	opts := SeizeOptions | unix.PTRACE_O_EXITKILL
	if err := ptrace.SetOptions(leader.TID, opts); err != nil {
		return fmt.Errorf("process %d: %w", pid, err)
	}
	s, err := injectWith(pid, leader, opts)
	if err != nil {
		return fmt.Errorf("process %d: %w", pid, err)
	}
	for _, sp := range spans {
		if _, err := s.threads[0].Syscall(unix.SYS_MADVISE, uintptr(sp[0]), uintptr(sp[1]-sp[0]), unix.MADV_DONTNEED); err != nil {
			s.close()
			return fmt.Errorf("process %d: madvise %#x-%#x: %w", pid, sp[0], sp[1], err)
		}
	}
	if err := s.close(); err != nil {
		return fmt.Errorf("process %d: %w", pid, err)
	}
	return nil
}
