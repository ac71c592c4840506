package parallel

import (
	"errors"
	"sync/atomic"
	"testing"
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
