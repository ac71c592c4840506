package ptrace

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Wait statuses as the kernel encodes them (wait(2), ptrace(2)).
func stopped(sig syscall.Signal, event int) unix.WaitStatus {
	return unix.WaitStatus(0x7f | int(sig)<<8 | event<<16)
}

func TestEvent(t *testing.T) {
	tests := []struct {
		name string
		ws   unix.WaitStatus
		want int
	}{
		{"clone event", stopped(unix.SIGTRAP, unix.PTRACE_EVENT_CLONE), unix.PTRACE_EVENT_CLONE},
		{"fork event", stopped(unix.SIGTRAP, unix.PTRACE_EVENT_FORK), unix.PTRACE_EVENT_FORK},
		{"seize's group stop", stopped(unix.SIGSTOP, unix.PTRACE_EVENT_STOP), unix.PTRACE_EVENT_STOP},
		{"system-call stop", stopped(unix.SIGTRAP|0x80, 0), 0},
		{"signal stop", stopped(unix.SIGUSR1, 0), 0},
		{"exited", unix.WaitStatus(3 << 8), 0},
		{"killed", unix.WaitStatus(unix.SIGKILL), 0},
	}
	for _, tt := range tests {
		if got := Event(tt.ws); got != tt.want {
			t.Errorf("%s: Event(%#x) = %d, want %d", tt.name, uint32(tt.ws), got, tt.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		ws   unix.WaitStatus
		want string
	}{
		{unix.WaitStatus(3 << 8), "exit status 3"},
		{unix.WaitStatus(unix.SIGKILL), "killed by killed"},
		{stopped(unix.SIGSTOP, 0), "stopped by stopped (signal), event -1"}, // no trap: TrapCause is -1
		{stopped(unix.SIGTRAP, unix.PTRACE_EVENT_EXIT), "stopped by trace/breakpoint trap, event 6"},
		{unix.WaitStatus(0xffff), "status 0xffff"},
	}
	for _, tt := range tests {
		if got := describe(tt.ws); got != tt.want {
			t.Errorf("describe(%#x) = %q, want %q", uint32(tt.ws), got, tt.want)
		}
	}
}

func TestSeccompError(t *testing.T) {
	tests := []struct {
		errno unix.Errno
		want  string
	}{
		{unix.EACCES, "get seccomp filter 2 of 77: reading seccomp filters needs CAP_SYS_ADMIN"},
		{unix.EIO, "lacks CONFIG_CHECKPOINT_RESTORE"},
		{unix.EMEDIUMTYPE, "not a classic BPF program"},
		{unix.ESRCH, "get seccomp filter 2 of 77: no such process"},
	}
	for _, tt := range tests {
		err := seccompError("get seccomp filter", 77, 2, tt.errno)
		if !strings.Contains(err.Error(), tt.want) || !errors.Is(err, tt.errno) {
			t.Errorf("seccompError(%v) = %v, want %q wrapping the errno", tt.errno, err, tt.want)
		}
	}
}

func TestSigno(t *testing.T) {
	var si Siginfo
	si[0] = byte(unix.SIGUSR2) // si_signo is the first int, little-endian
	si[4] = 0xff               // si_errno: not part of the number
	if got := si.Signo(); got != int(unix.SIGUSR2) {
		t.Errorf("Signo = %d, want %d", got, unix.SIGUSR2)
	}
}
