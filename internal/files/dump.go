// Package files checkpoints and restores file descriptors and the open file
// descriptions behind them: regular files (including deleted ones),
// directories, character devices, terminals, pipes, eventfds and epoll
// instances. Descriptions shared between processes stay shared.
package files

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/mem"
	"github.com/seamless-linux/seamless/internal/proc"
	"github.com/seamless-linux/seamless/internal/sockets"
)

// Unsupported is returned for a file descriptor seamless cannot checkpoint.
type Unsupported struct {
	PID, FD int
	What    string
	// Err is the underlying reason, when there is one.
	Err error
}

// Unwrap returns the underlying reason.
func (e *Unsupported) Unwrap() error { return e.Err }

func (e *Unsupported) Error() string {
	return fmt.Sprintf("process %d fd %d: %s is not supported", e.PID, e.FD, e.What)
}

// Dumper collects the open files of a process tree.
type Dumper struct {
	Contents *mem.Contents
	// Files are the open file descriptions found so far.
	Files []*image.File
	// InTree reports whether a PID belongs to the tree being dumped.
	InTree func(pid int) bool
	// Sockets checkpoints socket descriptors.
	Sockets *sockets.Dumper

	holders map[[2]uint64][]holder
	pipes   map[uint64]*pipeEnds
	// masters are the pty masters the tree holds, by index; slaves the
	// slave descriptions, decided in Finish.
	masters map[int]*os.File
	slaves  []*image.File
	// Ptys are the pseudo-terminals of the tree, complete after Finish.
	Ptys []*image.Pty
}

type holder struct {
	pid, fd int
	file    *image.File
}

type pipeEnds struct {
	link  string   // what /proc/PID/fd shows for it: pipe:[N] or the FIFO's path
	read  *os.File // a read end held by the tree, to peek at buffered data
	files []*image.File
}

// NewDumper returns a Dumper that stores deleted files' contents with c.
func NewDumper(c *mem.Contents, inTree func(int) bool) *Dumper {
	return &Dumper{Contents: c, InTree: inTree, Sockets: sockets.NewDumper(inTree),
		holders: map[[2]uint64][]holder{}, pipes: map[uint64]*pipeEnds{}, masters: map[int]*os.File{}}
}

// Close releases the descriptors the Dumper holds. kill says whether the
// tree is about to be killed: its connections must then close silently.
func (d *Dumper) Close(kill bool) {
	for _, p := range d.pipes {
		if p.read != nil {
			p.read.Close()
		}
	}
	for _, m := range d.masters {
		m.Close()
	}
	d.Sockets.Close(kill)
}

// Dump describes every fd of pid. The process must be stopped.
func (d *Dumper) Dump(pid int) ([]image.FD, error) {
	ents, err := os.ReadDir(proc.Path(pid, "fd"))
	if err != nil {
		return nil, fmt.Errorf("list fds of %d: %w", pid, err)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	var out []image.FD
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, cloexec, err := d.dumpFD(pid, pidfd, fd)
		if err != nil {
			return nil, err
		}
		out = append(out, image.FD{FD: fd, File: f.ID, Cloexec: cloexec})
	}
	return out, nil
}

