package image_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/seamless-linux/seamless/internal/files"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/image/imagetest"
)

// The tests of the open file descriptions an image holds: the kinds, their
// records and their rules are internal/files' (registered with the image
// when it is linked in), so these tests are outside the package.

// readTestdata reads a file of testdata.
func readTestdata(t *testing.T, name ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"testdata"}, name...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeImage writes a whole image of tree whose MANIFEST names format (as
// a seamless of that format wrote it, checksummed), with a pages file.
func writeImage(t *testing.T, tree []byte, format int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	w, err := image.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile(image.TreeName, tree); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile("pages-10.img", make([]byte, 8192)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit("6.1.0 old"); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, image.ManifestName)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(b, []byte("\nend "))
	body := bytes.Replace(b[:i+1], fmt.Appendf(nil, "%s %d\n", image.Magic, image.Version), fmt.Appendf(nil, "%s %d\n", image.Magic, format), 1)
	body = crc32cSums(t, dir, body)
	b = fmt.Appendf(body, "end %08x\n", crc32.Checksum(body, castagnoli))
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32cSums rewrites the file lines of a MANIFEST body with the sums of
// the formats before 4: the CRC-32C of the little-endian CRC-32Cs of each
// 4 MiB block.
func crc32cSums(t *testing.T, dir string, body []byte) []byte {
	t.Helper()
	lines := bytes.SplitAfter(body, []byte("\n"))
	for i, l := range lines {
		f := strings.SplitN(strings.TrimSuffix(string(l), "\n"), " ", 4)
		if len(f) != 4 || f[0] != "file" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, f[3]))
		if err != nil {
			t.Fatal(err)
		}
		var blocks []byte
		for off := 0; off < len(b); off += image.BlockSize {
			blocks = binary.LittleEndian.AppendUint32(blocks, crc32.Checksum(b[off:min(off+image.BlockSize, len(b))], castagnoli))
		}
		lines[i] = fmt.Appendf(nil, "file %08x %s %s\n", crc32.Checksum(blocks, castagnoli), f[2], f[3])
	}
	return bytes.Join(lines, nil)
}

// openImage opens dir, or fails the test.
func openImage(t *testing.T, dir string) *image.Image {
	t.Helper()
	im, err := image.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(im.Close)
	return im
}

// TestOpenFormat1: an image written by a seamless of format version 1 is
// opened, validated and read into today's records, each kind's state in
// its own record, as the restore reads it.
func TestOpenFormat1(t *testing.T) {
	im := openImage(t, writeImage(t, readTestdata(t, "format1", "tree.json"), 1))
	if im.Format != 1 {
		t.Errorf("format %d, want 1", im.Format)
	}
	byID := map[int]*image.File{}
	for _, f := range im.Tree.Files {
		byID[f.ID] = f
	}
	want := map[int]image.FileRecord{
		1:  &files.Eventfd{Counter: 7},
		2:  &files.Epoll{Watches: []files.EpollWatch{{FD: 3, Events: 1, Data: 42, File: 1}}},
		3:  &files.Signalfd{Sigmask: 8192},
		4:  &files.Inotify{Watches: []files.InotifyWatch{{WD: 1, Path: "/etc", Mask: 256}}},
		5:  &files.Namespace{Type: "net", PID: 10},
		6:  &files.Pidfd{PID: 10},
		7:  &files.PtyEnd{Index: 3},
		8:  &files.PtyEnd{Index: 3},
		9:  &files.HungUpEnd{Index: 5},
		10: nil,
		11: &files.Timer{Clock: 1, ValueNs: 5000, Ticks: 2},
	}
	for id, w := range want {
		f := byID[id]
		if f == nil {
			t.Errorf("file %d is missing", id)
			continue
		}
		if !reflect.DeepEqual(f.Record, w) {
			t.Errorf("file %d (%s): record %#v, want %#v", id, f.Kind, f.Record, w)
		}
	}
	// Before Ref.Memfd, "count" held a memfd's seals.
	if r := byID[10].Ref; r == nil || !r.Memfd || !r.Deleted || r.Seals != 15 {
		t.Errorf("memfd of format 1: ref %+v, want a memfd with seals 15", r)
	}
}

