package files

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/proc"
	"github.com/seamless-linux/seamless/internal/sockets"
)

// Opener opens, in the restorer, the open file descriptions of an image.
// Each description is opened once and handed to every process that holds
// it, so that shared descriptions keep sharing one offset.
type Opener struct {
	Image *image.Image
	// Skip reports PIDs that are part of the tree being restored; their
	// descriptors never count as an outside holder of a pipe.
	InTree func(pid int) bool
	// Sockets rebuilds socket descriptors.
	Sockets *sockets.Opener
	files   map[int]*os.File
	pipes   map[uint64]*[2]*os.File
	ghosts  map[*image.Ref]*os.File
	ptys    map[int]*ptyPair
	byID    map[int]*image.File
	// hungUp are the hung-up terminals opened ahead, by file ID.
	hungUp map[int]*os.File
	// Warnings collects what the restore could not reproduce exactly.
	Warnings []string
}

// NewOpener returns an Opener for im.
func NewOpener(im *image.Image, inTree func(int) bool) *Opener {
	return &Opener{Image: im, InTree: inTree, Sockets: sockets.NewOpener(im.Tree), files: map[int]*os.File{}, pipes: map[uint64]*[2]*os.File{}, ghosts: map[*image.Ref]*os.File{}, ptys: map[int]*ptyPair{}, hungUp: map[int]*os.File{}}
}

// Close releases the restorer's copies. Pipe ends that no restored process
// holds close with them, as they were closed before the checkpoint.
func (o *Opener) Close() {
	for _, f := range o.files {
		f.Close()
	}
	for _, p := range o.pipes {
		for _, f := range p {
			if f != nil {
				f.Close()
			}
		}
	}
	for _, f := range o.ghosts {
		f.Close()
	}
	for _, p := range o.ptys {
		p.close()
	}
	for _, f := range o.hungUp {
		f.Close()
	}
	o.Sockets.Close()
}

// openFlags keeps the status flags that open(2) can reproduce.
func openFlags(fl int) int {
	return fl &^ (unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_CLOEXEC | unix.O_NOCTTY)
}

// Open returns the restorer's descriptor for image file id.
func (o *Opener) Open(f *image.File) (*os.File, error) {
	if h, ok := o.files[f.ID]; ok {
		return h, nil
	}
	h, err := o.open(f)
	if err != nil {
		return nil, fmt.Errorf("file %d (%s): %w", f.ID, describe(f), err)
	}
	o.files[f.ID] = h
	return h, nil
}

func describe(f *image.File) string {
	if f.Ref != nil {
		return f.Kind + " " + f.Ref.Path
	}
	return f.Kind
}

func (o *Opener) open(f *image.File) (*os.File, error) {
	flags := openFlags(f.Flags) | unix.O_CLOEXEC
	switch f.Kind {
	case image.FileRegular, image.FileDirectory:
		var h *os.File
		var err error
		if f.Ref.Deleted {
			h, err = o.ghost(f.Ref, flags)
		} else {
			h, err = os.OpenFile(f.Ref.Path, flags, 0)
		}
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
	case image.FileMemfd:
		name := strings.TrimSuffix(strings.TrimPrefix(f.Ref.Path, "/memfd:"), " (deleted)")
		fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			return nil, err
		}
		h := os.NewFile(uintptr(fd), f.Ref.Path)
		if err := o.copyContents(h, f.Ref); err != nil {
			h.Close()
			return nil, err
		}
		if f.Count != 0 {
			if _, err := unix.FcntlInt(h.Fd(), unix.F_ADD_SEALS, int(f.Count)); err != nil {
				h.Close()
				return nil, fmt.Errorf("seal: %w", err)
			}
		}
		h.Seek(f.Pos, io.SeekStart)
		return h, nil
	case image.FileDevice, image.FileTerminal:
		h, err := os.OpenFile(f.Ref.Path, flags|unix.O_NOCTTY, 0)
		if err != nil {
			return nil, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(h.Fd()), &st); err != nil || st.Rdev != f.Rdev {
			h.Close()
			return nil, fmt.Errorf("%s is no longer device %d:%d", f.Ref.Path, unix.Major(f.Rdev), unix.Minor(f.Rdev))
		}
		return h, nil
	case image.FilePtyMaster:
		p, err := o.Pty(f.PtyIndex)
		if err != nil {
			return nil, err
		}
		return dupFile(p.master)
	case image.FilePtySlave:
		return o.PtySlave(f.PtyIndex, flags)
	case image.FileHungUp:
		return o.HungUp(f)
	case image.FilePipe:
		return o.pipe(f)
	case image.FileFIFO:
		return o.fifo(f, flags)
	case image.FileEventfd:
		fd, err := unix.Eventfd(uint(f.Count), f.Flags&(unix.EFD_NONBLOCK|unix.EFD_SEMAPHORE)|unix.EFD_CLOEXEC)
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), "eventfd"), nil
	case image.FileSocket:
		if f.Socket == nil {
			return nil, fmt.Errorf("socket without state")
		}
		return o.Sockets.Open(f.Socket)
	case image.FileSignalfd:
		return openSignalfd(f)
	case image.FileTimerfd:
		if f.Timer == nil {
			return nil, fmt.Errorf("timerfd without state")
		}
		return openTimerfd(f)
	case image.FileInotify:
		return openInotify(f)
	case image.FileEpoll:
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), "epoll"), nil
	}
	return nil, fmt.Errorf("unknown kind %q", f.Kind)
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

