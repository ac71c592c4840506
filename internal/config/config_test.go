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
	os.WriteFile(filepath.Join(p+".d", "10-more.conf"), []byte("preserve = c.service\ntimeout = 30s # short\n"), 0o644)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Preserve, " ") != "a.service b.service c.service" || c.Store != "ram" || c.Timeout != 30*time.Second {
		t.Fatalf("Load = %+v", c)
	}
	if c, err := Load(filepath.Join(dir, "missing.conf")); err != nil || c.Store != "auto" {
		t.Fatalf("Load(missing) = %+v, %v", c, err)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, in := range []string{"store = tape\n", "bogus = 1\n", "no equals sign\n", "timeout = soon\n", "disk-dir = relative\n"} {
		p := filepath.Join(t.TempDir(), "seamless.conf")
		os.WriteFile(p, []byte(in), 0o644)
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "seamless.conf:1") {
			t.Errorf("Load(%q) = %v, want an error naming the line", in, err)
		}
	}
}