// TestOpenFormat2: images written by the seamless of format version 2
// (testdata/format2: the fuzz corpus's real images and format1's tree of
// every kind, written by that version) are opened and validated, read
// into the same records as the format 1 images they were made from, and
// written as this version, read back the same.
func TestOpenFormat2(t *testing.T) {
	// kinds.json, in a whole image.
	im := openImage(t, writeImage(t, readTestdata(t, "format2", "kinds.json"), 2))
	v1 := openImage(t, writeImage(t, readTestdata(t, "format1", "tree.json"), 1))
	if im.Format != 2 || !reflect.DeepEqual(im.Tree, v1.Tree) {
		t.Errorf("format %d: a format 2 image does not read as the format 1 image it was made from", im.Format)
	}
	reencode(t, "kinds.json", im.Tree, map[string]int64{image.TreeName: 1, "pages-10.img": 8192})
	// The corpus's real images, against their MANIFESTs' sizes.
	seeds, err := imagetest.Seeds()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range seeds {
		b, err := os.ReadFile(filepath.Join("testdata", "format2", s.Name+".json"))
		if os.IsNotExist(err) {
			continue
		}
		n++
		sizes := imagetest.Sizes(s.Manifest)
		tr, err := image.DecodeTree(b, 2)
		if err == nil {
			err = tr.Validate(sizes)
		}
		if err != nil {
			t.Errorf("%s: format 2: %v", s.Name, err)
			continue
		}
		old, err := image.DecodeTree(s.Tree, imagetest.Format(s.Manifest))
		if err != nil || !reflect.DeepEqual(old, tr) {
			t.Errorf("%s: format 2 does not read as the format 1 image it was made from (%v)", s.Name, err)
		}
		reencode(t, s.Name, tr, sizes)
	}
	if n < 4 {
		t.Errorf("%d format 2 images of the corpus, want the 4 of testdata/format2", n)
	}
}

// reencode writes tr as this version and reads it back: the same tree, valid.
func reencode(t *testing.T, name string, tr *image.Tree, sizes map[string]int64) {
	t.Helper()
	b, err := json.Marshal(tr)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	back, err := image.DecodeTree(b, image.Version)
	if err == nil {
		err = back.Validate(sizes)
	}
	if err != nil || !reflect.DeepEqual(back, tr) {
		t.Errorf("%s: tree changed on its way through version %d (%v)", name, image.Version, err)
	}
}