// OpenRef opens the file a mapping refers to; deleted files are re-created
// from their saved contents (and unlinked again).
func (o *Opener) OpenRef(ref *image.Ref, write bool) (*os.File, error) {
	flags := unix.O_RDONLY | unix.O_CLOEXEC
	if write {
		flags = unix.O_RDWR | unix.O_CLOEXEC
	}
	if ref.Deleted {
		return o.ghost(ref, flags)
	}
	return os.OpenFile(ref.Path, flags, 0)
}

// ghost re-creates a deleted file: it is written next to where it was,
// opened, and unlinked, so that the process sees "path (deleted)" again.
// One copy serves every descriptor and mapping of the same file.
func (o *Opener) ghost(ref *image.Ref, flags int) (*os.File, error) {
	g, ok := o.ghosts[ref]
	if !ok {
		dir := filepath.Dir(ref.Path)
		if _, err := os.Stat(dir); err != nil {
			dir = os.TempDir()
		}
		f, err := os.CreateTemp(dir, "."+filepath.Base(ref.Path)+".seamless-")
		if err != nil {
			return nil, fmt.Errorf("re-create deleted file %s: %w", ref.Path, err)
		}
		final := f.Name()
		if _, err := os.Lstat(ref.Path); errors.Is(err, os.ErrNotExist) {
			// The original name is free: use it, so the name matches too.
			if os.Rename(f.Name(), ref.Path) == nil {
				final = ref.Path
			}
		}
		os.Chmod(final, os.FileMode(ref.Mode&0o7777))
		if ref.Contents != "" {
			if err := o.copyContents(f, ref); err != nil {
				f.Close()
				os.Remove(final)
				return nil, err
			}
		}
		os.Remove(final)
		g = f
		o.ghosts[ref] = g
	}
	// Reopen through /proc to get a description with the wanted flags.
	return os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(g.Fd())), openFlags(flags)|unix.O_CLOEXEC, 0)
}

func (o *Opener) copyContents(dst *os.File, ref *image.Ref) error {
	if ref.Contents == "" {
		return nil
	}
	src, err := os.Open(o.Image.Path(ref.Contents))
	if err != nil {
		return err
	}
	defer src.Close()
	if _, err := dst.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		return fmt.Errorf("write contents of %s: %w", ref.Path, err)
	}
	return nil
}

// pipe returns the end of a pipe that f describes. A pipe that was shared
// with a process outside the tree is reconnected to that very pipe when the
// process still holds it; otherwise a new pipe is made and refilled with the
// bytes that were buffered in it.
func (o *Opener) pipe(f *image.File) (*os.File, error) {
	end := 0
	if f.Pipe.Write {
		end = 1
	}
	if f.Pipe.External {
		if h := o.reconnect(f); h != nil {
			return h, nil
		}
		o.Warnings = append(o.Warnings, fmt.Sprintf("pipe:[%d] was shared with a process that is gone; a new pipe stands in for it", f.Pipe.Inode))
	}
	p := o.pipes[f.Pipe.Inode]
	if p == nil {
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			return nil, err
		}
		p = &[2]*os.File{os.NewFile(uintptr(fds[0]), "pipe"), os.NewFile(uintptr(fds[1]), "pipe")}
		o.pipes[f.Pipe.Inode] = p
		if f.Pipe.Capacity > 0 {
			unix.FcntlInt(p[0].Fd(), unix.F_SETPIPE_SZ, f.Pipe.Capacity)
		}
	}
	if err := o.refill(f, p[1]); err != nil {
		return nil, err
	}
	h, err := dupFile(p[end])
	if err != nil {
		return nil, err
	}
	if f.Flags&unix.O_NONBLOCK != 0 {
		unix.SetNonblock(int(h.Fd()), true)
	}
	return h, nil
}

