package restored

import (
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seamless-linux/seamless/internal/image"
)

func TestVerifyWhenUp(t *testing.T) {
	tests := []struct {
		name string
		up   bool // systemd is up from the start
		ask  bool // an anchor asks while it is not
		wait time.Duration
	}{
		{name: "systemd up", up: true, wait: time.Hour},
		{name: "an anchor asks first", ask: true, wait: time.Hour},
		{name: "neither, until the bound", wait: 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &daemon{opts: Options{Log: io.Discard}, firstAsk: make(chan struct{}),
				unverified: map[string][]*image.Image{"a.service": nil}, verdicts: map[string]error{}}
			d.cond = sync.NewCond(&d.mu)
			var up atomic.Bool
			up.Store(tt.up)
			done := make(chan struct{})
			go func() { d.verifyWhenUp(up.Load, tt.wait); close(done) }()
			if !tt.up {
				select {
				case <-done:
					t.Fatal("verified before systemd was up or an anchor asked")
				case <-time.After(100 * time.Millisecond):
				}
			}
			if tt.ask {
				d.askedOnce.Do(func() { close(d.firstAsk) })
			}
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("not verified")
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if !d.checked("a.service") {
				t.Fatal("no verdict recorded")
			}
		})
	}
}
