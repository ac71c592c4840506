package files

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/fileref"
	"github.com/seamless-linux/seamless/internal/image"
)

// inotify instances. A watch is found again by the file handle fdinfo
// gives for it (resolveMark), and put back under the same watch
// descriptor; a watch on a deleted file goes on the recreated file.

// KindInotify is an inotify instance.
const KindInotify = "inotify"

var inotifyKind = &kind{name: KindInotify, record: func() image.FileRecord { return new(Inotify) },
	is:    anonIs("anon_inode:inotify"),
	check: checkInotify, dump: dumpInotify, open: openInotify}

// Inotify is the record of an inotify instance: its watches.
type Inotify struct {
	Watches []InotifyWatch `json:"watches,omitempty"`
}

// InotifyWatch is one inotify watch: the watched path, the event mask and
// the watch descriptor the process knows it by.
type InotifyWatch struct {
	WD   int    `json:"wd"`
	Path string `json:"path"`
	Mask uint32 `json:"mask"`
	// File is the watched file when it was deleted (and held open): the
	// watch goes on the recreated file.
	File *image.Ref `json:"file,omitempty"`
}

// Validate checks each watch's descriptor and path.
func (in *Inotify) Validate(*image.Checker) error {
	for _, w := range in.Watches {
		if w.WD < 1 || w.Path == "" {
			return fmt.Errorf("inotify watch %d: bad descriptor or no path", w.WD)
		}
	}
	return nil
}

// Link checks the recreated files that watches are on.
func (in *Inotify) Link(l *image.Links) error {
	for _, w := range in.Watches {
		if err := l.Ref("inotify watch", w.File); err != nil {
			return err
		}
	}
	return nil
}

// checkInotify refuses watches on files that cannot be found again, or
// that were deleted and cannot be recreated.
func checkInotify(_ *Scope, d *desc) error {
	for _, m := range d.info.inotify {
		h, path, err := resolveMark(m)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		err = unix.Fstat(int(h.Fd()), &st)
		if name, deleted := strings.CutSuffix(path, " (deleted)"); err == nil && deleted {
			err = fileref.CheckUnreachable(h, name, &st)
		}
		h.Close()
		if err != nil {
			return fmt.Errorf("inotify watch %d: %w", m.wd, err)
		}
	}
	return nil
}

// ErrUnreadEvents is wrapped by the error of a checkpoint that found events
// queued on an inotify instance that the process has not read. They cannot
// be carried: nothing can queue them again on the new instance, and reading
// them here would take them from the process if the update is abandoned.
// The checkpoint is tried again after the process has run (a process reads
// its events soon after they come, so this is a race, not a state).
var ErrUnreadEvents = errors.New("inotify events not yet read")

func dumpInotify(d *Dumper, ds *desc, f *image.File) error {
	n, err := unix.IoctlGetInt(int(ds.local.Fd()), unix.TIOCINQ) // FIONREAD
	if err != nil {
		return fmt.Errorf("inotify instance: count its queued events: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("inotify instance has %d bytes of events the process has not read, which cannot be carried over: %w", n, ErrUnreadEvents)
	}
	rec := &Inotify{}
	f.Record = rec
	for _, m := range ds.info.inotify {
		h, path, err := resolveMark(m)
		if err != nil {
			return err
		}
		w := InotifyWatch{WD: m.wd, Path: path, Mask: m.mask}
		if name, deleted := strings.CutSuffix(path, " (deleted)"); deleted {
			w.Path = name
			w.File, err = d.Refs.RefFile(h, name, true)
		}
		h.Close()
		if err != nil {
			return fmt.Errorf("inotify watch %d: %w", m.wd, err)
		}
		rec.Watches = append(rec.Watches, w)
	}
	return nil
}

// resolveMark opens (O_PATH) the file an inotify watch is on, from its file
// handle, and returns its path as the kernel names it.
func resolveMark(m inotifyMark) (*os.File, string, error) {
	mnt, err := mountOf(m.sdev)
	if err != nil {
		return nil, "", fmt.Errorf("inotify watch %d: %w", m.wd, err)
	}
	dir, err := os.Open(mnt)
	if err != nil {
		return nil, "", fmt.Errorf("inotify watch %d: %w", m.wd, err)
	}
	fd, err := unix.OpenByHandleAt(int(dir.Fd()), unix.NewFileHandle(int32(m.htype), m.handle), unix.O_PATH|unix.O_CLOEXEC)
	dir.Close()
	if err != nil {
		return nil, "", fmt.Errorf("inotify watch %d: the watched file is gone: %w", m.wd, err)
	}
	h := os.NewFile(uintptr(fd), "inotify watch")
	path, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		h.Close()
		return nil, "", fmt.Errorf("inotify watch %d: %w", m.wd, err)
	}
	return h, path, nil
}

