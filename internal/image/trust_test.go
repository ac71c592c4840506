package image

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (files of another owner)")
	}
}

// openWithin runs Open in a goroutine: a reader that blocks (a FIFO) must
// fail the test, not hang it.
func openWithin(t *testing.T, open func(string) (*Image, error), dir string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		im, err := open(dir)
		if err == nil {
			im.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("opening %s hangs", dir)
		return nil
	}
}

// TestOpenRefusesUntrusted: an image that someone else than root could have
// written (or could still change) is refused, with an error naming the
// file or directory (issue 10 finding 5: a user's image with tree.json
// edited to uid 0 was restored by root with full capabilities).
func TestOpenRefusesUntrusted(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name   string
		change func(t *testing.T, dir string) string // returns the path the error must name
		want   string
	}{
		{"directory of a user", func(t *testing.T, dir string) string { chown(t, dir, 1000); return dir }, "owned by uid 1000"},
		{"directory writable by the group", func(t *testing.T, dir string) string { chmod(t, dir, 0o770); return dir }, "writable by group or others"},
		{"directory writable by all, sticky", func(t *testing.T, dir string) string { chmod(t, dir, 0o1777); return dir }, "writable by group or others"},
		{"tree.json of a user", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, TreeName)
			chown(t, p, 1000)
			return p
		}, "owned by uid 1000"},
		{"manifest of a user", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, ManifestName)
			chown(t, p, 1000)
			return p
		}, "owned by uid 1000"},
		{"pages writable by others", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "pages-10.img")
			chmod(t, p, 0o602)
			return p
		}, "writable by group or others"},
		{"parent of a user", func(t *testing.T, dir string) string {
			chown(t, filepath.Dir(dir), 1000)
			return filepath.Dir(dir)
		}, "owned by uid 1000"},
		{"parent writable by all", func(t *testing.T, dir string) string {
			chmod(t, filepath.Dir(dir), 0o777)
			return filepath.Dir(dir)
		}, "writable by group or others"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeImage(t)
			path := tt.change(t, dir)
			err := openWithin(t, Open, dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open = %v, want an error naming %s: %s", err, path, tt.want)
			}
		})
	}
	t.Run("parent writable by all, sticky", func(t *testing.T) {
		dir := writeImage(t)
		chmod(t, filepath.Dir(dir), 0o1777)
		if err := openWithin(t, Open, dir); err != nil {
			t.Fatalf("an image in a sticky directory (like /tmp) is refused: %v", err)
		}
	})
}

// TestOpenRefusesSpecialFiles: image files must be regular files, opened
// without following symlinks, bounded before they are read (issue 10
// finding 7: a MANIFEST that was a FIFO hung inspect, one linked to
// /dev/zero exhausted memory).
func TestOpenRefusesSpecialFiles(t *testing.T) {
	tests := []struct {
		name    string
		replace string
		with    func(t *testing.T, path string)
		want    string
	}{
		{"manifest is a FIFO", ManifestName, mkfifo, "a FIFO"},
		{"manifest links to /dev/zero", ManifestName, symlinkTo("/dev/zero"), "symbolic link"},
		{"pages are a FIFO", "pages-10.img", mkfifo, "a FIFO"},
		{"pages link to /dev/zero", "pages-10.img", symlinkTo("/dev/zero"), "symbolic link"},
		{"tree links to a copy of itself", TreeName, func(t *testing.T, p string) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			other := filepath.Join(t.TempDir(), "tree.json")
			if err := os.WriteFile(other, b, 0o600); err != nil {
				t.Fatal(err)
			}
			symlinkTo(other)(t, p)
		}, "symbolic link"},
		{"pages are a device", "pages-10.img", func(t *testing.T, p string) {
			needRoot(t)
			os.Remove(p)
			if err := syscall.Mknod(p, syscall.S_IFCHR|0o600, 1<<8|5); err != nil { // 1:5, /dev/zero
				t.Skip(err)
			}
		}, "a character device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeImage(t)
			p := filepath.Join(dir, tt.replace)
			tt.with(t, p)
			for _, open := range []func(string) (*Image, error){Open, OpenUnverified, OpenHeld} {
				err := openWithin(t, open, dir)
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.replace) {
					t.Fatalf("Open = %v, want an error naming %s: %s", err, tt.replace, tt.want)
				}
			}
		})
	}
}

// TestOpenHeld: the restore daemon's links to the files it holds
// (/proc/PID/fd/N) are followed by OpenHeld, and only those.
func TestOpenHeld(t *testing.T) {
	dir := writeImage(t)
	links := filepath.Join(t.TempDir(), "links")
	if err := os.Mkdir(links, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{ManifestName, TreeName, "pages-10.img"} {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := os.Symlink("/proc/"+strconv.Itoa(os.Getpid())+"/fd/"+strconv.Itoa(int(f.Fd())), filepath.Join(links, n)); err != nil {
			t.Fatal(err)
		}
	}
	im, err := OpenHeld(links)
	if err != nil {
		t.Fatalf("OpenHeld of the daemon's links: %v", err)
	}
	im.Close()
	if _, err := Open(links); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Open followed the links: %v", err)
	}
	os.Remove(filepath.Join(links, "pages-10.img"))
	os.Symlink(filepath.Join(dir, "pages-10.img"), filepath.Join(links, "pages-10.img"))
	if _, err := OpenHeld(links); err == nil || !strings.Contains(err.Error(), "symbolic link to "+dir) {
		t.Fatalf("OpenHeld followed a link that is not the daemon's: %v", err)
	}
}

