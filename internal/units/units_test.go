package units

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestDecide follows systemd's rules for one setting: the files are read
// in the order systemd applies them (unit file, then drop-ins as systemd
// lists them), the last setting wins, an empty value resets it.
func TestDecide(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	frag := file("memcached.service", "[Unit]\nDescription=x\n[Service]\nExecStart=/usr/bin/memcached\n")
	fragOn := file("redis.service", "[Service]\nExecStart=/bin/redis\nX-SeamlessPreserve=true\n")
	on := file("50-seamless.conf", "[Service]\nX-SeamlessPreserve=yes\n")
	off := file("90-off.conf", "[Service]\nX-SeamlessPreserve=no\n")
	reset := file("95-reset.conf", "[Service]\nX-SeamlessPreserve=\n")
	twice := file("60-twice.conf", "[Service]\nX-SeamlessPreserve=no\n# changed my mind\nX-SeamlessPreserve=on\n")
	other := file("70-other.conf", "[Service]\nNice=5\n")
	anySection := file("80-unit.conf", "[Unit]\nX-SeamlessPreserve=1\n")
	tests := []struct {
		name string
		f    Files
		on   bool
		by   string
	}{
		{"nothing", Files{Fragment: frag}, false, ""},
		{"unit file", Files{Fragment: fragOn}, true, fragOn},
		{"drop-in", Files{Fragment: frag, DropIns: []string{on}}, true, on},
		{"a later drop-in turns it off", Files{Fragment: frag, DropIns: []string{on, off}}, false, ""},
		{"a later drop-in turns it on", Files{Fragment: frag, DropIns: []string{off, on}}, true, on},
		{"an empty value resets it", Files{Fragment: fragOn, DropIns: []string{reset}}, false, ""},
		{"the last line of a file", Files{Fragment: frag, DropIns: []string{twice}}, true, twice},
		{"a drop-in that says nothing", Files{Fragment: fragOn, DropIns: []string{other}}, true, fragOn},
		{"any section", Files{Fragment: frag, DropIns: []string{anySection}}, true, anySection},
		{"masked", Files{Fragment: "/dev/null", DropIns: []string{on}}, true, on},
		{"missing file", Files{Fragment: filepath.Join(dir, "gone.service")}, false, ""},
	}
	for _, tc := range tests {
		got, by, err := Decide(tc.f)
		if err != nil || got != tc.on || by != tc.by {
			t.Errorf("%s: Decide = %v, %q, %v; want %v, %q", tc.name, got, by, err, tc.on, tc.by)
		}
	}
}

// fakeSystemd is what systemd would answer: its loaded services and the
// files that make up each (the drop-in resolution is systemd's).
type fakeSystemd struct {
	loaded []string
	files  map[string]Files
}

func (f fakeSystemd) Services(context.Context) ([]string, error) { return f.loaded, nil }
func (f fakeSystemd) Files(_ context.Context, u string) (Files, error) {
	return f.files[u], nil
}

// TestOptedIn asks the candidates' files from systemd: loaded services
// (a template instance opted in by its template's drop-in) and stopped
// ones that a unit directory names.
func TestOptedIn(t *testing.T) {
	etc, lib := t.TempDir(), t.TempDir()
	write := func(p, s string) string {
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	mc := write(filepath.Join(etc, "memcached.service.d", "seamless.conf"), "[Service]\nX-SeamlessPreserve=yes\n")
	tmpl := write(filepath.Join(etc, "postgresql@.service.d", "seamless.conf"), "[Service]\nX-SeamlessPreserve=yes\n")
	redis := write(filepath.Join(lib, "redis.service"), "[Service]\nExecStart=/bin/redis\nX-SeamlessPreserve=true\n")
	nginx := write(filepath.Join(lib, "nginx.service"), "[Service]\nX-SeamlessPreserve=yes\n")
	nginxOff := write(filepath.Join(etc, "nginx.service.d", "off.conf"), "[Service]\nX-SeamlessPreserve=no\n")
	sys := fakeSystemd{
		loaded: []string{"memcached.service", "nginx.service", "postgresql@15-main.service"},
		files: map[string]Files{
			"memcached.service":          {Fragment: filepath.Join(lib, "memcached.service"), DropIns: []string{mc}},
			"nginx.service":              {Fragment: nginx, DropIns: []string{nginxOff}},
			"postgresql@15-main.service": {Fragment: filepath.Join(lib, "postgresql@.service"), DropIns: []string{tmpl}},
			"redis.service":              {Fragment: redis}, // stopped, not loaded
			// An alias of memcached.service, named by its symlink in etc.
			"memcache.service": {ID: "memcached.service", Fragment: filepath.Join(lib, "memcached.service"), DropIns: []string{mc}},
		},
	}
	os.Symlink(filepath.Join(lib, "memcached.service"), filepath.Join(etc, "memcache.service"))
	got, err := OptedIn(context.Background(), sys, []string{etc, lib})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"memcached.service": mc, "postgresql@15-main.service": tmpl, "redis.service": redis}
	if len(got) != len(want) {
		t.Fatalf("OptedIn = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s decided by %q, want %q", k, got[k], v)
		}
	}
}

func TestCgroupV2(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0::/system.slice/memcached.service\n", "/system.slice/memcached.service"},
		{"9:name=systemd:/\n4:memory:/x\n0::/\n", "/"},
		{"12:pids:/user.slice\n", ""},
		{"", ""},
	} {
		if got := CgroupV2(tc.in); got != tc.want {
			t.Errorf("CgroupV2(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBoolean(t *testing.T) {
	for _, tc := range []struct {
		in    string
		v, ok bool
	}{
		{"yes", true, true}, {" On ", true, true}, {"1", true, true}, {"T", true, true},
		{"no", false, true}, {"FALSE", false, true}, {"0", false, true}, {"f", false, true},
		{"", false, false}, {"maybe", false, false}, {"2", false, false},
	} {
		if v, ok := Boolean(tc.in); v != tc.v || ok != tc.ok {
			t.Errorf("Boolean(%q) = %v, %v; want %v, %v", tc.in, v, ok, tc.v, tc.ok)
		}
	}
}
