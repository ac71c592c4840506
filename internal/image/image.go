// Package image reads and writes checkpoint images: a directory holding
// tree.json (the process tree's state), page files and file contents, and a
// MANIFEST that versions the format and checksums every file.
//
// An image is verified as a whole before anything is restored from it: a
// corrupt, truncated, missing or future-version file, a file that root did
// not write, and a tree.json whose records do not hold together are
// refused with an error that names them. Its files are read only through
// the descriptors opened and checked then. See docs/image-format.md.
package image

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/seamless-linux/seamless/internal/parallel"
)

// Version is the image format version this build writes; it reads every
// version from 1 (file_v1.go, file_v2.go; CRC-32C checksums before 4, see
// checksum.go) up to it.
const Version = 4

// Magic starts the first line of every MANIFEST.
const Magic = "seamless-image"

// ManifestName and TreeName are the fixed files of an image.
const (
	ManifestName = "MANIFEST"
	TreeName     = "tree.json"
)

// ErrCorrupt is wrapped by every error about a damaged image.
var ErrCorrupt = errors.New("image is damaged")

// Entry is one checksummed file of an image.
type Entry struct {
	Name string
	Size int64
	Sum  uint64 // by the checksum of the image's format version
}

// Limits on what is read before it is checked: a MANIFEST or tree.json
// larger than this is refused before a byte is read.
const (
	MaxManifestSize = 16 << 20
	MaxTreeSize     = 1 << 30
)

// Image is an opened and fully verified image. It holds its files open:
// the restore reads what was verified, whatever happens to the directory
// meanwhile. Close releases them.
type Image struct {
	Dir    string
	Kernel string
	// Format is the format version the MANIFEST names (Version or older).
	Format  int
	Entries []Entry
	Tree    *Tree
	files   map[string]*os.File
}

// Open reads dir's MANIFEST, checks the format version, the owner, type,
// size and checksum of every file, decodes tree.json and validates every
// record of it. Nothing is trusted before all checks pass.
func Open(dir string) (*Image, error) { return open(dir, true, false) }

// OpenUnverified is Open without the checksums of the files other than
// tree.json: the owners, types and sizes, tree.json and its records are
// checked, not every byte of memory. It serves an image this process has
// just written (the checksums were computed from the very bytes written),
// and the restore daemon, which reserves a tree's PIDs from it at once and
// has Verify check the memory while the system boots, before any restore.
func OpenUnverified(dir string) (*Image, error) { return open(dir, false, false) }

// Verify checks the checksum of every file of the image but tree.json,
// which opening it checked: with OpenUnverified, what Open checks.
func (im *Image) Verify() error { return im.verify(parallel.Each) }

// VerifyIdle is Verify on CPU time nothing else wants (SCHED_IDLE): the
// restore daemon verifies an image while the system boots, which it must
// not slow down.
func (im *Image) VerifyIdle() error { return im.verify(parallel.EachIdle) }

func (im *Image) verify(each func(int, func(int) error) error) error {
	for _, e := range im.Entries {
		if e.Name == TreeName {
			continue
		}
		f, ok := im.files[e.Name]
		if !ok {
			return fmt.Errorf("%s: %w: not open", im.Path(e.Name), ErrCorrupt)
		}
		if err := verifyFile(f, e, checksumOf(im.Format), each); err != nil {
			return err
		}
	}
	return nil
}

// OpenHeld is Open for an image that the restore daemon verified in full
// and holds open since: dir holds, instead of the files, symbolic links of
// the form /proc/DAEMON/fd/N to them. Those links (and only those) are
// followed; the files they lead to must still be regular files that root
// wrote, of the sizes the MANIFEST lists.
func OpenHeld(dir string) (*Image, error) { return open(dir, false, true) }

func open(dir string, contents, held bool) (*Image, error) {
	d, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	im, err := readManifest(d, dir, held)
	if err != nil {
		return nil, err
	}
	if err := im.load(d, contents, held); err != nil {
		im.Close()
		return nil, err
	}
	return im, nil
}

