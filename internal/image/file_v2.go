package image

import (
	"encoding/json"
	"fmt"
)

// Format version 2 gave each kind of open file description a record of
// its own, under a key of File named for it; version 3 puts every kind's
// record under "record", decoded as the type the kind registered (so that
// a kind, its record and the record's rules are one file of
// internal/files). The records themselves are the same.

// fileV2 is a version 2 File: the fields every kind has, and its record
// under one of the keys version 2 had.
type fileV2 struct {
	plainFile
	Pipe      json.RawMessage `json:"pipe"`      // pipe, fifo
	Pty       json.RawMessage `json:"pty"`       // pty-master, pty-slave, hung-up-terminal
	Socket    json.RawMessage `json:"socket"`    // socket
	Eventfd   json.RawMessage `json:"eventfd"`   // eventfd
	Epoll     json.RawMessage `json:"epoll"`     // epoll
	Signalfd  json.RawMessage `json:"signalfd"`  // signalfd
	Timer     json.RawMessage `json:"timer"`     // timerfd
	Inotify   json.RawMessage `json:"inotify"`   // inotify
	Namespace json.RawMessage `json:"namespace"` // namespace
	Pidfd     json.RawMessage `json:"pidfd"`     // pidfd
}

// upgrade decodes the record f holds (a description holds at most one).
func (f *fileV2) upgrade() (*File, error) {
	if f == nil {
		return nil, nil
	}
	g := File(f.plainFile)
	var raw json.RawMessage
	for _, r := range []json.RawMessage{f.Pipe, f.Pty, f.Socket, f.Eventfd, f.Epoll, f.Signalfd, f.Timer, f.Inotify, f.Namespace, f.Pidfd} {
		if len(r) == 0 || string(r) == "null" {
			continue
		}
		if raw != nil {
			return nil, fmt.Errorf("file %d (%s): two records", g.ID, g.Kind)
		}
		raw = r
	}
	return &g, g.decodeRecord(raw)
}
