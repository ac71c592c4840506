package inet

import (
	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/netlock"
)

// flows are the packets the network lock drops for socket s: connection
// requests to a listening socket, every packet of a connection, every
// datagram to a bound UDP socket. The checkpoint and the restore derive them
// the same way from the image.
func flows(s *image.Socket, is *image.InetSocket) ([]netlock.Flow, error) {
	local, err := parseAddr(is.Local)
	if err != nil {
		return nil, err
	}
	peer, err := parseAddr(is.Peer)
	if err != nil {
		return nil, err
	}
	if !local.IsValid() || local.Port() == 0 {
		return nil, nil
	}
	dual := s.Family == unix.AF_INET6 && is.Options["IPV6_V6ONLY"] == 0
	f := netlock.Flow{Local: local, AnyFamily: dual}
	switch {
	case s.Protocol == unix.IPPROTO_UDP:
		f.Proto, f.Peer = unix.IPPROTO_UDP, peer
	case is.State == "listen":
		f.Proto, f.SYNOnly = unix.IPPROTO_TCP, true
	case is.State != "close" && peer.IsValid():
		f.Proto, f.Peer = unix.IPPROTO_TCP, peer
	default:
		return nil, nil
	}
	return []netlock.Flow{f}, nil
}
