package task

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/proc"
	"github.com/seamless-linux/seamless/internal/ptrace"
)

// cloneArgs lays out struct clone_args (CLONE_ARGS_SIZE_VER1) for clone3
// with one entry in set_tid, which asks for an exact PID or TID.
func cloneArgs(flags uint64, exitSignal int, setTID uintptr) []byte {
	return inject.Uint64s(flags, 0, 0, 0, uint64(exitSignal), 0, 0, 0, uint64(setTID), 1)
}

const (
	cloneArgsOff = 1024
	setTIDOff    = 1200
)

// Clone creates, inside parent, a child process with the exact PID pid and
// returns it stopped under ptrace (the parent traces forks).
func Clone(parent *inject.Target, pid, exitSignal int) error {
	return clone(parent, parent.Leader, pid, 0, exitSignal)
}

// CloneFrom is Clone run in thread th of parent, the child's parent
// thread, with more clone flags (CLONE_FILES, CLONE_FS: the child shares
// its parent's descriptor table, or root and working directory).
func CloneFrom(parent *inject.Target, th *inject.Thread, pid, exitSignal int, flags uint64) error {
	return clone(parent, th, pid, flags, exitSignal)
}

// CloneThread creates, inside t, a thread with the exact TID tid, stopped.
func CloneThread(t *inject.Target, tid int) error {
	const flags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
		unix.CLONE_THREAD | unix.CLONE_SYSVSEM
	return clone(t, t.Leader, tid, flags, 0)
}

func clone(t *inject.Target, th *inject.Thread, id int, flags uint64, exitSignal int) error {
	set, err := t.Put(setTIDOff, inject.Uint64s(uint64(id)))
	if err != nil {
		return err
	}
	args, err := t.Put(cloneArgsOff, cloneArgs(flags, exitSignal, set))
	if err != nil {
		return err
	}
	th.Child = 0
	got, err := th.Syscall(unix.SYS_CLONE3, args, unix.CLONE_ARGS_SIZE_VER1)
	// A task the kernel is still releasing has left /proc but not yet
	// freed its PID: give it a moment.
	for tries := 0; errors.Is(err, unix.EEXIST) && tries < pidReleaseTries && !pidVisible(id); tries++ {
		time.Sleep(pidReleasePause)
		th.Child = 0
		got, err = th.Syscall(unix.SYS_CLONE3, args, unix.CLONE_ARGS_SIZE_VER1)
	}
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("pid %d is already in use%s: cannot restore with the same pid", id, holder(id))
		}
		return fmt.Errorf("clone3 with pid %d: %w", id, err)
	}
	if int(got) != id {
		return fmt.Errorf("clone3 gave pid %d, asked for %d", got, id)
	}
	// The child starts with a SIGSTOP (or a ptrace event stop) pending.
	if _, err := ptrace.Wait(id); err != nil {
		return fmt.Errorf("new task %d: %w", id, err)
	}
	return nil
}

// How long clone waits for a PID that is being released (about 2 s).
const (
	pidReleaseTries = 400
	pidReleasePause = 5 * time.Millisecond
)

// holder describes the task that has ID id, for an error saying the ID is
// taken: " by NAME (state S, thread of T, parent P)", or "" once it is gone.
// A restore that finds its ID taken between its check and its clone is a
// race with another process creating tasks by ID; naming the task is what
// tells whose.
func holder(id int) string {
	st, err := proc.ReadStat(id)
	if err != nil {
		return ""
	}
	comm, _ := proc.ReadString(id, "comm")
	of := ""
	if s, err := proc.ReadStatus(id, id); err == nil && s.Int("Tgid") != id {
		of = fmt.Sprintf(", thread of %d", s.Int("Tgid"))
	}
	return fmt.Sprintf(" by %q (state %c%s, parent %d)", strings.TrimSpace(comm), st.State, of, st.PPID)
}

// pidVisible reports whether a task with ID id shows in /proc.
func pidVisible(id int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(id))
	return err == nil
}

// sigaction lays out struct kernel_sigaction.
func sigaction(a image.Sigact) []byte {
	return inject.Uint64s(a.Handler, a.Flags, a.Restorer, a.Mask)
}

