// Package image reads and writes checkpoint images: a directory holding
// tree.json (the process tree's state), page files and file contents, and a
// MANIFEST that versions the format and checksums every file.
//
// An image is verified as a whole before anything is restored from it: a
// corrupt, truncated, missing or future-version file is refused with an
// error that names it. See docs/image-format.md.
package image

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Version is the image format version this build writes and reads.
const Version = 1

// Magic starts the first line of every MANIFEST.
const Magic = "seamless-image"

// ManifestName and TreeName are the fixed files of an image.
const (
	ManifestName = "MANIFEST"
	TreeName     = "tree.json"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is wrapped by every error about a damaged image.
var ErrCorrupt = errors.New("image is damaged")

// Entry is one checksummed file of an image.
type Entry struct {
	Name string
	Size int64
	CRC  uint32
}

// Writer creates an image directory.
type Writer struct {
	Dir     string
	mu      sync.Mutex
	entries []Entry
}

func (w *Writer) add(e Entry) {
	w.mu.Lock()
	w.entries = append(w.entries, e)
	w.mu.Unlock()
}

func (w *Writer) path(name string) string { return filepath.Join(w.Dir, name) }

// Create makes dir (mode 0700: images hold process memory) and returns a
// Writer for it. dir must not exist or be empty.
func Create(dir string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create image directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create image directory: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("create image directory: %w", err)
	}
	if len(ents) > 0 {
		return nil, fmt.Errorf("image directory %s is not empty", dir)
	}
	return &Writer{Dir: dir}, nil
}

// FileWriter is a file being written into an image; it checksums as it goes.
type FileWriter struct {
	w    *Writer
	name string
	f    *os.File
	buf  *bufio.Writer
	sum  blockSum
	size int64
}

// Create starts a new file in the image.
func (w *Writer) Create(name string) (*FileWriter, error) {
	f, err := os.OpenFile(w.path(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create image file: %w", err)
	}
	return &FileWriter{w: w, name: name, f: f, buf: bufio.NewWriterSize(f, 1<<20)}, nil
}

// Write appends p to the file.
func (f *FileWriter) Write(p []byte) (int, error) {
	f.sum.Write(p)
	n, err := f.buf.Write(p)
	f.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("write %s: %w", f.name, err)
	}
	return n, nil
}

// Offset is the number of bytes written so far.
func (f *FileWriter) Offset() int64 { return f.size }

// Close flushes the file and records its checksum.
func (f *FileWriter) Close() error {
	err := f.buf.Flush()
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close %s: %w", f.name, err)
	}
	f.w.add(Entry{Name: f.name, Size: f.size, CRC: f.sum.Sum()})
	return nil
}

// WriteFile stores data as one image file.
func (w *Writer) WriteFile(name string, data []byte) error {
	f, err := w.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteJSON stores v as an indented JSON image file.
func (w *Writer) WriteJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return w.WriteFile(name, append(b, '\n'))
}

// Commit writes the MANIFEST, which makes the image complete.
func (w *Writer) Commit(kernel string) error {
	sort.Slice(w.entries, func(i, j int) bool { return w.entries[i].Name < w.entries[j].Name })
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %d\n", Magic, Version)
	fmt.Fprintf(&b, "kernel %s\n", strings.ReplaceAll(kernel, "\n", " "))
	for _, e := range w.entries {
		fmt.Fprintf(&b, "file %08x %d %s\n", e.CRC, e.Size, e.Name)
	}
	fmt.Fprintf(&b, "end %08x\n", crc32.Checksum(b.Bytes(), castagnoli))
	p := filepath.Join(w.Dir, ManifestName)
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// Image is an opened and fully verified image.
type Image struct {
	Dir     string
	Kernel  string
	Entries []Entry
	Tree    *Tree
}

// Open reads dir's MANIFEST, checks the format version and the checksum and
// size of every file, and decodes tree.json. Nothing is trusted before all
// checks pass.
func Open(dir string) (*Image, error) { return open(dir, true) }

// OpenWritten is Open for an image this process has just written: the
// checksums were computed from the very bytes written, so only the sizes and
// the metadata are checked again, not every byte of memory.
func OpenWritten(dir string) (*Image, error) { return open(dir, false) }

func open(dir string, contents bool) (*Image, error) {
	im, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range im.Entries {
		if contents || e.Name == TreeName {
			if err := verifyFile(dir, e); err != nil {
				return nil, err
			}
		} else if err := verifySize(dir, e); err != nil {
			return nil, err
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, TreeName))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", TreeName, err)
	}
	var t Tree
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", TreeName, ErrCorrupt, err)
	}
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", TreeName, ErrCorrupt, err)
	}
	im.Tree = &t
	return im, nil
}

