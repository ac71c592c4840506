package update

import (
	"testing"

	"github.com/seamless-linux/seamless/internal/units"
)

func TestColdStartProblem(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   units.Start
		ok   bool
	}{
		{"simple", units.Start{Type: "simple", Path: "/usr/bin/memcached"}, true},
		{"notify", units.Start{Type: "notify", Path: "/usr/sbin/x"}, true},
		{"forking with PIDFile", units.Start{Type: "forking", PIDFile: "/run/x.pid", Path: "/usr/sbin/x"}, true},
		{"forking without PIDFile", units.Start{Type: "forking", Path: "/usr/sbin/x"}, false},
		{"oneshot", units.Start{Type: "oneshot", Path: "/bin/true"}, false},
		{"no command", units.Start{Type: "simple"}, false},
	} {
		if got := coldStartProblem(tc.st); (got == "") != tc.ok {
			t.Errorf("%s: coldStartProblem = %q, want ok=%v", tc.name, got, tc.ok)
		}
	}
}
