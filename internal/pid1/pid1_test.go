package pid1

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseSuperblock(t *testing.T) {
	id := []byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	const wantID = "12345678-9abc-def0-0123-456789abcdef"
	img := func(fill func(b []byte)) []byte {
		b := make([]byte, 0x10000+4096)
		fill(b)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want superblock
	}{
		{"ext4", img(func(b []byte) {
			b[1024+0x38], b[1024+0x39] = 0x53, 0xEF
			copy(b[1024+0x68:], id)
			copy(b[1024+0x78:], "seamless-root")
		}), superblock{"ext4", "seamless-root", wantID}},
		{"xfs", img(func(b []byte) {
			copy(b, "XFSB")
			copy(b[32:], id)
			copy(b[108:], "data")
		}), superblock{"xfs", "data", wantID}},
		{"btrfs", img(func(b []byte) {
			copy(b[0x10040:], "_BHRfS_M")
			copy(b[0x10020:], id)
			copy(b[0x1012b:], "pool")
		}), superblock{"btrfs", "pool", wantID}},
	}
	for _, tt := range tests {
		got, err := parseSuperblock(tt.b)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
	if _, err := parseSuperblock(make([]byte, 2048)); err == nil {
		t.Error("zeros recognized as a file system")
	}
	if _, err := parseSuperblock(nil); err == nil {
		t.Error("nothing recognized as a file system")
	}
}

func TestFindRootDevice(t *testing.T) {
	if dev, fs, err := findRoot("/dev/null", time.Second); err != nil || dev != "/dev/null" || fs != "auto" {
		t.Fatalf("got %q %q %v", dev, fs, err)
	}
	if _, _, err := findRoot("/dev/seamless-no-such-disk", 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "no device for root=") {
		t.Fatalf("missing device: %v", err)
	}
	if _, _, err := findRoot("PARTUUID=1234", time.Second); err == nil || !strings.Contains(err.Error(), "only /dev/NAME") {
		t.Fatalf("PARTUUID: %v", err)
	}
}

func TestParseRoot(t *testing.T) {
	for _, tt := range []struct {
		cmdline string
		want    rootSpec
		err     string
	}{
		{"BOOT_IMAGE=/vmlinuz root=UUID=ab-cd ro quiet", rootSpec{spec: "UUID=ab-cd", readOnly: true, delay: 30 * time.Second, init: "/sbin/init"}, ""},
		{"root=/dev/vda1 rw rootfstype=xfs rootflags=noatime rootdelay=5\n", rootSpec{spec: "/dev/vda1", fsType: "xfs", options: "noatime", delay: 5 * time.Second, init: "/sbin/init"}, ""},
		{"root=/dev/sda1 rw ro root=LABEL=root", rootSpec{spec: "LABEL=root", readOnly: true, delay: 30 * time.Second, init: "/sbin/init"}, ""},
		// The last init= wins; rdinit= is not init=.
		{"ro init=/bin/a root=/dev/vda1 init=/lib/systemd/systemd quiet\n", rootSpec{spec: "/dev/vda1", readOnly: true, delay: 30 * time.Second, init: "/lib/systemd/systemd"}, ""},
		{"root=/dev/vda1 rdinit=/x", rootSpec{spec: "/dev/vda1", readOnly: true, delay: 30 * time.Second, init: "/sbin/init"}, ""},
		{"ro quiet", rootSpec{}, "no root="},
		{"root=/dev/vda1 rootdelay=soon", rootSpec{}, "rootdelay=soon"},
	} {
		got, err := parseRoot(tt.cmdline)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want %q", tt.cmdline, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: got %+v, %v; want %+v", tt.cmdline, got, err, tt.want)
		}
	}
}

func TestHasInit(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte("#!/bin/sh\n"), 0o755)
	}
	mk("usr/lib/systemd/systemd")
	mk("usr/bin/notexec")
	os.Chmod(filepath.Join(root, "usr/bin/notexec"), 0o644)
	os.Symlink("usr/sbin", filepath.Join(root, "sbin"))
	os.MkdirAll(filepath.Join(root, "usr/sbin"), 0o755)
	// an absolute link, right only inside root
	os.Symlink("/usr/lib/systemd/systemd", filepath.Join(root, "usr/sbin/init"))
	os.Symlink("/lib/systemd/systemd", filepath.Join(root, "usr/sbin/init2"))
	os.Symlink("usr/lib", filepath.Join(root, "lib"))
	os.Symlink("loop", filepath.Join(root, "usr/sbin/loop"))
	for _, tt := range []struct {
		init string
		ok   bool
	}{
		{"/sbin/init", true},
		{"/sbin/init2", true},
		{"/lib/systemd/systemd", true},
		{"/sbin/../sbin/init", true}, // /sbin/.. is /usr, as the kernel resolves it
		{"/usr/bin/notexec", false},
		{"/sbin/missing", false},
		{"/usr/sbin/loop", false},
		{"/usr/sbin", false},
	} {
		err := checkInit(root, tt.init)
		if (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok=%v", tt.init, err, tt.ok)
		}
	}
}

func TestParseModuleList(t *testing.T) {
	got := parseModuleList("virtio.ko\nvirtio_blk.ko virtio.ko virtio_ring.ko\n\n  ext4.ko.xz jbd2.ko.xz  \nvirtio.ko again\n")
	want := []module{{"virtio.ko", []string{}}, {"virtio_blk.ko", []string{"virtio.ko", "virtio_ring.ko"}}, {"ext4.ko.xz", []string{"jbd2.ko.xz"}}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i].name != want[i].name || strings.Join(got[i].needs, " ") != strings.Join(want[i].needs, " ") {
			t.Fatalf("line %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestLoadAll(t *testing.T) {
	mods := parseModuleList(`a
b a
c b a
d
e z f
f
x y
y x
broken
after-broken broken
`)
	var mu sync.Mutex
	finished := map[string]bool{}
	running, most := 0, 0
	errs := loadAll(mods, 2, func(name string) error {
		mu.Lock()
		for _, m := range mods {
			if m.name != name {
				continue
			}
			for _, n := range m.needs {
				if n != "z" && n != "f" && !(name == "x" && n == "y") && !finished[n] {
					t.Errorf("%s started before %s, which it needs, finished", name, n)
				}
			}
		}
		running++
		most = max(most, running)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		running--
		finished[name] = true
		mu.Unlock()
		if name == "broken" {
			return errors.New("Unknown symbol")
		}
		return nil
	})
	if len(finished) != len(mods) {
		t.Fatalf("loaded %v, want all %d", finished, len(mods))
	}
	if most > 2 {
		t.Fatalf("%d loads at once, want at most 2", most)
	}
	if most < 2 {
		t.Fatalf("loads never overlapped: nothing gained")
	}
	if len(errs) != 1 || errs["broken"] == nil {
		t.Fatalf("errors %v", errs)
	}
}
