package fileref

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/seamless-linux/seamless/internal/image"
	"golang.org/x/sys/unix"
)

// Recreating an object no path leads to: next to where it was, with its
// owner, mode, times and contents (see restore.go).

// recreate makes the object r stands for and opens it: next to where it
// was, under its old name when that is free, then unlinked again.
func (o *Opener) recreate(r *image.Ref) (*os.File, error) {
	if r.Memfd {
		return o.recreateMemfd(r)
	}
	var h *os.File
	var name string
	var err error
	mode := r.Mode & unix.S_IFMT
	switch mode {
	case unix.S_IFREG:
		h, name, err = createFile(r)
		if err == nil {
			err = o.fill(h, r)
		}
	case unix.S_IFDIR:
		h, name, err = createNode(r, func(p string) error { return unix.Mkdir(p, 0o700) },
			unix.O_RDONLY|unix.O_DIRECTORY)
	case unix.S_IFIFO:
		h, name, err = createNode(r, func(p string) error { return unix.Mkfifo(p, 0o600) },
			unix.O_RDWR|unix.O_NONBLOCK)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFSOCK:
		h, name, err = createNode(r, func(p string) error { return unix.Mknod(p, mode|0o600, int(r.Rdev)) },
			unix.O_PATH)
	case unix.S_IFLNK:
		h, name, err = createNode(r, func(p string) error { return unix.Symlink(r.Target, p) },
			unix.O_PATH)
	default:
		return nil, fmt.Errorf("mode %#o", r.Mode)
	}
	if err == nil {
		err = checkRecreated(h, r)
	}
	if err == nil {
		err = setAttributes(h, r)
	}
	if name != "" {
		if mode == unix.S_IFDIR {
			unix.Rmdir(name)
		} else {
			unix.Unlink(name)
		}
	}
	if err != nil && h != nil {
		h.Close()
	}
	return h, err
}

// homeDir is the directory a recreated object goes into: its old one if
// it is still there, else the temporary directory.
func homeDir(r *image.Ref) string {
	dir := filepath.Dir(r.Path)
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return dir
	}
	return os.TempDir()
}

// createFile creates a deleted regular file's stand-in, open for reading
// and writing: a file made with O_TMPFILE when r was one (it can still be
// linked), else under the old name if it is free, else under a temporary
// name in the same directory. Nothing existing is ever replaced.
func createFile(r *image.Ref) (*os.File, string, error) {
	dir := homeDir(r)
	if r.Tmpfile {
		for _, d := range []string{dir, os.TempDir()} {
			if h, err := os.OpenFile(d, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600); err == nil {
				return h, "", nil
			}
		}
	}
	if dir == filepath.Dir(r.Path) {
		if h, err := os.OpenFile(r.Path, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600); err == nil {
			return h, r.Path, nil
		}
	}
	h, err := os.CreateTemp(dir, "."+filepath.Base(r.Path)+".seamless-")
	if err != nil {
		h, err = os.CreateTemp("", "."+filepath.Base(r.Path)+".seamless-")
	}
	if err != nil {
		return nil, "", err
	}
	return h, h.Name(), nil
}

// createNode makes a directory, FIFO, device node or symlink with mk (which
// fails if the name exists) and opens it with flags, without following a
// symlink put there in between.
func createNode(r *image.Ref, mk func(string) error, flags int) (*os.File, string, error) {
	dir := homeDir(r)
	names := []string{}
	if dir == filepath.Dir(r.Path) {
		names = append(names, r.Path)
	}
	base := "." + filepath.Base(r.Path) + ".seamless-" + strconv.Itoa(os.Getpid()) + "-"
	for i := 0; i < 3; i++ {
		names = append(names, filepath.Join(dir, base+strconv.Itoa(i)))
	}
	var err error
	for _, name := range names {
		if err = mk(name); err == nil {
			h, oerr := os.OpenFile(name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if r.Mode&unix.S_IFMT == unix.S_IFLNK {
				h, oerr = os.OpenFile(name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
			if oerr != nil {
				os.Remove(name)
				return nil, "", oerr
			}
			return h, name, nil
		}
		if !errors.Is(err, unix.EEXIST) {
			break
		}
	}
	return nil, "", err
}

// checkRecreated makes sure h is what was asked for (a name can be raced).
func checkRecreated(h *os.File, r *image.Ref) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != r.Mode&unix.S_IFMT || (r.Rdev != 0 && st.Rdev != r.Rdev) {
		return fmt.Errorf("the recreated file is not a %#o (%d:%d)", r.Mode&unix.S_IFMT, unix.Major(r.Rdev), unix.Minor(r.Rdev))
	}
	return nil
}

// setAttributes gives a recreated object its owner, mode and times; the
// mode goes after the owner (chown clears set-id bits), the times last.
func setAttributes(h *os.File, r *image.Ref) error {
	if r.ID == 0 {
		// An image older than Ref.ID kept only the mode.
		return unix.Fchmod(int(h.Fd()), r.Mode&0o7777)
	}
	fd := int(h.Fd())
	if err := unix.Fchownat(fd, "", int(r.UID), int(r.GID), unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %d:%d: %w", r.UID, r.GID, err)
	}
	if r.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil // a symlink's mode and times mean nothing
	}
	self := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Chmod(self, r.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod %#o: %w", r.Mode&0o7777, err)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(r.AtimeNs), unix.NsecToTimespec(r.MtimeNs)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, self, ts, 0); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// recreateMemfd makes a memfd of the same name, contents, owner and mode;
// its seals go on once every process is restored (Finish), since a seal
// may forbid what the restore still does (grow it, map it writable).
func (o *Opener) recreateMemfd(r *image.Ref) (*os.File, error) {
	name := strings.TrimPrefix(r.Path, "/memfd:")
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		// vm.memfd_noexec=2 refuses executable memfds.
		fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_NOEXEC_SEAL)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	h := os.NewFile(uintptr(fd), r.Path)
	if err := o.fill(h, r); err != nil {
		h.Close()
		return nil, err
	}
	if r.ID != 0 {
		if err := setAttributes(h, r); err != nil {
			h.Close()
			return nil, err
		}
	}
	return h, nil
}

// fill writes an object's saved contents: only its data extents, so that
// holes stay holes, then its exact size.
func (o *Opener) fill(dst *os.File, r *image.Ref) error {
	if r.Contents != "" {
		// The verified file the image holds, never a path opened again.
		src, err := o.Image.Reader(r.Contents)
		if err != nil {
			return err
		}
		if len(r.Runs) == 0 {
			if _, err := io.Copy(dst, src); err != nil {
				return fmt.Errorf("write contents: %w", err)
			}
		}
		for _, run := range r.Runs {
			n := int64(run.Pages) * 4096
			if _, err := io.Copy(io.NewOffsetWriter(dst, int64(run.Addr)), io.NewSectionReader(src, int64(run.Off), n)); err != nil {
				return fmt.Errorf("write contents at %d: %w", run.Addr, err)
			}
		}
	}
	if err := dst.Truncate(r.Size); err != nil {
		return fmt.Errorf("truncate to %d: %w", r.Size, err)
	}
	return nil
}