// load opens and checks every file of the MANIFEST, then decodes and
// validates tree.json.
func (im *Image) load(d *os.File, contents, held bool) error {
	dir := im.Dir
	im.files = map[string]*os.File{}
	for _, e := range im.Entries {
		f, err := openEntry(d, dir, e, held)
		if err != nil {
			return err
		}
		im.files[e.Name] = f
		if contents || e.Name == TreeName {
			if err := verifyFile(f, e, checksumOf(im.Format), parallel.Each); err != nil {
				return err
			}
		}
	}
	tree, err := decodeTree(im.files[TreeName], im.entry(TreeName).Size, im.Format)
	if err != nil {
		return fmt.Errorf("%s: %w", im.Path(TreeName), err)
	}
	if err := tree.Validate(im.sizes()); err != nil {
		return fmt.Errorf("%s: %w: %v", im.Path(TreeName), ErrCorrupt, err)
	}
	im.Tree = tree
	return nil
}

// sizes are the MANIFEST's files and their sizes.
func (im *Image) sizes() map[string]int64 {
	m := map[string]int64{}
	for _, e := range im.Entries {
		m[e.Name] = e.Size
	}
	return m
}

// decodeTree reads and decodes tree.json (size bytes, checked already).
func decodeTree(f *os.File, size int64, format int) (*Tree, error) {
	if size > MaxTreeSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d a tree may have", ErrCorrupt, size, MaxTreeSize)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return DecodeTree(b, format)
}

// DecodeTree decodes tree.json of format version format (the MANIFEST's)
// into this version's records. The tree must still be validated.
func DecodeTree(b []byte, format int) (*Tree, error) {
	switch format {
	case 1:
		return decodeOldTree[*fileV1](b)
	case 2:
		return decodeOldTree[*fileV2](b)
	}
	var t Tree
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return &t, nil
}

// openEntry opens one file the MANIFEST lists and checks its size.
func openEntry(d *os.File, dir string, e Entry, held bool) (*os.File, error) {
	f, st, err := openFile(d, dir, e.Name, held)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w: file listed in the manifest is missing", filepath.Join(dir, e.Name), ErrCorrupt)
		}
		return nil, err
	}
	if st.Size != e.Size {
		f.Close()
		what := "truncated"
		if st.Size > e.Size {
			what = "longer than recorded"
		}
		return nil, fmt.Errorf("%s: %w: %s (%d bytes, manifest says %d)", f.Name(), ErrCorrupt, what, st.Size, e.Size)
	}
	return f, nil
}

// ReadManifest parses and checks dir's MANIFEST without reading the files
// it lists.
func ReadManifest(dir string) (*Image, error) {
	d, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return readManifest(d, dir, false)
}

func readManifest(d *os.File, dir string, held bool) (*Image, error) {
	p := filepath.Join(dir, ManifestName)
	f, st, err := openFile(d, dir, ManifestName, held)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: not an image (no %s): %w", dir, ManifestName, err)
		}
		return nil, err
	}
	defer f.Close()
	if st.Size > MaxManifestSize {
		return nil, fmt.Errorf("%s: %w: %d bytes, more than a manifest may have (%d)", p, ErrCorrupt, st.Size, MaxManifestSize)
	}
	b, err := io.ReadAll(io.LimitReader(f, st.Size))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	im, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	im.Dir = dir
	return im, nil
}

