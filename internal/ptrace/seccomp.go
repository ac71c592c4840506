package ptrace

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SockFilterSize is the size of one classic BPF instruction, struct
// sock_filter { u16 code; u8 jt; u8 jf; u32 k; }.
const SockFilterSize = 8

// SeccompFilter returns the classic BPF program of the filter at index of
// tid's seccomp chain, as struct sock_filter entries. Index 0 is the oldest
// filter, the first one installed: the kernel counts from the bottom of the
// chain (ptrace(2) says otherwise, but get_nth_filter has always done so).
// It returns an error wrapping unix.ENOENT past the newest filter. tid must
// be in a ptrace stop, and the caller needs CAP_SYS_ADMIN and no seccomp
// filter of its own.
func SeccompFilter(tid, index int) ([]byte, error) {
	// A first call without a buffer returns the number of instructions.
	n, err := seccompGetFilter(tid, index, nil)
	if err != nil {
		return nil, err
	}
	if n <= 0 || n > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp filter %d of %d: %d instructions", index, tid, n)
	}
	prog := make([]byte, n*SockFilterSize)
	m, err := seccompGetFilter(tid, index, prog)
	if err != nil {
		return nil, err
	}
	if m != n {
		return nil, fmt.Errorf("seccomp filter %d of %d changed from %d to %d instructions", index, tid, n, m)
	}
	return prog, nil
}

func seccompGetFilter(tid, index int, buf []byte) (int, error) {
	var p uintptr
	if len(buf) > 0 {
		p = uintptr(unsafe.Pointer(&buf[0]))
	}
	n, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SECCOMP_GET_FILTER, uintptr(tid), uintptr(index), p, 0, 0)
	if e != 0 {
		return 0, seccompError("get seccomp filter", tid, index, e)
	}
	return int(n), nil
}

// SeccompFlags returns the flags the filter at index of tid's chain was
// installed with, as far as the kernel keeps them: SECCOMP_FILTER_FLAG_LOG.
func SeccompFlags(tid, index int) (uint64, error) {
	// struct seccomp_metadata { __u64 filter_off; __u64 flags; }
	md := struct{ FilterOff, Flags uint64 }{FilterOff: uint64(index)}
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SECCOMP_GET_METADATA, uintptr(tid),
		unsafe.Sizeof(md), uintptr(unsafe.Pointer(&md)), 0, 0)
	if e != 0 {
		return 0, seccompError("get seccomp metadata", tid, index, e)
	}
	return md.Flags, nil
}

// seccompError explains the errors the seccomp requests return for reasons
// other than a bad index.
func seccompError(what string, tid, index int, e unix.Errno) error {
	var why string
	switch e {
	case unix.EACCES:
		why = ": reading seccomp filters needs CAP_SYS_ADMIN and a caller without seccomp filters of its own"
	case unix.EIO:
		why = ": this kernel cannot report seccomp filters (it lacks CONFIG_CHECKPOINT_RESTORE)"
	case unix.EMEDIUMTYPE:
		why = ": the filter is not a classic BPF program"
	}
	return fmt.Errorf("%s %d of %d%s: %w", what, index, tid, why, e)
}
