package restored

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/kmod"
)

const testImages = "/var/lib/seamless/images"

// fakeRoot is a real root with the default disk directory, an image in
// it, and a home directory that must survive whatever the tests do.
func fakeRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the disk store is root's")
	}
	root := t.TempDir()
	for _, d := range []string{"home/user", "etc/seamless", "other"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "home/user/keep"), []byte("mine"), 0o644)
	if err := os.MkdirAll(filepath.Join(root, testImages), 0o700); err != nil {
		t.Fatal(err)
	}
	writeImage(t, filepath.Join(root, testImages, "20260101T000000Z"))
	return root
}

// writeImage writes an image directory as the disk store does: one unit
// with its start record and one tree.
func writeImage(t *testing.T, dir string) {
	t.Helper()
	w, err := image.Create(filepath.Join(dir, "a.service", "123"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteJSON(image.TreeName, map[string]any{"root": 123}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile("pages-123.img", bytes.Repeat([]byte{1}, 8192)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit("test"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.service", contract.StartFile), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func homeIntact(t *testing.T, root string) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(root, "home/user/keep")); err != nil || string(b) != "mine" {
		t.Fatalf("the fake root's /home was touched: %q, %v", b, err)
	}
}

// TestOpenDiskImageRefuses: a boot parameter names an image; only a
// directory directly in the configured disk directory, reached without a
// symlink, root's and writable by root alone, is taken.
func TestOpenDiskImageRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		arg   string
		setup func(t *testing.T, root string)
		want  string
	}{
		{"outside the disk directory", "disk:/home", nil, "directly in the disk directory"},
		{"the disk directory itself", "disk:" + testImages, nil, "directly in the disk directory"},
		{"dot-dot", "disk:" + testImages + "/../../../../home", nil, "directly in the disk directory"},
		{"relative", "disk:var/lib/seamless/images/20260101T000000Z", nil, "directly in the disk directory"},
		{"not disk", "/seamless/image", nil, "not a disk image"},
		{"a symlink to /home", "disk:" + testImages + "/link", func(t *testing.T, root string) {
			os.Symlink("../../../../home", filepath.Join(root, testImages, "link"))
		}, "symlink"},
		{"a symlink on the way", "disk:" + testImages + "/20260101T000000Z", func(t *testing.T, root string) {
			lib := filepath.Join(root, "var/lib/seamless")
			os.Rename(lib, filepath.Join(root, "other/seamless"))
			os.Symlink("../../other/seamless", lib)
		}, "symlink"},
		{"a file", "disk:" + testImages + "/file", func(t *testing.T, root string) {
			os.WriteFile(filepath.Join(root, testImages, "file"), nil, 0o600)
		}, "not a directory"},
		{"owned by a user", "disk:" + testImages + "/20260101T000000Z", func(t *testing.T, root string) {
			os.Chown(filepath.Join(root, testImages, "20260101T000000Z"), 65534, 65534)
		}, "owned by uid 65534"},
		{"writable by others", "disk:" + testImages + "/20260101T000000Z", func(t *testing.T, root string) {
			os.Chmod(filepath.Join(root, testImages, "20260101T000000Z"), 0o777)
		}, "mode 0777"},
		{"disk directory writable by others", "disk:" + testImages + "/20260101T000000Z", func(t *testing.T, root string) {
			os.Chmod(filepath.Join(root, testImages), os.ModeSticky|0o777)
		}, "mode 01777"},
		{"another disk directory configured", "disk:" + testImages + "/20260101T000000Z", func(t *testing.T, root string) {
			os.WriteFile(filepath.Join(root, "etc/seamless/seamless.conf"), []byte("disk-dir = /srv/images\n"), 0o644)
		}, "disk directory /srv/images"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeRoot(t)
			if tc.setup != nil {
				tc.setup(t, root)
			}
			di, err := openDiskImage(root, tc.arg)
			if err == nil {
				di.close()
				t.Fatalf("openDiskImage(%q) was accepted", tc.arg)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("openDiskImage(%q) = %v, want an error saying %q", tc.arg, err, tc.want)
			}
			homeIntact(t, root)
		})
	}
}

// TestDiskImageRemove: removing an image takes what its MANIFESTs list,
// the start records and the directories left empty, and nothing else.
func TestDiskImageRemove(t *testing.T) {
	t.Run("an image and nothing else", func(t *testing.T) {
		root := fakeRoot(t)
		di, err := openDiskImage(root, "disk:"+testImages+"/20260101T000000Z")
		if err != nil {
			t.Fatal(err)
		}
		defer di.close()
		var log strings.Builder
		if err := di.remove(&log); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(root, testImages, "20260101T000000Z")); !os.IsNotExist(err) {
			t.Fatalf("the image is still there: %v", err)
		}
		if _, err := os.Stat(filepath.Join(root, testImages)); err != nil {
			t.Fatalf("the disk directory went: %v", err)
		}
	})
	t.Run("with files seamless did not write", func(t *testing.T) {
		root := fakeRoot(t)
		img := filepath.Join(root, testImages, "20260101T000000Z")
		left := []string{"notes.txt", "b.service/keep.txt", "a.service/123/extra", "a.service/other.txt"}
		for _, f := range left {
			os.MkdirAll(filepath.Dir(filepath.Join(img, f)), 0o700)
			os.WriteFile(filepath.Join(img, f), []byte("x"), 0o600)
		}
		di, err := openDiskImage(root, "disk:"+testImages+"/20260101T000000Z")
		if err != nil {
			t.Fatal(err)
		}
		defer di.close()
		err = di.remove(&strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), "left in place") {
			t.Fatalf("remove = %v, want it to say what it left", err)
		}
		for _, f := range left {
			if _, err := os.Stat(filepath.Join(img, f)); err != nil {
				t.Errorf("%s was removed: %v", f, err)
			}
		}
		for _, f := range []string{"a.service/123/" + image.ManifestName, "a.service/123/pages-123.img", "a.service/123/" + image.TreeName, "a.service/" + contract.StartFile} {
			if _, err := os.Stat(filepath.Join(img, f)); !os.IsNotExist(err) {
				t.Errorf("%s, written by seamless, is still there (%v)", f, err)
			}
		}
	})
	t.Run("a unit directory that holds no image", func(t *testing.T) {
		root := fakeRoot(t)
		img := filepath.Join(root, testImages, "20260101T000000Z")
		os.MkdirAll(filepath.Join(img, "c.service/9"), 0o700)
		os.WriteFile(filepath.Join(img, "c.service", contract.StartFile), []byte("{}"), 0o600)
		os.WriteFile(filepath.Join(img, "c.service/9/data"), []byte("x"), 0o600)
		di, err := openDiskImage(root, "disk:"+testImages+"/20260101T000000Z")
		if err != nil {
			t.Fatal(err)
		}
		defer di.close()
		if err := di.remove(&strings.Builder{}); err == nil {
			t.Fatal("remove removed a directory without a MANIFEST")
		}
		for _, f := range []string{"c.service/" + contract.StartFile, "c.service/9/data"} {
			if _, err := os.Stat(filepath.Join(img, f)); err != nil {
				t.Errorf("%s was removed: %v", f, err)
			}
		}
	})
}