// ParseManifest parses and checks the contents of a MANIFEST.
func ParseManifest(b []byte) (*Image, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
	}
	first, _, _ := bytes.Cut(b, []byte("\n"))
	magic, ver, ok := strings.Cut(string(first), " ")
	if !ok || magic != Magic {
		return nil, bad("first line is %q, want %q", first, Magic+" "+strconv.Itoa(Version))
	}
	v, err := strconv.Atoi(ver)
	if err != nil {
		return nil, bad("format version %q is not a number", ver)
	}
	if v > Version {
		return nil, fmt.Errorf("image format version %d is newer than this seamless supports (%d); restore it with a newer seamless", v, Version)
	}
	if v < 1 {
		return nil, bad("format version %d is invalid", v)
	}
	i := bytes.LastIndex(b, []byte("\nend "))
	if i < 0 || !bytes.HasSuffix(b, []byte("\n")) {
		return nil, bad("truncated: no end line")
	}
	body := b[:i+1]
	sums := checksumOf(v)
	want, err := sums.parse(strings.TrimSpace(string(b[i+5:])))
	if err != nil {
		return nil, bad("unreadable end line")
	}
	if got := sums.sum(body); got != want {
		return nil, bad("checksum mismatch (stored %s, computed %s)", sums.format(want), sums.format(got))
	}
	im := &Image{Format: v}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")[1:] {
		key, rest, _ := strings.Cut(line, " ")
		switch key {
		case "kernel":
			im.Kernel = rest
		case "file":
			f := strings.SplitN(rest, " ", 3)
			if len(f) != 3 {
				return nil, bad("malformed line %q", line)
			}
			sum, err1 := sums.parse(f[0])
			size, err2 := strconv.ParseInt(f[1], 10, 64)
			if err1 != nil || err2 != nil || size < 0 || !validName(f[2]) || f[2] == ManifestName || seen[f[2]] {
				return nil, bad("malformed line %q", line)
			}
			seen[f[2]] = true
			im.Entries = append(im.Entries, Entry{Name: f[2], Size: size, Sum: sum})
		default:
			return nil, bad("unknown line %q", line)
		}
	}
	if !seen[TreeName] {
		return nil, bad("lists no %s", TreeName)
	}
	return im, nil
}

// validName accepts plain file names only: an image never points outside itself.
func validName(n string) bool {
	return n != "" && n != "." && n != ".." && len(n) <= 255 && !strings.ContainsAny(n, "/\x00\n")
}

// verifyFile checks the checksum of an image file whose size was checked.
func verifyFile(f *os.File, e Entry, sums checksum, each func(int, func(int) error) error) error {
	sum, err := sumFile(f, e.Size, sums, each)
	if err != nil {
		return fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if sum != e.Sum {
		return fmt.Errorf("%s: %w: checksum mismatch (manifest %s, file %s)", f.Name(), ErrCorrupt, sums.format(e.Sum), sums.format(sum))
	}
	return nil
}

func (im *Image) entry(name string) Entry {
	for _, e := range im.Entries {
		if e.Name == name {
			return e
		}
	}
	return Entry{}
}

// Has reports whether the manifest lists name.
func (im *Image) Has(name string) bool {
	for _, e := range im.Entries {
		if e.Name == name {
			return true
		}
	}
	return false
}

// File returns the verified, open file name of the image. It belongs to the
// Image: read it with ReadAt (or map it), never close it. Only the files
// the MANIFEST lists can be had.
func (im *Image) File(name string) (*os.File, error) {
	f, ok := im.files[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w: not listed in the manifest", im.Path(name), ErrCorrupt)
	}
	return f, nil
}

// Reader returns a reader of the whole of image file name.
func (im *Image) Reader(name string) (*io.SectionReader, error) {
	f, err := im.File(name)
	if err != nil {
		return nil, err
	}
	return io.NewSectionReader(f, 0, im.entry(name).Size), nil
}

// Close releases the image's files.
func (im *Image) Close() {
	for _, f := range im.files {
		f.Close()
	}
	im.files = nil
}

// Path is the path of an image file, for messages.
func (im *Image) Path(name string) string { return filepath.Join(im.Dir, name) }

// Size is the total size of the image's files.
func (im *Image) Size() int64 {
	var n int64
	for _, e := range im.Entries {
		n += e.Size
	}
	return n
}
