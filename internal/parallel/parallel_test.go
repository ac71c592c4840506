package parallel

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

func TestEach(t *testing.T) {
	var sum atomic.Int64
	if err := Each(100, func(i int) error { sum.Add(int64(i)); return nil }); err != nil || sum.Load() != 4950 {
		t.Fatalf("Each = %v, sum %d", err, sum.Load())
	}
	boom := errors.New("boom")
	if err := Each(10, func(i int) error {
		if i == 3 {
			return boom
		}
		return nil
	}); !errors.Is(err, boom) {
		t.Fatalf("Each = %v, want boom", err)
	}
	if err := Each(0, func(int) error { return boom }); err != nil {
		t.Fatalf("Each(0) = %v", err)
	}
}

// TestEachIdle: the work is done, on threads under SCHED_IDLE, and the
// caller's thread keeps its policy.
func TestEachIdle(t *testing.T) {
	var sum, idle atomic.Int64
	err := EachIdle(64, func(i int) error {
		sum.Add(int64(i))
		if a, err := unix.SchedGetAttr(0, 0); err == nil && a.Policy == unix.SCHED_IDLE {
			idle.Add(1)
		}
		return nil
	})
	if err != nil || sum.Load() != 2016 {
		t.Fatalf("EachIdle = %v, sum %d", err, sum.Load())
	}
	if idle.Load() != 64 {
		t.Errorf("%d of 64 pieces ran under SCHED_IDLE", idle.Load())
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if a, err := unix.SchedGetAttr(0, 0); err != nil || a.Policy == unix.SCHED_IDLE {
		t.Errorf("the caller's thread: %+v, %v", a, err)
	}
}
