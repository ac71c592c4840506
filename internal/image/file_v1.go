package image

import (
	"encoding/json"
	"fmt"
)

// Format version 1 kept the records of several kinds of open file
// description in fields of File itself, and "count" meant two things: an
// eventfd's counter and, in the first images with memfds, their seals.
// A version 1 tree.json is decoded with these types, and each
// description's fields are turned into the record version 2 gave its kind
// (the kinds and records are named here as version 2 wrote them), which
// the kind's registered record type then decodes.

// fileV1 is a version 1 File: the fields every kind has, and the fields
// that became the records of the kinds.
type fileV1 struct {
	plainFile
	Count    uint64          `json:"count,omitempty"`
	Watches  json.RawMessage `json:"watches,omitempty"`
	PtyIndex int             `json:"pty_index,omitempty"`
	Sigmask  uint64          `json:"sigmask,omitempty"`
	Inotify  json.RawMessage `json:"inotify,omitempty"`
	NS       string          `json:"ns,omitempty"`
	NSPID    int             `json:"ns_pid,omitempty"`
	PidfdPID int             `json:"pidfd_pid,omitempty"`
	// Timer, Pipe and Socket were records already (as in version 2).
	Timer  json.RawMessage `json:"timer,omitempty"`
	Pipe   json.RawMessage `json:"pipe,omitempty"`
	Socket json.RawMessage `json:"socket,omitempty"`
}

// oldFile is a File as an older version wrote it.
type oldFile interface {
	// upgrade returns it as this version's File (nil for a null one).
	upgrade() (*File, error)
}

// decodeOldTree decodes a tree.json of an older version, whose files are
// F, into this version's records.
func decodeOldTree[F oldFile](b []byte) (*Tree, error) {
	var v struct {
		Tree
		Files []F `json:"files"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	t := v.Tree
	t.Files = make([]*File, len(v.Files))
	for i, f := range v.Files {
		g, err := f.upgrade()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		t.Files[i] = g
	}
	return &t, nil
}

// upgrade gives f's kind its record from the fields version 1 kept it in.
// The fields of other kinds were never read, and are dropped.
func (f *fileV1) upgrade() (*File, error) {
	if f == nil {
		return nil, nil
	}
	g := File(f.plainFile)
	var rec any
	switch g.Kind {
	case "eventfd":
		rec = struct {
			Counter uint64 `json:"counter"`
		}{f.Count}
	case "memfd":
		if g.Ref != nil && !g.Ref.Memfd {
			// Before Ref.Memfd, a memfd's Ref was its path and Count its
			// seals: it is the one object no path leads to.
			r := *g.Ref
			r.Memfd, r.Deleted, r.Seals = true, true, int(f.Count)
			g.Ref = &r
		}
	case "epoll":
		rec = struct {
			Watches json.RawMessage `json:"watches,omitempty"`
		}{f.Watches}
	case "pty-master", "pty-slave", "hung-up-terminal":
		rec = struct {
			Index int `json:"index"`
		}{f.PtyIndex}
	case "signalfd":
		rec = struct {
			Sigmask uint64 `json:"sigmask"`
		}{f.Sigmask}
	case "inotify":
		rec = struct {
			Watches json.RawMessage `json:"watches,omitempty"`
		}{f.Inotify}
	case "namespace":
		rec = struct {
			Type string `json:"type"`
			PID  int    `json:"pid"`
		}{f.NS, f.NSPID}
	case "pidfd":
		rec = struct {
			PID int `json:"pid"`
		}{f.PidfdPID}
	case "timerfd":
		rec = f.Timer
	case "pipe", "fifo":
		rec = f.Pipe
	case FileSocket:
		rec = f.Socket
	}
	var raw []byte
	if rec != nil {
		var err error
		if raw, err = json.Marshal(rec); err != nil {
			return nil, err
		}
	}
	return &g, g.decodeRecord(raw)
}