func (d *Dumper) dumpFD(pid, pidfd, fd int) (*image.File, bool, error) {
	link, err := os.Readlink(proc.Path(pid, "fd", strconv.Itoa(fd)))
	if err != nil {
		return nil, false, fmt.Errorf("process %d fd %d: %w", pid, fd, err)
	}
	info, err := readFdinfo(pid, fd)
	if err != nil {
		return nil, false, err
	}
	lfd, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return nil, false, fmt.Errorf("process %d fd %d: pidfd_getfd: %w", pid, fd, err)
	}
	local := os.NewFile(uintptr(lfd), link)
	keep := false
	defer func() {
		if !keep {
			local.Close()
		}
	}()
	var st unix.Stat_t
	if err := unix.Fstat(lfd, &st); err != nil {
		return nil, false, fmt.Errorf("process %d fd %d: stat: %w", pid, fd, err)
	}
	cloexec := info.flags&unix.O_CLOEXEC != 0
	key := [2]uint64{st.Dev, st.Ino}
	for _, h := range d.holders[key] {
		if same, err := kcmpFile(pid, h.pid, fd, h.fd); err != nil {
			return nil, false, err
		} else if same {
			return h.file, cloexec, nil
		}
	}
	f := &image.File{ID: len(d.Files) + 1, Flags: info.flags &^ unix.O_CLOEXEC, Pos: info.pos, Locks: info.locks}
	unsupported := func(what string) (*image.File, bool, error) {
		return nil, false, &Unsupported{PID: pid, FD: fd, What: what}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		name, deleted := strings.CutSuffix(link, " (deleted)")
		if strings.HasPrefix(link, "/memfd:") {
			f.Kind = image.FileMemfd
		} else if strings.HasPrefix(link, "anon_inode:") {
			return unsupported(link)
		} else {
			f.Kind = image.FileRegular
		}
		if f.Ref, err = d.Contents.RefFile(local, name, deleted || f.Kind == image.FileMemfd); err != nil {
			return nil, false, fmt.Errorf("process %d fd %d: %w", pid, fd, err)
		}
		if f.Kind == image.FileMemfd {
			if seals, err := unix.FcntlInt(uintptr(lfd), unix.F_GET_SEALS, 0); err == nil {
				f.Count = uint64(seals)
			}
		}
	case unix.S_IFDIR:
		f.Kind = image.FileDirectory
		f.Ref = &image.Ref{Path: link, Mode: st.Mode, Inode: st.Ino}
	case unix.S_IFCHR:
		major, minor := unix.Major(st.Rdev), unix.Minor(st.Rdev)
		switch {
		case CharDeviceKind(st.Rdev) == "terminal" && !isPtyMaster(st.Rdev) && hungUp(lfd):
			// Its pty master was closed (or vhangup ran): a dead
			// descriptor, whatever /dev/pts/N became since.
			f.Kind, f.PtyIndex = image.FileHungUp, ptySlaveIndex(st.Rdev)
		case isPtyMaster(st.Rdev):
			n, err := unix.IoctlGetInt(lfd, unix.TIOCGPTN)
			if err != nil {
				return nil, false, fmt.Errorf("process %d fd %d: pty number: %w", pid, fd, err)
			}
			f.Kind, f.PtyIndex = image.FilePtyMaster, n
			if d.masters[n] == nil {
				d.masters[n], keep = local, true
			}
		case ptySlaveIndex(st.Rdev) >= 0:
			f.Kind, f.PtyIndex = image.FilePtySlave, ptySlaveIndex(st.Rdev)
			d.slaves = append(d.slaves, f)
		case major == 5 && minor == 0:
			// /dev/tty: opened again by the restored process itself, once
			// its session has its controlling terminal back.
			f.Kind = image.FileCtty
		case CharDeviceKind(st.Rdev) == "device":
			f.Kind = image.FileDevice
		case CharDeviceKind(st.Rdev) == "terminal":
			f.Kind = image.FileTerminal
		default:
			return unsupported(fmt.Sprintf("character device %s (%d:%d)", link, major, minor))
		}
		f.Rdev = st.Rdev
		f.Ref = &image.Ref{Path: link, Mode: st.Mode, Inode: st.Ino}
	case unix.S_IFIFO:
		f.Kind = image.FilePipe
		if !strings.HasPrefix(link, "pipe:") {
			f.Kind = image.FileFIFO
			f.Ref = &image.Ref{Path: link, Mode: st.Mode, Inode: st.Ino}
		}
		f.Pipe = &image.Pipe{Inode: st.Ino, Write: f.Flags&unix.O_ACCMODE == unix.O_WRONLY}
		if c, err := unix.FcntlInt(uintptr(lfd), unix.F_GETPIPE_SZ, 0); err == nil {
			f.Pipe.Capacity = c
		}
		p := d.pipes[st.Ino]
		if p == nil {
			p = &pipeEnds{link: link}
			d.pipes[st.Ino] = p
		}
		p.files = append(p.files, f)
		if f.Flags&unix.O_ACCMODE != unix.O_WRONLY && p.read == nil {
			p.read, keep = local, true
		}
	case unix.S_IFSOCK:
		f.Kind = image.FileSocket
		keep = true // the socket dumper owns local from here on
		if f.Socket, err = d.Sockets.Dump(local, pid, fd); err != nil {
			return nil, false, &Unsupported{PID: pid, FD: fd, What: fmt.Sprintf("socket %s (%v)", link, err), Err: err}
		}
	default:
		switch link {
		case "anon_inode:[eventfd]":
			f.Kind = image.FileEventfd
			f.Count = info.eventfdCount
			if info.semaphore {
				f.Flags |= unix.EFD_SEMAPHORE
			}
		case "anon_inode:[eventpoll]":
			f.Kind = image.FileEpoll
			f.Watches = info.watches
		case "anon_inode:[signalfd]":
			f.Kind = image.FileSignalfd
			f.Sigmask = info.sigmask
		case "anon_inode:[timerfd]":
			f.Kind = image.FileTimerfd
			t := info.timer
			f.Timer = &t
		case "anon_inode:inotify":
			f.Kind = image.FileInotify
			if f.Inotify, err = inotifyPaths(info.inotify); err != nil {
				return nil, false, fmt.Errorf("process %d fd %d: %w", pid, fd, err)
			}
		default:
			return unsupported(link)
		}
	}
	d.Files = append(d.Files, f)
	d.holders[key] = append(d.holders[key], holder{pid: pid, fd: fd, file: f})
	return f, cloexec, nil
}

