package generator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWithoutNetworkOrder(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string // lines the output must have
		gone     []string // lines it must not have
		removed  string   // the targets taken out, comma-separated
	}{
		{"memcached", "[Unit]\nDescription=memcached daemon\nAfter=network.target\n\n[Service]\nExecStart=/usr/bin/memcached\n",
			[]string{"Description=memcached daemon", "ExecStart=/usr/bin/memcached", "[Service]"}, []string{"After="}, "network.target"},
		{"others kept", "[Unit]\nAfter=network-online.target postgresql.service\nWants=network-online.target\n[Service]\nExecStart=/bin/x\n",
			[]string{"After=postgresql.service", "Wants=network-online.target"}, []string{"network-online.target postgresql"}, "network-online.target"},
		{"several lines", "[Unit]\nAfter=nss-lookup.target\nAfter=local-fs.target network.target\n[Service]\nExecStart=/bin/x\n",
			[]string{"After=local-fs.target"}, []string{"nss-lookup", "After=local-fs.target network.target"}, "network.target,nss-lookup.target"},
		{"no network", "[Unit]\nAfter=local-fs.target\n[Service]\nExecStart=/bin/x\n", nil, nil, ""},
		{"not in [Unit]", "[Service]\nAfter=network.target\nExecStart=/bin/x\n", nil, nil, ""},
		{"specifiers and quotes kept", "[Unit]\nAfter=network.target\n[Service]\nExecStart=/usr/bin/x \"%i\" --a=b\n",
			[]string{`ExecStart=/usr/bin/x "%i" --a=b`}, []string{"After="}, "network.target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, removed, err := withoutNetworkOrder([]byte(tc.in))
			if err != nil || strings.Join(removed, ",") != tc.removed {
				t.Fatalf("removed %q, err %v; want %q", removed, err, tc.removed)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w+"\n") {
					t.Errorf("lacks %q:\n%s", w, got)
				}
			}
			for _, g := range tc.gone {
				if strings.Contains(got, g) {
					t.Errorf("still has %q:\n%s", g, got)
				}
			}
		})
	}
}

func TestEarlyUnit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the unit files must be root's")
	}
	etc, lib := t.TempDir(), t.TempDir()
	saved := UnitPath
	UnitPath = []string{etc, lib}
	t.Cleanup(func() { UnitPath = saved })
	write := func(dir, name, text string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	const net = "[Unit]\nAfter=network.target\n[Service]\nExecStart=/bin/%s\n"
	write(lib, "a.service", strings.Replace(net, "%s", "lib", 1), 0o644)
	write(etc, "a.service", strings.Replace(net, "%s", "etc", 1), 0o644) // /etc wins
	write(lib, "pg@.service", strings.Replace(net, "%s", "template", 1), 0o644)
	write(lib, "open.service", net, 0o666)
	write(lib, "local.service", "[Unit]\nAfter=local-fs.target\n[Service]\nExecStart=/bin/x\n", 0o644)
	if err := os.Symlink("/dev/null", filepath.Join(etc, "masked.service")); err != nil {
		t.Fatal(err)
	}
	write(lib, "masked.service", net, 0o644)
	for _, tc := range []struct{ unit, want string }{
		{"a.service", "ExecStart=/bin/etc"},
		{"pg@15-main.service", "ExecStart=/bin/template"},
		{"open.service", ""},   // writable by others: not trusted
		{"local.service", ""},  // no network order to take out
		{"masked.service", ""}, // masked: no file of its own
		{"none.service", ""},
	} {
		got, removed, err := EarlyUnit(tc.unit)
		if (got == "") != (len(removed) == 0) {
			t.Errorf("EarlyUnit(%s) took out %q, but its text is %q", tc.unit, removed, got)
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.unit, err)
		}
		if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) || strings.Contains(got, "After=network") {
			t.Errorf("EarlyUnit(%s) = %q, want one with %q", tc.unit, got, tc.want)
		}
	}
}
