// Package files checkpoints and restores file descriptors and the open file
// descriptions behind them: regular files (including deleted ones),
// directories, character devices, terminals, pipes, eventfds and epoll
// instances. Descriptions shared between processes stay shared.
package files

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/fileref"
	"github.com/seamless-linux/seamless/internal/image"
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
	Refs *fileref.Dumper
	// Files are the open file descriptions found so far.
	Files []*image.File
	// InTree reports whether a PID belongs to the tree being dumped.
	InTree func(pid int) bool
	// Sockets checkpoints socket descriptors.
	Sockets *sockets.Dumper

	// Scope are the processes checkpointed together.
	Scope *Scope

	holders map[[2]uint64][]holder
	// byFD is the open file description of each (pid, fd) dumped so far.
	byFD  map[[2]int]*image.File
	pipes map[uint64]*pipeEnds
	// epolls are the epoll descriptions whose watches Finish resolves.
	epolls []epollDump
	// masters are the pty masters the tree holds, by index.
	masters map[int]*os.File
	// Ptys are the pseudo-terminals of the tree, complete after Finish.
	Ptys []*image.Pty
}

type holder struct {
	pid, fd int
	file    *image.File
}

// NewDumper returns a Dumper for the processes pids that stores deleted
// files' contents with c.
func NewDumper(refs *fileref.Dumper, pids []int) *Dumper {
	s := NewScope(pids)
	return &Dumper{Refs: refs, InTree: s.Has, Scope: s, Sockets: sockets.NewDumper(s.Has),
		holders: map[[2]uint64][]holder{}, byFD: map[[2]int]*image.File{}, pipes: map[uint64]*pipeEnds{},
		masters: map[int]*os.File{}}
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
	ds, err := openDesc(pid, pidfd, fd)
	if err != nil {
		return nil, false, err
	}
	defer func() {
		if !ds.kept {
			ds.local.Close()
		}
	}()
	cloexec := ds.info.flags&unix.O_CLOEXEC != 0
	key := [2]uint64{ds.st.Dev, ds.st.Ino}
	for _, h := range d.holders[key] {
		if same, err := kcmpFile(pid, h.pid, fd, h.fd); err != nil {
			return nil, false, err
		} else if same {
			d.byFD[[2]int{pid, fd}] = h.file
			return h.file, cloexec, nil
		}
	}
	k, err := decide(d.Scope, ds)
	if err != nil {
		return nil, false, err
	}
	f := &image.File{ID: len(d.Files) + 1, Kind: k.name, Flags: ds.info.flags &^ unix.O_CLOEXEC, Pos: ds.info.pos, Locks: ds.info.locks}
	if err := k.dump(d, ds, f); err != nil {
		var u *Unsupported
		if errors.As(err, &u) {
			return nil, false, err
		}
		return nil, false, fmt.Errorf("process %d fd %d: %w", pid, fd, err)
	}
	dumpOwner(ds, f)
	d.Files = append(d.Files, f)
	d.holders[key] = append(d.holders[key], holder{pid: pid, fd: fd, file: f})
	d.byFD[[2]int{pid, fd}] = f
	return f, cloexec, nil
}

// dumpOwner records who gets SIGIO and SIGURG for the description
// (F_GETOWN_EX) and which signal (F_GETSIG): both belong to the open file
// description, which the checkpointer's duplicate shares.
func dumpOwner(ds *desc, f *image.File) {
	if ds.info.flags&unix.O_PATH != 0 {
		return
	}
	f.Owner = ownerOf(ds.local)
	if sig, err := unix.FcntlInt(ds.local.Fd(), unix.F_GETSIG, 0); err == nil && sig != 0 {
		f.Signal = sig
	}
}

// F_OWNER_TID, F_OWNER_PID and F_OWNER_PGRP from linux/fcntl.h.
const (
	fOwnerTID  = 0
	fOwnerPID  = 1
	fOwnerPGRP = 2
)

// fOwnerEx is struct f_owner_ex.
type fOwnerEx struct {
	Type int32
	PID  int32
}

// ownerOf returns the owner of SIGIO and SIGURG of the description h, nil
// when there is none (or it has exited).
func ownerOf(h *os.File) *image.Owner {
	var own fOwnerEx
	if _, _, e := unix.Syscall(unix.SYS_FCNTL, h.Fd(), unix.F_GETOWN_EX, uintptr(unsafe.Pointer(&own))); e != 0 || own.PID == 0 {
		return nil
	}
	return &image.Owner{Type: int(own.Type), PID: int(own.PID)}
}

// checkOwner refuses a description whose SIGIO and SIGURG go to a process
// outside the tree: after a reboot, its PID names another process.
func checkOwner(s *Scope, d *desc) error {
	if d.info.flags&unix.O_PATH != 0 {
		return nil
	}
	own := ownerOf(d.local)
	if own == nil {
		return nil
	}
	switch own.Type {
	case fOwnerTID:
		if st, err := proc.ReadStatus(own.PID, own.PID); err == nil && s.Has(st.Int("Tgid")) {
			return nil
		}
	case fOwnerPID:
		if s.Has(own.PID) {
			return nil
		}
	case fOwnerPGRP:
		for _, pid := range s.PIDs {
			if st, err := proc.ReadStat(pid); err == nil && st.PGID == own.PID {
				return nil
			}
		}
		return fmt.Errorf("SIGIO and SIGURG going to process group %d (which no process of the tree is in)", own.PID)
	}
	return fmt.Errorf("SIGIO and SIGURG going to process %d (outside the tree)", own.PID)
}

// Finish completes what needs the whole tree, once every process has been
// dumped: the sockets, the epoll watches, the ptys and the pipes.
func (d *Dumper) Finish() error {
	if err := d.Sockets.Finish(); err != nil {
		return err
	}
	if err := d.finishEpolls(); err != nil {
		return err
	}
	if err := d.finishPtys(); err != nil {
		return err
	}
	return d.finishPipes()
}

func kcmpFile(pid1, pid2, fd1, fd2 int) (bool, error) {
	same, err := kcmp(pid1, pid2, kcmpTypeFile, fd1, fd2)
	if err != nil {
		return false, fmt.Errorf("kcmp %d/%d %d/%d: %w", pid1, fd1, pid2, fd2, err)
	}
	return same, nil
}

// kcmpTypeFile is KCMP_FILE from linux/kcmp.h.
const kcmpTypeFile = 0