// openInotify creates an inotify instance with the same watches under the
// same watch descriptors. Descriptors are handed out in increasing order,
// so gaps are filled with throw-away watches that are removed afterwards,
// with the IN_IGNORED event each removal queues: the instance is handed
// over with an empty queue, as it was checkpointed (ErrUnreadEvents). A
// watch on a deleted file goes on the recreated file.
func openInotify(o *Opener, f *image.File) (*os.File, error) {
	fd, err := unix.InotifyInit1(f.Flags&unix.O_NONBLOCK | unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	h := os.NewFile(uintptr(fd), "inotify")
	var filler []int
	var tmp string
	defer func() {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}()
	next := 1
	for _, w := range sortedWatches(recordOf[Inotify](f).Watches) {
		for next < w.WD {
			if tmp == "" {
				if tmp, err = os.MkdirTemp("", "seamless-inotify-"); err != nil {
					h.Close()
					return nil, err
				}
			}
			p := fmt.Sprintf("%s/%d", tmp, next)
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				h.Close()
				return nil, err
			}
			wd, err := unix.InotifyAddWatch(fd, p, unix.IN_ATTRIB)
			if err != nil {
				h.Close()
				return nil, fmt.Errorf("inotify filler watch: %w", err)
			}
			filler = append(filler, wd)
			next = wd + 1
		}
		path, mask := w.Path, w.Mask
		if w.File != nil {
			g, err := o.Refs.Object(w.File)
			if err != nil {
				h.Close()
				return nil, err
			}
			path, mask = "/proc/self/fd/"+strconv.Itoa(int(g.Fd())), mask&^unix.IN_DONT_FOLLOW
		}
		wd, err := unix.InotifyAddWatch(fd, path, mask)
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("inotify watch %s: %w", w.Path, err)
		}
		if wd != w.WD {
			h.Close()
			return nil, fmt.Errorf("inotify watch %s got descriptor %d, want %d", w.Path, wd, w.WD)
		}
		next = wd + 1
	}
	for _, wd := range filler {
		if _, err := unix.InotifyRmWatch(fd, uint32(wd)); err != nil {
			h.Close()
			return nil, fmt.Errorf("remove filler inotify watch %d: %w", wd, err)
		}
	}
	if err := discardQueued(fd); err != nil {
		h.Close()
		return nil, fmt.Errorf("inotify: %w", err)
	}
	return h, nil
}

// discardQueued reads and drops the events queued on inotify instance fd.
func discardQueued(fd int) error {
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ) // FIONREAD
	if err != nil || n == 0 {
		return err
	}
	// n bytes are queued: the read returns at once, blocking or not.
	_, err = unix.Read(fd, make([]byte, n))
	return err
}

// sortedWatches returns the watches in the order of their descriptors.
func sortedWatches(ws []InotifyWatch) []InotifyWatch {
	out := slices.Clone(ws)
	slices.SortStableFunc(out, func(a, b InotifyWatch) int { return cmp.Compare(a.WD, b.WD) })
	return out
}

// mountOf finds a mount point of the filesystem with the kernel device
// number sdev (major << 20 | minor, as fdinfo prints it).
func mountOf(sdev uint64) (string, error) {
	want := fmt.Sprintf("%d:%d", sdev>>20, sdev&0xfffff)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) > 4 && fl[2] == want {
			return fl[4], nil
		}
	}
	return "", fmt.Errorf("no mount of device %s", want)
}