func TestStage1RAMImageOnlyWhereTheStorePutsIt(t *testing.T) {
	t.Cleanup(contract.SetDirs(t.TempDir(), ""))
	for _, arg := range []string{"/etc", "/", "/seamless/image/..", "relative"} {
		var log strings.Builder
		stage1("seamless.image="+arg, "/root", &log)
		if !strings.Contains(log.String(), "is not where the RAM store puts an image") {
			t.Errorf("stage 1 with seamless.image=%s: %q, want it ignored", arg, log.String())
		}
	}
}

// TestStage1KmodWithoutModule: an image in the kmod store whose module
// cannot be had (none in the initrd, none built for this kernel) leaves
// the services to start cold, and a malformed index address is ignored.
func TestStage1KmodWithoutModule(t *testing.T) {
	if kmod.Loaded() {
		t.Skip("seamlessmem is loaded here: stage 1 would mount it")
	}
	t.Cleanup(contract.SetDirs(t.TempDir(), ""))
	defer func(d string) { kmod.ModulesDir = d }(kmod.ModulesDir)
	kmod.ModulesDir = t.TempDir()
	var log strings.Builder
	stage1("root=/dev/vda1 memmap=0x8000000$0x70000000 seamless.image=kmod:0x70000000,1", "", &log)
	if !strings.Contains(log.String(), "kmod store:") || !strings.Contains(log.String(), "the services start cold") {
		t.Errorf("stage 1 without the module: %q", log.String())
	}
	log.Reset()
	stage1("seamless.image=kmod:zz", "", &log)
	if !strings.Contains(log.String(), "names no seamlessmem index") {
		t.Errorf("stage 1 with seamless.image=kmod:zz: %q", log.String())
	}
}
