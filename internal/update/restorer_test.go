package update

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/restorer"
)

// TestBuildRestorer builds the restorer for a made-up system whose root
// (XFS, built into the kernel) is on a disk with a built-in driver: no
// module to carry, only this binary; and refuses one with an NFS root.
func TestBuildRestorer(t *testing.T) {
	t.Cleanup(contract.SetDirs(filepath.Join(t.TempDir(), "run"), t.TempDir()))
	d := t.TempDir()
	sys := restorer.System{Proc: filepath.Join(d, "proc"), Sys: filepath.Join(d, "sys"), Modules: filepath.Join(d, "modules"), Boot: filepath.Join(d, "boot")}
	for p, text := range map[string]string{
		"proc/self/mountinfo":              "22 1 8:1 / / rw - xfs /dev/sda1 rw\n",
		"modules/6.1.0-50/modules.dep":     "",
		"modules/6.1.0-50/modules.builtin": "kernel/fs/xfs/xfs.ko\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(d, p)), 0o755)
		os.WriteFile(filepath.Join(d, p), []byte(text), 0o644)
	}
	os.MkdirAll(filepath.Join(d, "sys/devices/pci0000:00/0000:00:1f.2/ata1/block/sda/sda1"), 0o755)
	os.MkdirAll(filepath.Join(d, "sys/dev/block"), 0o755)
	os.Symlink("../../devices/pci0000:00/0000:00:1f.2/ata1/block/sda/sda1", filepath.Join(d, "sys/dev/block/8:1"))
	old := restorerSystem
	t.Cleanup(func() { restorerSystem = old })
	restorerSystem = sys

	path, what, err := buildRestorer("6.1.0-50")
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(contract.RunDir, "restorer-6.1.0-50.img") || !strings.Contains(what, "0 modules, root /dev/sda1 (xfs)") {
		t.Fatalf("got %s, %q", path, what)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() < 1<<20 {
		t.Fatalf("image %v, %v: want a root-only archive holding this binary", st, err)
	}
	os.WriteFile(filepath.Join(d, "proc/self/mountinfo"), []byte("22 1 0:40 / / rw - nfs4 server:/export rw\n"), 0o644)
	if _, _, err := buildRestorer("6.1.0-50"); err == nil || !strings.Contains(err.Error(), "nfs4") {
		t.Fatalf("an NFS root: %v", err)
	}
}
