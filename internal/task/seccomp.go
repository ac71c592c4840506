package task

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/proc"
	"github.com/seamless-linux/seamless/internal/ptrace"
)

// SeizeOptions are the ptrace options of every thread a checkpoint seizes:
// injected calls tell system-call stops apart by PTRACE_O_TRACESYSGOOD.
const SeizeOptions = unix.PTRACE_O_TRACESYSGOOD

// capSysAdmin is CAP_SYS_ADMIN, which lets a thread without no_new_privs
// install seccomp filters.
const capSysAdmin = 21

// dumpSeccomp reads the seccomp state of thread tid of process pid, which
// is in a ptrace stop: its filters, oldest first. Strict mode is refused: it
// cannot be entered again at restore, since the thread could make none of
// the calls that rebuild it afterwards.
func dumpSeccomp(pid, tid int, status proc.Status) ([]image.SeccompFilter, error) {
	mode, ok := status["Seccomp"]
	if !ok {
		return nil, nil // a kernel without CONFIG_SECCOMP
	}
	switch mode {
	case "0":
		return nil, nil
	case "1":
		return nil, fmt.Errorf("thread %d of process %d is in seccomp strict mode, which cannot be restored", tid, pid)
	case "2":
	default:
		return nil, fmt.Errorf("thread %d of process %d: unknown seccomp mode %q", tid, pid, mode)
	}
	var chain []image.SeccompFilter
	for i := 0; ; i++ {
		prog, err := ptrace.SeccompFilter(tid, i)
		if errors.Is(err, unix.ENOENT) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("seccomp filters of thread %d of process %d: %w", tid, pid, err)
		}
		if returnsUserNotif(prog) {
			return nil, fmt.Errorf("thread %d of process %d has a seccomp filter that hands system calls to a supervisor (SECCOMP_RET_USER_NOTIF), which cannot be restored", tid, pid)
		}
		flags, err := ptrace.SeccompFlags(tid, i)
		if err != nil {
			return nil, fmt.Errorf("seccomp filters of thread %d of process %d: %w", tid, pid, err)
		}
		chain = append(chain, image.SeccompFilter{Flags: flags & unix.SECCOMP_FILTER_FLAG_LOG, Prog: prog})
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("thread %d of process %d is in seccomp filter mode without a filter", tid, pid)
	}
	// Seccomp_filters (Linux 5.9 and later) counts the same chain.
	if n, ok := status["Seccomp_filters"]; ok && n != strconv.Itoa(len(chain)) {
		return nil, fmt.Errorf("seccomp filters of thread %d of process %d: read %d, /proc shows %s", tid, pid, len(chain), n)
	}
	return chain, nil
}

// returnsUserNotif reports whether a classic BPF program can return
// SECCOMP_RET_USER_NOTIF as a constant. The supervisor that listens for
// such notifications holds a descriptor of the filter itself, which a new
// filter cannot be given.
func returnsUserNotif(prog []byte) bool {
	for i := 0; i+ptrace.SockFilterSize <= len(prog); i += ptrace.SockFilterSize {
		code := binary.NativeEndian.Uint16(prog[i:])
		k := binary.NativeEndian.Uint32(prog[i+4:])
		if code == unix.BPF_RET|unix.BPF_K && k&unix.SECCOMP_RET_ACTION_FULL == unix.SECCOMP_RET_USER_NOTIF {
			return true
		}
	}
	return false
}

// SuspendSeccomp lets tracee tid make system calls that its seccomp
// filters would refuse (PTRACE_O_SUSPEND_SECCOMP) until it is detached or
// its options are set again; options are its other ptrace options. It
// needs CAP_SYS_ADMIN and a caller without seccomp filters of its own.
func SuspendSeccomp(tid, options int) error {
	if err := ptrace.SetOptions(tid, options|unix.PTRACE_O_SUSPEND_SECCOMP); err != nil {
		return fmt.Errorf("suspend the seccomp filters of thread %d: %w", tid, err)
	}
	return nil
}

// SeccompBeforeCreds reports whether the seccomp filters of thread img,
// from its filter number from on, must be installed before its credentials
// are restored. The kernel installs a filter only for a thread with
// no_new_privs or CAP_SYS_ADMIN, and the restored credentials may have
// neither: the process installed its filters while it held CAP_SYS_ADMIN
// and dropped it later.
func SeccompBeforeCreds(img *image.Thread, from int) bool {
	return len(img.Seccomp) > from && !img.Creds.NoNewPrivs && img.Creds.CapEff&(1<<capSysAdmin) == 0
}

// SharedSeccomp is the number of filters, oldest first, that every thread
// of a process has alike (same program, same flags): a filter installed
// before the threads were created, or with SECCOMP_FILTER_FLAG_TSYNC, is
// one filter that all of them share, and the kernel lets a thread
// synchronise its filters to the others (TSYNC) only while theirs are
// ancestors of its own.
func SharedSeccomp(threads []*image.Thread) int {
	if len(threads) < 2 {
		return 0
	}
	n := len(threads[0].Seccomp)
	for _, th := range threads[1:] {
		n = min(n, len(th.Seccomp))
		for i := 0; i < n; i++ {
			a, b := threads[0].Seccomp[i], th.Seccomp[i]
			if a.Flags != b.Flags || !bytes.Equal(a.Prog, b.Prog) {
				n = i
			}
		}
	}
	return n
}

// Offsets in the scratch area: struct sock_fprog, then the program (at
// most BPF_MAXINSNS instructions, 32 KiB).
const (
	fprogOff = 0
	progOff  = 64
)

// RestoreSeccomp installs the seccomp filters of thread img from its
// filter number from on, oldest first, with seccomp(SECCOMP_SET_MODE_FILTER)
// calls in that very thread: a filter binds the thread that installs it and
// the threads and processes it creates afterwards, and none of the threads
// that exist already. With tsync, the filters go to every thread of the
// process (SECCOMP_FILTER_FLAG_TSYNC): all of them then share these very
// filters, as they did.
func RestoreSeccomp(t *inject.Target, th *inject.Thread, img *image.Thread, from, to int, tsync bool) error {
	for i := from; i < to; i++ {
		f := img.Seccomp[i]
		fail := func(err error) error {
			return fmt.Errorf("thread %d seccomp filter %d of %d: %w", img.TID, i+1, len(img.Seccomp), err)
		}
		prog, err := t.Put(progOff, f.Prog)
		if err != nil {
			return fail(err)
		}
		// struct sock_fprog { unsigned short len; struct sock_filter *filter; }
		fprog, err := t.Put(fprogOff, inject.Uint64s(uint64(len(f.Prog)/ptrace.SockFilterSize), uint64(prog)))
		if err != nil {
			return fail(err)
		}
		flags := f.Flags
		if tsync {
			flags |= unix.SECCOMP_FILTER_FLAG_TSYNC
		}
		got, err := th.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), fprog)
		if err != nil {
			if errors.Is(err, unix.EACCES) {
				err = fmt.Errorf("%w (the thread has neither no_new_privs nor CAP_SYS_ADMIN)", err)
			}
			return fail(err)
		}
		if got != 0 {
			return fail(fmt.Errorf("thread %d cannot share it (SECCOMP_FILTER_FLAG_TSYNC)", got))
		}
	}
	return nil
}
