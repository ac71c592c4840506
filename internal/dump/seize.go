package dump

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/proc"
	"github.com/seamless-linux/seamless/internal/ptrace"
	"github.com/seamless-linux/seamless/internal/task"
)

// seized is a process whose threads are all stopped under ptrace, or a
// zombie, which has nothing left to stop.
type seized struct {
	pid    int
	tids   []int
	zombie *proc.Stat
	// stopSig is the signal of the group stop (job control) the process
	// was in when it was seized, or 0.
	stopSig int
}

// seizeTree stops every thread of root and of all its descendants, parents
// before children. New threads and children that appear while it works are
// caught by re-reading until the set is stable.
func seizeTree(root int) ([]*seized, []int, error) {
	var procs []*seized
	var all []int
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if st, err := proc.ReadStat(pid); err != nil {
			if pid != root && errors.Is(err, os.ErrNotExist) {
				continue // a child that exited before we reached it
			}
			return procs, all, err
		} else if st.State == 'Z' {
			if tids, _ := proc.Threads(pid); len(tids) > 1 {
				// The main thread exited (pthread_exit) while others run on.
				return procs, all, fmt.Errorf("process %d: its main thread has exited while %d other threads run on; such processes are not supported yet", pid, len(tids)-1)
			}
			if pid == root {
				return procs, all, fmt.Errorf("process %d has exited (it is a zombie): nothing to checkpoint", pid)
			}
			procs = append(procs, &seized{pid: pid, zombie: st})
			continue
		}
		tids, stopSig, err := seizeProcess(pid)
		all = append(all, tids...)
		if err != nil {
			if pid != root && len(tids) == 0 && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return procs, all, err
		}
		procs = append(procs, &seized{pid: pid, tids: tids, stopSig: stopSig})
		// Every thread of pid is stopped, so its children can no longer change.
		kids, err := proc.Children(pid)
		if err != nil {
			return procs, all, err
		}
		queue = append(queue, kids...)
	}
	return procs, all, nil
}

// seizeProcess seizes every thread of pid. It also returns the signal of
// the group stop the process is in (SIGSTOP, SIGTSTP, ...), or 0.
func seizeProcess(pid int) ([]int, int, error) {
	done := map[int]bool{}
	var order []int
	stopSig := 0
	for {
		tids, err := proc.Threads(pid)
		if err != nil {
			if len(order) == 0 {
				return nil, 0, fmt.Errorf("process %d: %w", pid, err)
			}
			return order, 0, fmt.Errorf("process %d exited during checkpoint", pid)
		}
		fresh := 0
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			sig, err := stopThread(tid)
			if err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // exited before we got to it
				}
				return order, 0, err
			}
			if sig != 0 {
				stopSig = sig
			}
			done[tid] = true
			order = append(order, tid)
			fresh++
		}
		if fresh == 0 {
			return sortLeaderFirst(pid, order, tids), stopSig, nil
		}
	}
}

// sortLeaderFirst keeps only live threads, the leader first, as listed.
func sortLeaderFirst(pid int, seized, listed []int) []int {
	out := []int{}
	for _, t := range listed {
		for _, s := range seized {
			if s == t {
				out = append(out, t)
			}
		}
	}
	return out
}

// StopTimeout bounds the wait for a thread to stop once interrupted. A
// thread blocked in the kernel in a sleep that signals cannot break (a file
// system that does not answer) never stops: the checkpoint then fails, and
// the tree goes on, instead of hanging the shutdown. Such a thread stays
// traced until seamless exits: the kernel detaches only stopped tracees.
var StopTimeout = 10 * time.Second

// stopThread seizes tid and waits until it sits in a ptrace stop. A signal
// that arrives first is delivered normally before the thread stops. A
// thread already stopped by job control (SIGSTOP, SIGTSTP, ...) reports that
// group stop: its signal is returned, 0 otherwise.
func stopThread(tid int) (int, error) {
	if err := ptrace.Seize(tid, task.SeizeOptions); err != nil {
		return 0, err
	}
	if err := ptrace.Interrupt(tid); err != nil {
		return 0, err
	}
	for i := 0; i < 100; i++ {
		ws, err := ptrace.WaitTimeout(tid, StopTimeout)
		if errors.Is(err, ptrace.ErrTimeout) {
			wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", tid))
			return 0, fmt.Errorf("thread %d does not stop within %s: it is blocked in the kernel (%s), as on a file system that does not answer", tid, StopTimeout, wchan)
		}
		if err != nil {
			return 0, err
		}
		if ptrace.Event(ws) == unix.PTRACE_EVENT_STOP {
			if sig := ws.StopSignal(); sig != unix.SIGTRAP {
				return int(sig), nil
			}
			return 0, nil
		}
		if ws.Stopped() {
			if err := ptrace.Cont(tid, int(ws.StopSignal())); err != nil {
				return 0, err
			}
		}
	}
	return 0, fmt.Errorf("thread %d keeps receiving signals; cannot stop it", tid)
}
