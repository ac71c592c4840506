package files

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/fileref"
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
	// Refs opens the files descriptions name (and mappings, and
	// executables: the restore hands it to mem).
	Refs  *fileref.Opener
	files map[int]*os.File
	pipes map[uint64]*pipePair
	// async are the descriptions whose O_ASYNC is on again.
	async map[int]bool
	ptys  map[int]*ptyPair
	byID  map[int]*image.File
	// hungUp are the hung-up terminals opened ahead, by file ID.
	hungUp map[int]*os.File
	// Warnings collects what the restore could not reproduce exactly.
	Warnings []string
}

// NewOpener returns an Opener for im.
func NewOpener(im *image.Image, inTree func(int) bool) *Opener {
	return &Opener{Image: im, InTree: inTree, Sockets: sockets.NewOpener(im.Tree), Refs: fileref.NewOpener(im),
		files: map[int]*os.File{}, pipes: map[uint64]*pipePair{}, async: map[int]bool{},
		ptys: map[int]*ptyPair{}, hungUp: map[int]*os.File{}}
}

// Close releases the restorer's copies. Pipe ends that no restored process
// holds close with them, as they were closed before the checkpoint.
func (o *Opener) Close() {
	for _, f := range o.files {
		f.Close()
	}
	for _, p := range o.pipes {
		for _, f := range p.ends {
			if f != nil {
				f.Close()
			}
		}
	}
	o.Refs.Close()
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
	k, ok := byName[f.Kind]
	if !ok {
		return nil, fmt.Errorf("file %d: unknown kind %q", f.ID, f.Kind)
	}
	h, err := k.open(o, f)
	if err == nil && k.setfl {
		if err = setFlags(h, f.Flags); err != nil {
			h.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("file %d (%s): %w", f.ID, describe(f), err)
	}
	o.files[f.ID] = h
	return h, nil
}

// setflFlags are the status flags F_SETFL changes (O_ASYNC aside, which
// waits for the owner in Finish).
const setflFlags = unix.O_APPEND | unix.O_NONBLOCK | unix.O_DIRECT | unix.O_NOATIME

// setFlags gives h the F_SETFL status flags of want: an open(2) may not
// reproduce them (O_DIRECT on a pipe, O_NONBLOCK used to open a FIFO).
func setFlags(h *os.File, want int) error {
	cur, err := unix.FcntlInt(h.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if cur&setflFlags == want&setflFlags {
		return nil
	}
	if _, err := unix.FcntlInt(h.Fd(), unix.F_SETFL, cur&^setflFlags|want&setflFlags); err != nil {
		return fmt.Errorf("set status flags %#o: %w", want&setflFlags, err)
	}
	return nil
}

func describe(f *image.File) string {
	if f.Ref != nil {
		return f.Kind + " " + f.Ref.Path
	}
	return f.Kind
}

// Finish completes the descriptions once every process of the tree has its
// descriptors and memory: memfd seals go on (they would forbid mapping
// the memfd writable), and the restorer lets go of the objects it
// recreated (its own open of a file would stand in the way of a lease).
func (o *Opener) Finish() error {
	return o.Refs.Finish()
}

// Lease takes again, inside process p, the leases held through its
// descriptions (once each, by the first process holding it): a lease
// belongs to its description, and /proc/locks names the process that took
// it. Call it after Finish.
func Lease(t *inject.Target, p *image.Process, o *Opener, done map[int]bool) error {
	for _, d := range p.FDs {
		f := o.file(d.File)
		for _, l := range f.Locks {
			if l.Kind != "LEASE" || done[f.ID] {
				continue
			}
			typ := unix.F_RDLCK
			if l.Write {
				typ = unix.F_WRLCK
			}
			if _, err := t.Call(unix.SYS_FCNTL, uintptr(d.FD), unix.F_SETLEASE, uintptr(typ)); err != nil {
				return fmt.Errorf("process %d fd %d: lease: %w", p.PID, d.FD, err)
			}
		}
		done[f.ID] = true
	}
	return nil
}

// Owners puts back who gets SIGIO and SIGURG for each description, and
// with which signal; after the leases, since taking one makes the taker
// the owner.
func (o *Opener) Owners() error {
	for id, h := range o.files {
		f := o.file(id)
		if err := setOwner(h, f); err != nil {
			return fmt.Errorf("file %d (%s): %w", f.ID, describe(f), err)
		}
	}
	return nil
}

// setOwner puts back the signal, the owner and O_ASYNC of a description.
func setOwner(h *os.File, f *image.File) error {
	if f.Signal != 0 {
		if _, err := unix.FcntlInt(h.Fd(), unix.F_SETSIG, f.Signal); err != nil {
			return fmt.Errorf("F_SETSIG %d: %w", f.Signal, err)
		}
	}
	if f.Owner != nil {
		own := fOwnerEx{Type: int32(f.Owner.Type), PID: int32(f.Owner.PID)}
		if _, _, e := unix.Syscall(unix.SYS_FCNTL, h.Fd(), unix.F_SETOWN_EX, uintptr(unsafe.Pointer(&own))); e != 0 {
			return fmt.Errorf("F_SETOWN_EX %d %d: %w", f.Owner.Type, f.Owner.PID, e)
		}
	}
	return nil
}

// setAsync turns O_ASYNC on for the descriptions of p that had it, from
// inside p: the signal names the descriptor number it was turned on
// through (si_fd), so it must be the process's own.
func setAsync(t *inject.Target, p *image.Process, o *Opener) error {
	for _, d := range p.FDs {
		f := o.file(d.File)
		if f.Flags&unix.O_ASYNC == 0 || o.async[f.ID] {
			continue
		}
		o.async[f.ID] = true
		cur, err := t.Call(unix.SYS_FCNTL, uintptr(d.FD), unix.F_GETFL)
		if err == nil {
			_, err = t.Call(unix.SYS_FCNTL, uintptr(d.FD), unix.F_SETFL, cur|unix.O_ASYNC)
		}
		if err != nil {
			return fmt.Errorf("process %d fd %d: O_ASYNC: %w", p.PID, d.FD, err)
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
		if f := o.file(d.File); f.Kind == KindCtty {
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
	return setAsync(t, p, o)
}

// Lock takes again, inside process p, the file locks held through its
// descriptors: flock and OFD locks once per open file description, POSIX
// locks by the process that owned them.
func Lock(t *inject.Target, p *image.Process, o *Opener, done map[int]bool) error {
	for _, d := range p.FDs {
		f := o.file(d.File)
		for _, l := range f.Locks {
			if l.Kind == "LEASE" || l.Kind == "POSIX" && l.PID != p.PID || l.Kind != "POSIX" && done[f.ID] {
				continue // leases are taken by Finish
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
