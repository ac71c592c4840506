package image

import (
	"errors"
	"fmt"
)

// FileSocket is the kind of a socket's description (internal/files
// carries it). Its record, Socket, is here rather than with the kind: the
// socket packages below internal/files read and write it.
const FileSocket = "socket"

// Socket is a socket's state: its family, type and protocol, and the
// family-specific part.
type Socket struct {
	Family   int `json:"family"`
	Type     int `json:"type"`
	Protocol int `json:"protocol"`
	// Unix is set for AF_UNIX sockets (see unixsock.go).
	Unix *UnixSocket `json:"unix,omitempty"`
	// Inet is set for AF_INET and AF_INET6 sockets (see inet.go).
	Inet *InetSocket `json:"inet,omitempty"`
	// Filter is the classic BPF program attached with SO_ATTACH_FILTER.
	Filter *SocketFilter `json:"filter,omitempty"`
}

// SocketFilter is a classic BPF socket filter: its program as struct
// sock_filter entries of 8 bytes (code u16, jt u8, jf u8, k u32), and
// whether SO_LOCK_FILTER locks it.
type SocketFilter struct {
	Prog   []byte `json:"prog"`
	Locked bool   `json:"locked,omitempty"`
}

// Socket families the image knows (AF_UNIX, AF_INET, AF_INET6).
const (
	afUnix  = 1
	afInet  = 2
	afInet6 = 10
)

// Validate checks the socket's family and its family's record.
func (s *Socket) Validate(c *Checker) error {
	switch s.Family {
	case afUnix:
		if s.Unix == nil || s.Inet != nil {
			return errors.New("a unix socket without its unix state")
		}
		return s.Unix.validate(c)
	case afInet, afInet6:
		if s.Inet == nil || s.Unix != nil {
			return errors.New("an inet socket without its inet state")
		}
		return s.Inet.validate()
	}
	return fmt.Errorf("address family %d is not supported", s.Family)
}