// RestoreThread sets what each thread holds for itself, by running calls
// in that thread: the clear-child-tid and robust-list futex addresses,
// rseq, the alternate signal stack, its name and its queued signals.
func RestoreThread(t *inject.Target, th *inject.Thread, img *image.Thread) error {
	if img.ClearTID != 0 {
		if _, err := th.Syscall(unix.SYS_SET_TID_ADDRESS, uintptr(img.ClearTID)); err != nil {
			return fmt.Errorf("thread %d set_tid_address: %w", img.TID, err)
		}
	}
	if img.RobustList != 0 {
		if _, err := th.Syscall(unix.SYS_SET_ROBUST_LIST, uintptr(img.RobustList), uintptr(img.RobustLen)); err != nil {
			return fmt.Errorf("thread %d set_robust_list: %w", img.TID, err)
		}
	}
	if r := img.Rseq; r != nil {
		if _, err := th.Syscall(unix.SYS_RSEQ, uintptr(r.Pointer), uintptr(r.Size), 0, uintptr(r.Signature)); err != nil {
			return fmt.Errorf("thread %d rseq registration: %w", img.TID, err)
		}
	}
	if a := img.Altstack; a.Flags&ssDisable == 0 {
		ss := inject.Uint64s(a.SP, uint64(uint32(a.Flags&^ssOnStack)), a.Size)
		addr, err := t.Put(0, ss)
		if err != nil {
			return err
		}
		if _, err := th.Syscall(unix.SYS_SIGALTSTACK, addr, 0); err != nil {
			return fmt.Errorf("thread %d sigaltstack: %w", img.TID, err)
		}
	}
	name, err := t.PutString(0, img.Comm)
	if err != nil {
		return err
	}
	if _, err := th.Syscall(unix.SYS_PRCTL, unix.PR_SET_NAME, name); err != nil {
		return fmt.Errorf("thread %d name: %w", img.TID, err)
	}
	for _, si := range img.Pending {
		addr, err := t.Put(0, si)
		if err != nil {
			return err
		}
		sig := binary.LittleEndian.Uint32(si)
		if _, err := th.Syscall(unix.SYS_RT_TGSIGQUEUEINFO, uintptr(t.PID), uintptr(img.TID), uintptr(sig), addr); err != nil {
			return fmt.Errorf("thread %d queue signal %d: %w", img.TID, sig, err)
		}
	}
	return nil
}

// RestoreProcess sets the per-process state: signal handlers, queued
// process-wide signals, personality, umask, the mm fields with the
// executable, and resource limits (root and working directory are
// files.RestoreFS).
func RestoreProcess(t *inject.Target, p *image.Process, exe *os.File) error {
	for _, a := range p.Sigactions {
		addr, err := t.Put(0, sigaction(a))
		if err != nil {
			return err
		}
		if _, err := t.Call(unix.SYS_RT_SIGACTION, uintptr(a.Signal), addr, 0, 8); err != nil {
			return fmt.Errorf("signal %d handler: %w", a.Signal, err)
		}
	}
	for _, si := range p.Pending {
		addr, err := t.Put(0, si)
		if err != nil {
			return err
		}
		sig := binary.LittleEndian.Uint32(si)
		if _, err := t.Call(unix.SYS_RT_SIGQUEUEINFO, uintptr(t.PID), uintptr(sig), addr); err != nil {
			return fmt.Errorf("queue signal %d: %w", sig, err)
		}
	}
	if p.Subreaper {
		if _, err := t.Call(unix.SYS_PRCTL, unix.PR_SET_CHILD_SUBREAPER, 1); err != nil {
			return fmt.Errorf("child subreaper: %w", err)
		}
	}
	if err := restoreTimers(t, p); err != nil {
		return err
	}
	if _, err := t.Call(unix.SYS_PERSONALITY, uintptr(p.Personality)); err != nil {
		return fmt.Errorf("personality: %w", err)
	}
	if _, err := t.Call(unix.SYS_UMASK, uintptr(p.Umask)); err != nil {
		return fmt.Errorf("umask: %w", err)
	}
	if err := setMM(t, p, exe); err != nil {
		return err
	}
	for _, rl := range p.Rlimits {
		lim := unix.Rlimit{Cur: rl.Cur, Max: rl.Max}
		if err := unix.Prlimit(t.PID, rl.Resource, &lim, nil); err != nil {
			return fmt.Errorf("rlimit %d: %w", rl.Resource, err)
		}
	}
	return restoreProcessAttrs(t, p)
}

