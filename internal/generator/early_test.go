package generator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEarlyCopy(t *testing.T) {
	const order = "After=local-fs.target systemd-tmpfiles-setup.service systemd-sysctl.service systemd-sysusers.service systemd-journald.socket nss-user-lookup.target"
	early := []string{"DefaultDependencies=no", "Conflicts=shutdown.target", "Before=shutdown.target", order}
	for _, tc := range []struct {
		name, in string
		want     []string // lines the output must have, in this order
		gone     []string // lines it must not have
		removed  string   // the targets taken out, comma-separated
	}{
		{"memcached", "[Unit]\nDescription=memcached daemon\nAfter=network.target\n\n[Service]\nExecStart=/usr/bin/memcached\n",
			append(append([]string{"[Unit]", "Description=memcached daemon"}, early...), "[Service]", "ExecStart=/usr/bin/memcached"),
			[]string{"After=network"}, "basic.target,network.target"},
		{"others kept", "[Unit]\nAfter=network-online.target postgresql.service\nWants=network-online.target\n[Service]\nExecStart=/bin/x\n",
			[]string{"After=postgresql.service", "Wants=network-online.target", order}, []string{"network-online.target postgresql"}, "basic.target,network-online.target"},
		{"several lines", "[Unit]\nAfter=nss-lookup.target\nAfter=local-fs.target network.target\n[Service]\nExecStart=/bin/x\n",
			[]string{"After=local-fs.target\n", order}, []string{"nss-lookup.target\n", "After=local-fs.target network.target"}, "basic.target,network.target,nss-lookup.target"},
		{"no network", "[Unit]\nAfter=local-fs.target\n[Service]\nExecStart=/bin/x\n", early, nil, "basic.target"},
		{"no [Unit]", "[Service]\nExecStart=/bin/x\n", append(append([]string{"[Unit]"}, early...), "[Service]"), nil, "basic.target"},
		{"own early order", "[Unit]\nDefaultDependencies=no\nAfter=network.target local-fs.target\n[Service]\nExecStart=/bin/x\n",
			[]string{"After=local-fs.target", "DefaultDependencies=no"}, []string{"shutdown.target", "tmpfiles", "network.target"}, "network.target"},
		{"own early order, no network", "[Unit]\nDefaultDependencies=false\n[Service]\nExecStart=/bin/x\n", nil, nil, ""},
		{"defaults reset", "[Unit]\nDefaultDependencies=no\nDefaultDependencies=\n[Service]\nExecStart=/bin/x\n", early, nil, "basic.target"},
		{"specifiers and quotes kept", "[Unit]\nAfter=network.target\n[Service]\nExecStart=/usr/bin/x \"%i\" --a=b\n",
			[]string{`ExecStart=/usr/bin/x "%i" --a=b`}, []string{"After=network"}, "basic.target,network.target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, removed, err := earlyCopy([]byte(tc.in))
			if err != nil || strings.Join(removed, ",") != tc.removed {
				t.Fatalf("removed %q, err %v; want %q", removed, err, tc.removed)
			}
			if tc.removed == "" && got != "" {
				t.Fatalf("nothing to take out, but a copy:\n%s", got)
			}
			rest := got
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("lacks %q (after the lines before it):\n%s", w, got)
				}
				rest = rest[i+len(w):]
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
	write(lib, "local.service", "[Unit]\nDefaultDependencies=no\nAfter=local-fs.target\n[Service]\nExecStart=/bin/x\n", 0o644)
	if err := os.Symlink("/dev/null", filepath.Join(etc, "masked.service")); err != nil {
		t.Fatal(err)
	}
	write(lib, "masked.service", net, 0o644)
	for _, tc := range []struct{ unit, want string }{
		{"a.service", "ExecStart=/bin/etc"},
		{"pg@15-main.service", "ExecStart=/bin/template"},
		{"open.service", ""},   // writable by others: not trusted
		{"local.service", ""},  // orders itself, not after the network
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
