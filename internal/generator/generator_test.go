package generator

import (
	"strings"
	"testing"
	"time"

	"github.com/seamless-linux/seamless/internal/units"
)

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/usr/bin/memcached", `"/usr/bin/memcached"`},
		{"", `""`},
		{`a "b"`, `"a \"b\""`},
		{`c:\dir`, `"c:\\dir"`},
		{"100%", `"100%%"`},
		{"$OPTIONS", `"$OPTIONS"`},
		{"two\nlines", `"two\nlines"`},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestDropInText(t *testing.T) {
	for _, tc := range []struct {
		name      string
		start     units.Start
		want      string
		coldAfter []string
	}{
		{"simple", units.Start{Type: "simple", Path: "/usr/share/memcached/scripts/systemd-memcached-wrapper", Argv: []string{"/usr/share/memcached/scripts/systemd-memcached-wrapper", "/etc/memcached.conf"}},
			`ExecStart="/usr/bin/seamless" "anchor" "--unit" "memcached.service" "--timeout" "7m0s" "--type" "simple" "--path" "/usr/share/memcached/scripts/systemd-memcached-wrapper" "--" "/usr/share/memcached/scripts/systemd-memcached-wrapper" "/etc/memcached.conf"`, nil},
		{"forking", units.Start{Type: "forking", PIDFile: "/run/x.pid", Path: "/sbin/x", Argv: []string{"x", "-d"}},
			`"--type" "forking" "--pid-file" "/run/x.pid" "--path" "/sbin/x" "--" "x" "-d"`, nil},
		{"no command", units.Start{}, `ExecStart="/usr/bin/seamless" "anchor" "--unit" "memcached.service" "--timeout" "7m0s"` + "\n", nil},
		// Debian's redis-server.service executes nothing but redis-server.
		{"noexec", units.Start{Type: "notify", NoExecPaths: []string{"/"}, Path: "/usr/bin/redis-server", Argv: []string{"/usr/bin/redis-server"}},
			`ExecPaths="/usr/bin/seamless"` + "\n", nil},
		{"cold after", units.Start{Type: "simple", Path: "/bin/x", Argv: []string{"x"}},
			`"--timeout" "7m0s" "--cold-after" "network-online.target,network.target" "--type"`, []string{"network-online.target", "network.target"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := DropInText("memcached.service", "/usr/bin/seamless", tc.start, 7*time.Minute, tc.coldAfter)
			for _, want := range []string{"[Unit]\nAfter=seamless-netlock.service\n[Service]\n", "Type=notify\n", "NotifyAccess=all\n", "PIDFile=\n", "ExecStart=\n", tc.want,
				"RestartForceExitStatus=171\n", `ExecStartPre=-+"/usr/bin/seamless" "anchor" "--prepare" "--unit" "memcached.service"` + "\n"} {
				if !strings.Contains(got, want) {
					t.Errorf("drop-in lacks %q:\n%s", want, got)
				}
			}
			// ExecPaths= alone would give a unit a mount namespace.
			if strings.Contains(got, "ExecPaths=") != (len(tc.start.NoExecPaths) > 0) {
				t.Errorf("ExecPaths= only for a unit with NoExecPaths=:\n%s", got)
			}
		})
	}
}
