package restored

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seamless-linux/seamless/internal/contract"
)

// TestClaimWaitsForVerification: an anchor that asks before the unit's
// memory is verified gets its answer once it is; a damaged image is never
// restored, however soon the anchor asks, and its unit is given up then.
func TestClaimWaitsForVerification(t *testing.T) {
	t.Cleanup(contract.SetDirs(t.TempDir(), t.TempDir()))
	d := &daemon{opts: Options{Log: io.Discard}, verdicts: map[string]error{}, done: make(chan struct{}), root: true}
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
	d.verdicts["a.service"] = errors.New("pages-1.img: checksum mismatch")
	d.cond.Broadcast()
	d.mu.Unlock()
	select {
	case err := <-got:
		if err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Fatalf("claim = %v, want the image refused", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("claim still waits after the verification")
	}
	if u := d.state.Unit("a.service"); u.State != contract.Cold || !strings.Contains(u.Reason, "checksum") {
		t.Fatalf("unit %+v, want started cold for the checksum", u)
	}
}
