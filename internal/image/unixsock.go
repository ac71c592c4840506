package image

import (
	"fmt"
	"strings"
)

// UnixSocket is the state of an AF_UNIX socket (stream, datagram or
// seqpacket), as the socket API and sock_diag expose it.
//
// Addresses (Name, External.Name, UnixMessage.From) are the raw bytes of
// sun_path as getsockname(2) reports them: empty for an unbound socket, a
// leading NUL byte for an abstract name, otherwise a path. UnixName formats
// them for people.
type UnixSocket struct {
	// Inode is the socket's inode number at checkpoint: it identifies the
	// socket inside the image (peers, accept queues), nothing else.
	Inode uint64 `json:"inode"`
	// State is one of the UnixState* constants.
	State string `json:"state"`
	// Name is the socket's own address.
	Name []byte `json:"name,omitempty"`
	// Path describes the socket file of a socket bound to a path.
	Path *UnixPath `json:"path,omitempty"`
	// Backlog is the listen(2) backlog of a listening socket.
	Backlog int `json:"backlog,omitempty"`
	// Pending are, for a listening socket, the inodes of the client sockets
	// of the tree whose connections wait in its accept queue, in queue order.
	Pending []uint64 `json:"pending,omitempty"`
	// DroppedPending counts connections from outside the tree that waited
	// in the accept queue: they are not restored (their clients see the
	// connection reset, as after a reboot).
	DroppedPending int `json:"dropped_pending,omitempty"`
	// Listener is, for a client socket in state "pending", the inode of the
	// listening socket (in the tree) whose accept queue holds it.
	Listener uint64 `json:"listener,omitempty"`
	// Peer is the inode of the connected peer when the tree holds it.
	Peer uint64 `json:"peer,omitempty"`
	// PeerGone marks a connected socket whose peer was closed.
	PeerGone bool `json:"peer_gone,omitempty"`
	// External describes a peer outside the tree (journald, D-Bus, ...).
	External *UnixExternal `json:"external,omitempty"`
	// Shutdown is the socket's shutdown state: 1 receive, 2 send, 3 both.
	Shutdown int `json:"shutdown,omitempty"`
	// Queue is the receive queue: the bytes (stream) or messages (datagram,
	// seqpacket) sent to this socket and not read yet, oldest first.
	Queue   []UnixMessage `json:"queue,omitempty"`
	Options UnixOptions   `json:"options"`
}

// Unix socket states.
const (
	UnixListening   = "listening"   // listen(2) was called
	UnixConnected   = "connected"   // connected (or a socketpair)
	UnixPending     = "pending"     // connected, waiting in a listener's accept queue
	UnixUnconnected = "unconnected" // neither listening nor connected
)

// UnixPath is the socket file of a socket bound to a path.
type UnixPath struct {
	Mode uint32 `json:"mode"`
	UID  uint32 `json:"uid"`
	GID  uint32 `json:"gid"`
	// Unlinked is set when the socket file was removed (or replaced) after
	// bind: the socket keeps its name but nothing can reach it by path.
	Unlinked bool `json:"unlinked,omitempty"`
	// Dir is, for a socket bound to a relative path, the directory the
	// path was resolved in (the process's working directory, where its
	// socket file is).
	Dir string `json:"dir,omitempty"`
}

// UnixExternal is a connection to a socket outside the tree.
type UnixExternal struct {
	// Name is the peer's address (a listener's name for a connection it
	// accepted); empty when the peer is unnamed.
	Name []byte `json:"name,omitempty"`
	// Key names the peer for a replacement at restore: UnixName(Name), or
	// "socket:[INODE]" with the peer's inode when it has no name.
	Key string `json:"key"`
}

// UnixMessage is one message of a receive queue (for a stream socket, a
// run of bytes written with the same credentials).
type UnixMessage struct {
	Data []byte `json:"data,omitempty"`
	// From is the sender's address (datagram sockets).
	From []byte `json:"from,omitempty"`
	// Creds are the sender's credentials, kept when the receiver had
	// SO_PASSCRED or SO_PASSPIDFD set and so could read them.
	Creds *UnixCreds `json:"creds,omitempty"`
}

// UnixCreds are SCM_CREDENTIALS.
type UnixCreds struct {
	PID int32  `json:"pid"`
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// UnixOptions are socket options. Zero buffer sizes mean the default.
type UnixOptions struct {
	PassCred  bool `json:"passcred,omitempty"`
	PassSec   bool `json:"passsec,omitempty"`
	PassPidfd bool `json:"passpidfd,omitempty"`
	// SndBuf and RcvBuf are the getsockopt(2) values (twice what was set).
	SndBuf   int `json:"sndbuf,omitempty"`
	RcvBuf   int `json:"rcvbuf,omitempty"`
	RcvLowat int `json:"rcvlowat,omitempty"`
	// PeekOff is SO_PEEK_OFF; -1 when disabled (the default).
	PeekOff int `json:"peek_off"`
	// SndTimeo and RcvTimeo are SO_SNDTIMEO and SO_RCVTIMEO in nanoseconds.
	SndTimeo int64 `json:"sndtimeo_ns,omitempty"`
	RcvTimeo int64 `json:"rcvtimeo_ns,omitempty"`
	// More are the other socket options that differ from a new socket's,
	// by name (see internal/unixsock/options.go).
	More map[string]int `json:"more,omitempty"`
	// BufLock is SO_BUF_LOCK (absent on kernels before 5.14).
	BufLock *int `json:"buf_lock,omitempty"`
}

// UnixName formats a raw unix socket address: "" for none, "@name" for an
// abstract name (its NUL bytes shown as @), the path otherwise.
func UnixName(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if b[0] == 0 {
		return "@" + strings.ReplaceAll(string(b[1:]), "\x00", "@")
	}
	return string(b)
}

// maxUnixName is the size of sun_path.
const maxUnixName = 108

func (u *UnixSocket) validate(c *Checker) error {
	switch u.State {
	case UnixListening, UnixConnected, UnixPending, UnixUnconnected:
	default:
		return fmt.Errorf("unix socket in unknown state %q", u.State)
	}
	if u.Inode == 0 || c.unix[u.Inode] != nil {
		return fmt.Errorf("unix socket inode %d is zero or appears twice", u.Inode)
	}
	c.unix[u.Inode] = u
	if len(u.Name) > maxUnixName {
		return fmt.Errorf("unix socket name of %d bytes", len(u.Name))
	}
	if u.External != nil && len(u.External.Name) > maxUnixName {
		return fmt.Errorf("unix socket peer name of %d bytes", len(u.External.Name))
	}
	for _, m := range u.Queue {
		if len(m.From) > maxUnixName {
			return fmt.Errorf("queued message from a name of %d bytes", len(m.From))
		}
	}
	return nil
}

// validatePeers checks, once every unix socket is known, that the sockets
// u names (peer, listener, accept queue) are unix sockets of the image.
func (u *UnixSocket) validatePeers(c *Checker) error {
	if u.Peer != 0 && c.unix[u.Peer] == nil {
		return fmt.Errorf("its peer socket:[%d] is not in the image", u.Peer)
	}
	if u.Listener != 0 && c.unix[u.Listener] == nil {
		return fmt.Errorf("its listener socket:[%d] is not in the image", u.Listener)
	}
	for _, p := range u.Pending {
		if c.unix[p] == nil {
			return fmt.Errorf("socket:[%d] of its accept queue is not in the image", p)
		}
	}
	return nil
}
