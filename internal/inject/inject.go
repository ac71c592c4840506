// Package inject runs system calls inside another process: the tracee is
// stopped under ptrace, its registers are pointed at a syscall instruction
// with the call's number and arguments, it is resumed until the call's
// exit, and the result is read back.
//
// This is how state that only a process can read or set about itself is
// reached: signal handlers, the alternate signal stack, rseq, mm fields,
// credentials, and every step of rebuilding an address space at restore.
package inject

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/ptrace"
)

// Code is the instruction sequence every injected call executes:
// syscall (0f 05) followed by int3 (cc).
var Code = []byte{0x0f, 0x05, 0xcc}

// Thread runs system calls in one stopped tracee thread.
type Thread struct {
	TID int
	// Spot is the address of Code in the tracee.
	Spot uintptr
	// Stack, when nonzero, is loaded into rsp for each call, so that calls
	// never run on a stack that is about to be unmapped.
	Stack uintptr
	// Base holds the registers the calls start from; Restore puts them back.
	Base ptrace.Regs
	// Child is the TID reported by the last fork or clone event.
	Child int
}

// Attach prepares calls in tid, which must be in a ptrace stop.
func Attach(tid int, spot uintptr) (*Thread, error) {
	r, err := ptrace.GetRegs(tid)
	if err != nil {
		return nil, err
	}
	return &Thread{TID: tid, Spot: spot, Base: r}, nil
}

// Restore writes back the registers saved by Attach.
func (t *Thread) Restore() error { return ptrace.SetRegs(t.TID, &t.Base) }

// Errno is a negative system-call result.
type Errno struct {
	Nr  uintptr
	Err unix.Errno
}

func (e *Errno) Error() string { return fmt.Sprintf("remote syscall %d: %v", e.Nr, e.Err) }
func (e *Errno) Unwrap() error { return e.Err }

// Syscall runs system call nr with up to six arguments and returns its
// result. The thread is resumed with PTRACE_SYSCALL and caught at the
// call's entry and exit, so no signal is involved (an int3 trap would be a
// forced SIGTRAP, which resets a blocked or ignored SIGTRAP handler to its
// default). The thread is left in the syscall-exit stop, which also lets a
// call unmap the very code it runs from.
func (t *Thread) Syscall(nr uintptr, args ...uintptr) (uintptr, error) {
	r := t.callRegs(nr, args)
	if err := ptrace.SetRegs(t.TID, &r); err != nil {
		return 0, err
	}
	for stops := 0; stops < 2; {
		if err := ptrace.ContSyscall(t.TID, 0); err != nil {
			return 0, err
		}
		ws, err := ptrace.Wait(t.TID)
		if err != nil {
			return 0, fmt.Errorf("remote syscall %d in %d: %w", nr, t.TID, err)
		}
		switch ev := ptrace.Event(ws); {
		case ev == unix.PTRACE_EVENT_FORK || ev == unix.PTRACE_EVENT_CLONE || ev == unix.PTRACE_EVENT_VFORK:
			if t.Child, err = ptrace.EventMsg(t.TID); err != nil {
				return 0, err
			}
		case ws.Stopped() && ws.StopSignal() == unix.SIGTRAP|0x80:
			stops++ // entry, then exit
		}
		// Any other stop (a SIGSTOP, a job-control stop) is swallowed:
		// every other signal is blocked while calls are injected.
	}
	out, err := ptrace.GetRegs(t.TID)
	if err != nil {
		return 0, err
	}
	return result(nr, out.Rax)
}

// callRegs are the registers that make the thread call nr with args (at
// most six: the x86-64 system-call ABI passes them in rdi, rsi, rdx, r10,
// r8 and r9) at Spot, on Stack when it is set, from Base otherwise.
func (t *Thread) callRegs(nr uintptr, args []uintptr) ptrace.Regs {
	var a [6]uintptr
	copy(a[:], args)
	r := t.Base
	r.Rip = uint64(t.Spot)
	r.Rax = uint64(nr)
	r.Orig_rax = ^uint64(0) // not in a system call: nothing for the kernel to restart
	r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9 = uint64(a[0]), uint64(a[1]), uint64(a[2]), uint64(a[3]), uint64(a[4]), uint64(a[5])
	if t.Stack != 0 {
		r.Rsp = uint64(t.Stack)
	}
	return r
}

// result is what call nr returned in rax: a value, or, from -4095 to -1,
// an error number (any other value is a value, such as an address in the
// upper half that a "negative" mmap result would look like).
func result(nr uintptr, rax uint64) (uintptr, error) {
	if ret := int64(rax); ret < 0 && ret > -4096 {
		return 0, &Errno{Nr: nr, Err: unix.Errno(-ret)}
	}
	return uintptr(rax), nil
}

// SyscallToExit is Syscall; it names the intent at call sites that unmap
// the code they run from, which only works because Syscall stops at the
// call's exit.
func (t *Thread) SyscallToExit(nr uintptr, args ...uintptr) (uintptr, error) {
	return t.Syscall(nr, args...)
}

// ReadMem copies tracee memory at addr into b.
func ReadMem(pid int, addr uintptr, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(len(b))
	remote := []unix.RemoteIovec{{Base: addr, Len: len(b)}}
	n, err := unix.ProcessVMReadv(pid, local, remote, 0)
	if err == nil && n == len(b) {
		return nil
	}
	// process_vm_readv honours page protections; /proc/PID/mem does not.
	return memFile(pid, addr, b, false)
}

// ReadMemFile copies tracee memory at addr into b through /proc/PID/mem
// only. Unlike process_vm_readv, whose pins of a page shared copy-on-write
// make the tracee take a private copy of it (Linux 5.19 and later unshare
// anonymous pages pinned for reading), it leaves pages shared.
func ReadMemFile(pid int, addr uintptr, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	return memFile(pid, addr, b, false)
}

// WriteMem copies b into tracee memory at addr.
func WriteMem(pid int, addr uintptr, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(len(b))
	remote := []unix.RemoteIovec{{Base: addr, Len: len(b)}}
	n, err := unix.ProcessVMWritev(pid, local, remote, 0)
	if err == nil && n == len(b) {
		return nil
	}
	return memFile(pid, addr, b, true)
}

func memFile(pid int, addr uintptr, b []byte, write bool) error {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile("/proc/"+strconv.Itoa(pid)+"/mem", flag, 0)
	if err != nil {
		return fmt.Errorf("open memory of %d: %w", pid, err)
	}
	defer f.Close()
	var n int
	if write {
		n, err = f.WriteAt(b, int64(addr))
	} else {
		n, err = f.ReadAt(b, int64(addr))
	}
	if err == nil && n != len(b) {
		err = errors.New("short transfer")
	}
	if err != nil {
		return fmt.Errorf("access %d bytes of %d at %#x: %w", len(b), pid, addr, err)
	}
	return nil
}

// Word encodes v in native byte order.
func Word(v uint64) []byte {
	b := make([]byte, 8)
	*(*uint64)(unsafe.Pointer(&b[0])) = v
	return b
}
