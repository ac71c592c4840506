package fileref

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// Dumper describes files by reference and records, once per object, the
// objects that restore must recreate because no path leads to them any
// more: deleted files (with their contents, holes left out), directories,
// FIFOs, device nodes and symlinks, and memfds.
type Dumper struct {
	W    *image.Writer
	seen map[[2]uint64]*image.Ref
	ids  int
	buf  []byte
}

// NewDumper returns a Dumper writing into w.
func NewDumper(w *image.Writer) *Dumper {
	return &Dumper{W: w, seen: map[[2]uint64]*image.Ref{}}
}

// Ref describes the file that the open-able path handle refers to (a
// /proc/PID/fd/N or map_files link). name is the path the kernel reports
// for it; deleted says the kernel marked it deleted.
func (c *Dumper) Ref(handle, name string, deleted bool) (*image.Ref, error) {
	f, err := os.OpenFile(handle, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	return c.RefFile(f, name, deleted)
}

// Seen returns the object already recorded for the file with this device
// and inode number, if any.
func (c *Dumper) Seen(dev, ino uint64) *image.Ref { return c.seen[[2]uint64{dev, ino}] }

// RefFile is Ref for an already open file (of any access mode, O_PATH
// included): every Ref of one file is the same *image.Ref.
func (c *Dumper) RefFile(f *os.File, name string, deleted bool) (*image.Ref, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", name, err)
	}
	key := [2]uint64{st.Dev, st.Ino}
	if r, ok := c.seen[key]; ok {
		return r, nil
	}
	r := &image.Ref{Path: name, Size: st.Size, Mode: st.Mode, Inode: st.Ino}
	switch {
	case deleted || (st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 0):
		if err := c.object(f, r, &st); err != nil {
			return nil, err
		}
	case st.Mode&unix.S_IFMT == unix.S_IFREG && isShmem(f):
		// A file of a tmpfs is opened again by path, but a reboot empties
		// its filesystem: restore recreates it there from the image.
		c.ids++
		r.ID, r.Volatile = c.ids, true
		r.UID, r.GID = st.Uid, st.Gid
		r.AtimeNs, r.MtimeNs = unix.TimespecToNsec(st.Atim), unix.TimespecToNsec(st.Mtim)
		if err := c.save(f, r, st.Size); err != nil {
			return nil, err
		}
	}
	c.seen[key] = r
	return r, nil
}

// object records what restore needs to recreate the unreachable file f:
// its owner, times, and by type its contents, device number or target.
func (c *Dumper) object(f *os.File, r *image.Ref, st *unix.Stat_t) error {
	r.Deleted = true
	c.ids++
	r.ID = c.ids
	r.UID, r.GID = st.Uid, st.Gid
	r.AtimeNs, r.MtimeNs = unix.TimespecToNsec(st.Atim), unix.TimespecToNsec(st.Mtim)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if err := CheckUnreachable(f, r.Path, st); err != nil {
			return err
		}
		if strings.HasPrefix(r.Path, "/memfd:") && isShmem(f) {
			r.Memfd = true
			if seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0); err == nil {
				r.Seals = seals
			}
		}
		return c.save(f, r, st.Size)
	case unix.S_IFDIR:
		return CheckUnreachable(f, r.Path, st)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		r.Rdev = st.Rdev
	case unix.S_IFLNK:
		target, err := readlinkFD(f)
		if err != nil {
			return fmt.Errorf("deleted symlink %s: %w", r.Path, err)
		}
		r.Target = target
	}
	return nil
}

// CheckUnreachable refuses a deleted file or directory that a recreated
// one could not stand in for: one of a pseudo filesystem (the /proc
// directory of a process that has exited, a removed cgroup), a memfd on
// hugetlbfs, a file that other names still link to (a copy would no longer
// share its writes with them). f may be an O_PATH descriptor.
func CheckUnreachable(f *os.File, name string, st *unix.Stat_t) error {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil {
		return fmt.Errorf("statfs %s: %w", name, err)
	}
	if what, ok := pseudoFS[int64(fs.Type)]; ok {
		if what == "proc" && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return fmt.Errorf("%s (deleted): the /proc directory of a process that has exited cannot be recreated", name)
		}
		return fmt.Errorf("%s (deleted): a removed file of %s cannot be recreated", name, what)
	}
	if int64(fs.Type) == unix.HUGETLBFS_MAGIC {
		return fmt.Errorf("%s: a file on hugetlbfs (MFD_HUGETLB, MAP_HUGETLB) cannot be recreated", name)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink > 0 {
		return fmt.Errorf("%s (deleted): the file still has %d other hard links, which a recreated copy would not share", name, st.Nlink)
	}
	return nil
}

