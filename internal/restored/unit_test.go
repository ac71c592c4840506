package restored

import (
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/seamless-linux/seamless/internal/contract"
)

// TestClaimWaitsForVerification: an anchor that asks before the unit's
// memory is verified gets its answer once it is; a damaged image is never
// restored, however soon the anchor asks.
func TestClaimWaitsForVerification(t *testing.T) {
	d := &daemon{opts: Options{Log: io.Discard}, verified: map[string]bool{}, done: make(chan struct{})}
	d.cond = sync.NewCond(&d.mu)
	d.state.Units = []contract.UnitState{{Unit: "a.service", State: contract.Pending}}
	got := make(chan error, 1)
	go func() {
		_, _, err := d.claim("a.service", &peer{})
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("claim answered before the image was verified: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	// What verify does with a damaged image.
	d.mu.Lock()
	d.state.Units[0].State = contract.Cold
	d.cond.Broadcast()
	d.mu.Unlock()
	select {
	case err := <-got:
		if !errors.Is(err, errNotPending) {
			t.Fatalf("claim = %v, want the unit not pending", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("claim still waits after the verification")
	}
}
