package inet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
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
	if family == unix.AF_INET {
		return connectThroughLoopback(fd, sa)
	}
	return connectWithFallbackRoute(fd, sa)
}

// connectThroughLoopback is connectAnyway for IPv4.
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

// fallbackProto marks the fallback route as seamless's (rtm_protocol; the
// values below 245 are the kernel's and routing daemons'), so that its
// removal takes that route and no other.
const fallbackProto = 245

// fallbackRoute serializes the fallback route's short life.
var fallbackRoute sync.Mutex

// connectWithFallbackRoute is connectAnyway for IPv6.
func connectWithFallbackRoute(fd int, sa unix.Sockaddr) error {
	fallbackRoute.Lock()
	defer fallbackRoute.Unlock()
	lo, err := loopbackIndex()
	if err != nil {
		return err
	}
	err = routeRequest(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, lo)
	added := err == nil
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add a fallback route: %w", err)
	}
	cerr := unix.Connect(fd, sa)
	if added {
		if err := routeRequest(unix.RTM_DELROUTE, 0, lo); err != nil && cerr == nil {
			cerr = fmt.Errorf("remove the fallback route: %w", err)
		}
	}
	return cerr
}

// routeRequest adds or deletes the IPv6 fallback route (local default
// through device dev, metric 2^32-1, main table, seamless's protocol) in
// this thread's network namespace.
func routeRequest(op uint16, flags uint16, dev int) error {
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	attr := func(typ uint16, v uint32) []byte {
		b := make([]byte, 8)
		binary.NativeEndian.PutUint16(b[0:], 8)
		binary.NativeEndian.PutUint16(b[2:], typ)
		binary.NativeEndian.PutUint32(b[4:], v)
		return b
	}
	rt := make([]byte, unix.SizeofRtMsg)
	rt[0] = unix.AF_INET6
	rt[4] = unix.RT_TABLE_MAIN
	rt[5] = fallbackProto
	rt[6] = unix.RT_SCOPE_HOST
	rt[7] = unix.RTN_LOCAL
	body := append(rt, attr(unix.RTA_OIF, uint32(dev))...)
	body = append(body, attr(unix.RTA_PRIORITY, 0xffffffff)...)
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
