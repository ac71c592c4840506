package inet

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/netlock"
)

// TCP header flags.
const (
	tcpFlagFIN = 0x01
	tcpFlagACK = 0x10
)

// tcpSegment is an empty TCP segment to inject.
type tcpSegment struct {
	seq, ack uint32
	flags    byte
	window   uint16
}

// injectTCP sends seg from src to dst as a raw packet carrying the lock's
// mark: this is how a peer's FIN (or ACK of our FIN) is put back into a
// restored half-closed connection.
func injectTCP(src, dst netip.AddrPort, seg tcpSegment) error {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], src.Port())
	binary.BigEndian.PutUint16(h[2:], dst.Port())
	binary.BigEndian.PutUint32(h[4:], seg.seq)
	binary.BigEndian.PutUint32(h[8:], seg.ack)
	h[12] = 5 << 4
	h[13] = seg.flags
	binary.BigEndian.PutUint16(h[14:], seg.window)
	return injectL4(src.Addr(), dst.Addr(), unix.IPPROTO_TCP, h, 16)
}

// injectUDP sends a datagram from src to dst as a raw packet carrying the
// lock's mark: this is how queued datagrams are put back with their source.
func injectUDP(src, dst netip.AddrPort, data []byte) error {
	p := make([]byte, 8+len(data))
	binary.BigEndian.PutUint16(p[0:], src.Port())
	binary.BigEndian.PutUint16(p[2:], dst.Port())
	binary.BigEndian.PutUint16(p[4:], uint16(len(p)))
	copy(p[8:], data)
	return injectL4(src.Addr(), dst.Addr(), unix.IPPROTO_UDP, p, 6)
}

// injectL4 wraps a transport segment (whose checksum field is at csumOff)
// in an IPv4 or IPv6 header and sends it through a raw socket.
func injectL4(src, dst netip.Addr, proto int, seg []byte, csumOff int) error {
	src, dst = src.Unmap(), dst.Unmap()
	if src.Is4() != dst.Is4() {
		return fmt.Errorf("inject %s -> %s: mixed address families", src, dst)
	}
	sum := pseudoSum(src, dst, proto, len(seg))
	c := checksum(seg, sum)
	if c == 0 && proto == unix.IPPROTO_UDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(seg[csumOff:], c)
	var pkt []byte
	family := unix.AF_INET6
	var sa unix.Sockaddr
	if src.Is4() {
		family = unix.AF_INET
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(seg)))
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8] = 64
		ip[9] = byte(proto)
		copy(ip[12:], src.AsSlice())
		copy(ip[16:], dst.AsSlice())
		binary.BigEndian.PutUint16(ip[10:], checksum(ip, 0))
		pkt = append(ip, seg...)
		sa = &unix.SockaddrInet4{Addr: dst.As4()}
	} else {
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(seg)))
		ip[6] = byte(proto)
		ip[7] = 64
		copy(ip[8:], src.AsSlice())
		copy(ip[24:], dst.AsSlice())
		pkt = append(ip, seg...)
		sa = &unix.SockaddrInet6{Addr: dst.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	defer unix.Close(fd)
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_HDRINCL, 1); err != nil {
			return fmt.Errorf("IPV6_HDRINCL: %w", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, netlock.Mark); err != nil {
		return fmt.Errorf("SO_MARK: %w", err)
	}
	// The socket it is for may be bound to an address the new kernel's
	// network does not have yet.
	err = withLocalAddress(dst, func() error { return unix.Sendto(fd, pkt, 0, sa) })
	if err != nil {
		return fmt.Errorf("inject packet %s -> %s: %w", src, dst, err)
	}
	return nil
}

// pseudoSum is the partial checksum of the IPv4 or IPv6 pseudo-header.
func pseudoSum(src, dst netip.Addr, proto, length int) uint32 {
	var s uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	s += uint32(proto)
	s += uint32(length>>16) + uint32(length&0xffff)
	return s
}

// checksum is the Internet checksum of b, starting from a partial sum.
func checksum(b []byte, s uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
