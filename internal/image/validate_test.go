package image_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seamless-linux/seamless/internal/image"
	// The kinds of open file description an image may hold.
	_ "github.com/seamless-linux/seamless/internal/files"
)

// writeRaw writes an image whose tree.json is the given text, with valid
// checksums, and the named extra files (listed in the MANIFEST).
func writeRaw(t *testing.T, tree string, files map[string]int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	w, err := image.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile(image.TreeName, []byte(tree)); err != nil {
		t.Fatal(err)
	}
	for name, size := range files {
		if err := w.WriteFile(name, make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit("test"); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A valid process, to be completed by each case: %s is where the case
// adds fields to the process, files and the rest go after it.
const (
	procHead = `{"pid": 10, "ppid": 1, "pgid": 10, "sid": 10, "ctty": -1, "comm": "x", "cwd": "/", "root": "/",
	"threads": [{"tid": 10}], "pages": "pages-10.img"`
	anon = `{"start": 65536, "end": 73728, "kind": "anon", "prot": 3`
)

func tree(process, rest string) string {
	return `{"root": 10, "processes": [` + procHead + process + `}]` + rest + `}`
}

// inheritTree is a valid process with a mapping and its child 11 with
// another, which may be marked inherited.
func inheritTree(parent, child string) string {
	return `{"root": 10, "processes": [` + procHead + `, "mappings": [` + parent + `]}, {"pid": 11, "ppid": 10, "pgid": 10,
	"sid": 10, "ctty": -1, "cwd": "/", "root": "/", "threads": [{"tid": 11}], "pages": "pages-10.img", "mappings": [` + child + `]}]}`
}

// TestOpenRefusesMalformed: a tree.json with valid checksums but records
// that do not hold together is refused by Open, with an error naming
// tree.json, before anything can dereference or allocate from it (issue 10
// finding 6: null elements and missing objects crashed inspect, restore and
// the restore daemon; a page run of 2^63-1 pages grew memory until OOM).
func TestOpenRefusesMalformed(t *testing.T) {
	pages := map[string]int{"pages-10.img": 8192}
	tests := []struct {
		name, tree string
		want       string
	}{
		{"valid", tree(`, "mappings": [`+anon+`, "runs": [{"addr": 65536, "pages": 2, "off": 0}]}]`, ""), ""},
		{"null process", `{"root": 10, "processes": [` + procHead + `}, null]}`, "process 1 is null"},
		{"null first process", `{"root": 10, "processes": [null]}`, "not the root"},
		{"null thread", tree(`, "threads": [{"tid": 10}, null]`, ""), "thread 1 is null"},
		{"null mapping", tree(`, "mappings": [null]`, ""), "mapping 0 is null"},
		{"null file", tree(``, `, "files": [null]`), "file 0 is null"},
		{"null shared memory", tree(``, `, "shared_memory": [null]`), "shared memory 0: null"},
		{"null pty", tree(``, `, "ptys": [null]`), "pty 0: null"},
		{"regular file without ref", tree(``, `, "files": [{"id": 1, "kind": "regular"}]`), "no file reference"},
		{"device without ref", tree(``, `, "files": [{"id": 1, "kind": "device"}]`), "no file reference"},
		{"pipe without pipe", tree(``, `, "files": [{"id": 1, "kind": "pipe"}]`), "no pipe state"},
		{"fifo without pipe", tree(``, `, "files": [{"id": 1, "kind": "fifo", "ref": {"path": "/x"}}]`), "no fifo state"},
		{"socket without socket", tree(``, `, "files": [{"id": 1, "kind": "socket"}]`), "no socket state"},
		{"unix socket without unix", tree(``, `, "files": [{"id": 1, "kind": "socket", "record": {"family": 1}}]`), "without its unix state"},
		{"inet socket without inet", tree(``, `, "files": [{"id": 1, "kind": "socket", "record": {"family": 2}}]`), "without its inet state"},
		{"unix peer not in the image", tree(``, `, "files": [{"id": 1, "kind": "socket", "record": {"family": 1,
			"unix": {"inode": 5, "state": "connected", "peer": 6}}}]`), "peer socket:[6] is not in the image"},
		{"timerfd without timer", tree(``, `, "files": [{"id": 1, "kind": "timerfd"}]`), "no timerfd state"},
		{"unknown file kind", tree(``, `, "files": [{"id": 1, "kind": "teapot"}]`), "unknown kind"},
		{"pty not in the image", tree(``, `, "files": [{"id": 1, "kind": "pty-master", "record": {"index": 3}}]`), "pty 3 is not in the image"},
		{"controlling terminal not in the image", tree(`, "ctty": 4`, ""), "controlling terminal 4"},
		{"file mapping without file", tree(`, "mappings": [{"start": 65536, "end": 73728, "kind": "file"}]`, ""), "without its file"},
		{"fd of an unknown file", tree(`, "fds": [{"fd": 3, "file": 9}]`, ""), "unknown file 9"},
		{"duplicate fd", tree(`, "fds": [{"fd": 3, "file": 1}, {"fd": 3, "file": 1}]`, `, "files": [{"id": 1, "kind": "eventfd", "record": {"counter": 0}}]`), "duplicate fd 3"},
		{"huge fd", tree(`, "fds": [{"fd": 2147483647, "file": 1}]`, `, "files": [{"id": 1, "kind": "eventfd", "record": {"counter": 0}}]`), "fd 2147483647"},
		{"page run of 2^63-1 pages", tree(`, "mappings": [`+anon+`, "runs": [{"addr": 65536, "pages": 9223372036854775807, "off": 0}]}]`, ""), "outside its mapping"},
		{"page run of 2^52 pages", tree(`, "mappings": [{"start": 65536, "end": 18446744073709486080, "kind": "anon",
			"runs": [{"addr": 65536, "pages": 4503599627370495, "off": 0}]}]`, ""), "beyond the user address space"},
		{"page run past the pages file", tree(`, "mappings": [`+anon+`, "runs": [{"addr": 65536, "pages": 2, "off": 4096}]}]`, ""), "beyond the end"},
		{"page run at an offset that overflows", tree(`, "mappings": [`+anon+`, "runs": [{"addr": 65536, "pages": 1, "off": 18446744073709547520}]}]`, ""), "beyond the end"},
		{"short siginfo", tree(`, "pending_shared": ["AAAA"]`, ""), "siginfo of 3 bytes"},
		{"signal out of range", tree(`, "sigactions": [{"signal": 65}]`, ""), "bad signal 65"},
		{"rlimit out of range", tree(`, "rlimits": [{"resource": 99}]`, ""), "bad resource limit 99"},
		{"duplicate tid", `{"root": 10, "processes": [` + procHead + `, "threads": [{"tid": 10}, {"tid": 11}]}, {"pid": 11, "ppid": 10,
			"pgid": 10, "sid": 10, "ctty": -1, "threads": [{"tid": 11}]}]}`, "bad or duplicate pid"},
		{"pid out of range", `{"root": -3, "processes": [{"pid": -3, "threads": [{"tid": -3}]}]}`, "bad or duplicate pid"},
		{"vDSO entry beyond the vDSO", tree(`, "vdso": {"__vdso_time": 18446744073709551615}`, ""), "beyond any vDSO"},
		{"huge vDSO", tree(`, "mappings": [{"start": 65536, "end": 1099511693312, "kind": "vdso"}]`, ""), "a vdso of"},
		{"shared memory runs past its size", tree(``, `, "shared_memory": [{"id": 1, "kind": "anon", "size": 4096, "data": "pages-10.img",
			"runs": [{"addr": 0, "pages": 2, "off": 0}]}]`), "outside its mapping"},
		{"unknown mapping kind", tree(`, "mappings": [{"start": 65536, "end": 73728, "kind": "teapot"}]`, ""), "unknown kind"},
		{"sysv mapping of an unknown segment", tree(`, "mappings": [{"start": 65536, "end": 73728, "kind": "sysv-shm", "shared_id": 4}]`, ""), "unknown System V segment 4"},
		{"bad lock range", tree(``, `, "files": [{"id": 1, "kind": "eventfd", "record": {}, "locks": [{"kind": "POSIX", "start": 10, "end": 5}]}]`), "bad range"},
		{"bad inet address", tree(``, `, "files": [{"id": 1, "kind": "socket", "record": {"family": 2, "inet": {"local": {"ip": "nope"}}}}]`), "address \"nope\""},
		{"negative timer", tree(`, "posix_timers": [{"id": 1, "value_ns": -1}]`, ""), "posix timer 1"},
		{"zombie root", `{"root": 10, "processes": [{"pid": 10, "pgid": 10, "sid": 10, "zombie": true}]}`, "zombie"},
		{"child of a zombie", `{"root": 10, "processes": [` + procHead + `}, {"pid": 11, "ppid": 10, "pgid": 10, "sid": 10, "zombie": true},
			{"pid": 12, "ppid": 11, "pgid": 10, "sid": 10, "ctty": -1, "threads": [{"tid": 12}]}]}`, "parent 11 is a zombie"},
		{"not JSON", `{"root": 10, "processes": [`, "unexpected end"},
		{"inherited mapping", inheritTree(anon+`}`, anon+`, "inherit": true, "zero": [{"addr": 69632, "pages": 1}]}`), ""},
		{"inherited mapping of the root", tree(`, "mappings": [`+anon+`, "inherit": true}]`, ""), "no parent in the tree"},
		{"inherited mapping the parent lacks", inheritTree(`{"start": 65536, "end": 69632, "kind": "anon", "prot": 3}`, anon+`, "inherit": true}`),
			"has no such mapping"},
		{"inherited mapping of another protection", inheritTree(`{"start": 65536, "end": 73728, "kind": "anon", "prot": 1}`, anon+`, "inherit": true}`),
			"has no such mapping"},
		{"inherited file mapping", inheritTree(anon+`}`, `{"start": 65536, "end": 73728, "kind": "file", "file": {"path": "/x"}, "inherit": true}`),
			"not a private anonymous mapping"},
		{"pages to drop outside the mapping", inheritTree(anon+`}`, anon+`, "inherit": true, "zero": [{"addr": 73728, "pages": 1}]}`),
			"outside it"},
		{"pages to drop over stored pages", inheritTree(anon+`}`, anon+`, "inherit": true, "runs": [{"addr": 65536, "pages": 1, "off": 0}],
			"zero": [{"addr": 65536, "pages": 1}]}`), "overlap stored pages"},
		{"pages to drop in a mapping not inherited", tree(`, "mappings": [`+anon+`, "zero": [{"addr": 65536, "pages": 1}]}]`, ""), "not inherited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeRaw(t, tt.tree, pages)
			im, err := image.Open(dir)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("a valid tree is refused: %v", err)
				}
				im.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), image.TreeName) {
				t.Fatalf("Open = %v, want an error about %s: %s", err, image.TreeName, tt.want)
			}
		})
	}
}