// setMM sets the mm fields with PR_SET_MM_MAP: code, data, heap, stack,
// arguments and environment bounds, the auxiliary vector and the
// executable behind /proc/PID/exe.
func setMM(t *inject.Target, p *image.Process, exe *os.File) error {
	const auxvOff = 2048
	auxv, err := t.Put(auxvOff, p.MM.Auxv)
	if err != nil {
		return err
	}
	exeFD := -1
	if exe != nil {
		if exeFD, err = t.SendFile(exe); err != nil {
			return err
		}
		defer t.Call(unix.SYS_CLOSE, uintptr(exeFD))
	}
	m := p.MM
	b := inject.Uint64s(m.StartCode, m.EndCode, m.StartData, m.EndData, m.StartBrk, m.Brk,
		m.StartStack, m.ArgStart, m.ArgEnd, m.EnvStart, m.EnvEnd, uint64(auxv))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Auxv)))
	b = binary.LittleEndian.AppendUint32(b, uint32(int32(exeFD)))
	addr, err := t.Put(0, b)
	if err != nil {
		return err
	}
	if _, err := t.Call(unix.SYS_PRCTL, unix.PR_SET_MM, unix.PR_SET_MM_MAP, addr, uintptr(len(b))); err != nil {
		return fmt.Errorf("PR_SET_MM_MAP: %w", err)
	}
	return nil
}

// capSetPCAP is CAP_SETPCAP, needed to change securebits.
const capSetPCAP = 8

