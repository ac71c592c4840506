package files

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/fileref"
	"github.com/seamless-linux/seamless/internal/image"
)

// Files that have a path: regular files, directories, memfds and O_PATH
// descriptors (device nodes: device.go, FIFOs: pipe.go). A file that no
// path leads to any more is recreated (internal/fileref); the others are
// opened again by path. Their image is the file's Ref: they have no record.

// The kinds of files that have a path.
const (
	KindRegular   = "regular"
	KindDirectory = "directory"
	KindMemfd     = "memfd"
	KindPath      = "path" // an O_PATH descriptor: any file, symlinks included
)

var (
	pathKind = &kind{name: KindPath, ref: true,
		is:    func(_ *Scope, d *desc) bool { return d.info.flags&unix.O_PATH != 0 },
		check: checkOPath, dump: dumpPathFile, open: openOPath}
	memfdKind = &kind{name: KindMemfd, ref: true, setfl: true,
		is:    isMemfd,
		check: checkPathFile, dump: dumpPathFile, open: openMemfd}
	regularKind = &kind{name: KindRegular, ref: true, setfl: true,
		is:    func(_ *Scope, d *desc) bool { return d.plainFile() },
		check: checkPathFile, dump: dumpPathFile, open: openPathFile}
	directoryKind = &kind{name: KindDirectory, ref: true, setfl: true,
		is:    func(_ *Scope, d *desc) bool { return d.fileType() == unix.S_IFDIR },
		check: checkPathFile, dump: dumpPathFile, open: openPathFile}
)

// isMemfd: a memfd is a file of tmpfs (or hugetlbfs) that the kernel
// names /memfd:NAME.
func isMemfd(_ *Scope, d *desc) bool {
	if !d.plainFile() || !strings.HasPrefix(d.link, "/memfd:") {
		return false
	}
	fs := d.fsType()
	return fs == unix.TMPFS_MAGIC || fs == unix.HUGETLBFS_MAGIC
}

// checkPathFile refuses a deleted file, directory, FIFO or device node
// that a recreated one could not stand in for.
func checkPathFile(_ *Scope, d *desc) error {
	name, deleted := d.name()
	if !deleted && !(d.st.Mode&unix.S_IFMT == unix.S_IFREG && d.st.Nlink == 0) {
		return nil
	}
	return fileref.CheckUnreachable(d.local, name, &d.st)
}

// checkOPath accepts O_PATH descriptors of anything with a path.
func checkOPath(s *Scope, d *desc) error {
	if !strings.HasPrefix(d.link, "/") {
		return fmt.Errorf("O_PATH descriptor of %s", d.link)
	}
	return checkPathFile(s, d)
}

// dumpPathFile records the file by its path, or, when no path leads to it
// any more (and for a memfd), as an object the restore recreates.
func dumpPathFile(d *Dumper, ds *desc, f *image.File) error {
	name, deleted := ds.name()
	ref, err := d.Refs.RefFile(ds.local, name, deleted || f.Kind == KindMemfd)
	if err != nil {
		return err
	}
	// A file made with O_TMPFILE is named "#INODE" by the kernel; its
	// description says so too when it is the one O_TMPFILE opened.
	if ref.Deleted && !ref.Memfd && (f.Flags&fileref.OTmpfile != 0 || filepath.Base(name) == "#"+strconv.FormatUint(ds.st.Ino, 10)) {
		ref.Tmpfile = true
	}
	f.Ref = ref
	return nil
}

// reopenFlags keeps the flags of a description that open(2) reproduces;
// F_SETFL and O_ASYNC are put back afterwards (setFlags, Finish).
func reopenFlags(f *image.File) int {
	fl := f.Flags &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_NOCTTY | unix.O_CLOEXEC | fileref.OTmpfile | unix.O_ASYNC)
	if f.Kind != KindDirectory {
		fl &^= unix.O_DIRECTORY
	}
	return fl
}

func openPathFile(o *Opener, f *image.File) (*os.File, error) {
	if f.Ref == nil {
		return nil, fmt.Errorf("%s without a file", f.Kind)
	}
	h, err := o.openFile(f, reopenFlags(f))
	if err != nil {
		return nil, err
	}
	if err := checkIdentity(h, f.Ref); err != nil {
		h.Close()
		return nil, err
	}
	if _, err := h.Seek(f.Pos, io.SeekStart); err != nil && f.Pos != 0 {
		h.Close()
		return nil, fmt.Errorf("seek to %d: %w", f.Pos, err)
	}
	return h, nil
}

// openFile opens the file of f with flags: a new description of a
// recreated object, or the file at its path (recreated there first when it
// lived in RAM and is gone, as after a reboot).
func (o *Opener) openFile(f *image.File, flags int) (*os.File, error) {
	switch r := f.Ref; {
	case r.Deleted && r.Tmpfile && f.Flags&fileref.OTmpfile != 0:
		return o.Refs.Tmpfile(r, reopenFlags(f))
	case r.Deleted:
		return o.Refs.Reopen(r, flags)
	}
	if err := o.Refs.Ensure(f.Ref); err != nil {
		return nil, err
	}
	return os.OpenFile(f.Ref.Path, flags|unix.O_CLOEXEC, 0)
}

// openMemfd reopens the one memfd that every descriptor and mapping of it
// shares, with this description's access mode and flags.
func openMemfd(o *Opener, f *image.File) (*os.File, error) {
	if f.Ref == nil {
		return nil, fmt.Errorf("memfd without a file")
	}
	if !f.Ref.Memfd {
		// A memfd the checkpoint did not record as one (a hugetlbfs memfd
		// is not shmem) is still recreated as a memfd. (Images older than
		// Ref.Memfd have it set, with their seals, by the decoder.)
		r := *f.Ref
		r.Memfd, r.Deleted = true, true
		f.Ref = &r
	}
	h, err := o.Refs.Reopen(f.Ref, reopenFlags(f))
	if err != nil {
		return nil, err
	}
	h.Seek(f.Pos, io.SeekStart)
	return h, nil
}

// openOPath opens an O_PATH descriptor, of a symlink itself when it was one.
func openOPath(o *Opener, f *image.File) (*os.File, error) {
	if f.Ref == nil {
		return nil, fmt.Errorf("O_PATH descriptor without a file")
	}
	if f.Ref.Deleted && f.Ref.Mode&unix.S_IFMT == unix.S_IFLNK {
		// A reopen through /proc would follow it: the recreated symlink's
		// own O_PATH|O_NOFOLLOW description (which holds nothing else).
		g, err := o.Refs.Object(f.Ref)
		if err != nil {
			return nil, err
		}
		return dupFile(g)
	}
	if f.Ref.Deleted {
		return o.Refs.Reopen(f.Ref, unix.O_PATH)
	}
	flags := unix.O_PATH | unix.O_CLOEXEC | f.Flags&(unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if f.Ref.Mode&unix.S_IFMT == unix.S_IFLNK {
		flags |= unix.O_NOFOLLOW
	}
	h, err := os.OpenFile(f.Ref.Path, flags, 0)
	if err != nil {
		return nil, err
	}
	if err := checkIdentity(h, f.Ref); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// checkIdentity refuses a path that now names a different kind of file.
func checkIdentity(h *os.File, ref *image.Ref) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != ref.Mode&unix.S_IFMT {
		return fmt.Errorf("%s is no longer the same kind of file", ref.Path)
	}
	return nil
}
