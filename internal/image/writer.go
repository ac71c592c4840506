package image

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Writer creates an image directory. Every file is created inside the
// directory it opened (openat, O_EXCL, O_NOFOLLOW), so that nothing it
// writes can land elsewhere, and is fsync'd: an image may be the only copy
// of a service that was killed after its checkpoint.
type Writer struct {
	Dir string
	d   *os.File
	// made are the directories Create made, deepest last: Discard removes
	// only these (and only when empty).
	made    []string
	mu      sync.Mutex
	entries []Entry
	created []string // every file created, finished or not
	// inPlace: memory files are filled through mappings (fillsInPlace).
	inPlace bool
	// Reserve, if set, is called before each write of a file made with
	// Create, with its size, for the store to make room (the kmod store
	// grows its pool as the image grows).
	Reserve func(n int64) error
}

func (w *Writer) add(e Entry) {
	w.mu.Lock()
	w.entries = append(w.entries, e)
	w.mu.Unlock()
}

// createFile creates name in the image directory, for writing, 0600.
func (w *Writer) createFile(name string, flags int) (*os.File, error) {
	if !validName(name) {
		return nil, fmt.Errorf("create image file %q: not a plain file name", name)
	}
	fd, err := unix.Openat(int(w.d.Fd()), name, flags|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create image file %s: %w", filepath.Join(w.Dir, name), err)
	}
	w.mu.Lock()
	w.created = append(w.created, name)
	w.mu.Unlock()
	return os.NewFile(uintptr(fd), filepath.Join(w.Dir, name)), nil
}

// Create makes the image directory dir, mode 0700 (images hold process
// memory), and returns a Writer for it. Missing directories above it are
// made too, 0700. Every directory it makes is opened without following a
// symlink, so that a link put in its place is refused, never followed.
//
// An existing dir is accepted only when it is a real directory (not a
// symlink), empty, owned by root (or the caller) and not writable by group
// or others; its mode is left alone and it is never removed, even on
// failure (Discard then removes only the files written into it). The
// directories above dir must be trusted as a restore requires (see
// openDir), so that an image that could not be restored is refused before
// its checkpoint, not after.
func Create(dir string) (*Writer, error) {
	d, made, err := makeDir(dir, true)
	if err != nil {
		return nil, err
	}
	w := &Writer{Dir: dir, d: d, made: made, inPlace: fillsInPlace(d)}
	if len(made) == 0 {
		// An existing directory: accepted only as one seamless could have
		// made, and never changed or removed.
		if err := checkExisting(d, dir); err != nil {
			d.Close()
			return nil, fmt.Errorf("create image directory %s: %w", dir, err)
		}
	}
	return w, nil
}

// MakeDir makes the new directory dir, and the missing directories above
// it, 0700, as Create does; dir must not exist. It returns the directories
// it made, dir last: what its caller may remove again.
func MakeDir(dir string) ([]string, error) {
	d, made, err := makeDir(dir, false)
	if err != nil {
		return nil, err
	}
	d.Close()
	return made, nil
}

// makeDir makes dir and its missing parents, and opens it. An existing dir
// is opened (never through a symlink) when existing allows it.
func makeDir(dir string, existing bool) (*os.File, []string, error) {
	fail := func(err error) (*os.File, []string, error) {
		return nil, nil, fmt.Errorf("create image directory %s: %w", dir, err)
	}
	clean := filepath.Clean(dir)
	parts := strings.Split(clean, "/")
	start := "."
	if filepath.IsAbs(clean) {
		start, parts = "/", parts[1:]
	}
	if clean == "/" || clean == "." || len(parts) == 0 || parts[len(parts)-1] == ".." {
		return fail(errors.New("not a directory to create"))
	}
	cur, err := unix.Open(start, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	// Walk down the directories that exist (they are someone's: symlinks
	// among them are followed as usual) to where dir's missing part starts.
	i := 0
	for ; i < len(parts)-1; i++ {
		next, err := unix.Openat(cur, parts[i], unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			break
		}
		unix.Close(cur)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", strings.Join(parts[:i+1], "/"), err))
		}
		cur = next
	}
	var st unix.Stat_t
	base := filepath.Join(start, strings.Join(parts[:i], "/"))
	err = unix.Fstat(cur, &st)
	if err == nil {
		err = checkOwner(base, &st, true)
	}
	if err == nil {
		err = checkAncestors(cur, base)
	}
	if err != nil {
		unix.Close(cur)
		return fail(err)
	}
	var made []string
	undo := func() {
		for i := len(made) - 1; i >= 0; i-- {
			unix.Rmdir(made[i])
		}
	}
	for ; i < len(parts); i++ {
		name := parts[i]
		path := filepath.Join(start, strings.Join(parts[:i+1], "/"))
		last := i == len(parts)-1
		mkdir := unix.Mkdirat(cur, name, 0o700)
		if mkdir != nil && !(last && existing && errors.Is(mkdir, unix.EEXIST)) {
			unix.Close(cur)
			undo()
			return fail(mkdir)
		}
		next, err := unix.Openat(cur, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		if err != nil {
			undo()
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
				return fail(fmt.Errorf("%s exists and is not a directory (a symbolic link is never followed)", path))
			}
			return fail(err)
		}
		cur = next
		if mkdir == nil {
			made = append(made, path)
			// The directory just made must be ours: another one renamed
			// into its place between mkdirat and openat is refused.
			if err := unix.Fstat(cur, &st); err != nil || !trustedOwner(st.Uid) || st.Mode&0o077 != 0 {
				unix.Close(cur)
				undo()
				return fail(fmt.Errorf("%s changed while it was made", path))
			}
		}
	}
	return os.NewFile(uintptr(cur), dir), made, nil
}

