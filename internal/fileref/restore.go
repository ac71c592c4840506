package fileref

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// Objects that no path leads to any more (deleted files, directories,
// FIFOs, device nodes and symlinks, memfds) are recreated once per image
// Ref ID, with their owner, mode, times and contents, and held open by the
// restorer. Every descriptor, mapping, working directory and inotify watch
// of the object then gets a description of its own on that one object,
// reopened through /proc/self/fd: the processes share the object as they
// did, each description keeps its own flags and offset.

// Opener opens, in the restorer, the files an image's Refs name: by path,
// or, for an object no path led to, the one object it recreates for every
// Ref of it. Descriptions (files), mappings (mem) and executables (restore)
// all open their files through one Opener, so that they share each
// recreated object as the processes did.
type Opener struct {
	Image *image.Image
	// objects are the recreated objects, by Key.
	objects map[string]*os.File
	seals   []sealing
	// tmpGiven are the O_TMPFILE objects whose creating description was
	// handed out.
	tmpGiven map[string]bool
	// ensured are the files of a tmpfs checked (and recreated) at their
	// path; created those it recreated.
	ensured map[string]bool
	created []string
}

// NewOpener returns an Opener for the Refs of im.
func NewOpener(im *image.Image) *Opener {
	return &Opener{Image: im, objects: map[string]*os.File{}, tmpGiven: map[string]bool{}, ensured: map[string]bool{}}
}

// Open opens the file a mapping or an executable refers to, for reading or
// also for writing.
func (o *Opener) Open(ref *image.Ref, write bool) (*os.File, error) {
	flags := unix.O_RDONLY | unix.O_CLOEXEC
	if write {
		flags = unix.O_RDWR | unix.O_CLOEXEC
	}
	if ref.Deleted || ref.Memfd {
		return o.Reopen(ref, flags)
	}
	if err := o.Ensure(ref); err != nil {
		return nil, err
	}
	return os.OpenFile(ref.Path, flags, 0)
}

// Finish is called once every process of the tree has its descriptors and
// memory: memfd seals go on (they would forbid mapping the memfd
// writable), and the restorer lets go of the objects it recreated (its own
// open of a file would stand in the way of a lease).
func (o *Opener) Finish() error {
	for _, s := range o.seals {
		if _, err := unix.FcntlInt(s.h.Fd(), unix.F_ADD_SEALS, s.r.Seals); err != nil {
			return fmt.Errorf("seal %s: %w", Describe(s.r), err)
		}
	}
	o.Close()
	return nil
}

// Close lets go of the recreated objects.
func (o *Opener) Close() {
	for k, f := range o.objects {
		f.Close()
		delete(o.objects, k)
	}
}

// Tmpfile returns, for the description that O_TMPFILE had opened on the
// object r (with flags, its status flags), the description O_TMPFILE
// opened when the object was recreated; a new description for any other.
func (o *Opener) Tmpfile(r *image.Ref, flags int) (*os.File, error) {
	g, err := o.Object(r)
	if err != nil {
		return nil, err
	}
	fl, err := unix.FcntlInt(g.Fd(), unix.F_GETFL, 0)
	k := Key(r)
	if err != nil || fl&OTmpfile == 0 || fl&unix.O_ACCMODE != flags&unix.O_ACCMODE || o.tmpGiven[k] {
		return ReopenFD(g, flags)
	}
	o.tmpGiven[k] = true
	fd, err := unix.FcntlInt(g.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), g.Name()), nil
}

// Key names the object a Ref stands for. Images older than Ref.ID name
// deleted files by their contents file.
func Key(r *image.Ref) string {
	switch {
	case r.ID != 0:
		return "id:" + strconv.Itoa(r.ID)
	case r.Contents != "":
		return "contents:" + r.Contents
	}
	return fmt.Sprintf("ref:%p", r)
}

// Object returns the restorer's descriptor of the object r, recreating it
// the first time.
func (o *Opener) Object(r *image.Ref) (*os.File, error) {
	k := Key(r)
	if h, ok := o.objects[k]; ok {
		return h, nil
	}
	h, err := o.recreate(r)
	if err != nil {
		return nil, fmt.Errorf("recreate %s: %w", Describe(r), err)
	}
	o.objects[k] = h
	if r.Memfd && r.Seals != 0 {
		o.seals = append(o.seals, sealing{h, r})
	}
	return h, nil
}

// Describe names the object r for people: "memfd /memfd:x", "deleted
// directory /srv/old", ...
func Describe(r *image.Ref) string {
	what := "deleted file"
	switch {
	case r.Memfd:
		what = "memfd"
	case r.Mode&unix.S_IFMT == unix.S_IFDIR:
		what = "deleted directory"
	case r.Mode&unix.S_IFMT == unix.S_IFIFO:
		what = "deleted FIFO"
	case r.Mode&unix.S_IFMT == unix.S_IFCHR || r.Mode&unix.S_IFMT == unix.S_IFBLK:
		what = "deleted device node"
	case r.Mode&unix.S_IFMT == unix.S_IFLNK:
		what = "deleted symlink"
	}
	return what + " " + r.Path
}

// Reopen returns a new open file description of the object r with flags.
func (o *Opener) Reopen(r *image.Ref, flags int) (*os.File, error) {
	h, err := o.Object(r)
	if err != nil {
		return nil, err
	}
	return ReopenFD(h, flags)
}

// ReopenFD opens a new description of the file h refers to, through
// /proc/self/fd (which reaches deleted files too).
func ReopenFD(h *os.File, flags int) (*os.File, error) {
	flags = flags&^(unix.O_NOFOLLOW|unix.O_CREAT|unix.O_EXCL|unix.O_TRUNC|unix.O_NOCTTY|OTmpfile) | unix.O_CLOEXEC
	return os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(h.Fd())), flags, 0)
}

// Ensure recreates, at its path, a file that lived in RAM (a tmpfs) when
// it is not there: a reboot emptied its filesystem. When it is there, it
// is the file itself (a restore on the same kernel) and is left alone.
func (o *Opener) Ensure(r *image.Ref) error {
	if !r.Volatile || o.ensured[Key(r)] {
		return nil
	}
	o.ensured[Key(r)] = true
	if _, err := os.Lstat(r.Path); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	h, err := os.OpenFile(r.Path, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("recreate %s (it was in RAM): %w", r.Path, err)
	}
	defer h.Close()
	o.created = append(o.created, r.Path)
	if err := o.fill(h, r); err != nil {
		return fmt.Errorf("recreate %s: %w", r.Path, err)
	}
	if err := setAttributes(h, r); err != nil {
		return fmt.Errorf("recreate %s: %w", r.Path, err)
	}
	return nil
}

// Discard removes the files that the restore recreated at their paths,
// when it failed: the service then starts cold, as if they had never been.
func (o *Opener) Discard() {
	for _, p := range o.created {
		os.Remove(p)
	}
	o.created = nil
}

// OTmpfile is __O_TMPFILE, which fdinfo shows for a file opened with
// O_TMPFILE (with O_DIRECTORY).
const OTmpfile = 0o20000000

// sealing is a memfd whose seals go on in Finish.
type sealing struct {
	h *os.File
	r *image.Ref
}