// fifo opens a named pipe by its path. The restorer holds it open for
// reading and writing meanwhile, so that no open blocks and the buffered
// bytes can be written back.
func (o *Opener) fifo(f *image.File, flags int) (*os.File, error) {
	p := o.pipes[f.Pipe.Inode]
	if p == nil {
		anchor, err := os.OpenFile(f.Ref.Path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(anchor.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			anchor.Close()
			return nil, fmt.Errorf("%s is no longer a FIFO", f.Ref.Path)
		}
		p = &[2]*os.File{anchor, nil}
		o.pipes[f.Pipe.Inode] = p
	}
	if err := o.refill(f, p[0]); err != nil {
		return nil, err
	}
	h, err := os.OpenFile(f.Ref.Path, flags|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if f.Flags&unix.O_NONBLOCK == 0 {
		unix.SetNonblock(int(h.Fd()), false)
	}
	return h, nil
}

func (o *Opener) refill(f *image.File, w *os.File) error {
	if len(f.Pipe.Data) == 0 {
		return nil
	}
	if _, err := w.Write(f.Pipe.Data); err != nil {
		return fmt.Errorf("refill pipe: %w", err)
	}
	f.Pipe.Data = nil // written once, whichever end is opened first
	return nil
}

// reconnect finds a process outside the tree that holds pipe f and opens
// the wanted end of the same pipe through its /proc fd link.
func (o *Opener) reconnect(f *image.File) *os.File {
	want := fmt.Sprintf("pipe:[%d]", f.Pipe.Inode)
	ents, _ := os.ReadDir(proc.Root)
	acc := unix.O_RDONLY
	if f.Pipe.Write {
		acc = unix.O_WRONLY
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || o.InTree(pid) || pid == os.Getpid() {
			continue
		}
		fds, _ := os.ReadDir(proc.Path(pid, "fd"))
		for _, fd := range fds {
			p := proc.Path(pid, "fd", fd.Name())
			if l, _ := os.Readlink(p); l != want {
				continue
			}
			h, err := os.OpenFile(p, acc|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			if err != nil {
				continue // e.g. ENXIO: a write end with no reader left
			}
			if f.Flags&unix.O_NONBLOCK == 0 {
				unix.SetNonblock(int(h.Fd()), false)
			}
			return h
		}
	}
	return nil
}

func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// Install closes every descriptor the target inherited from the seed except
// its channel, then gives it the descriptors of p at their original numbers.
func Install(t *inject.Target, p *image.Process, o *Opener) error {
	ents, err := os.ReadDir(proc.Path(t.PID, "fd"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd == t.Sock {
			continue
		}
		if _, err := t.Call(unix.SYS_CLOSE, uintptr(fd)); err != nil {
			return fmt.Errorf("close seed fd %d: %w", fd, err)
		}
	}
	fds := append([]image.FD(nil), p.FDs...)
	sort.Slice(fds, func(i, j int) bool { return fds[i].FD < fds[j].FD })
	for _, d := range fds {
		if d.FD == t.Sock {
			return fmt.Errorf("fd %d collides with the restore channel", d.FD)
		}
		var got int
		if f := o.file(d.File); f.Kind == image.FileCtty {
			// /dev/tty only opens inside a process with a controlling terminal.
			if got, err = openInside(t, "/dev/tty", openFlags(f.Flags)|unix.O_NOCTTY); err != nil {
				return fmt.Errorf("process %d fd %d: open /dev/tty: %w", p.PID, d.FD, err)
			}
		} else {
			h, err := o.Open(f)
			if err != nil {
				return fmt.Errorf("process %d fd %d: %w", p.PID, d.FD, err)
			}
			if got, err = t.SendFile(h); err != nil {
				return err
			}
		}
		// Lower numbers are all taken by now, so got <= d.FD.
		if got != d.FD {
			flags := uintptr(0)
			if d.Cloexec {
				flags = unix.O_CLOEXEC
			}
			if _, err := t.Call(unix.SYS_DUP3, uintptr(got), uintptr(d.FD), flags); err != nil {
				return fmt.Errorf("process %d fd %d: dup3: %w", p.PID, d.FD, err)
			}
			if _, err := t.Call(unix.SYS_CLOSE, uintptr(got)); err != nil {
				return err
			}
		} else if d.Cloexec {
			if _, err := t.Call(unix.SYS_FCNTL, uintptr(d.FD), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
				return err
			}
		}
	}
	return nil
}

// Watch registers the epoll watches of p's epoll descriptors, once every
// descriptor is in place.
func Watch(t *inject.Target, p *image.Process, o *Opener, done map[int]bool) error {
	for _, d := range p.FDs {
		f := o.file(d.File)
		if f.Kind != image.FileEpoll || done[f.ID] {
			continue
		}
		done[f.ID] = true
		for _, w := range f.Watches {
			ev := make([]byte, 12)
			*(*uint32)(ptr(ev)) = w.Events
			*(*uint64)(ptr(ev[4:])) = w.Data
			addr, err := t.Put(0, ev)
			if err != nil {
				return err
			}
			if _, err := t.Call(unix.SYS_EPOLL_CTL, uintptr(d.FD), unix.EPOLL_CTL_ADD, uintptr(w.FD), addr); err != nil {
				return fmt.Errorf("process %d epoll fd %d: watch fd %d: %w", p.PID, d.FD, w.FD, err)
			}
		}
	}
	return nil
}

// Lock takes again, inside process p, the file locks held through its
// descriptors: flock and OFD locks once per open file description, POSIX
// locks by the process that owned them.
func Lock(t *inject.Target, p *image.Process, o *Opener, done map[int]bool) error {
	for _, d := range p.FDs {
		f := o.file(d.File)
		for _, l := range f.Locks {
			if l.Kind == "POSIX" && l.PID != p.PID || l.Kind != "POSIX" && done[f.ID] {
				continue
			}
			if err := takeLock(t, d.FD, l); err != nil {
				return fmt.Errorf("process %d fd %d: %s lock: %w", p.PID, d.FD, l.Kind, err)
			}
		}
		done[f.ID] = true
	}
	return nil
}

func takeLock(t *inject.Target, fd int, l image.Lock) error {
	if l.Kind == "FLOCK" {
		op := uintptr(unix.LOCK_SH | unix.LOCK_NB)
		if l.Write {
			op = unix.LOCK_EX | unix.LOCK_NB
		}
		_, err := t.Call(unix.SYS_FLOCK, uintptr(fd), op)
		return err
	}
	typ := uint64(unix.F_RDLCK)
	if l.Write {
		typ = unix.F_WRLCK
	}
	length := int64(0)
	if l.End >= 0 {
		length = l.End - l.Start + 1
	}
	// struct flock: l_type and l_whence (shorts), l_start, l_len, l_pid.
	fl, err := t.Put(0, inject.Uint64s(typ|uint64(unix.SEEK_SET)<<16, uint64(l.Start), uint64(length), 0))
	if err != nil {
		return err
	}
	cmd := uintptr(unix.F_SETLK)
	if l.Kind == "OFDLCK" {
		cmd = unix.F_OFD_SETLK
	} else if l.Kind != "POSIX" {
		return fmt.Errorf("unknown lock kind %q", l.Kind)
	}
	_, err = t.Call(unix.SYS_FCNTL, uintptr(fd), cmd, fl)
	return err
}

// openInside opens path in the target process itself.
func openInside(t *inject.Target, path string, flags int) (int, error) {
	addr, err := t.PutString(0, path)
	if err != nil {
		return -1, err
	}
	atFDCWD := unix.AT_FDCWD
	fd, err := t.Call(unix.SYS_OPENAT, uintptr(atFDCWD), addr, uintptr(flags))
	return int(fd), err
}

// file returns the image's open file description id.
func (o *Opener) file(id int) *image.File {
	if o.byID == nil {
		o.byID = map[int]*image.File{}
		for _, f := range o.Image.Tree.Files {
			o.byID[f.ID] = f
		}
	}
	return o.byID[id]
}