// TestFormat1EncodesAsCurrent: a version 1 tree, once read, is written as
// this version (no field of version 1 is left) and reads back the same.
func TestFormat1EncodesAsCurrent(t *testing.T) {
	v1 := readTestdata(t, "format1", "tree.json")
	old, err := image.DecodeTree(v1, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"count"`, `"pty_index"`, `"ns_pid"`, `"pidfd_pid"`, `"inotify":[`, `"timer":`} {
		if strings.Contains(string(b), key) {
			t.Errorf("version %d tree has %s: %s", image.Version, key, b)
		}
	}
	if !strings.Contains(string(b), `"kind":"epoll","flags":2,"pos":0,"record":{"watches":[{"fd":3`) {
		t.Errorf("epoll watches not in the epoll record: %s", b)
	}
	reencode(t, "format1/tree.json", old, map[string]int64{image.TreeName: 1, "pages-10.img": 8192})
	// A version 1 tree is not a version 3 one: its records are fields
	// of their own, which version 3 does not read.
	if tr, err := image.DecodeTree(v1, image.Version); err == nil {
		if err := tr.Validate(map[string]int64{image.TreeName: 1, "pages-10.img": 8192}); err == nil {
			t.Error("a version 1 tree with records of its own validated as this version")
		}
	}
}

func TestValidateFiles(t *testing.T) {
	proc := func(pid, ppid int) *image.Process {
		return &image.Process{PID: pid, PPID: ppid, PGID: 10, SID: 10, Ctty: -1, Threads: []*image.Thread{{TID: pid}}}
	}
	deleted := func(id int, mode uint32) *image.Ref {
		return &image.Ref{Path: "/tmp/x", Deleted: true, ID: id, Mode: mode, Size: 8192, Contents: "file-1.img"}
	}
	add := func(kind string, rec image.FileRecord) func(t *image.Tree) {
		return func(t *image.Tree) { t.Files = append(t.Files, &image.File{ID: 2, Kind: kind, Record: rec}) }
	}
	tests := []struct {
		name   string
		change func(t *image.Tree)
		want   string // substring of the error; "" for valid
	}{
		{"plain", func(*image.Tree) {}, ""},
		{"session outside the namespace", func(t *image.Tree) { t.Processes[0].SID = 0 }, ""},
		{"negative session", func(t *image.Tree) { t.Processes[0].SID = -1 }, "bad process group"},
		{"group beyond any pid", func(t *image.Tree) { t.Processes[1].PGID = image.MaxPID + 1 }, "bad process group"},
		{"table of the parent", func(t *image.Tree) { t.Processes[1].FDTable = 10 }, ""},
		{"table of the grandparent through the parent", func(t *image.Tree) {
			t.Processes[1].FDTable, t.Processes[2].FDTable = 10, 10
		}, ""},
		{"table not the parent's", func(t *image.Tree) { t.Processes[2].FDTable = 10 }, "not its parent's"},
		{"table of the root for the root", func(t *image.Tree) { t.Processes[0].FDTable = 10 }, "not its parent's"},
		{"epoll watch of a known file", add(files.KindEpoll, &files.Epoll{Watches: []files.EpollWatch{{FD: 5, File: 1}}}), ""},
		{"epoll watch of an unknown file", add(files.KindEpoll, &files.Epoll{Watches: []files.EpollWatch{{FD: 5, File: 9}}}), "unknown file 9"},
		{"epoll watch of a bad fd", add(files.KindEpoll, &files.Epoll{Watches: []files.EpollWatch{{FD: -1}}}), "bad fd -1"},
		{"namespace of the tree", add(files.KindNamespace, &files.Namespace{Type: "net", PID: 11}), ""},
		{"namespace of a stranger", add(files.KindNamespace, &files.Namespace{Type: "net", PID: 99}), "not in the tree"},
		{"namespace of no kind", add(files.KindNamespace, &files.Namespace{Type: "../x", PID: 10}), "not in the tree"},
		{"pidfd of a thread", add(files.KindPidfd, &files.Pidfd{PID: 12}), ""},
		{"pidfd of a stranger", add(files.KindPidfd, &files.Pidfd{PID: 99}), "pidfd of 99"},
		{"pidfd without its record", add(files.KindPidfd, nil), "no pidfd state"},
		{"pidfd with a record of another kind", add(files.KindPidfd, &files.Eventfd{}), "a record of type *files.Eventfd"},
		{"timer of negative time", add(files.KindTimerfd, &files.Timer{ValueNs: -1}), "negative time"},
		{"inotify watch without path", add(files.KindInotify, &files.Inotify{Watches: []files.InotifyWatch{{WD: 1}}}), "no path"},
		{"hung-up terminal of a bad index", add(files.KindHungUp, &files.HungUpEnd{Index: -2}), "bad pty index -2"},
		{"deleted file", func(t *image.Tree) { t.Files[0].Ref = deleted(1, 0o100600) }, ""},
		{"deleted working directory", func(t *image.Tree) { t.Processes[0].CwdFile = deleted(2, 0o040700) }, ""},
		{"working directory of a file", func(t *image.Tree) { t.Processes[0].CwdFile = deleted(2, 0o100600) },
			"working directory object 2 is not a directory"},
		{"one object, two modes", func(t *image.Tree) {
			t.Files[0].Ref = deleted(1, 0o100600)
			t.Files = append(t.Files, &image.File{ID: 2, Kind: files.KindRegular, Ref: deleted(1, 0o100644)})
		}, "described in two ways"},
		{"extent past the end", func(t *image.Tree) {
			r := deleted(1, 0o100600)
			r.Runs = []image.Run{{Addr: 4096, Pages: 2}}
			t.Files[0].Ref = r
		}, "data extent"},
		{"contents out of the image", func(t *image.Tree) {
			r := deleted(1, 0o100600)
			r.Contents = "../etc/shadow"
			t.Files[0].Ref = r
		}, "not a plain file name"},
		{"memfd without its name", func(t *image.Tree) {
			r := deleted(1, 0o100600)
			r.Memfd = true
			t.Files[0].Ref = r
		}, "memfd named"},
		{"owner of another kind", func(t *image.Tree) { t.Files[0].Owner = &image.Owner{Type: 7, PID: 10} }, "owner of its signals"},
		{"owner in the tree", func(t *image.Tree) { t.Files[0].Owner = &image.Owner{Type: 1, PID: 11} }, ""},
		{"owner thread in the tree", func(t *image.Tree) { t.Files[0].Owner = &image.Owner{Type: 0, PID: 12} }, ""},
		{"owner outside the tree", func(t *image.Tree) { t.Files[0].Owner = &image.Owner{Type: 1, PID: 99} }, "owner of its signals"},
	}
	for _, tt := range tests {
		tree := &image.Tree{Root: 10, Processes: []*image.Process{proc(10, 1), proc(11, 10), proc(12, 11)},
			Files: []*image.File{{ID: 1, Kind: files.KindRegular, Ref: &image.Ref{Path: "/etc/hosts", Mode: 0o100644}}}}
		tt.change(tree)
		err := tree.Validate(map[string]int64{image.TreeName: 100, "file-1.img": 16384})
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: validate = %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: validate = %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}

// FuzzTree decodes and validates tree.json against the files of a MANIFEST,
// as every format version this build reads. A tree that passes is encoded
// (as this version) and decoded again: it must still pass.
func FuzzTree(f *testing.F) {
	f.Add([]byte("file 0 8192 pages-10.img\n"), []byte(`{"root":10,"processes":[{"pid":10,"pgid":10,"sid":10,"ctty":-1,"threads":[{"tid":10}],"pages":"pages-10.img","mappings":[{"start":65536,"end":73728,"kind":"anon","runs":[{"addr":65536,"pages":2,"off":0}]}]}]}`))
	f.Fuzz(func(t *testing.T, manifest, tree []byte) {
		sizes := imagetest.Sizes(manifest)
		for format := 1; format <= image.Version; format++ {
			tr, err := image.DecodeTree(tree, format)
			if err != nil {
				continue
			}
			if err := tr.Validate(sizes); err != nil {
				continue
			}
			b, err := json.Marshal(tr)
			if err != nil {
				t.Fatalf("a valid tree (format %d) does not encode: %v", format, err)
			}
			again, err := image.DecodeTree(b, image.Version)
			if err != nil {
				t.Fatalf("a valid tree (format %d) does not decode again: %v", format, err)
			}
			if err := again.Validate(sizes); err != nil {
				t.Fatalf("a valid tree (format %d) is invalid once encoded again: %v", format, err)
			}
		}
	})
}

// TestSeedsAreValid: the real images of the corpus pass the validation
// (a rule that refuses what a checkpoint writes would refuse every restore).
func TestSeedsAreValid(t *testing.T) {
	seeds, err := imagetest.Seeds()
	if err != nil || len(seeds) == 0 {
		t.Fatalf("seed corpus: %d seeds, %v", len(seeds), err)
	}
	for _, s := range seeds {
		im, err := image.ParseManifest(s.Manifest)
		if err != nil {
			t.Errorf("%s: %v", s.Name, err)
			continue
		}
		tr, err := image.DecodeTree(s.Tree, im.Format)
		if err == nil {
			err = tr.Validate(imagetest.Sizes(s.Manifest))
		}
		if err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
	}
}
