package update

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/kernel"
	"github.com/seamless-linux/seamless/internal/kmod"
)

// TestKmodInitrd checks the initrd the kmod store loads: the restorer as
// it is when it holds the module, else a copy with the module appended.
func TestKmodInitrd(t *testing.T) {
	t.Cleanup(contract.SetDirs(filepath.Join(t.TempDir(), "run"), t.TempDir()))
	modules := t.TempDir()
	old := kmod.ModulesDir
	t.Cleanup(func() { kmod.ModulesDir = old })
	kmod.ModulesDir = modules
	ko := filepath.Join(modules, "6.1.0-50/updates/dkms/seamlessmem.ko")
	os.MkdirAll(filepath.Dir(ko), 0o755)
	os.WriteFile(ko, []byte("the module"), 0o644)
	initrd := filepath.Join(t.TempDir(), "initrd.img")
	os.WriteFile(initrd, []byte("the initrd"), 0o600)

	for _, tc := range []struct {
		name       string
		initrdKmod bool
		initrd     string
		release    string
		// same: the file is the initrd itself; else it holds the
		// initrd and the module after it.
		same bool
		err  string
	}{
		{name: "the restorer holds the module", initrdKmod: true, initrd: initrd, release: "6.1.0-50", same: true},
		{name: "another initrd", initrd: initrd, release: "6.1.0-50"},
		{name: "another initrd, no module built", initrd: initrd, release: "6.1.0-56", err: "no seamlessmem module built for kernel 6.1.0-56"},
		{name: "the restorer is gone", initrdKmod: true, initrd: initrd + ".gone", release: "6.1.0-50", err: "kmod store: the initrd: open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &contract.Intent{Kernel: kernel.Kernel{Release: tc.release, Initrd: tc.initrd}, InitrdKmod: tc.initrdKmod}
			f, err := kmodInitrd(in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			orig, _ := os.Stat(initrd)
			if os.SameFile(st, orig) != tc.same {
				t.Fatalf("the initrd itself: %v, want %v", !tc.same, tc.same)
			}
			b, _ := io.ReadAll(f)
			if !bytes.HasPrefix(b, []byte("the initrd")) || tc.same != !bytes.Contains(b, []byte("the module")) ||
				!tc.same && !bytes.Contains(b, []byte(kmod.InitramfsModuleDir+"/seamlessmem.ko")) {
				t.Fatalf("initrd %q", b)
			}
		})
	}
}
