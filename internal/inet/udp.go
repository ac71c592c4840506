package inet

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/sockopt"
)

// maxDatagrams bounds the datagrams read from one socket.
const maxDatagrams = 1 << 16

func (d *Dumper) dumpUDP(fd, pid int, s *image.Socket, is *image.InetSocket, h *held) error {
	if err := addresses(fd, is); err != nil {
		return err
	}
	is.State = "unconnected"
	if is.Peer != nil {
		is.State = "connected"
	}
	if err := dumpOptions(fd, s, is, false); err != nil {
		return err
	}
	var err error
	// A never-bound socket is in no UDP table: sock_diag does not list it,
	// and nothing else tells its shutdown state (nothing can reach it
	// either; see limitations.md).
	if is.Local != nil {
		if is.Shutdown, err = shutdownState(fd, s.Family, s.Protocol, h.inode); err != nil {
			return err
		}
	}
	if err := d.lockSocket(pid, s, is); err != nil {
		return err
	}
	is.Datagrams, err = peekDatagrams(fd)
	return err
}

// peekDatagrams reads the queued datagrams without consuming them, with
// MSG_PEEK and a peek offset (SO_PEEK_OFF) that moves past each one. The
// socket's own peek offset is put back afterwards.
func peekDatagrams(fd int) ([]image.Datagram, error) {
	orig, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
	if err != nil {
		return nil, fmt.Errorf("SO_PEEK_OFF: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0); err != nil {
		return nil, fmt.Errorf("SO_PEEK_OFF: %w", err)
	}
	defer unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, orig)
	var out []image.Datagram
	buf := make([]byte, 1<<16)
	for len(out) < maxDatagrams {
		n, from, err := unix.Recvfrom(fd, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		if errors.Is(err, unix.EAGAIN) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("peek datagram %d: %w", len(out), err)
		}
		if n > len(buf) {
			return nil, fmt.Errorf("datagram %d of %d bytes is too large", len(out), n)
		}
		ap, zone := addrPort(from)
		out = append(out, image.Datagram{From: image.InetAddr{IP: ap.Addr().String(), Port: int(ap.Port()), Zone: zone},
			Data: append([]byte{}, buf[:n]...)})
	}
	return nil, fmt.Errorf("more than %d datagrams queued", maxDatagrams)
}

// restoreUDP rebuilds a UDP socket: options, address, peer, and its queued
// datagrams, sent again from their sources to the socket.
func restoreUDP(fd int, s *image.Socket) error {
	is := s.Inet
	if is.TCP != nil || is.Backlog != 0 {
		return errors.New("UDP socket with TCP state")
	}
	local, err := parseAddr(is.Local)
	if err != nil {
		return err
	}
	peer, err := parseAddr(is.Peer)
	if err != nil {
		return err
	}
	if err := restoreOptions(fd, s, sockopt.Early, false); err != nil {
		return err
	}
	if local.IsValid() {
		if err := bindTo(fd, s.Family, local, is.Local.Zone); err != nil {
			return err
		}
	}
	if peer.IsValid() {
		sa, err := sockaddr(s.Family, peer, is.Peer.Zone)
		if err != nil {
			return err
		}
		if err := connectAnyway(fd, s.Family, sa); err != nil {
			return fmt.Errorf("connect %s: %w", peer, err)
		}
	}
	if err := refillUDP(fd, is); err != nil {
		return err
	}
	// shutdown(2) of a UDP socket that is not connected records the state
	// and fails with ENOTCONN, as it did for the process.
	if how := is.Shutdown & (shutdownReceive | shutdownSend); how != 0 {
		if err := unix.Shutdown(fd, how-1); err != nil && !errors.Is(err, unix.ENOTCONN) {
			return fmt.Errorf("shutdown(%d): %w", how-1, err)
		}
	}
	return restoreOptions(fd, s, sockopt.Final, false)
}

// refillUDP queues the stored datagrams again, sent from their sources.
func refillUDP(fd int, is *image.InetSocket) error {
	if len(is.Datagrams) == 0 {
		return nil
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fmt.Errorf("getsockname: %w", err)
	}
	bound, _ := addrPort(sa)
	for i, dg := range is.Datagrams {
		from, err := parseAddr(&dg.From)
		if err != nil {
			return fmt.Errorf("datagram %d: %w", i, err)
		}
		if err := injectUDP(from, deliveryAddr(bound, from), dg.Data); err != nil {
			return fmt.Errorf("datagram %d: %w", i, err)
		}
	}
	return waitDatagrams(fd, len(is.Datagrams))
}

// deliveryAddr is where a datagram from src is sent to reach a socket bound
// to bound: the bound address, or loopback for a wildcard.
func deliveryAddr(bound, src netip.AddrPort) netip.AddrPort {
	a := bound.Addr()
	if a.IsUnspecified() || a.Unmap().IsUnspecified() {
		if src.Addr().Unmap().Is4() {
			a = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		} else {
			a = netip.IPv6Loopback()
		}
	}
	return netip.AddrPortFrom(a.Unmap(), bound.Port())
}

// waitDatagrams waits until n datagrams are queued on fd.
func waitDatagrams(fd, n int) error {
	got := 0
	for i := 0; i < 200; i++ {
		dgs, err := peekDatagrams(fd)
		if err != nil {
			return err
		}
		if got = len(dgs); got >= n {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%d of %d queued datagrams arrived (receive buffer too small?)", got, n)
}
