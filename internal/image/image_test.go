package image

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeImage makes a small valid image and returns its directory.
func writeImage(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "img")
	w, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	tree := &Tree{Root: 10, Processes: []*Process{{PID: 10, PGID: 10, SID: 10, Ctty: -1, Threads: []*Thread{{TID: 10}}, Pages: "pages-10.img",
		Mappings: []*Mapping{{Start: 0x10000, End: 0x12000, Kind: MapAnon, Prot: 3, Runs: []Run{{Addr: 0x10000, Pages: 2}}}}}}}
	if err := w.WriteJSON(TreeName, tree); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile("pages-10.img", make([]byte, 8192)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit("6.18.0 test"); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestOpenValid(t *testing.T) {
	dir := writeImage(t)
	im, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if im.Tree.Root != 10 || len(im.Entries) != 2 || im.Kernel != "6.18.0 test" {
		t.Fatalf("unexpected image: %+v", im)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("image directory mode %v, want 0700", st.Mode().Perm())
	}
}

func TestOpenRefusesDamage(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string // substrings of the error
	}{
		{"flipped byte in pages", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, "pages-10.img"), 4000) },
			[]string{"pages-10.img", "checksum mismatch"}},
		{"flipped byte in tree", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, TreeName), 5) },
			[]string{TreeName, "checksum mismatch"}},
		{"truncated pages", func(t *testing.T, dir string) { os.Truncate(filepath.Join(dir, "pages-10.img"), 4096) },
			[]string{"pages-10.img", "truncated"}},
		{"missing pages", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "pages-10.img")) },
			[]string{"pages-10.img", "missing"}},
		{"missing manifest", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, ManifestName)) },
			[]string{"not an image", ManifestName}},
		{"future version", func(t *testing.T, dir string) {
			rewriteManifest(t, dir, fmt.Sprintf("seamless-image %d", Version), "seamless-image 99")
		},
			[]string{"version 99 is newer", fmt.Sprintf("supports (%d)", Version)}},
		{"foreign file", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, ManifestName), []byte("hello\n"), 0o600)
		},
			[]string{ManifestName, "first line"}},
		{"manifest edited", func(t *testing.T, dir string) { rewriteManifest(t, dir, "pages-10.img", "pages-11.img") },
			[]string{ManifestName, "checksum mismatch"}},
		{"truncated manifest", func(t *testing.T, dir string) {
			p := filepath.Join(dir, ManifestName)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-20], 0o600)
		}, []string{ManifestName, "truncated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeImage(t)
			tt.damage(t, dir)
			_, err := Open(dir)
			if err == nil {
				t.Fatal("damaged image opened without error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestCreateRefusesNonEmpty(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x"), nil, 0o600)
	if _, err := Create(dir); err == nil {
		t.Fatal("Create accepted a non-empty directory")
	}
}

func TestValidateRejectsBadReferences(t *testing.T) {
	tree := &Tree{Root: 10, Processes: []*Process{{PID: 10, PGID: 10, SID: 10, Ctty: -1, Threads: []*Thread{{TID: 10}},
		FDs: []FD{{FD: 3, File: 7}}}}}
	if err := tree.Validate(nil); err == nil || !strings.Contains(err.Error(), "unknown file 7") {
		t.Fatalf("validate = %v, want unknown file", err)
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func rewriteManifest(t *testing.T, dir, old, new string) {
	t.Helper()
	p := filepath.Join(dir, ManifestName)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestValidateSeccompFilters(t *testing.T) {
	tests := []struct {
		name string
		f    SeccompFilter
		want string // substring of the error; "" for valid
	}{
		{"one instruction", SeccompFilter{Prog: make([]byte, 8)}, ""},
		{"logged", SeccompFilter{Flags: 2, Prog: make([]byte, 8*4096)}, ""},
		{"empty", SeccompFilter{}, "program of 0 bytes"},
		{"partial instruction", SeccompFilter{Prog: make([]byte, 12)}, "program of 12 bytes"},
		{"too long", SeccompFilter{Prog: make([]byte, 8*4097)}, "program of 32776 bytes"},
		{"tsync", SeccompFilter{Flags: 1, Prog: make([]byte, 8)}, "flags 0x1"},
		{"new listener", SeccompFilter{Flags: 8, Prog: make([]byte, 8)}, "flags 0x8"},
	}
	for _, tt := range tests {
		tree := &Tree{Root: 10, Processes: []*Process{{PID: 10, PGID: 10, SID: 10, Ctty: -1, Threads: []*Thread{{TID: 10},
			{TID: 11, Seccomp: []SeccompFilter{{Prog: make([]byte, 8)}, tt.f}}}}}}
		err := tree.Validate(nil)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: validate = %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), "thread 11: seccomp filter 1: "+tt.want)):
			t.Errorf("%s: validate = %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}

func TestSeccompJSON(t *testing.T) {
	th := Thread{TID: 7, Seccomp: []SeccompFilter{{Prog: []byte{6, 0, 0, 0, 0, 0, 0xff, 0x7f}}, {Flags: 2, Prog: make([]byte, 8)}}}
	b, err := json.Marshal(&th)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"seccomp":[{"prog":"BgAAAAAA/38="},{"flags":2,"prog":"AAAAAAAAAAA="}]`; !strings.Contains(string(b), want) {
		t.Errorf("thread JSON %s does not hold %s", b, want)
	}
	b, err = json.Marshal(&Thread{TID: 7})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "seccomp") {
		t.Errorf("a thread without filters has a seccomp field: %s", b)
	}
}

// TestVerifyFindsDamage: an image opened unverified (as the restore daemon
// does) is refused by Verify and by VerifyIdle once a page is damaged, and
// passes both when whole.
func TestVerifyFindsDamage(t *testing.T) {
	for name, verify := range map[string]func(*Image) error{"Verify": (*Image).Verify, "VerifyIdle": (*Image).VerifyIdle} {
		t.Run(name, func(t *testing.T) {
			dir := writeImage(t)
			im, err := OpenUnverified(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := verify(im); err != nil {
				t.Fatalf("whole image: %v", err)
			}
			im.Close()
			flip(t, filepath.Join(dir, "pages-10.img"), 4000)
			if im, err = OpenUnverified(dir); err != nil {
				t.Fatalf("opened unverified: %v", err)
			}
			defer im.Close()
			if err := verify(im); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
				t.Fatalf("damaged image: %v, want a checksum mismatch", err)
			}
		})
	}
}

// TestReadsCRC32CImages: images of format versions before 4, whose sums are
// CRC-32C, are still read and verified (an image written by the seamless
// before an upgrade is restored by the one after it).
func TestReadsCRC32CImages(t *testing.T) {
	dir := writeImage(t)
	im, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s 3\nkernel %s\n", Magic, im.Kernel)
	for _, e := range im.Entries {
		f, err := os.Open(filepath.Join(dir, e.Name))
		if err != nil {
			t.Fatal(err)
		}
		sum, err := sumFile(f, e.Size, crc32cSum, serial)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "file %08x %d %s\n", sum, e.Size, e.Name)
	}
	im.Close()
	fmt.Fprintf(&b, "end %08x\n", crcChecksum([]byte(b.String())))
	if err := os.WriteFile(filepath.Join(dir, ManifestName), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	im, err = Open(dir)
	if err != nil {
		t.Fatalf("format 3 image: %v", err)
	}
	im.Close()
	if im.Format != 3 {
		t.Errorf("format %d, want 3", im.Format)
	}
	flip(t, filepath.Join(dir, "pages-10.img"), 100)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "checksum mismatch (manifest ") {
		t.Fatalf("damaged format 3 image: %v", err)
	}
}
