package inet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"
)

// connectAnyway connects a restored socket (a TCP connection in repair
// mode, which sends nothing, or a connected UDP socket) to its peer even
// if the network of the new kernel is not configured yet. connect() looks
// up a route to the peer, and refuses without one (ENETUNREACH); on a
// booting system the unit may be restored before its interfaces have
// their addresses and routes. The network lock holds the connection's
// packets meanwhile; once the network is up, the socket routes its packets
// as any other (a route found at connect is not kept: see below).
//
// IPv4: for the connect alone, the socket is bound to the loopback device
// (with a bound device, a failed route lookup means the peer is on that
// link) and made IP_TRANSPARENT (its bound address need not be local
// yet); both are taken back right after, which also drops the route it
// cached. Nothing outside the socket changes.
//
// IPv6 has no such fallback: a route of the lowest priority (the highest
// metric, type local, through the loopback device) is added to the main
// table of the network namespace for the connect alone, and removed right
// after; any real route wins over it, and the socket drops the route it
// cached when the route goes.
func connectAnyway(fd, family int, sa unix.Sockaddr) error {
	err := unix.Connect(fd, sa)
	if !errors.Is(err, unix.ENETUNREACH) {
		return err
	}
	if family == unix.AF_INET || v4Mapped(sa) {
		return connectThroughLoopback(fd, sa)
	}
	return connectWithFallbackRoute(fd, sa)
}

// v4Mapped reports whether sa is an IPv4 peer of an IPv6 socket
// (::ffff:a.b.c.d, what a dual-stack listener such as Go's accepts from
// IPv4 clients): the kernel routes its packets by IPv4, so the IPv4
// fallback applies (IP_TRANSPARENT and the device binding are the
// socket's whatever its family).
func v4Mapped(sa unix.Sockaddr) bool {
	s6, ok := sa.(*unix.SockaddrInet6)
	return ok && netip.AddrFrom16(s6.Addr).Is4In6()
}

// connectThroughLoopback is connectAnyway for IPv4 peers.
func connectThroughLoopback(fd int, sa unix.Sockaddr) error {
	dev, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BINDTOIFINDEX)
	if err != nil {
		return fmt.Errorf("read SO_BINDTOIFINDEX: %w", err)
	}
	if dev != 0 {
		// Bound to a device of its own, which is not up or has no route.
		return unix.ENETUNREACH
	}
	lo, err := loopbackIndex()
	if err != nil {
		return err
	}
	transparent, err := unix.GetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TRANSPARENT)
	if err != nil {
		return fmt.Errorf("read IP_TRANSPARENT: %w", err)
	}
	if transparent == 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TRANSPARENT, 1); err != nil {
			return fmt.Errorf("set IP_TRANSPARENT: %w", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BINDTOIFINDEX, lo); err != nil {
		return fmt.Errorf("bind to the loopback device: %w", err)
	}
	cerr := unix.Connect(fd, sa)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BINDTOIFINDEX, 0); err != nil && cerr == nil {
		cerr = fmt.Errorf("unbind from the loopback device: %w", err)
	}
	if transparent == 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TRANSPARENT, 0); err != nil && cerr == nil {
			cerr = fmt.Errorf("clear IP_TRANSPARENT: %w", err)
		}
	}
	return cerr
}

func loopbackIndex() (int, error) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return 0, fmt.Errorf("loopback device: %w", err)
	}
	return lo.Index, nil
}

// connectWithFallbackRoute is connectAnyway for IPv6.
func connectWithFallbackRoute(fd int, sa unix.Sockaddr) error {
	return withRoute(route{family: unix.AF_INET6, table: unix.RT_TABLE_MAIN, metric: 0xffffffff}, func() error {
		return unix.Connect(fd, sa)
	})
}

// withLocalAddress runs fn, which sends a packet to addr for a restored
// socket bound to it (the peer's FIN of a half-closed connection, a queued
// datagram), with addr local: if no interface has it yet, a local host
// route for it is added to the local table for fn alone, so that the
// packet is delivered to the socket instead of routed away (or refused:
// ENETUNREACH).
func withLocalAddress(addr netip.Addr, fn func() error) error {
	addr = addr.Unmap()
	if addr.IsLoopback() {
		return fn()
	}
	if local, err := isLocal(addr); err != nil || local {
		return fn()
	}
	family := unix.AF_INET
	if addr.Is6() {
		family = unix.AF_INET6
	}
	return withRoute(route{family: family, dst: addr, table: unix.RT_TABLE_LOCAL}, fn)
}

// isLocal reports whether an interface of this network namespace has addr.
func isLocal(addr netip.Addr) (bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr {
				return true, nil
			}
		}
	}
	return false, nil
}

// route is a temporary route of seamless: type local, through the loopback
// device, to dst (a host route; the default route if dst is not valid).
type route struct {
	family int
	dst    netip.Addr
	table  uint8
	metric uint32
}

// fallbackProto marks seamless's temporary routes (rtm_protocol; the
// values below 245 are the kernel's and routing daemons'), so that their
// removal takes them and no other.
const fallbackProto = 245

// routes serializes the short life of the temporary routes.
var routes sync.Mutex

// withRoute runs fn with r in place in this thread's network namespace,
// and removes r afterwards (unless it was there already).
func withRoute(r route, fn func() error) error {
	routes.Lock()
	defer routes.Unlock()
	lo, err := loopbackIndex()
	if err != nil {
		return err
	}
	err = r.request(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, lo)
	added := err == nil
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add a temporary route: %w", err)
	}
	ferr := fn()
	if added {
		if err := r.request(unix.RTM_DELROUTE, 0, lo); err != nil && ferr == nil {
			ferr = fmt.Errorf("remove the temporary route: %w", err)
		}
	}
	return ferr
}

// request adds or deletes r (through device dev) over rtnetlink.
func (r route) request(op uint16, flags uint16, dev int) error {
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	attr := func(typ uint16, v []byte) []byte {
		b := make([]byte, 4, 4+len(v)+3)
		binary.NativeEndian.PutUint16(b[0:], uint16(4+len(v)))
		binary.NativeEndian.PutUint16(b[2:], typ)
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	u32 := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	rt := make([]byte, unix.SizeofRtMsg)
	rt[0] = byte(r.family)
	rt[4] = r.table
	rt[5] = fallbackProto
	rt[6] = unix.RT_SCOPE_HOST
	rt[7] = unix.RTN_LOCAL
	body := rt
	if r.dst.IsValid() {
		rt[1] = byte(r.dst.BitLen()) // rtm_dst_len
		body = append(body, attr(unix.RTA_DST, r.dst.AsSlice())...)
	}
	body = append(body, attr(unix.RTA_OIF, u32(uint32(dev)))...)
	if r.metric != 0 {
		body = append(body, attr(unix.RTA_PRIORITY, u32(r.metric))...)
	}
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], op)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	binary.NativeEndian.PutUint32(msg[8:], 1)
	msg = append(msg, body...)
	if err := unix.Sendto(s, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(s, buf, 0)
	if err != nil {
		return err
	}
	if n < unix.NLMSG_HDRLEN+4 || binary.NativeEndian.Uint16(buf[4:]) != unix.NLMSG_ERROR {
		return fmt.Errorf("unexpected netlink answer")
	}
	if e := int32(binary.NativeEndian.Uint32(buf[unix.NLMSG_HDRLEN:])); e != 0 {
		return unix.Errno(-e)
	}
	return nil
}