// checkExisting accepts an existing image directory only when it is empty,
// owned by a trusted user and not writable by group or others.
func checkExisting(d *os.File, dir string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		return err
	}
	if err := checkOwner(dir, &st, false); err != nil {
		return err
	}
	names, err := d.Readdirnames(1)
	if err != nil && err != io.EOF {
		return err
	}
	if len(names) > 0 {
		return fmt.Errorf("image directory %s is not empty", dir)
	}
	return nil
}

// removeMade removes the directories Create made, deepest first, if empty.
func (w *Writer) removeMade() {
	for i := len(w.made) - 1; i >= 0; i-- {
		unix.Rmdir(w.made[i])
	}
	w.made = nil
}

// Discard removes what the Writer created: the files it wrote, then the
// directories it made (if empty). A directory that existed before is left
// in place. The Writer cannot be used afterwards.
func (w *Writer) Discard() {
	if w.d == nil {
		return
	}
	w.mu.Lock()
	for _, n := range append(w.created, ManifestName) {
		unix.Unlinkat(int(w.d.Fd()), n, 0)
	}
	w.created = nil
	w.mu.Unlock()
	w.d.Close()
	w.d = nil
	w.removeMade()
}

// Close releases the Writer's directory; the image stays.
func (w *Writer) Close() {
	if w.d != nil {
		w.d.Close()
		w.d = nil
	}
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
	f, err := w.createFile(name, unix.O_WRONLY)
	if err != nil {
		return nil, err
	}
	return &FileWriter{w: w, name: name, f: f, buf: bufio.NewWriterSize(f, 1<<20)}, nil
}

// Write appends p to the file.
func (f *FileWriter) Write(p []byte) (int, error) {
	if f.w.Reserve != nil {
		if err := f.w.Reserve(int64(len(p))); err != nil {
			return 0, fmt.Errorf("write %s: %w", f.name, err)
		}
	}
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

// Close flushes and syncs the file and records its checksum.
func (f *FileWriter) Close() error {
	err := f.buf.Flush()
	if err == nil {
		err = f.f.Sync()
	}
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close %s: %w", f.name, err)
	}
	f.w.add(Entry{Name: f.name, Size: f.size, Sum: f.sum.Sum()})
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

// Commit writes the MANIFEST, which makes the image complete, and syncs
// the directory.
func (w *Writer) Commit(kernel string) error {
	sort.Slice(w.entries, func(i, j int) bool { return w.entries[i].Name < w.entries[j].Name })
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %d\n", Magic, Version)
	fmt.Fprintf(&b, "kernel %s\n", strings.ReplaceAll(kernel, "\n", " "))
	for _, e := range w.entries {
		fmt.Fprintf(&b, "file %s %d %s\n", written.format(e.Sum), e.Size, e.Name)
	}
	fmt.Fprintf(&b, "end %s\n", written.format(written.sum(b.Bytes())))
	f, err := w.createFile(ManifestName, unix.O_WRONLY)
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	_, err = f.Write(b.Bytes())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.d.Sync()
	}
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}