func chown(t *testing.T, p string, uid int) {
	t.Helper()
	if err := os.Lchown(p, uid, uid); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := syscall.Chmod(p, uint32(mode)); err != nil {
		t.Fatal(err)
	}
}

func mkfifo(t *testing.T, p string) {
	t.Helper()
	os.Remove(p)
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
}

func symlinkTo(target string) func(t *testing.T, p string) {
	return func(t *testing.T, p string) {
		t.Helper()
		os.Remove(p)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCreate: checkpoint --dir makes its directory itself, 0700, never
// through a symlink, and never changes or removes what it did not make
// (issue 10 finding 5: a pre-existing directory was chmodded through a
// symlink before it was found not empty, and an empty directory that
// seamless had not made was removed after a failure).
func TestCreate(t *testing.T) {
	t.Run("new directory and its parents", func(t *testing.T) {
		top := t.TempDir()
		dir := filepath.Join(top, "a", "b", "img")
		w, err := Create(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{filepath.Join(top, "a"), filepath.Join(top, "a", "b"), dir} {
			if st, err := os.Lstat(d); err != nil || st.Mode().Perm() != 0o700 || !st.IsDir() {
				t.Fatalf("%s: %v, %v; want a directory 0700", d, st.Mode(), err)
			}
		}
		if err := w.WriteFile("x", []byte("x")); err != nil {
			t.Fatal(err)
		}
		w.Discard()
		if _, err := os.Lstat(filepath.Join(top, "a")); !os.IsNotExist(err) {
			t.Fatalf("Discard left what it made: %v", err)
		}
	})
	t.Run("symlink in place of the directory", func(t *testing.T) {
		top := t.TempDir()
		target := filepath.Join(top, "target")
		if err := os.Mkdir(target, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(target, "data"), []byte("keep"), 0o644)
		link := filepath.Join(top, "img")
		os.Symlink(target, link)
		if _, err := Create(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Fatalf("Create through a symlink = %v", err)
		}
		if st, _ := os.Stat(target); st.Mode().Perm() != 0o755 {
			t.Fatalf("the symlink's target was changed to %v", st.Mode().Perm())
		}
		if b, _ := os.ReadFile(filepath.Join(target, "data")); string(b) != "keep" {
			t.Fatal("the symlink's target lost its data")
		}
	})
	t.Run("symlink to an empty directory", func(t *testing.T) {
		top := t.TempDir()
		target := filepath.Join(top, "target")
		os.Mkdir(target, 0o755)
		os.Symlink(target, filepath.Join(top, "img"))
		if _, err := Create(filepath.Join(top, "img")); err == nil {
			t.Fatal("Create wrote through a symlink")
		}
		if st, _ := os.Stat(target); st.Mode().Perm() != 0o755 {
			t.Fatalf("the symlink's target was changed to %v", st.Mode().Perm())
		}
	})
	t.Run("existing empty directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "img")
		os.Mkdir(dir, 0o750)
		w, err := Create(dir)
		if err != nil {
			t.Fatalf("an empty root-owned directory is refused: %v", err)
		}
		if err := w.WriteFile("x", []byte("x")); err != nil {
			t.Fatal(err)
		}
		w.Discard()
		st, err := os.Stat(dir)
		if err != nil || st.Mode().Perm() != 0o750 {
			t.Fatalf("after a failure the existing directory is %v, %v: want it kept, mode unchanged", st, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("Discard left %v", ents)
		}
	})
	t.Run("existing directory not empty", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "x"), nil, 0o600)
		syscall.Chmod(dir, 0o755)
		if _, err := Create(dir); err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Fatalf("Create of a non-empty directory = %v", err)
		}
		if st, _ := os.Stat(dir); st.Mode().Perm() != 0o755 {
			t.Fatalf("a refused directory was changed to %v", st.Mode().Perm())
		}
	})
	t.Run("existing directory writable by others", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "img")
		os.Mkdir(dir, 0o777)
		syscall.Chmod(dir, 0o777)
		if _, err := Create(dir); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
			t.Fatalf("Create of a world-writable directory = %v", err)
		}
	})
	t.Run("existing directory of a user", func(t *testing.T) {
		needRoot(t)
		dir := filepath.Join(t.TempDir(), "img")
		os.Mkdir(dir, 0o700)
		chown(t, dir, 1000)
		if _, err := Create(dir); err == nil || !strings.Contains(err.Error(), "owned by uid 1000") {
			t.Fatalf("Create in a user's directory = %v", err)
		}
	})
	t.Run("parent of a user", func(t *testing.T) {
		needRoot(t)
		top := t.TempDir()
		chown(t, top, 1000)
		if _, err := Create(filepath.Join(top, "img")); err == nil || !strings.Contains(err.Error(), "owned by uid 1000") {
			t.Fatalf("Create under a user's directory = %v", err)
		}
		if _, err := os.Lstat(filepath.Join(top, "img")); !os.IsNotExist(err) {
			t.Fatal("a refused Create made its directory anyway")
		}
	})
}
