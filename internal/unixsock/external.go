package unixsock

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// JournalStream is where journald accepts the standard output and error
// streams of services. The restore of a unit replaces a connection to it
// with the unit's new stream, which the unit's anchor hands over.
const JournalStream = "/run/systemd/journal/stdout"

// Fate is what a restore makes of a connection to a peer outside the tree.
type Fate int

const (
	// Replaced: the caller hands over a socket already connected to the new
	// system's equivalent of the peer (the unit's new journal stream, which
	// the anchor passes; `seamless restore --unix-peer`).
	Replaced Fate = iota
	// Reconnected: a datagram socket is connected again to the peer's name.
	// Datagram peers keep no state per sender, so nothing is lost.
	Reconnected
	// Closed: the connection comes back as one whose peer has closed it:
	// the program reads what was queued, then end of file, and its writes
	// fail with EPIPE, as after the peer's restart. A stream or seqpacket
	// peer (a database, redis, D-Bus, a client of the tree's server) keeps
	// state per connection (a session, a transaction, an authentication)
	// that a new connection by the same name would not have: the program's
	// own reconnect logic must run instead.
	Closed
)

// ExternalFate decides the fate of a connection of type typ (SOCK_STREAM,
// SOCK_DGRAM, SOCK_SEQPACKET) to the outside peer e; replaced says whether
// the caller gives a replacement for e.Key. The plan, the checkpoint's
// description and the restore all decide with it.
func ExternalFate(typ int, e *image.UnixExternal, replaced bool) Fate {
	switch {
	case replaced:
		return Replaced
	case typ == unix.SOCK_DGRAM && len(e.Name) > 0:
		return Reconnected
	}
	return Closed
}

// Describe says in words what fate f does to a connection to key.
func (f Fate) Describe(key string) string {
	switch f {
	case Replaced:
		return fmt.Sprintf("connection to %q outside the tree: replaced by the socket given for it", key)
	case Reconnected:
		return fmt.Sprintf("datagram connection to %q outside the tree: connected again to that name", key)
	}
	return fmt.Sprintf("connection to %q outside the tree: comes back closed by its peer (the program reads end of file and must reconnect)", key)
}

// closeDgram leaves the datagram socket fd connected to a peer that is
// gone, as when a datagram peer closes: sends fail with ECONNREFUSED. The
// peer is an autobound socket, connected to and closed at once.
func closeDgram(fd int) error {
	g, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(g)
	if err := unix.Bind(g, &unix.SockaddrUnix{}); err != nil { // autobind
		return fmt.Errorf("autobind: %w", err)
	}
	sa, err := unix.Getsockname(g)
	if err != nil {
		return fmt.Errorf("getsockname: %w", err)
	}
	if err := unix.Connect(fd, sa); err != nil {
		return fmt.Errorf("connect to a stand-in peer: %w", err)
	}
	return nil
}

// holders names, for each unix socket of tree by inode, the first process
// and descriptor that hold it ("process 12 fd 7"), for error messages and
// warnings: an accepted connection bears its listener's name, which names
// the listener, not the failing socket.
func holders(tree *image.Tree) map[uint64]string {
	byFile := map[int]uint64{}
	for _, f := range tree.Files {
		if f.Socket() != nil && f.Socket().Unix != nil {
			byFile[f.ID] = f.Socket().Unix.Inode
		}
	}
	out := map[uint64]string{}
	for _, p := range tree.Processes {
		for _, d := range p.FDs {
			if ino, ok := byFile[d.File]; ok && out[ino] == "" {
				out[ino] = fmt.Sprintf("process %d fd %d", p.PID, d.FD)
			}
		}
	}
	return out
}

// DialJournal opens a new stream to journald for a program's standard
// output and error, announcing it as systemd does for a service's: the
// identifier, no unit, priority info, level prefixes (<N>) honoured, no
// forwarding. A connection to JournalStream is a stream whose first lines
// are this header: connecting again by name without it would make journald
// read the program's first lines as the header.
func DialJournal(identifier string) (*os.File, error) {
	return dialJournal(JournalStream, identifier)
}

func dialJournal(path, identifier string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		f.Close()
		return nil, fmt.Errorf("connect to %s: %w", path, err)
	}
	// The stream is write-only for the program: journald never answers.
	unix.Shutdown(fd, unix.SHUT_RD)
	header := strings.Map(func(r rune) rune {
		if r == '\n' {
			return ' '
		}
		return r
	}, identifier) + "\n\n6\n1\n0\n0\n0\n"
	if _, err := f.Write([]byte(header)); err != nil {
		f.Close()
		return nil, fmt.Errorf("write the stream's header to %s: %w", path, err)
	}
	return f, nil
}