// RestoreCreds gives thread th the credentials c. It runs last: once the
// thread is no longer root it could not do the privileged steps before.
func RestoreCreds(t *inject.Target, th *inject.Thread, c *image.Creds) error {
	call := func(what string, nr uintptr, args ...uintptr) error {
		if _, err := th.Syscall(nr, args...); err != nil {
			return fmt.Errorf("thread %d %s: %w", th.TID, what, err)
		}
		return nil
	}
	// Keep capabilities across the uid change; the exact bits come last.
	if err := call("securebits", unix.SYS_PRCTL, unix.PR_SET_SECUREBITS, uintptr(c.Securebits|secbitKeepCaps)); err != nil {
		return err
	}
	for capn := 0; capn < 64; capn++ {
		if c.CapBnd&(1<<capn) == 0 {
			if _, err := th.Syscall(unix.SYS_PRCTL, unix.PR_CAPBSET_READ, uintptr(capn)); err != nil {
				break // past the last capability this kernel knows
			}
			if err := call("drop bounding capability", unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(capn)); err != nil {
				return err
			}
		}
	}
	groups := make([]byte, 4*len(c.Groups))
	for i, g := range c.Groups {
		binary.LittleEndian.PutUint32(groups[4*i:], g)
	}
	gaddr := uintptr(0)
	if len(groups) > 0 {
		var err error
		if gaddr, err = t.Put(0, groups); err != nil {
			return err
		}
	}
	if err := call("setgroups", unix.SYS_SETGROUPS, uintptr(len(c.Groups)), gaddr); err != nil {
		return err
	}
	if err := call("setresgid", unix.SYS_SETRESGID, uintptr(c.GID[0]), uintptr(c.GID[1]), uintptr(c.GID[2])); err != nil {
		return err
	}
	if err := call("setfsgid", unix.SYS_SETFSGID, uintptr(c.GID[3])); err != nil {
		return err
	}
	if err := call("setresuid", unix.SYS_SETRESUID, uintptr(c.UID[0]), uintptr(c.UID[1]), uintptr(c.UID[2])); err != nil {
		return err
	}
	th.Syscall(unix.SYS_SETFSUID, uintptr(c.UID[3])) // returns the old fsuid, never an error
	capset := func(eff, prm, inh uint64) error {
		hdr := make([]byte, 8)
		binary.LittleEndian.PutUint32(hdr, unix.LINUX_CAPABILITY_VERSION_3)
		data := make([]byte, 24)
		for i := 0; i < 2; i++ {
			binary.LittleEndian.PutUint32(data[12*i:], uint32(eff>>(32*i)))
			binary.LittleEndian.PutUint32(data[12*i+4:], uint32(prm>>(32*i)))
			binary.LittleEndian.PutUint32(data[12*i+8:], uint32(inh>>(32*i)))
		}
		ha, err := t.Put(0, hdr)
		if err != nil {
			return err
		}
		da, err := t.Put(64, data)
		if err != nil {
			return err
		}
		return call("capset", unix.SYS_CAPSET, ha, da)
	}
	const setpcap = 1 << capSetPCAP
	if err := capset(c.CapEff|setpcap, c.CapPrm|setpcap, c.CapInh); err != nil {
		return err
	}
	if err := call("securebits", unix.SYS_PRCTL, unix.PR_SET_SECUREBITS, uintptr(c.Securebits)); err != nil {
		return err
	}
	if err := capset(c.CapEff, c.CapPrm, c.CapInh); err != nil {
		return err
	}
	for capn := 0; capn < 64; capn++ {
		if c.CapAmb&(1<<capn) != 0 {
			if err := call("raise ambient capability", unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(capn)); err != nil {
				return err
			}
		}
	}
	if c.NoNewPrivs {
		if err := call("no_new_privs", unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

// RestoreScheduling sets a thread's scheduling policy, nice value, CPU
// affinity and I/O priority from the restorer. It comes after the last call
// the thread runs for the restore: a thread that is pinned, idle-class or
// niced would otherwise slow the restore down.
func RestoreScheduling(img *image.Thread) error {
	if img.Attrs != nil {
		if err := restoreSchedAttrs(img); err != nil {
			return err
		}
	} else if img.Policy != unix.SCHED_NORMAL {
		// struct sched_param { int sched_priority; }
		prio := int32(img.RTPriority)
		if _, _, e := unix.Syscall(unix.SYS_SCHED_SETSCHEDULER, uintptr(img.TID), uintptr(img.Policy), uintptr(unsafe.Pointer(&prio))); e != 0 {
			return fmt.Errorf("thread %d scheduling policy %d: %w", img.TID, img.Policy, e)
		}
	}
	if err := unix.Setpriority(unix.PRIO_PROCESS, img.TID, img.Nice); err != nil {
		return fmt.Errorf("thread %d nice %d: %w", img.TID, img.Nice, err)
	}
	return nil
}

// Finish puts a thread back where it was: extended state, signal mask and,
// last, the registers (with an interrupted system call set to restart).
func Finish(tid int, img *image.Thread, regs ptrace.Regs) error {
	if err := ptrace.SetXstate(tid, img.Xstate); err != nil {
		return err
	}
	if err := ptrace.SetSigmask(tid, img.Sigmask); err != nil {
		return err
	}
	return ptrace.SetRegs(tid, &regs)
}

// From linux/signal.h and linux/securebits.h.
const (
	ssOnStack      = 1
	ssDisable      = 2
	secbitKeepCaps = 1 << 4
)

// Exit makes a freshly cloned process exit with the wait status ws (as
// waitpid reports it): exit_group for an exit code, the signal itself for a
// death by signal (with core dumps disabled). Its parent is left with a
// zombie to reap, as at checkpoint.
func Exit(t *inject.Target, ws int, comm string) error {
	pid := t.PID
	if comm != "" {
		name, err := t.PutString(0, comm)
		if err != nil {
			return err
		}
		if _, err := t.Call(unix.SYS_PRCTL, unix.PR_SET_NAME, name); err != nil {
			return fmt.Errorf("name: %w", err)
		}
	}
	status := unix.WaitStatus(ws)
	regs := t.Leader.Base
	regs.Rip = uint64(t.Leader.Spot)
	regs.Orig_rax = ^uint64(0)
	sig := 0
	if status.Signaled() {
		sig = int(status.Signal())
		lim := unix.Rlimit{}
		if err := unix.Prlimit(pid, unix.RLIMIT_CORE, &lim, nil); err != nil {
			return fmt.Errorf("disable core dump: %w", err)
		}
		if sig != int(unix.SIGKILL) && sig != int(unix.SIGSTOP) {
			dfl, err := t.Put(0, sigaction(image.Sigact{Signal: sig}))
			if err != nil {
				return err
			}
			if _, err := t.Call(unix.SYS_RT_SIGACTION, uintptr(sig), dfl, 0, 8); err != nil {
				return fmt.Errorf("default action for signal %d: %w", sig, err)
			}
		}
		if err := ptrace.SetSigmask(pid, 0); err != nil {
			return err
		}
		regs.Rax, regs.Rdi, regs.Rsi = unix.SYS_KILL, uint64(pid), uint64(sig)
	} else {
		regs.Rax, regs.Rdi = unix.SYS_EXIT_GROUP, uint64(status.ExitStatus())
	}
	if err := ptrace.SetRegs(pid, &regs); err != nil {
		return err
	}
	deliver := 0
	for i := 0; i < 16; i++ {
		if err := ptrace.Cont(pid, deliver); err != nil {
			return err
		}
		ws, err := ptrace.Wait(pid)
		if errors.Is(err, ptrace.ErrExited) {
			return nil
		}
		if err != nil {
			return err
		}
		deliver = 0
		if ws.Stopped() && int(ws.StopSignal()) == sig {
			deliver = sig
		}
	}
	return fmt.Errorf("process %d does not exit", pid)
}
