package fileref

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// TestEnsureVolatile checks that a file of a tmpfs that a reboot removed is
// recreated at its path with its saved contents, owner and mode, that one
// still there is left as it is, and that Discard removes what was recreated.
func TestEnsureVolatile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the recreated file another owner")
	}
	dir := t.TempDir()
	o := NewOpener(contentsImage(t, "file-1.img", []byte("saved contents, page-padded")))
	defer o.Close()
	gone := &image.Ref{Path: filepath.Join(dir, "gone"), Volatile: true, ID: 1, Contents: "file-1.img",
		Size: 14, Mode: unix.S_IFREG | 0o640, UID: 1234, GID: 99, MtimeNs: 1600000000e9}
	f, err := o.Open(gone, false)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, err := os.ReadFile(gone.Path)
	var st unix.Stat_t
	if err != nil || string(b) != "saved contents" || unix.Stat(gone.Path, &st) != nil ||
		st.Mode != unix.S_IFREG|0o640 || st.Uid != 1234 || st.Gid != 99 || st.Mtim.Sec != 1600000000 {
		t.Errorf("recreated %s: %q, %v, mode %#o owner %d:%d mtime %d", gone.Path, b, err, st.Mode, st.Uid, st.Gid, st.Mtim.Sec)
	}
	there := &image.Ref{Path: filepath.Join(dir, "there"), Volatile: true, ID: 2, Contents: "file-1.img",
		Size: 14, Mode: unix.S_IFREG | 0o600}
	if err := os.WriteFile(there.Path, []byte("live"), 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err = o.Open(there, true); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if b, _ := os.ReadFile(there.Path); string(b) != "live" {
		t.Errorf("a file still at its path was replaced: %q", b)
	}
	o.Discard()
	if _, err := os.Stat(gone.Path); !os.IsNotExist(err) {
		t.Errorf("Discard left %s: %v", gone.Path, err)
	}
	if _, err := os.Stat(there.Path); err != nil {
		t.Errorf("Discard removed %s, which it had not created: %v", there.Path, err)
	}
}

// contentsImage writes and opens a verified image whose one data file is
// name: the restore reads contents only from the files an image holds.
func contentsImage(t *testing.T, name string, data []byte) *image.Image {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	w, err := image.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	tree := &image.Tree{Root: 10, Processes: []*image.Process{{PID: 10, PPID: 1, PGID: 10, SID: 10, Ctty: -1,
		Threads: []*image.Thread{{TID: 10}}}}}
	if err := w.WriteFile(name, data); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteJSON(image.TreeName, tree); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit("test"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	im, err := image.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(im.Close)
	return im
}

func TestKey(t *testing.T) {
	a := &image.Ref{Path: "/x", ID: 3, Contents: "file-3.img"}
	b := &image.Ref{Path: "/x", ID: 3, Contents: "file-3.img"} // the same object, decoded again
	old := &image.Ref{Path: "/x", Contents: "file-1.img"}      // an image older than Ref.ID
	if Key(a) != Key(b) {
		t.Errorf("two Refs of one object have keys %q and %q", Key(a), Key(b))
	}
	if Key(old) != "contents:file-1.img" {
		t.Errorf("Key of an old Ref = %q", Key(old))
	}
	y1, y2 := &image.Ref{Path: "/y"}, &image.Ref{Path: "/y"}
	if Key(y1) == Key(y2) {
		t.Errorf("Refs without identity share a key")
	}
}
