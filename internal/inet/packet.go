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
	return injectL4(src.Addr(), dst.Addr(), unix.IPPROTO_TCP, tcpHeader(src, dst, seg), 16)
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
// in an IPv4 or IPv6 header and sends it through a raw socket, to a socket
// of this host (see withLocalAddress).
func injectL4(src, dst netip.Addr, proto int, seg []byte, csumOff int) error {
	pkt, err := ipPacket(src, dst, proto, seg, csumOff)
	if err != nil {
		return fmt.Errorf("inject: %w", err)
	}
	// The socket it is for may be bound to an address the new kernel's
	// network does not have yet.
	err = withLocalAddress(dst.Unmap(), func() error { return sendRaw(dst, pkt) })
	if err != nil {
		return fmt.Errorf("inject packet %s -> %s: %w", src.Unmap(), dst.Unmap(), err)
	}
	return nil
}

// ipPacket wraps a transport segment (whose checksum field is at csumOff)
// in an IPv4 or IPv6 header, and fills in the checksum.
func ipPacket(src, dst netip.Addr, proto int, seg []byte, csumOff int) ([]byte, error) {
	src, dst = src.Unmap(), dst.Unmap()
	if src.Is4() != dst.Is4() {
		return nil, fmt.Errorf("%s -> %s: mixed address families", src, dst)
	}
	// ICMPv4's checksum covers the message alone; the others', a
	// pseudo-header too.
	var sum uint32
	if proto != unix.IPPROTO_ICMP {
		sum = pseudoSum(src, dst, proto, len(seg))
	}
	c := checksum(seg, sum)
	if c == 0 && proto == unix.IPPROTO_UDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(seg[csumOff:], c)
	if src.Is4() {
		ip := ipv4Header(src, dst, proto, len(seg))
		binary.BigEndian.PutUint16(ip[10:], checksum(ip, 0))
		return append(ip, seg...), nil
	}
	return append(ipv6Header(src, dst, proto, len(seg)), seg...), nil
}

// ipv4Header is the header of an IPv4 packet without options, checksum
// left zero.
func ipv4Header(src, dst netip.Addr, proto, payload int) []byte {
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+payload))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8] = 64
	ip[9] = byte(proto)
	copy(ip[12:], src.AsSlice())
	copy(ip[16:], dst.AsSlice())
	return ip
}

// ipv6Header is the header of an IPv6 packet without extension headers.
func ipv6Header(src, dst netip.Addr, proto, payload int) []byte {
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(payload))
	ip[6] = byte(proto)
	ip[7] = 64
	copy(ip[8:], src.AsSlice())
	copy(ip[24:], dst.AsSlice())
	return ip
}

// sendRaw sends a whole IP packet to dst through a raw socket of its own.
func sendRaw(dst netip.Addr, pkt []byte) error {
	r, err := openRaw(dst)
	if err != nil {
		return err
	}
	defer r.close()
	return r.send(dst, pkt)
}

// rawSocket sends whole IP packets of one family, carrying the network
// lock's mark.
type rawSocket struct{ fd int }

// openRaw opens a raw socket for packets of dst's family.
func openRaw(dst netip.Addr) (*rawSocket, error) {
	family := unix.AF_INET6
	if dst.Unmap().Is4() {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("raw socket: %w", err)
	}
	r := &rawSocket{fd: fd}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_HDRINCL, 1); err != nil {
			r.close()
			return nil, fmt.Errorf("IPV6_HDRINCL: %w", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, netlock.Mark); err != nil {
		r.close()
		return nil, fmt.Errorf("SO_MARK: %w", err)
	}
	return r, nil
}

// send sends pkt, whose header says dst, to dst.
func (r *rawSocket) send(dst netip.Addr, pkt []byte) error {
	dst = dst.Unmap()
	var sa unix.Sockaddr = &unix.SockaddrInet6{Addr: dst.As16()}
	if dst.Is4() {
		sa = &unix.SockaddrInet4{Addr: dst.As4()}
	}
	return unix.Sendto(r.fd, pkt, 0, sa)
}

func (r *rawSocket) close() { unix.Close(r.fd) }

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