// Finish completes the pipes once every process has been dumped: a pipe
// that a process outside the tree also holds is marked external (restore
// reconnects to it); otherwise its buffered bytes are saved.
func (d *Dumper) Finish() error {
	if err := d.Sockets.Finish(); err != nil {
		return err
	}
	// A slave whose master is outside the tree is somebody else's terminal.
	for _, f := range d.slaves {
		if d.masters[f.PtyIndex] == nil {
			f.Kind = image.FileTerminal
		}
	}
	for n, m := range d.masters {
		p, err := capturePty(m, n)
		if err != nil {
			return err
		}
		d.Ptys = append(d.Ptys, p)
	}
	if len(d.pipes) == 0 {
		return nil
	}
	outside, err := outsideHolders(d.InTree)
	if err != nil {
		return err
	}
	for ino, p := range d.pipes {
		ext := outside[p.link]
		var data []byte
		if !ext && p.read != nil {
			if data, err = peekPipe(p.read); err != nil {
				return fmt.Errorf("pipe %d: %w", ino, err)
			}
		}
		for _, f := range p.files {
			f.Pipe.External = ext
			f.Pipe.Data = nil
		}
		if len(data) > 0 {
			p.files[0].Pipe.Data = data
		}
	}
	return nil
}

// outsideHolders lists the fd links of processes outside the tree, for the
// pipes and FIFOs among them.
func outsideHolders(inTree func(int) bool) (map[string]bool, error) {
	res := map[string]bool{}
	self := os.Getpid() // the checkpointer's own duplicates do not count
	ents, err := os.ReadDir(proc.Root)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || inTree(pid) || pid == self {
			continue
		}
		fds, err := os.ReadDir(proc.Path(pid, "fd"))
		if err != nil {
			continue // gone, or a kernel thread
		}
		for _, fd := range fds {
			l, err := os.Readlink(proc.Path(pid, "fd", fd.Name()))
			if err != nil {
				continue
			}
			res[l] = true
		}
	}
	return res, nil
}

// peekPipe returns the bytes buffered in the pipe whose read end is r,
// without consuming them: tee(2) duplicates them into a private pipe.
func peekPipe(r *os.File) ([]byte, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, err
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if sz, err := unix.FcntlInt(r.Fd(), unix.F_GETPIPE_SZ, 0); err == nil {
		unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, sz)
	}
	n, err := unix.Tee(int(r.Fd()), p[1], 1<<30, unix.SPLICE_F_NONBLOCK)
	if err == unix.EAGAIN {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tee: %w", err)
	}
	buf := make([]byte, n)
	got := 0
	for got < int(n) {
		m, err := unix.Read(p[0], buf[got:])
		if err != nil {
			return nil, err
		}
		got += m
	}
	return buf, nil
}

func kcmpFile(pid1, pid2, fd1, fd2 int) (bool, error) {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2), kcmpTypeFile, uintptr(fd1), uintptr(fd2), 0)
	if e != 0 {
		return false, fmt.Errorf("kcmp %d/%d %d/%d: %w", pid1, fd1, pid2, fd2, e)
	}
	return r == 0, nil
}

// kcmpTypeFile is KCMP_FILE from linux/kcmp.h.
const kcmpTypeFile = 0
