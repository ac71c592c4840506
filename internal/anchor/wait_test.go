package anchor

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
)

func TestStarting(t *testing.T) {
	job := func(id uint32) []any { return []any{id, dbus.ObjectPath("/org/freedesktop/systemd1/job/1")} }
	for _, tc := range []struct {
		name  string
		props map[string]any
		want  bool
	}{
		{"reached", map[string]any{"ActiveState": "active", "Job": job(0)}, false},
		{"queued", map[string]any{"ActiveState": "inactive", "Job": job(12)}, true},
		// After= orders a unit only after what is being started: a
		// target nothing pulls in is not waited for.
		{"never started", map[string]any{"ActiveState": "inactive", "Job": job(0)}, false},
		{"failed", map[string]any{"ActiveState": "failed", "Job": job(0)}, false},
		{"no job property", map[string]any{"ActiveState": "inactive"}, false},
	} {
		if got := starting(tc.props); got != tc.want {
			t.Errorf("%s: starting = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSystemBusWaits checks that a bus whose socket is not there yet is
// waited for, and one that is there but refuses is not.
func TestSystemBusWaits(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		setup func(path string)
		wait  bool
	}{
		{"not there yet", func(string) {}, true},
		{"refuses to talk", func(p string) {
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			tc.setup(path)
			t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path="+path)
			ctx, cancel := context.WithTimeout(context.Background(), 3*targetPoll)
			defer cancel()
			conn, err := systemBus(ctx)
			if err == nil {
				conn.Close()
				t.Fatal("connected to no bus")
			}
			if waited := ctx.Err() != nil; waited != tc.wait {
				t.Errorf("waited %v, want %v (%v)", waited, tc.wait, err)
			}
		})
	}
}
