package inject

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/ptrace"
)

func TestCallRegs(t *testing.T) {
	base := ptrace.Regs{Rip: 0x401000, Rsp: 0x7ffc0000, Rax: 0xffffffffffffffdc, Orig_rax: 230, Rbx: 7, R11: 0x246, Eflags: 0x246}
	tests := []struct {
		name  string
		stack uintptr
		nr    uintptr
		args  []uintptr
		check func(r ptrace.Regs) bool
	}{
		{"six arguments in the ABI's order", 0, unix.SYS_MMAP, []uintptr{1, 2, 3, 4, 5, 6}, func(r ptrace.Regs) bool {
			return r.Rdi == 1 && r.Rsi == 2 && r.Rdx == 3 && r.R10 == 4 && r.R8 == 5 && r.R9 == 6
		}},
		{"missing arguments are zero", 0, unix.SYS_GETPID, nil, func(r ptrace.Regs) bool {
			return r.Rdi == 0 && r.Rsi == 0 && r.Rdx == 0 && r.R10 == 0 && r.R8 == 0 && r.R9 == 0
		}},
		{"the call at the spot, outside any system call", 0, unix.SYS_CLOSE, []uintptr{3}, func(r ptrace.Regs) bool {
			return r.Rip == 0x7f0000001000 && r.Rax == unix.SYS_CLOSE && r.Orig_rax == ^uint64(0) && r.Rdi == 3
		}},
		{"the thread's own stack without one given", 0, unix.SYS_GETPID, nil, func(r ptrace.Regs) bool {
			return r.Rsp == 0x7ffc0000
		}},
		{"the given stack", 0x7f0000002000, unix.SYS_GETPID, nil, func(r ptrace.Regs) bool {
			return r.Rsp == 0x7f0000002000
		}},
		{"the other registers kept", 0, unix.SYS_GETPID, nil, func(r ptrace.Regs) bool {
			return r.Rbx == 7 && r.R11 == 0x246 && r.Eflags == 0x246
		}},
	}
	for _, tt := range tests {
		th := &Thread{TID: 1, Spot: 0x7f0000001000, Stack: tt.stack, Base: base}
		if r := th.callRegs(tt.nr, tt.args); !tt.check(r) {
			t.Errorf("%s: registers %+v", tt.name, r)
		}
		if th.Base != base {
			t.Errorf("%s: Base changed", tt.name)
		}
	}
}

func TestResult(t *testing.T) {
	tests := []struct {
		rax  uint64
		want uintptr
		err  unix.Errno
	}{
		{0, 0, 0},
		{42, 42, 0},
		{0x7f1234560000, 0x7f1234560000, 0},
		{^uint64(0), 0, unix.EPERM},                 // -1
		{^uint64(0) - 1, 0, unix.ENOENT},            // -2
		{uint64(1<<64 - 4095), 0, unix.Errno(4095)}, // the lowest error
		{uint64(1<<64 - 4096), uintptr(1<<64 - 4096), 0},
		{0xffffffffff600000, 0xffffffffff600000, 0}, // an address in the upper half
	}
	for _, tt := range tests {
		got, err := result(unix.SYS_MMAP, tt.rax)
		var e *Errno
		switch {
		case tt.err == 0 && (err != nil || got != tt.want):
			t.Errorf("result(%#x) = %#x, %v; want %#x", tt.rax, got, err, tt.want)
		case tt.err != 0 && (!errors.As(err, &e) || e.Err != tt.err || e.Nr != unix.SYS_MMAP || !errors.Is(err, tt.err)):
			t.Errorf("result(%#x) = %#x, %v; want %v", tt.rax, got, err, tt.err)
		}
	}
}

func TestWords(t *testing.T) {
	if got := Word(0x0102030405060708); string(got) != "\x08\x07\x06\x05\x04\x03\x02\x01" {
		t.Errorf("Word = %x", got)
	}
	got := Uint64s(1, 0xff00000000000000)
	if len(got) != 16 || got[0] != 1 || got[15] != 0xff || string(got[1:15]) != string(make([]byte, 14)) {
		t.Errorf("Uint64s = %x", got)
	}
	if len(Uint64s()) != 0 {
		t.Error("Uint64s() is not empty")
	}
}
