package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// format1Tree is a version 1 tree.json with a description of every kind
// whose record version 2 moved out of File's own fields.
func format1Tree(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "format1", "tree.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeFormat1Image writes a whole version 1 image of tree: a MANIFEST
// that names version 1, checksummed as a version 1 seamless wrote it.
func writeFormat1Image(t *testing.T, tree []byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile(TreeName, tree); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile("pages-10.img", make([]byte, 8192)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit("6.1.0 old"); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, ManifestName)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(b, []byte("\nend "))
	body := bytes.Replace(b[:i+1], []byte(fmt.Sprintf("%s %d\n", Magic, Version)), []byte(Magic+" 1\n"), 1)
	b = fmt.Appendf(body, "end %08x\n", crc32.Checksum(body, castagnoli))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestOpenFormat1: an image written by a seamless of format version 1 is
// opened, validated and read into version 2's records, each kind's state in
// its own record, as the restore reads it.
func TestOpenFormat1(t *testing.T) {
	im, err := Open(writeFormat1Image(t, format1Tree(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if im.Format != 1 {
		t.Errorf("format %d, want 1", im.Format)
	}
	byID := map[int]*File{}
	for _, f := range im.Tree.Files {
		byID[f.ID] = f
	}
	want := map[int]File{
		1:  {Eventfd: &Eventfd{Counter: 7}},
		2:  {Epoll: &Epoll{Watches: []EpollWatch{{FD: 3, Events: 1, Data: 42, File: 1}}}},
		3:  {Signalfd: &Signalfd{Sigmask: 8192}},
		4:  {Inotify: &Inotify{Watches: []InotifyWatch{{WD: 1, Path: "/etc", Mask: 256}}}},
		5:  {Namespace: &Namespace{Type: "net", PID: 10}},
		6:  {Pidfd: &Pidfd{PID: 10}},
		7:  {Pty: &PtyEnd{Index: 3}},
		8:  {Pty: &PtyEnd{Index: 3}},
		9:  {Pty: &PtyEnd{Index: 5}},
		10: {},
		11: {Timer: &Timer{Clock: 1, ValueNs: 5000, Ticks: 2}},
	}
	for id, w := range want {
		f := byID[id]
		if f == nil {
			t.Errorf("file %d is missing", id)
			continue
		}
		got := *f
		// Only the kind's record is compared.
		got.ID, got.Kind, got.Flags, got.Pos, got.Ref, got.Rdev = 0, "", 0, 0, nil, 0
		if !reflect.DeepEqual(got, w) {
			t.Errorf("file %d (%s): records %+v, want %+v", id, f.Kind, got, w)
		}
	}
	// Before Ref.Memfd, "count" held a memfd's seals.
	if r := byID[10].Ref; r == nil || !r.Memfd || !r.Deleted || r.Seals != 15 {
		t.Errorf("memfd of format 1: ref %+v, want a memfd with seals 15", r)
	}
}

// TestFormat1EncodesAsCurrent: a version 1 tree, once read, is written as
// this version (no field of version 1 is left) and reads back the same.
func TestFormat1EncodesAsCurrent(t *testing.T) {
	old, err := DecodeTree(format1Tree(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"count"`, `"pty_index"`, `"ns_pid"`, `"pidfd_pid"`, `"inotify":[`} {
		if strings.Contains(string(b), key) {
			t.Errorf("version %d tree has %s: %s", Version, key, b)
		}
	}
	if !strings.Contains(string(b), `"epoll":{"watches":[{"fd":3`) {
		t.Errorf("epoll watches not in the epoll record: %s", b)
	}
	again, err := DecodeTree(b, Version)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(old, again) {
		t.Errorf("tree changed on its way through version %d", Version)
	}
	// A version 1 tree is not a version 2 one: its inotify watches are a
	// list where version 2 has a record.
	if _, err := DecodeTree(format1Tree(t), Version); err == nil {
		t.Error("a version 1 tree with inotify watches decoded as version 2")
	}
}
