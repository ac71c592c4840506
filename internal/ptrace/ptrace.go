// Package ptrace wraps the ptrace(2) requests that checkpoint and restore
// need on x86-64: seizing and interrupting threads, waiting for stops, and
// reading or writing registers, the extended FPU state, signal masks,
// queued signals and the rseq registration.
//
// ptrace ties a tracee to the OS thread that attached it, so callers must
// issue every request for a tracee from one locked OS thread
// (runtime.LockOSThread).
package ptrace

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Regs are the general-purpose registers, including fs_base and gs_base.
type Regs = unix.PtraceRegs

// Seize attaches to tid without stopping it, with the given PTRACE_O_* options.
func Seize(tid int, options int) error {
	if err := ptrace(unix.PTRACE_SEIZE, tid, 0, uintptr(options)); err != nil {
		return fmt.Errorf("seize %d: %w", tid, err)
	}
	return nil
}

// Interrupt asks a seized thread to stop.
func Interrupt(tid int) error {
	if err := ptrace(unix.PTRACE_INTERRUPT, tid, 0, 0); err != nil {
		return fmt.Errorf("interrupt %d: %w", tid, err)
	}
	return nil
}

// Detach lets tid go, delivering sig (0 for none).
func Detach(tid int, sig int) error {
	if err := ptrace(unix.PTRACE_DETACH, tid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("detach %d: %w", tid, err)
	}
	return nil
}

// Cont resumes tid, delivering sig (0 for none).
func Cont(tid int, sig int) error {
	if err := ptrace(unix.PTRACE_CONT, tid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("continue %d: %w", tid, err)
	}
	return nil
}

// ContSyscall resumes tid until the next system-call entry or exit.
func ContSyscall(tid int, sig int) error {
	if err := ptrace(unix.PTRACE_SYSCALL, tid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("continue %d to syscall: %w", tid, err)
	}
	return nil
}

// SetOptions sets PTRACE_O_* options.
func SetOptions(tid int, options int) error {
	if err := ptrace(unix.PTRACE_SETOPTIONS, tid, 0, uintptr(options)); err != nil {
		return fmt.Errorf("set ptrace options of %d: %w", tid, err)
	}
	return nil
}

// EventMsg returns PTRACE_GETEVENTMSG (the new TID after a clone event).
func EventMsg(tid int) (int, error) {
	var msg uint64
	if err := ptrace(unix.PTRACE_GETEVENTMSG, tid, 0, uintptr(unsafe.Pointer(&msg))); err != nil {
		return 0, fmt.Errorf("get event message of %d: %w", tid, err)
	}
	return int(msg), nil
}

// ErrExited is returned by Wait when the tracee exited or was killed.
var ErrExited = errors.New("tracee exited")

// Wait waits for tid to change state and returns its status. It returns
// ErrExited (wrapped) when tid is gone.
func Wait(tid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(tid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return ws, fmt.Errorf("wait for %d: %w", tid, err)
		}
		if ws.Exited() || ws.Signaled() {
			return ws, fmt.Errorf("wait for %d: %w (%s)", tid, ErrExited, describe(ws))
		}
		return ws, nil
	}
}

// ErrTimeout is returned by WaitTimeout when tid did not change state.
var ErrTimeout = errors.New("no change of state")

// WaitTimeout is Wait that gives up after d: a thread in an uninterruptible
// or killable sleep in the kernel does not reach a ptrace stop until it
// returns from there, which may be never.
func WaitTimeout(tid int, d time.Duration) (unix.WaitStatus, error) {
	deadline := time.Now().Add(d)
	pause := 100 * time.Microsecond
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return ws, fmt.Errorf("wait for %d: %w", tid, err)
		case pid == tid && (ws.Exited() || ws.Signaled()):
			return ws, fmt.Errorf("wait for %d: %w (%s)", tid, ErrExited, describe(ws))
		case pid == tid:
			return ws, nil
		case time.Now().After(deadline):
			return ws, fmt.Errorf("wait for %d: %w within %s", tid, ErrTimeout, d)
		}
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
}

func describe(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by %v", ws.Signal())
	case ws.Stopped():
		return fmt.Sprintf("stopped by %v, event %d", ws.StopSignal(), ws.TrapCause())
	}
	return fmt.Sprintf("status %#x", uint32(ws))
}

// Event is the PTRACE_EVENT_* of a stop, or 0.
func Event(ws unix.WaitStatus) int {
	if !ws.Stopped() {
		return 0
	}
	return int(ws>>16) & 0xff
}

// GetRegs reads the general registers.
func GetRegs(tid int) (Regs, error) {
	var r Regs
	if err := unix.PtraceGetRegs(tid, &r); err != nil {
		return r, fmt.Errorf("get registers of %d: %w", tid, err)
	}
	return r, nil
}

// SetRegs writes the general registers.
func SetRegs(tid int, r *Regs) error {
	if err := unix.PtraceSetRegs(tid, r); err != nil {
		return fmt.Errorf("set registers of %d: %w", tid, err)
	}
	return nil
}