// TestOpenRefusesUnlistedFiles: every file a tree.json names must be a
// plain name listed (so checksummed) in the MANIFEST (issue 10 finding 7:
// an unlisted pages file was restored unverified into a heap, and
// "pages": "../outside-pages.img" was read from outside the image).
func TestOpenRefusesUnlistedFiles(t *testing.T) {
	run := `, "mappings": [` + anon + `, "runs": [{"addr": 65536, "pages": 2, "off": 0}]}]`
	tests := []struct {
		name, tree string
		extra      string // a file written into the image after its MANIFEST
		want       string
	}{
		{"unlisted pages", strings.Replace(tree(run, ""), "pages-10.img", "pages-11.img", 1), "pages-11.img", "pages-11.img is not listed"},
		{"pages outside the image", strings.Replace(tree(run, ""), "pages-10.img", "../outside-pages.img", 1), "", `"../outside-pages.img" is not a plain file name`},
		{"pages by absolute path", strings.Replace(tree(run, ""), "pages-10.img", "/etc/passwd", 1), "", "not a plain file name"},
		{"unlisted deleted file contents", tree(``, `, "files": [{"id": 1, "kind": "regular", "ref": {"path": "/tmp/x", "deleted": true, "contents": "file-1.img"}}]`),
			"file-1.img", "file-1.img is not listed"},
		{"deleted file contents outside", tree(``, `, "files": [{"id": 1, "kind": "regular", "ref": {"path": "/tmp/x", "deleted": true, "contents": "../x"}}]`),
			"", "not a plain file name"},
		{"unlisted shared memory", tree(``, `, "shared_memory": [{"id": 1, "kind": "anon", "size": 4096, "data": "shmem-1.img"}]`), "shmem-1.img", "shmem-1.img is not listed"},
		{"unlisted System V data", tree(``, `, "sysv": {"shm": [{"id": 3, "size": 4096, "data": "sysv-shm-3.img"}]}`), "sysv-shm-3.img", "sysv-shm-3.img is not listed"},
		{"unlisted executable contents", tree(`, "exe": {"path": "/bin/x", "deleted": true, "contents": "file-2.img"}`, ""), "file-2.img", "file-2.img is not listed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeRaw(t, tt.tree, map[string]int{"pages-10.img": 8192})
			if tt.extra != "" {
				if err := os.WriteFile(filepath.Join(dir, tt.extra), make([]byte, 8192), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			os.WriteFile(filepath.Join(filepath.Dir(dir), "outside-pages.img"), make([]byte, 8192), 0o600)
			_, err := image.Open(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open = %v, want an error: %s", err, tt.want)
			}
		})
	}
}
