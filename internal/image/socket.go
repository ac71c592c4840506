package image

import (
	"errors"
	"fmt"
)

// FileSocket is a socket, of a family socket.go's records describe.
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

func (s *Socket) validate(c *checker) error {
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

func validateSocket(f *File, c *checker) error {
	if err := need(f.Socket, "socket"); err != nil {
		return err
	}
	return f.Socket.validate(c)
}
