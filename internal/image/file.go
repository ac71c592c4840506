package image

import (
	"errors"
	"fmt"
	"slices"
)

// File is an open file description: what every kind has (its kind, status
// flags, offset, the file it names, its locks and the owner of its SIGIO),
// and the record of its own kind, named for the kind (eventfd, epoll, ...).
// Each kind's record, its validation and its constant are in a file of
// their own (file_KIND.go); fileKinds lists them.
type File struct {
	ID    int    `json:"id"`
	Kind  string `json:"kind"`
	Flags int    `json:"flags"`
	Pos   int64  `json:"pos"`
	Ref   *Ref   `json:"ref,omitempty"`
	Rdev  uint64 `json:"rdev,omitempty"`
	// Locks are the file locks taken through this open file description.
	Locks []Lock `json:"locks,omitempty"`
	// Owner is the process (or thread, or group) that gets SIGIO and SIGURG
	// for this description (F_GETOWN_EX), and Signal the signal sent instead
	// of SIGIO (F_GETSIG), 0 for SIGIO itself.
	Owner  *Owner `json:"owner,omitempty"`
	Signal int    `json:"signal,omitempty"`

	// The record of the description's kind: exactly the one its Kind names
	// is set.
	Pipe      *Pipe      `json:"pipe,omitempty"`      // pipe, fifo
	Pty       *PtyEnd    `json:"pty,omitempty"`       // pty-master, pty-slave, hung-up-terminal
	Socket    *Socket    `json:"socket,omitempty"`    // socket
	Eventfd   *Eventfd   `json:"eventfd,omitempty"`   // eventfd
	Epoll     *Epoll     `json:"epoll,omitempty"`     // epoll
	Signalfd  *Signalfd  `json:"signalfd,omitempty"`  // signalfd
	Timer     *Timer     `json:"timer,omitempty"`     // timerfd
	Inotify   *Inotify   `json:"inotify,omitempty"`   // inotify
	Namespace *Namespace `json:"namespace,omitempty"` // namespace
	Pidfd     *Pidfd     `json:"pidfd,omitempty"`     // pidfd
}

// Owner is an F_SETOWN_EX owner: Type is F_OWNER_TID (0), F_OWNER_PID (1) or
// F_OWNER_PGRP (2).
type Owner struct {
	Type int `json:"type"`
	PID  int `json:"pid"`
}

// Lock is a file lock: flock(2) ("FLOCK"), a process-owned POSIX record
// lock ("POSIX", owned by PID), an open-file-description lock ("OFDLCK") or
// a lease (F_SETLEASE, "LEASE", a read or write lease over the whole file),
// shared or exclusive, over [Start, End] (End -1: to the end of the file).
type Lock struct {
	Kind  string `json:"kind"`
	Write bool   `json:"write"`
	PID   int    `json:"pid,omitempty"`
	Start int64  `json:"start"`
	End   int64  `json:"end"`
}

// FD is a file descriptor of a process.
type FD struct {
	FD      int  `json:"fd"`
	File    int  `json:"file"`
	Cloexec bool `json:"cloexec,omitempty"`
}

// fileKind is what the image knows of one kind of open file description.
type fileKind struct {
	// ref is set for the kinds that name a file (Ref).
	ref bool
	// validate checks the kind's record on its own (nil: nothing to check).
	validate func(f *File, c *checker) error
	// link checks, once every process and description of the tree is
	// known, what the kind's record refers to (nil: nothing).
	link func(f *File, l *links) error
}

// fileKinds lists every kind of open file description an image may hold.
// A new kind is a file_KIND.go with its record, its constant and its
// checks, a field in File and a line here.
var fileKinds = map[string]fileKind{
	FileRegular:   {ref: true},
	FileDirectory: {ref: true},
	FileMemfd:     {ref: true},
	FilePath:      {ref: true},
	FileDevice:    {ref: true},
	FileTerminal:  {ref: true},
	FileCtty:      {},
	FileFIFO:      {ref: true, validate: validatePipe},
	FilePipe:      {validate: validatePipe},
	FilePtyMaster: {validate: validatePtyEnd},
	FilePtySlave:  {validate: validatePtyEnd},
	FileHungUp:    {validate: validateHungUp},
	FileSocket:    {validate: validateSocket},
	FileEventfd:   {validate: validateEventfd},
	FileEpoll:     {validate: validateEpoll, link: linkEpoll},
	FileSignalfd:  {validate: validateSignalfd},
	FileTimerfd:   {validate: validateTimerfd},
	FileInotify:   {validate: validateInotify, link: linkInotify},
	FileNamespace: {validate: validateNamespace, link: linkNamespace},
	FilePidfd:     {validate: validatePidfd, link: linkPidfd},
}

// FileKinds lists the kinds of open file description an image may hold,
// sorted.
func FileKinds() []string {
	out := make([]string, 0, len(fileKinds))
	for k := range fileKinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// need says that a kind's record (json: its key) is missing.
func need[T any](record *T, key string) error {
	if record == nil {
		return fmt.Errorf("no %s state (%s)", key, key)
	}
	return nil
}

func (f *File) validate(c *checker) error {
	k, ok := fileKinds[f.Kind]
	if !ok {
		return fmt.Errorf("unknown kind %q", f.Kind)
	}
	if k.ref && f.Ref == nil {
		return errors.New("no file reference (ref)")
	}
	if f.Ref != nil {
		if err := f.Ref.validate(c); err != nil {
			return err
		}
	}
	if k.validate != nil {
		if err := k.validate(f, c); err != nil {
			return err
		}
	}
	for _, l := range f.Locks {
		if err := l.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lock) validate() error {
	switch l.Kind {
	case "FLOCK", "POSIX", "OFDLCK", "LEASE":
	default:
		return fmt.Errorf("unknown lock kind %q", l.Kind)
	}
	if l.Start < 0 || l.End < -1 || (l.End >= 0 && l.End < l.Start) {
		return fmt.Errorf("%s lock over a bad range %d-%d", l.Kind, l.Start, l.End)
	}
	return nil
}

// links is what the records of a tree's descriptions may refer to, for
// the kinds' link checks: its processes, threads, descriptions, and the
// objects its Refs recreate.
type links struct {
	procs map[int]*Process
	tids  map[int]bool
	files map[int]bool
	// ref checks a Ref and that every Ref of its object agrees on it.
	ref func(what string, r *Ref) error
}
