package image

import (
	"encoding/json"
	"fmt"
)

// Format version 1 kept the records of several kinds of open file
// description in fields of File itself, and "count" meant two things: an
// eventfd's counter and, in the first images with memfds, their seals.
// Version 2 gives each kind a record of its own. A version 1 tree.json is
// decoded with these types and turned into version 2 records before it
// is validated; nothing else reads version 1.

// treeV1 is a version 1 tree.json: a Tree whose files are fileV1.
type treeV1 struct {
	Tree
	Files []*fileV1 `json:"files"`
}

// fileV1 is a version 1 File: the fields of today's File, and the fields
// that became the records of the kinds.
type fileV1 struct {
	File
	Count    uint64         `json:"count,omitempty"`
	Watches  []EpollWatch   `json:"watches,omitempty"`
	PtyIndex int            `json:"pty_index,omitempty"`
	Sigmask  uint64         `json:"sigmask,omitempty"`
	Inotify  []InotifyWatch `json:"inotify,omitempty"`
	NS       string         `json:"ns,omitempty"`
	NSPID    int            `json:"ns_pid,omitempty"`
	PidfdPID int            `json:"pidfd_pid,omitempty"`
}

// decodeTreeV1 decodes a version 1 tree.json into today's records.
func decodeTreeV1(b []byte) (*Tree, error) {
	var v treeV1
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	t := v.Tree
	t.Files = make([]*File, len(v.Files))
	for i, f := range v.Files {
		if f != nil {
			t.Files[i] = f.upgrade()
		}
	}
	return &t, nil
}

// upgrade gives f's kind its record from the fields version 1 kept it in.
// The fields of other kinds were never read, and are dropped.
func (f *fileV1) upgrade() *File {
	g := f.File
	switch g.Kind {
	case FileEventfd:
		g.Eventfd = &Eventfd{Counter: f.Count}
	case FileMemfd:
		if g.Ref != nil && !g.Ref.Memfd {
			// Before Ref.Memfd, a memfd's Ref was its path and Count its
			// seals: it is the one object no path leads to.
			r := *g.Ref
			r.Memfd, r.Deleted, r.Seals = true, true, int(f.Count)
			g.Ref = &r
		}
	case FileEpoll:
		g.Epoll = &Epoll{Watches: f.Watches}
	case FilePtyMaster, FilePtySlave, FileHungUp:
		g.Pty = &PtyEnd{Index: f.PtyIndex}
	case FileSignalfd:
		g.Signalfd = &Signalfd{Sigmask: f.Sigmask}
	case FileInotify:
		g.Inotify = &Inotify{Watches: f.Inotify}
	case FileNamespace:
		g.Namespace = &Namespace{Type: f.NS, PID: f.NSPID}
	case FilePidfd:
		g.Pidfd = &Pidfd{PID: f.PidfdPID}
	}
	return &g
}