// pseudoFS are filesystems whose removed files and directories are not
// data that could be written again: what they showed belonged to the
// kernel object that went away.
var pseudoFS = map[int64]string{
	unix.PROC_SUPER_MAGIC:    "proc",
	unix.SYSFS_MAGIC:         "sysfs",
	unix.CGROUP_SUPER_MAGIC:  "cgroupfs",
	unix.CGROUP2_SUPER_MAGIC: "cgroupfs",
	unix.DEBUGFS_MAGIC:       "debugfs",
	unix.TRACEFS_MAGIC:       "tracefs",
	unix.SECURITYFS_MAGIC:    "securityfs",
	unix.BPF_FS_MAGIC:        "bpffs",
	unix.DEVPTS_SUPER_MAGIC:  "devpts",
	unix.PSTOREFS_MAGIC:      "pstore",
	unix.EFIVARFS_MAGIC:      "efivarfs",
	unix.NSFS_MAGIC:          "nsfs",
	configfsMagic:            "configfs",
}

func isShmem(f *os.File) bool {
	var fs unix.Statfs_t
	return unix.Fstatfs(int(f.Fd()), &fs) == nil && int64(fs.Type) == unix.TMPFS_MAGIC
}

// save stores the data extents of a deleted regular file. It reads through
// a description of its own, opened read-only through /proc/self/fd: the
// process's may be write-only (a rotated log), O_PATH, or at an offset
// that must not move.
func (c *Dumper) save(f *os.File, r *image.Ref, size int64) error {
	rd, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME, 0)
	if err != nil {
		rd, err = os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return fmt.Errorf("read deleted file %s: %w", r.Path, err)
	}
	defer rd.Close()
	r.Contents = fmt.Sprintf("file-%d.img", r.ID)
	out, err := c.W.Create(r.Contents)
	if err != nil {
		return err
	}
	if c.buf == nil {
		c.buf = make([]byte, 1<<20)
	}
	if r.Runs, err = CopySparse(rd, size, out, c.buf); err != nil {
		out.Close()
		return fmt.Errorf("save deleted file %s: %w", r.Path, err)
	}
	return out.Close()
}

// readlinkFD reads the target of the symlink an O_PATH descriptor refers to.
func readlinkFD(f *os.File) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(int(f.Fd()), "", buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// configfsMagic is CONFIGFS_MAGIC from linux/magic.h.
const configfsMagic = 0x62656570

// CopySparse copies the data regions of f (found with SEEK_DATA/SEEK_HOLE)
// into out and returns them as runs; Run.Addr is the offset in f.
func CopySparse(f *os.File, size int64, out *image.FileWriter, buf []byte) ([]image.Run, error) {
	var runs []image.Run
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break
		}
		if err != nil {
			return nil, err
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		data &^= pageSize - 1
		hole = min((hole+pageSize-1)&^(pageSize-1), (size+pageSize-1)&^(pageSize-1))
		run := image.Run{Addr: uint64(data), Pages: uint64(hole-data) / pageSize, Off: uint64(out.Offset())}
		for p := data; p < hole; {
			n := min(int64(len(buf)), hole-p)
			clear(buf[:n])
			if _, err := f.ReadAt(buf[:n], p); err != nil && err != io.EOF {
				return nil, err
			}
			if _, err := out.Write(buf[:n]); err != nil {
				return nil, err
			}
			p += n
		}
		if run.Pages > 0 {
			runs = append(runs, run)
		}
		off = hole
	}
	return runs, nil
}

// pageSize is the unit of the image's runs.
const pageSize = 4096
