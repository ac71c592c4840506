package task

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

func TestResumable(t *testing.T) {
	neg := func(e int64) uint64 { return uint64(-e) }
	const rip = 0x1000
	tests := []struct {
		name          string
		in            image.Regs
		rax, rip, rdi uint64
		rdx           uint64
	}{
		{"not in a syscall", image.Regs{OrigRax: ^uint64(0), Rax: 5, Rip: rip}, 5, rip, 0, 0},
		{"completed syscall", image.Regs{OrigRax: unix.SYS_READ, Rax: 3, Rip: rip}, 3, rip, 0, 0},
		{"read restarts", image.Regs{OrigRax: unix.SYS_READ, Rax: neg(errRestartSys), Rip: rip}, unix.SYS_READ, rip - 2, 0, 0},
		{"wait4 restarts", image.Regs{OrigRax: unix.SYS_WAIT4, Rax: neg(errRestartNoIntr), Rip: rip}, unix.SYS_WAIT4, rip - 2, 0, 0},
		{"pause restarts", image.Regs{OrigRax: unix.SYS_PAUSE, Rax: neg(errRestartNoHand), Rip: rip}, unix.SYS_PAUSE, rip - 2, 0, 0},
		{"nanosleep with rem sleeps the rest", image.Regs{OrigRax: unix.SYS_NANOSLEEP, Rax: neg(errRestartRestartBlock), Rip: rip, Rdi: 0x10, Rsi: 0x20},
			unix.SYS_NANOSLEEP, rip - 2, 0x20, 0},
		{"nanosleep without rem fails EINTR", image.Regs{OrigRax: unix.SYS_NANOSLEEP, Rax: neg(errRestartRestartBlock), Rip: rip, Rdi: 0x10},
			neg(int64(unix.EINTR)), rip, 0x10, 0},
		{"absolute clock_nanosleep restarts", image.Regs{OrigRax: unix.SYS_CLOCK_NANOSLEEP, Rax: neg(errRestartRestartBlock), Rip: rip, Rsi: unix.TIMER_ABSTIME, Rdx: 0x30},
			unix.SYS_CLOCK_NANOSLEEP, rip - 2, 0, 0x30},
		{"relative clock_nanosleep sleeps the rest", image.Regs{OrigRax: unix.SYS_CLOCK_NANOSLEEP, Rax: neg(errRestartRestartBlock), Rip: rip, Rdx: 0x30, R10: 0x40},
			unix.SYS_CLOCK_NANOSLEEP, rip - 2, 0, 0x40},
		{"futex wait bitset restarts", image.Regs{OrigRax: unix.SYS_FUTEX, Rax: neg(errRestartRestartBlock), Rip: rip, Rsi: 9 | 128},
			unix.SYS_FUTEX, rip - 2, 0, 0},
		{"relative futex wait fails EINTR", image.Regs{OrigRax: unix.SYS_FUTEX, Rax: neg(errRestartRestartBlock), Rip: rip, Rsi: 128},
			neg(int64(unix.EINTR)), rip, 0, 0},
	}
	for _, tt := range tests {
		r := Resumable(&image.Thread{Regs: tt.in})
		if r.Rax != tt.rax || r.Rip != tt.rip || r.Rdi != tt.rdi || r.Rdx != tt.rdx || r.Orig_rax != ^uint64(0) {
			t.Errorf("%s: rax %#x rip %#x rdi %#x rdx %#x orig %#x; want rax %#x rip %#x rdi %#x rdx %#x",
				tt.name, r.Rax, r.Rip, r.Rdi, r.Rdx, r.Orig_rax, tt.rax, tt.rip, tt.rdi, tt.rdx)
		}
	}
}
