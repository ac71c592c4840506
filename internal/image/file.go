package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
)

// File is an open file description: what every kind has (its kind, status
// flags, offset, the file it names, its locks and the owner of its SIGIO),
// and the record of its own kind. The image knows the kinds only through
// their registration (RegisterFileKind): the package that carries a kind
// (internal/files, one file per kind) defines its record and the record's
// rules.
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

	// Record is the state only the description's kind has, of the type
	// its kind registered (nil for the kinds without one). It is encoded
	// as "record".
	Record FileRecord `json:"-"`
}

// FileRecord is the record of one kind of open file description.
type FileRecord interface {
	// Validate checks the record on its own, against what c has seen of
	// the tree so far (its ptys, the files of its MANIFEST).
	Validate(c *Checker) error
}

// FileLinker is a FileRecord that refers to other parts of the tree:
// Link checks those references once every process and description of
// the tree is known.
type FileLinker interface {
	Link(l *Links) error
}

// FileKind is what the image knows of a kind of open file description.
type FileKind struct {
	// Name is the kind's name (File.Kind).
	Name string
	// Ref says that the kind names a file: its descriptions have a Ref.
	Ref bool
	// New returns an empty record of the kind, which decoding fills; nil
	// for a kind without a record.
	New func() FileRecord
}

var (
	fileKindsMu sync.RWMutex
	fileKinds   = map[string]FileKind{}
)

// RegisterFileKind makes a kind of open file description known to the
// image: images may hold it, decoding fills its record, validation
// applies its rules. It is called while the program initializes, by the
// package that carries the kind (as database/sql drivers register); a
// kind registered twice, or without a name, is a programming error and
// panics.
func RegisterFileKind(k FileKind) {
	fileKindsMu.Lock()
	defer fileKindsMu.Unlock()
	if _, dup := fileKinds[k.Name]; dup || k.Name == "" {
		panic(fmt.Sprintf("image: file kind %q registered twice or without a name", k.Name))
	}
	fileKinds[k.Name] = k
}

func fileKind(name string) (FileKind, bool) {
	fileKindsMu.RLock()
	defer fileKindsMu.RUnlock()
	k, ok := fileKinds[name]
	return k, ok
}

// FileKinds lists the kinds of open file description an image may hold
// (the registered ones), sorted.
func FileKinds() []string {
	fileKindsMu.RLock()
	defer fileKindsMu.RUnlock()
	out := make([]string, 0, len(fileKinds))
	for k := range fileKinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// plainFile is File without its JSON methods, for them to use.
type plainFile File

// MarshalJSON encodes f with its record under "record".
func (f *File) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		*plainFile
		Record FileRecord `json:"record,omitempty"`
	}{(*plainFile)(f), f.Record})
}

// UnmarshalJSON decodes f and its record, as the record type its kind
// registered. The record of a kind that is not registered is dropped:
// validation refuses the kind.
func (f *File) UnmarshalJSON(b []byte) error {
	v := struct {
		*plainFile
		Record json.RawMessage `json:"record"`
	}{plainFile: (*plainFile)(f)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return f.decodeRecord(v.Record)
}

// decodeRecord decodes raw as the record of f's kind.
func (f *File) decodeRecord(raw json.RawMessage) error {
	f.Record = nil
	k, ok := fileKind(f.Kind)
	if !ok || k.New == nil || len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	r := k.New()
	if err := json.Unmarshal(raw, r); err != nil {
		return fmt.Errorf("file %d (%s): %w", f.ID, f.Kind, err)
	}
	f.Record = r
	return nil
}

// Socket returns the record of a socket description (nil for any other).
func (f *File) Socket() *Socket {
	s, _ := f.Record.(*Socket)
	return s
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

func (f *File) validate(c *Checker) error {
	k, ok := fileKind(f.Kind)
	if !ok {
		return fmt.Errorf("unknown kind %q", f.Kind)
	}
	if k.Ref && f.Ref == nil {
		return errors.New("no file reference (ref)")
	}
	if f.Ref != nil {
		if err := f.Ref.validate(c); err != nil {
			return err
		}
	}
	if k.New != nil {
		want := k.New()
		if f.Record == nil || reflect.ValueOf(f.Record).IsNil() {
			return fmt.Errorf("no %s state (record)", f.Kind)
		}
		if reflect.TypeOf(f.Record) != reflect.TypeOf(want) {
			return fmt.Errorf("a record of type %T, not %T", f.Record, want)
		}
		if err := f.Record.Validate(c); err != nil {
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

// HasPty reports whether the tree has the pseudo-terminal index.
func (c *Checker) HasPty(index int) bool { return c.ptys[index] }

// Links is what the records of a tree's descriptions may refer to, for
// their Link checks: its processes, threads, descriptions, and the
// objects its Refs recreate.
type Links struct {
	procs map[int]*Process
	tids  map[int]bool
	files map[int]bool
	// ref checks a Ref and that every Ref of its object agrees on it.
	ref func(what string, r *Ref) error
}

// Process reports whether pid is a process of the tree.
func (l *Links) Process(pid int) bool { return l.procs[pid] != nil }

// Thread reports whether tid is a thread of the tree (or a zombie).
func (l *Links) Thread(tid int) bool { return l.tids[tid] }

// File reports whether id is an open file description of the tree.
func (l *Links) File(id int) bool { return l.files[id] }

// Ref checks r (nil: nothing to check), which what refers to: a file
// that the restore opens, or recreates as every other Ref of its object
// says.
func (l *Links) Ref(what string, r *Ref) error { return l.ref(what, r) }
