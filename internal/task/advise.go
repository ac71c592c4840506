package task

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// Advise runs madvise(advice) over each span ([start, end)) of the
// stopped process pid, whose thread-group leader is leader, from inside
// it: process_madvise(2) takes only the advices that never lose data, and
// MADV_DONTNEED, which a checkpoint that moves memory needs, is not one.
func Advise(pid int, leader *image.Thread, spans [][2]uint64, advice int) error {
	if len(spans) == 0 {
		return nil
	}
	s, err := injectInto(pid, leader)
	if err != nil {
		return fmt.Errorf("process %d: %w", pid, err)
	}
	for _, sp := range spans {
		if _, err := s.threads[0].Syscall(unix.SYS_MADVISE, uintptr(sp[0]), uintptr(sp[1]-sp[0]), uintptr(advice)); err != nil {
			s.close()
			return fmt.Errorf("process %d: madvise %#x-%#x: %w", pid, sp[0], sp[1], err)
		}
	}
	if err := s.close(); err != nil {
		return fmt.Errorf("process %d: %w", pid, err)
	}
	return nil
}
