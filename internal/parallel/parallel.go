// Package parallel runs independent pieces of work on every CPU.
package parallel

import (
	"runtime"
	"sync"

	"github.com/seamless-linux/seamless/internal/crash"
)

// Each calls fn(i) for i in [0, n), on as many goroutines as there are
// CPUs, and returns the first error. After an error no new piece starts.
// A panic in fn is returned as a *crash.Error (with its stack), for the
// caller to undo what it started, instead of ending the process.
func Each(n int, fn func(i int) error) error {
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
