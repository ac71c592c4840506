package task

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/proc"
	"github.com/seamless-linux/seamless/internal/ptrace"
)

// waitAll is __WALL: wait for children whatever their exit signal.
const waitAll = 0x40000000

// StopsWaited tells, for the stopped children kids of process parent
// (stopped under ptrace, its main thread leader), which ones the parent
// has already waited for (waitpid with WUNTRACED), leaving no stop to
// report. It asks the parent itself with waitid(WNOWAIT), which consumes
// nothing.
func StopsWaited(parent int, leader *image.Thread, kids []int) (map[int]bool, error) {
	s, err := injectInto(parent, leader)
	if err != nil {
		return nil, err
	}
	defer s.close()
	out := map[int]bool{}
	for _, kid := range kids {
		var info [128]byte
		if err := inject.WriteMem(parent, s.scratch, info[:]); err != nil {
			return nil, err
		}
		if _, err := s.threads[0].Syscall(unix.SYS_WAITID, unix.P_PID, uintptr(kid), s.scratch,
			unix.WSTOPPED|unix.WNOHANG|unix.WNOWAIT|waitAll); err != nil {
			return nil, fmt.Errorf("process %d: is the stop of its child %d reported: %w", parent, kid, err)
		}
		if err := inject.ReadMem(parent, s.scratch, info[:]); err != nil {
			return nil, err
		}
		// siginfo_t: si_signo, si_errno, si_code, then si_pid at 16.
		out[kid] = binary.LittleEndian.Uint32(info[16:]) == 0
	}
	return out, nil
}

// errStopDiscarded is returned by Stop when the kernel discarded the
// terminal stop signal: a process group without a parent in its session
// elsewhere (orphaned) ignores SIGTSTP, SIGTTIN and SIGTTOU.
var errStopDiscarded = errors.New("the stop signal was discarded")

// Stop puts process t, whose threads are all in ptrace stops under the
// restorer, into the group stop it had (job control), before its queued
// signals are put back (a stopped process leaves them pending, and one that
// is dequeued first might end it). The threads stay traced and go on
// running injected calls; when they are detached, the group stop holds
// them. The parent is told as it was when the process stopped (SIGCHLD,
// a stop to wait for), which RestoreStopNotice undoes as needed.
func Stop(t *inject.Target, threads []*inject.Thread, sig int) error {
	err := stop(t, threads, sig)
	if errors.Is(err, errStopDiscarded) && sig != int(unix.SIGSTOP) {
		err = stop(t, threads, int(unix.SIGSTOP))
	}
	if err != nil {
		return fmt.Errorf("stop with signal %d: %w", sig, err)
	}
	return nil
}

func stop(t *inject.Target, threads []*inject.Thread, sig int) error {
	// Any thread that returned to user space would run a getpid system
	// call, caught at its entry, never the process's own code.
	for _, th := range threads {
		r := th.Base
		r.Rip, r.Rax, r.Orig_rax = uint64(th.Spot), unix.SYS_GETPID, ^uint64(0)
		if err := ptrace.SetRegs(th.TID, &r); err != nil {
			return err
		}
	}
	lead := threads[0]
	if err := ptrace.SetSigmask(lead.TID, allSignals&^(1<<(sig-1))); err != nil {
		return err
	}
	defer ptrace.SetSigmask(lead.TID, allSignals)
	if err := unix.Tgkill(t.PID, lead.TID, unix.Signal(sig)); err != nil {
		return fmt.Errorf("send signal %d: %w", sig, err)
	}
	for _, th := range threads {
		deliver := 0
		for tries := 0; ; tries++ {
			if tries > 16 {
				return fmt.Errorf("thread %d does not reach the group stop", th.TID)
			}
			if err := ptrace.ContSyscall(th.TID, deliver); err != nil {
				return err
			}
			deliver = 0
			ws, err := ptrace.Wait(th.TID)
			if err != nil {
				return err
			}
			if !ws.Stopped() {
				continue
			}
			if ws.StopSignal() == unix.SIGTRAP|0x80 {
				// It got to the getpid call: no group stop for it.
				if err := finishCall(th.TID); err != nil {
					return err
				}
				if th == lead {
					return errStopDiscarded
				}
				return fmt.Errorf("thread %d does not take part in the group stop", th.TID)
			}
			if int(ws.StopSignal()) != sig {
				continue // another stop: go on
			}
			if inSig, err := ptrace.InSignalStop(th.TID); err != nil {
				return err
			} else if inSig {
				deliver = sig // the signal itself: let it act
				continue
			}
			break // the group stop
		}
	}
	return nil
}

// AwaitStopped waits (up to a few seconds) until every thread tids of a
// process just detached is back in the group stop it was in: its parent,
// detached next, must find it stopped, not on its way there.
func AwaitStopped(pid int, tids []int) {
	end := time.Now().Add(5 * time.Second)
	for _, tid := range tids {
		for time.Now().Before(end) {
			st, err := proc.ReadTaskStat(pid, tid)
			if err != nil || st.State == 'T' || st.State == 'Z' || st.State == 'X' {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// finishCall runs a thread caught at a system call's entry to its exit.
func finishCall(tid int) error {
	if err := ptrace.ContSyscall(tid, 0); err != nil {
		return err
	}
	_, err := ptrace.Wait(tid)
	return err
}

// RestoreStopNotices undoes, in process t (a parent of restored stopped
// processes, not running yet), what their new group stops told it: the
// SIGCHLD each sent is removed (the image's queued signals are put back
// afterwards), and a stop the parent had waited for is consumed again.
// Zombies' exits during the restore sent SIGCHLDs too: so does any
// process with zombie children.
func RestoreStopNotices(t *inject.Target, waited []int) error {
	// rt_sigtimedwait with a zero timeout takes a pending SIGCHLD, thread
	// or process-wide, without waiting; EAGAIN once none is left.
	set, err := t.Put(0, inject.Uint64s(1<<(unix.SIGCHLD-1)))
	if err != nil {
		return err
	}
	zero, err := t.Put(16, inject.Uint64s(0, 0))
	if err != nil {
		return err
	}
	for i := 0; i < 64; i++ {
		_, err := t.Call(unix.SYS_RT_SIGTIMEDWAIT, set, 0, zero, 8)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			return fmt.Errorf("take the restore's SIGCHLD: %w", err)
		}
	}
	for _, kid := range waited {
		got, err := t.Call(unix.SYS_WAIT4, uintptr(kid), 0, unix.WUNTRACED|unix.WNOHANG|waitAll, 0)
		if err != nil {
			return fmt.Errorf("wait for the stop of child %d again: %w", kid, err)
		}
		if int(got) != kid {
			return fmt.Errorf("wait for the stop of child %d again: nothing to wait for", kid)
		}
	}
	return nil
}
