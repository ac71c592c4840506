package task

import (
	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/ptrace"
)

// toImage converts ptrace registers into the image's representation.
func toImage(r *ptrace.Regs) image.Regs {
	return image.Regs{
		R15: r.R15, R14: r.R14, R13: r.R13, R12: r.R12, Rbp: r.Rbp, Rbx: r.Rbx,
		R11: r.R11, R10: r.R10, R9: r.R9, R8: r.R8, Rax: r.Rax, Rcx: r.Rcx,
		Rdx: r.Rdx, Rsi: r.Rsi, Rdi: r.Rdi, OrigRax: r.Orig_rax, Rip: r.Rip,
		Cs: r.Cs, Eflags: r.Eflags, Rsp: r.Rsp, Ss: r.Ss, FsBase: r.Fs_base,
		GsBase: r.Gs_base, Ds: r.Ds, Es: r.Es, Fs: r.Fs, Gs: r.Gs,
	}
}

// fromImage converts image registers back for ptrace.
func fromImage(r *image.Regs) ptrace.Regs {
	return ptrace.Regs{
		R15: r.R15, R14: r.R14, R13: r.R13, R12: r.R12, Rbp: r.Rbp, Rbx: r.Rbx,
		R11: r.R11, R10: r.R10, R9: r.R9, R8: r.R8, Rax: r.Rax, Rcx: r.Rcx,
		Rdx: r.Rdx, Rsi: r.Rsi, Rdi: r.Rdi, Orig_rax: r.OrigRax, Rip: r.Rip,
		Cs: r.Cs, Eflags: r.Eflags, Rsp: r.Rsp, Ss: r.Ss, Fs_base: r.FsBase,
		Gs_base: r.GsBase, Ds: r.Ds, Es: r.Es, Fs: r.Fs, Gs: r.Gs,
	}
}

// Kernel return codes that ask for a system call to be restarted. They never
// reach user space; a thread stopped inside a system call shows them in rax.
const (
	errRestartSys          = 512
	errRestartNoIntr       = 513
	errRestartNoHand       = 514
	errRestartRestartBlock = 516
)

// interrupted reports whether r shows a system call that was interrupted
// and will be restarted (or fail with EINTR) when the thread resumes.
func interrupted(r *ptrace.Regs) bool {
	if int64(r.Orig_rax) < 0 {
		return false
	}
	switch -int64(r.Rax) {
	case errRestartSys, errRestartNoIntr, errRestartNoHand, errRestartRestartBlock:
		return true
	}
	return false
}

// Resumable returns the registers a restored thread starts from. A system
// call that was interrupted at checkpoint is restarted the way the kernel
// restarts one after a signal without a handler: rax gets the call number
// back and rip steps back over the two-byte syscall instruction.
//
// -ERESTART_RESTARTBLOCK (a timed wait) keeps its remaining time in the
// kernel, which a new kernel does not have. Sleeps whose deadline is
// absolute restart unchanged; a relative nanosleep restarts for the
// remaining time, which the kernel had already written to the caller's
// rem argument (passed as both req and rem, so the caller's req is left as
// it was). Anything else returns EINTR, as POSIX allows.
func Resumable(t *image.Thread) ptrace.Regs {
	r := fromImage(&t.Regs)
	if interrupted(&r) {
		switch {
		case -int64(r.Rax) != errRestartRestartBlock:
			restart(&r)
		case r.Orig_rax == unix.SYS_NANOSLEEP && r.Rsi != 0:
			r.Rdi = r.Rsi
			restart(&r)
		case r.Orig_rax == unix.SYS_CLOCK_NANOSLEEP && r.Rsi&unix.TIMER_ABSTIME != 0:
			restart(&r)
		case r.Orig_rax == unix.SYS_CLOCK_NANOSLEEP && r.R10 != 0:
			r.Rdx = r.R10
			restart(&r)
		case r.Orig_rax == unix.SYS_FUTEX && r.Rsi&futexCmdMask == futexWaitBitset:
			restart(&r) // FUTEX_WAIT_BITSET takes an absolute timeout
		default:
			r.Rax = ^uint64(3) // -EINTR
		}
	}
	r.Orig_rax = ^uint64(0)
	return r
}

// futexCmdMask strips FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME.
const (
	futexCmdMask    = 0x7f
	futexWaitBitset = 9
)

func restart(r *ptrace.Regs) {
	r.Rax = r.Orig_rax
	r.Rip -= 2
}

// restartInPlace makes a thread that is resumed on the kernel it was
// interrupted on restart its system call as the kernel would have:
// -ERESTART_RESTARTBLOCK goes through restart_syscall(2), which continues
// from the kernel's own restart block (the remaining sleep, say).
func restartInPlace(r *ptrace.Regs) {
	if !interrupted(r) {
		return
	}
	if -int64(r.Rax) == errRestartRestartBlock {
		r.Orig_rax = unix.SYS_RESTART_SYSCALL
	}
	restart(r)
	r.Orig_rax = ^uint64(0)
}
