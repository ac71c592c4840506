// Package task checkpoints and restores what a process and its threads are,
// apart from memory and files: registers and extended FPU state, signal
// handlers, masks and queued signals, the alternate signal stack, rseq,
// the futex addresses glibc registers, credentials, limits, the working
// directory, umask, personality, names and the mm fields of PR_SET_MM_MAP.
package task

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/fileref"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/proc"
	"github.com/seamless-linux/seamless/internal/ptrace"
)

// allSignals blocks every signal that can be blocked.
const allSignals = ^uint64(0)

// Dump reads the state of process pid, whose threads tids are all stopped
// under ptrace by the caller.
func Dump(pid int, tids []int, refs *fileref.Dumper) (*image.Process, error) {
	if err := CheckUserNS(pid); err != nil {
		return nil, err
	}
	st, err := proc.ReadStat(pid)
	if err != nil {
		return nil, err
	}
	status, err := proc.ReadStatus(pid, pid)
	if err != nil {
		return nil, err
	}
	p := &image.Process{
		PID: pid, PPID: st.PPID, PGID: st.PGID, SID: st.SID, ExitSignal: st.ExitSignal,
		Umask: uint32(status.Octal("Umask")),
		MM: image.MM{
			StartCode: st.StartCode, EndCode: st.EndCode, StartData: st.StartData,
			EndData: st.EndData, StartBrk: st.StartBrk, StartStack: st.StartStack,
			ArgStart: st.ArgStart, ArgEnd: st.ArgEnd, EnvStart: st.EnvStart, EnvEnd: st.EnvEnd,
		},
	}
	if p.Comm, err = proc.ReadString(pid, "comm"); err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	if p.Cwd, err = os.Readlink(proc.Path(pid, "cwd")); err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	if p.Root, err = os.Readlink(proc.Path(pid, "root")); err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	if exe, err := os.Readlink(proc.Path(pid, "exe")); err == nil {
		name, deleted := strings.CutSuffix(exe, " (deleted)")
		if p.Exe, err = refs.Ref(proc.Path(pid, "exe"), name, deleted); err != nil {
			return nil, fmt.Errorf("process %d executable: %w", pid, err)
		}
	}
	pers, err := proc.ReadString(pid, "personality")
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	p.Personality, _ = strconv.ParseUint(pers, 16, 64)
	if p.MM.Auxv, err = os.ReadFile(proc.Path(pid, "auxv")); err != nil {
		return nil, fmt.Errorf("process %d auxv: %w", pid, err)
	}
	if p.Attrs, err = dumpProcessAttrs(pid, tids); err != nil {
		return nil, err
	}
	for _, tid := range tids {
		t, err := dumpThread(pid, tid)
		if err != nil {
			return nil, err
		}
		p.Threads = append(p.Threads, t)
	}
	shared, err := ptrace.PeekSiginfo(pid, true)
	if err != nil {
		return nil, err
	}
	for i := range shared {
		p.Pending = append(p.Pending, image.Siginfo(shared[i][:]))
	}
	if err := dumpRemote(p); err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	return p, nil
}

func dumpThread(pid, tid int) (*image.Thread, error) {
	t := &image.Thread{TID: tid}
	var err error
	if t.Comm, err = proc.ReadString(pid, "task", strconv.Itoa(tid), "comm"); err != nil {
		return nil, fmt.Errorf("thread %d: %w", tid, err)
	}
	regs, err := ptrace.GetRegs(tid)
	if err != nil {
		return nil, err
	}
	if regs.Cs != 0x33 {
		return nil, fmt.Errorf("thread %d runs in 32-bit mode (cs %#x): only x86-64 processes are supported", tid, regs.Cs)
	}
	t.Regs = toImage(&regs)
	if interrupted(&regs) {
		t.Syscall = &image.Syscall{Nr: int64(regs.Orig_rax), Result: int64(regs.Rax)}
	}
	if t.Xstate, err = ptrace.GetXstate(tid); err != nil {
		return nil, err
	}
	if t.Sigmask, err = ptrace.GetSigmask(tid); err != nil {
		return nil, err
	}
	pending, err := ptrace.PeekSiginfo(tid, false)
	if err != nil {
		return nil, err
	}
	for i := range pending {
		t.Pending = append(t.Pending, image.Siginfo(pending[i][:]))
	}
	rs, err := ptrace.GetRseq(tid)
	if err != nil {
		return nil, err
	}
	if rseqRegistered(rs) {
		t.Rseq = &image.Rseq{Pointer: rs.Pointer, Size: rs.Size, Signature: rs.Signature}
	}
	var head uint64
	var size uint64
	if _, _, e := unix.Syscall(unix.SYS_GET_ROBUST_LIST, uintptr(tid), uintptr(unsafe.Pointer(&head)), uintptr(unsafe.Pointer(&size))); e != 0 {
		return nil, fmt.Errorf("thread %d robust list: %w", tid, e)
	}
	t.RobustList, t.RobustLen = head, size
	status, err := proc.ReadStatus(pid, tid)
	if err != nil {
		return nil, err
	}
	t.Creds = credsFromStatus(status)
	if err := CheckLabel(pid, tid); err != nil {
		return nil, err
	}
	if t.Seccomp, err = dumpSeccomp(pid, tid, status); err != nil {
		return nil, err
	}
	st, err := proc.ReadTaskStat(pid, tid)
	if err != nil {
		return nil, err
	}
	t.Nice, t.Policy, t.RTPriority = st.Nice, st.Policy, st.RTPriority
	if t.Attrs, err = dumpThreadAttrs(tid, status); err != nil {
		return nil, err
	}
	return t, nil
}