// GetXstate reads the XSAVE area (x87, SSE, AVX and later state) as the
// CPU lays it out.
func GetXstate(tid int) ([]byte, error) {
	buf := make([]byte, 64<<10)
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	if err := ptrace(unix.PTRACE_GETREGSET, tid, unix.NT_X86_XSTATE, uintptr(unsafe.Pointer(&iov))); err != nil {
		return nil, fmt.Errorf("get xstate of %d: %w", tid, err)
	}
	return buf[:iov.Len], nil
}

// SetXstate writes an XSAVE area read by GetXstate.
func SetXstate(tid int, xs []byte) error {
	if len(xs) == 0 {
		return nil
	}
	iov := unix.Iovec{Base: &xs[0]}
	iov.SetLen(len(xs))
	if err := ptrace(unix.PTRACE_SETREGSET, tid, unix.NT_X86_XSTATE, uintptr(unsafe.Pointer(&iov))); err != nil {
		return fmt.Errorf("set xstate of %d: %w", tid, err)
	}
	return nil
}

// GetSigmask reads the thread's blocked-signal mask.
func GetSigmask(tid int) (uint64, error) {
	var m uint64
	if err := ptrace(unix.PTRACE_GETSIGMASK, tid, 8, uintptr(unsafe.Pointer(&m))); err != nil {
		return 0, fmt.Errorf("get signal mask of %d: %w", tid, err)
	}
	return m, nil
}

// SetSigmask writes the thread's blocked-signal mask.
func SetSigmask(tid int, m uint64) error {
	if err := ptrace(unix.PTRACE_SETSIGMASK, tid, 8, uintptr(unsafe.Pointer(&m))); err != nil {
		return fmt.Errorf("set signal mask of %d: %w", tid, err)
	}
	return nil
}

// Siginfo is a raw siginfo_t as the signal ABI defines it (128 bytes).
type Siginfo [128]byte

// Signo is the signal number of a siginfo.
func (s *Siginfo) Signo() int { return int(*(*int32)(unsafe.Pointer(&s[0]))) }

const peekSiginfoShared = 1

// PeekSiginfo lists the queued signals of tid without dequeuing them: the
// thread's private queue, or with shared the whole process's queue.
func PeekSiginfo(tid int, shared bool) ([]Siginfo, error) {
	type args struct {
		Off   uint64
		Flags uint32
		Nr    int32
	}
	var out []Siginfo
	buf := make([]Siginfo, 32)
	a := args{Nr: int32(len(buf))}
	if shared {
		a.Flags = peekSiginfoShared
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKSIGINFO, uintptr(tid),
			uintptr(unsafe.Pointer(&a)), uintptr(unsafe.Pointer(&buf[0])), 0, 0)
		if e != 0 {
			return nil, fmt.Errorf("peek signals of %d: %w", tid, e)
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
		a.Off += uint64(n)
	}
}

// InSignalStop reports whether tid, in a ptrace stop, is in a
// signal-delivery stop (the kernel has the signal's siginfo) rather than a
// group stop, which has none.
func InSignalStop(tid int) (bool, error) {
	var si Siginfo
	err := ptrace(unix.PTRACE_GETSIGINFO, tid, 0, uintptr(unsafe.Pointer(&si)))
	if err == unix.EINVAL {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("siginfo of %d: %w", tid, err)
	}
	return true, nil
}

// Rseq is a thread's restartable-sequences registration.
type Rseq struct {
	Pointer   uint64
	Size      uint32
	Signature uint32
	Flags     uint32
	Pad       uint32
}

// GetRseq reads the rseq registration of tid (Pointer 0 when none; Size is
// 0 then, except before Linux 6.3, which always reports 32).
func GetRseq(tid int) (Rseq, error) {
	var r Rseq
	if err := ptrace(unix.PTRACE_GET_RSEQ_CONFIGURATION, tid, unsafe.Sizeof(r), uintptr(unsafe.Pointer(&r))); err != nil {
		return r, fmt.Errorf("get rseq of %d: %w", tid, err)
	}
	return r, nil
}

// PeekWord reads one word of tracee memory (works on read-only pages).
func PeekWord(tid int, addr uintptr) (uint64, error) {
	var b [8]byte
	if _, err := unix.PtracePeekData(tid, addr, b[:]); err != nil {
		return 0, fmt.Errorf("peek %d at %#x: %w", tid, addr, err)
	}
	return *(*uint64)(unsafe.Pointer(&b[0])), nil
}

// PokeWord writes one word of tracee memory (works on read-only pages).
func PokeWord(tid int, addr uintptr, v uint64) error {
	b := (*[8]byte)(unsafe.Pointer(&v))
	if _, err := unix.PtracePokeData(tid, addr, b[:]); err != nil {
		return fmt.Errorf("poke %d at %#x: %w", tid, addr, err)
	}
	return nil
}

func ptrace(req int, pid int, addr uintptr, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(pid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