// ReadManifest parses and checks dir's MANIFEST without reading the files it lists.
func ReadManifest(dir string) (*Image, error) {
	p := filepath.Join(dir, ManifestName)
	b, err := os.ReadFile(p)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%s: not an image (no %s): %w", dir, ManifestName, err)
		}
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %w: %s", p, ErrCorrupt, fmt.Sprintf(format, a...))
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
		return nil, fmt.Errorf("%s: image format version %d is newer than this seamless supports (%d); restore it with a newer seamless", p, v, Version)
	}
	if v < 1 {
		return nil, bad("format version %d is invalid", v)
	}
	i := bytes.LastIndex(b, []byte("\nend "))
	if i < 0 || !bytes.HasSuffix(b, []byte("\n")) {
		return nil, bad("truncated: no end line")
	}
	body := b[:i+1]
	want, err := strconv.ParseUint(strings.TrimSpace(string(b[i+5:])), 16, 32)
	if err != nil {
		return nil, bad("unreadable end line")
	}
	if got := crc32.Checksum(body, castagnoli); got != uint32(want) {
		return nil, bad("checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	im := &Image{Dir: dir}
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
			crc, err1 := strconv.ParseUint(f[0], 16, 32)
			size, err2 := strconv.ParseInt(f[1], 10, 64)
			if err1 != nil || err2 != nil || !validName(f[2]) || seen[f[2]] {
				return nil, bad("malformed line %q", line)
			}
			seen[f[2]] = true
			im.Entries = append(im.Entries, Entry{Name: f[2], Size: size, CRC: uint32(crc)})
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
	return n != "" && n != "." && n != ".." && !strings.ContainsAny(n, "/\x00")
}

func verifyFile(dir string, e Entry) error {
	p := filepath.Join(dir, e.Name)
	f, err := os.Open(p)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("%s: %w: file listed in the manifest is missing", p, ErrCorrupt)
		}
		return fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	n, sum, err := sumFile(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", p, err)
	}
	if n != e.Size {
		what := "truncated"
		if n > e.Size {
			what = "longer than recorded"
		}
		return fmt.Errorf("%s: %w: %s (%d bytes, manifest says %d)", p, ErrCorrupt, what, n, e.Size)
	}
	if got := sum; got != e.CRC {
		return fmt.Errorf("%s: %w: checksum mismatch (manifest %08x, file %08x)", p, ErrCorrupt, e.CRC, got)
	}
	return nil
}

func verifySize(dir string, e Entry) error {
	p := filepath.Join(dir, e.Name)
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("%s: %w: %v", p, ErrCorrupt, err)
	}
	if st.Size() != e.Size {
		return fmt.Errorf("%s: %w: %d bytes, manifest says %d", p, ErrCorrupt, st.Size(), e.Size)
	}
	return nil
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

// Path is the path of an image file.
func (im *Image) Path(name string) string { return filepath.Join(im.Dir, name) }

// Size is the total size of the image's files.
func (im *Image) Size() int64 {
	var n int64
	for _, e := range im.Entries {
		n += e.Size
	}
	return n
}