func credsFromStatus(s proc.Status) image.Creds {
	var c image.Creds
	for i, v := range s.Ints("Uid") {
		if i < 4 {
			c.UID[i] = uint32(v)
		}
	}
	for i, v := range s.Ints("Gid") {
		if i < 4 {
			c.GID[i] = uint32(v)
		}
	}
	for _, g := range s.Ints("Groups") {
		c.Groups = append(c.Groups, uint32(g))
	}
	c.CapInh, c.CapPrm, c.CapEff = s.Hex("CapInh"), s.Hex("CapPrm"), s.Hex("CapEff")
	c.CapBnd, c.CapAmb = s.Hex("CapBnd"), s.Hex("CapAmb")
	c.NoNewPrivs = s.Int("NoNewPrivs") == 1
	return c
}

// dumpRemote reads what only the process can tell about itself, by
// running system calls inside it: signal handlers, the program break, and
// per thread the alternate signal stack, the clear-child-tid address and
// the securebits.
func dumpRemote(p *image.Process) error {
	s, err := injectInto(p.PID, p.Threads[0])
	if err != nil {
		return err
	}
	defer s.close()
	lead := s.threads[0]
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		if _, err := lead.Syscall(unix.SYS_RT_SIGACTION, uintptr(sig), 0, s.scratch, 8); err != nil {
			return fmt.Errorf("read handler of signal %d: %w", sig, err)
		}
		var b [32]byte
		if err := inject.ReadMem(p.PID, s.scratch, b[:]); err != nil {
			return err
		}
		a := image.Sigact{
			Signal:   sig,
			Handler:  binary.LittleEndian.Uint64(b[0:]),
			Flags:    binary.LittleEndian.Uint64(b[8:]),
			Restorer: binary.LittleEndian.Uint64(b[16:]),
			Mask:     binary.LittleEndian.Uint64(b[24:]),
		}
		if a.Handler != 0 || a.Flags != 0 || a.Mask != 0 {
			p.Sigactions = append(p.Sigactions, a)
		}
	}
	// Limits are read by the process itself: prlimit(2) on another user's
	// process needs CAP_SYS_RESOURCE, which containers often drop.
	for res := 0; res < 16; res++ {
		if _, err := lead.Syscall(unix.SYS_PRLIMIT64, 0, uintptr(res), 0, s.scratch); err != nil {
			return fmt.Errorf("read rlimit %d: %w", res, err)
		}
		var b [16]byte
		if err := inject.ReadMem(p.PID, s.scratch, b[:]); err != nil {
			return err
		}
		p.Rlimits = append(p.Rlimits, image.Rlimit{Resource: res,
			Cur: binary.LittleEndian.Uint64(b[0:]), Max: binary.LittleEndian.Uint64(b[8:])})
	}
	if err := dumpTimers(p, lead.Syscall, s.scratch); err != nil {
		return err
	}
	if _, err := lead.Syscall(unix.SYS_PRCTL, unix.PR_GET_CHILD_SUBREAPER, s.scratch); err != nil {
		return fmt.Errorf("read child subreaper: %w", err)
	}
	var sub [4]byte
	if err := inject.ReadMem(p.PID, s.scratch, sub[:]); err != nil {
		return err
	}
	p.Subreaper = binary.LittleEndian.Uint32(sub[:]) != 0
	dumpable, err := lead.Syscall(unix.SYS_PRCTL, unix.PR_GET_DUMPABLE)
	if err != nil {
		return fmt.Errorf("read dumpable: %w", err)
	}
	p.Dumpable = int(dumpable)
	if err := dumpRemoteAttrs(p.Attrs, lead.Syscall); err != nil {
		return err
	}
	brk, err := lead.Syscall(unix.SYS_BRK, 0)
	if err != nil {
		return fmt.Errorf("read program break: %w", err)
	}
	p.MM.Brk = uint64(brk)
	for i, t := range p.Threads {
		th, err := s.thread(i, t)
		if err != nil {
			return err
		}
		if _, err := th.Syscall(unix.SYS_SIGALTSTACK, 0, s.scratch); err != nil {
			return fmt.Errorf("thread %d sigaltstack: %w", t.TID, err)
		}
		var b [24]byte
		if err := inject.ReadMem(p.PID, s.scratch, b[:]); err != nil {
			return err
		}
		t.Altstack = image.Altstack{
			SP:    binary.LittleEndian.Uint64(b[0:]),
			Flags: int32(binary.LittleEndian.Uint32(b[8:])),
			Size:  binary.LittleEndian.Uint64(b[16:]),
		}
		if _, err := th.Syscall(unix.SYS_PRCTL, unix.PR_GET_TID_ADDRESS, s.scratch); err != nil {
			return fmt.Errorf("thread %d clear_child_tid: %w", t.TID, err)
		}
		if err := inject.ReadMem(p.PID, s.scratch, b[:8]); err != nil {
			return err
		}
		t.ClearTID = binary.LittleEndian.Uint64(b[:8])
		sb, err := th.Syscall(unix.SYS_PRCTL, unix.PR_GET_SECUREBITS)
		if err != nil {
			return fmt.Errorf("thread %d securebits: %w", t.TID, err)
		}
		t.Creds.Securebits = uint32(sb)
		if err := dumpRemoteThreadAttrs(t.Attrs, th, p.PID, s.scratch); err != nil {
			return err
		}
	}
	return nil
}

// rseqRegistered reports whether a thread registered an rseq area. Kernels
// before 6.3 report the size of struct rseq whether or not one is
// registered: a thread without one (any Go program's) has pointer 0 and
// size 32 there, and registering "it" again fails on 6.1.176 (EFAULT).
func rseqRegistered(rs ptrace.Rseq) bool {
	return rs.Pointer != 0 && rs.Size > 0
}
