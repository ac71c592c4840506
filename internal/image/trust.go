package image

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"

	"golang.org/x/sys/unix"
)

// Images hold process memory and steer a restore that runs as root: only
// files that root (or the user restoring, for an unprivileged restore of
// its own processes) wrote may be used, the way sshd and sudo treat their
// configuration. An image directory, every directory above it and every
// image file must belong to root (or to the caller) and must not be
// writable by group or others; a directory above it may be writable by
// others only with the sticky bit (/tmp), which keeps them from renaming
// what they do not own. Image files must be regular files: a FIFO would
// hang the reader, a device such as /dev/zero would never end, a symlink
// could point anywhere.

// ErrUntrusted is wrapped by every error about an image that root did not
// write (wrong owner, writable by others, not a regular file).
var ErrUntrusted = errors.New("not trusted")

// trustedOwner reports whether uid may own image files: root, or the user
// running seamless (who can restore only what it could run anyway).
func trustedOwner(uid uint32) bool { return uid == 0 || int(uid) == os.Geteuid() }

// checkOwner refuses st unless a trusted user owns it and only that user
// may write it (a sticky directory is allowed when sticky is set).
func checkOwner(path string, st *unix.Stat_t, sticky bool) error {
	if !trustedOwner(st.Uid) {
		return fmt.Errorf("%s: %w: owned by uid %d, not root", path, ErrUntrusted, st.Uid)
	}
	if st.Mode&0o022 != 0 && !(sticky && st.Mode&unix.S_ISVTX != 0) {
		return fmt.Errorf("%s: %w: writable by group or others (mode %04o)", path, ErrUntrusted, st.Mode&0o7777)
	}
	return nil
}

// kindName names a file type for errors.
func kindName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFLNK:
		return "a symbolic link"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFDIR:
		return "a directory"
	}
	return "not a regular file"
}

// openDir opens an image directory and checks that it, and every directory
// above it, is trusted. The checks are made on what was opened (fstat, and
// ".." from there), so a path that changes meanwhile cannot slip past them.
func openDir(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("%s: not an image: %w", dir, os.ErrNotExist)
		}
		return nil, fmt.Errorf("open image directory %s: %w", dir, err)
	}
	d := os.NewFile(uintptr(fd), dir)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		d.Close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if err := checkOwner(dir, &st, false); err != nil {
		d.Close()
		return nil, err
	}
	if err := checkAncestors(fd, dir); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// checkAncestors checks every directory above the directory fd, up to the
// root: whoever may rename one of them could swap the image for another.
func checkAncestors(fd int, dir string) error {
	var cur unix.Stat_t
	if err := unix.Fstat(fd, &cur); err != nil {
		return err
	}
	up, err := unix.Openat(fd, "..", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s: parent directory: %w", dir, err)
	}
	for depth := 0; ; depth++ {
		var st unix.Stat_t
		if err := unix.Fstat(up, &st); err != nil {
			unix.Close(up)
			return err
		}
		if st.Dev == cur.Dev && st.Ino == cur.Ino {
			unix.Close(up) // the root: ".." is itself
			return nil
		}
		if err := checkOwner(fdPath(up, dir, depth), &st, true); err != nil {
			unix.Close(up)
			return err
		}
		if depth > 4096 {
			unix.Close(up)
			return fmt.Errorf("%s: too many directories above it", dir)
		}
		next, err := unix.Openat(up, "..", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(up)
		if err != nil {
			return fmt.Errorf("%s: parent directory: %w", dir, err)
		}
		cur, up = st, next
	}
}

// fdPath names a directory above dir for an error message.
func fdPath(fd int, dir string, depth int) string {
	if p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)); err == nil {
		return p
	}
	return fmt.Sprintf("%s (directory %d levels up)", dir, depth+1)
}

// heldLink is the form of the links through which the restore daemon hands
// its image files to `seamless restore --verified`: /proc/DAEMON/fd/N.
var heldLink = regexp.MustCompile(`^/proc/[0-9]+/fd/[0-9]+$`)

// openFile opens the image file name in the directory d without following
// a symlink or blocking on a FIFO, and checks that it is a regular file
// that root wrote. With held, a symlink of the restore daemon's form
// (/proc/PID/fd/N) is followed, and what it leads to is checked the same
// way.
func openFile(d *os.File, dir, name string, held bool) (*os.File, *unix.Stat_t, error) {
	p := dir + "/" + name
	fd, err := unix.Openat(int(d.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) && held {
		var target string
		if target, err = readlinkat(int(d.Fd()), name); err == nil {
			if !heldLink.MatchString(target) {
				return nil, nil, fmt.Errorf("%s: %w: a symbolic link to %s", p, ErrUntrusted, target)
			}
			fd, err = unix.Open(target, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		}
	}
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil, fmt.Errorf("%s: %w", p, os.ErrNotExist)
		}
		if errors.Is(err, unix.ELOOP) {
			return nil, nil, fmt.Errorf("%s: %w: a symbolic link", p, ErrUntrusted)
		}
		return nil, nil, fmt.Errorf("open %s: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	st := new(unix.Stat_t)
	if err := unix.Fstat(fd, st); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w: %s", p, ErrUntrusted, kindName(st.Mode))
	}
	if err := checkOwner(p, st, false); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

func readlinkat(dirfd int, name string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", err
	}
	if n == len(buf) {
		return "", errors.New("link target too long")
	}
	return string(buf[:n]), nil
}
