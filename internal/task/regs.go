package task

import (
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
// back and rip steps back over the two-byte syscall instruction. A timed
// sleep (-ERESTART_RESTARTBLOCK) cannot be resumed with its remaining time
// from user space, so it returns EINTR, as POSIX allows.
func Resumable(t *image.Thread) ptrace.Regs {
	r := fromImage(&t.Regs)
	if interrupted(&r) {
		switch -int64(r.Rax) {
		case errRestartRestartBlock:
			r.Rax = ^uint64(3) // -EINTR
		default:
			r.Rax = r.Orig_rax
			r.Rip -= 2
		}
	}
	r.Orig_rax = ^uint64(0)
	return r
}
