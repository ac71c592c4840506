package anchor

import (
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
