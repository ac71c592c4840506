// Package parallel runs independent pieces of work on every CPU.
package parallel

import (
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/crash"
)

// Each calls fn(i) for i in [0, n), on as many goroutines as there are
// CPUs, and returns the first error. After an error no new piece starts.
// A panic in fn is returned as a *crash.Error (with its stack), for the
// caller to undo what it started, instead of ending the process.
func Each(n int, fn func(i int) error) error { return each(n, fn, false) }

// EachIdle is Each on CPU time nothing else wants: its workers run under
// SCHED_IDLE, for work beside a boot that must not slow it (the restore
// daemon's verification of an image while the system starts). It is as
// fast as Each on an idle machine.
func EachIdle(n int, fn func(i int) error) error { return each(n, fn, true) }

func each(n int, fn func(i int) error, idle bool) error {
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	workers := min(runtime.NumCPU(), n)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if idle {
				// The policy is the thread's: the goroutine keeps its
				// thread, which ends with it (never unlocked) instead of
				// going back to the runtime with SCHED_IDLE.
				runtime.LockOSThread()
				idleThread()
			}
			for i := range next {
				if err := crash.Call(func() error { return fn(i) }); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// idleThread puts the calling thread under SCHED_IDLE; where that is
// refused, the work runs at normal priority.
func idleThread() {
	unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}, 0)
}
