package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "seamless.conf")
	os.WriteFile(p, []byte("# comment\npreserve = a.service b.service\nstore = ram\n"), 0o644)
	os.Mkdir(p+".d", 0o755)
	os.WriteFile(filepath.Join(p+".d", "10-more.conf"), []byte("preserve = c.service\ntimeout = 30s # short\nwake-peers = acks\ninitrd = restorer\nhold-for-network = 2500ms\n"), 0o644)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Preserve, " ") != "a.service b.service c.service" || c.Store != "ram" || c.Timeout != 30*time.Second || c.WakePeers != WakeAcks || c.Initrd != InitrdRestorer || c.HoldForNetwork != 2500*time.Millisecond {
		t.Fatalf("Load = %+v", c)
	}
	if c, err := Load(filepath.Join(dir, "missing.conf")); err != nil || c.Store != "auto" || c.WakePeers != WakeAll || c.Initrd != InitrdAuto || c.HoldForNetwork != DefaultHoldForNetwork {
		t.Fatalf("Load(missing) = %+v, %v", c, err)
	}
	// A hold of 0 turns it off.
	off := filepath.Join(dir, "off.conf")
	os.WriteFile(off, []byte("hold-for-network = 0\n"), 0o644)
	if c, err := Load(off); err != nil || c.HoldForNetwork != 0 {
		t.Errorf("hold-for-network = 0: Load = %+v, %v", c, err)
	}
	// Every store, the kmod store's included (opt-in: never the default).
	for _, store := range []string{"auto", "ram", "disk", "kmod"} {
		os.WriteFile(p, []byte("store = "+store+"\n"), 0o644)
		if c, err := Load(p); err != nil || c.Store != store {
			t.Errorf("store = %s: Load = %+v, %v", store, c, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	for _, in := range []string{"store = tape\n", "bogus = 1\n", "no equals sign\n", "timeout = soon\n", "disk-dir = relative\n",
		"apply = later\n", "apply = 3:00\n", "apply = 24:00\n", "apply = 03:60\n", "apply = 03:00:00\n",
		"wake-peers = yes\n", "wake-peers =\n", "initrd = u-root\n",
		"hold-for-network = -1s\n", "hold-for-network = 3m\n", "hold-for-network = soon\n"} {
		p := filepath.Join(t.TempDir(), "seamless.conf")
		os.WriteFile(p, []byte(in), 0o644)
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "seamless.conf:1") {
			t.Errorf("Load(%q) = %v, want an error naming the line", in, err)
		}
	}
}

func TestApply(t *testing.T) {
	tests := []struct {
		in         string
		want       string
		hour, mins int
		at         bool
	}{
		{"", ApplyManual, 0, 0, false},
		{"apply = manual\n", ApplyManual, 0, 0, false},
		{"apply = now\n", ApplyNow, 0, 0, false},
		{"apply = 03:30 # maintenance window\n", "03:30", 3, 30, true},
		{"apply = 00:00\n", "00:00", 0, 0, true},
		{"apply = 23:59\n", "23:59", 23, 59, true},
	}
	for _, tt := range tests {
		p := filepath.Join(t.TempDir(), "seamless.conf")
		os.WriteFile(p, []byte(tt.in), 0o644)
		c, err := Load(p)
		if err != nil {
			t.Fatalf("Load(%q): %v", tt.in, err)
		}
		h, m, at := ApplyAt(c.Apply)
		if c.Apply != tt.want || h != tt.hour || m != tt.mins || at != tt.at {
			t.Errorf("Load(%q): apply %q, ApplyAt %d:%d %v; want %q %d:%d %v", tt.in, c.Apply, h, m, at, tt.want, tt.hour, tt.mins, tt.at)
		}
	}
}
