package units

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOptedIn(t *testing.T) {
	etc, lib := t.TempDir(), t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(s), 0o644)
	}
	write(filepath.Join(etc, "memcached.service.d", "seamless.conf"), "[Service]\nX-SeamlessPreserve=yes\n")
	write(filepath.Join(lib, "redis.service"), "[Service]\nExecStart=/bin/redis\nX-SeamlessPreserve=true\n")
	write(filepath.Join(lib, "nginx.service"), "[Service]\nX-SeamlessPreserve=yes\n")
	write(filepath.Join(etc, "nginx.service.d", "off.conf"), "[Service]\nX-SeamlessPreserve=no\n")
	write(filepath.Join(lib, "other.service"), "[Service]\nExecStart=/bin/true\n")
	got, err := OptedIn([]string{etc, lib})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["memcached.service"] == "" || got["redis.service"] == "" {
		t.Fatalf("OptedIn = %v, want memcached and redis (nginx opted out in /etc)", got)
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
