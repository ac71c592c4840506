package inet

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// sockOpt is an integer socket option that seamless carries over.
type sockOpt struct {
	name        string
	level, opt  int
	tcp, udp    bool
	v4, v6      bool // the address families it applies to
	late        bool // set after a TCP connection is out of repair mode
	preRepaired bool // must be in place before the queues are refilled
}

// sockOpts lists the options; a value equal to a new socket's default is not
// stored. SO_SNDBUF and SO_RCVBUF are stored as getsockopt reports them
// (doubled by the kernel) and set back halved.
var sockOpts = []sockOpt{
	{name: "SO_REUSEADDR", level: unix.SOL_SOCKET, opt: unix.SO_REUSEADDR, tcp: true, udp: true, v4: true, v6: true, late: true},
	{name: "SO_REUSEPORT", level: unix.SOL_SOCKET, opt: unix.SO_REUSEPORT, tcp: true, udp: true, v4: true, v6: true},
	{name: "SO_KEEPALIVE", level: unix.SOL_SOCKET, opt: unix.SO_KEEPALIVE, tcp: true, v4: true, v6: true},
	{name: "SO_SNDBUF", level: unix.SOL_SOCKET, opt: unix.SO_SNDBUF, tcp: true, udp: true, v4: true, v6: true, preRepaired: true},
	{name: "SO_RCVBUF", level: unix.SOL_SOCKET, opt: unix.SO_RCVBUF, tcp: true, udp: true, v4: true, v6: true, preRepaired: true},
	{name: "SO_BROADCAST", level: unix.SOL_SOCKET, opt: unix.SO_BROADCAST, udp: true, v4: true, v6: true},
	{name: "SO_PRIORITY", level: unix.SOL_SOCKET, opt: unix.SO_PRIORITY, tcp: true, udp: true, v4: true, v6: true},
	{name: "SO_MARK", level: unix.SOL_SOCKET, opt: unix.SO_MARK, tcp: true, udp: true, v4: true, v6: true},
	{name: "SO_RCVLOWAT", level: unix.SOL_SOCKET, opt: unix.SO_RCVLOWAT, tcp: true, udp: true, v4: true, v6: true},
	{name: "SO_OOBINLINE", level: unix.SOL_SOCKET, opt: unix.SO_OOBINLINE, tcp: true, v4: true, v6: true},
	{name: "SO_TIMESTAMP", level: unix.SOL_SOCKET, opt: unix.SO_TIMESTAMP, udp: true, v4: true, v6: true},
	{name: "TCP_NODELAY", level: unix.IPPROTO_TCP, opt: unix.TCP_NODELAY, tcp: true, v4: true, v6: true},
	{name: "TCP_KEEPIDLE", level: unix.IPPROTO_TCP, opt: unix.TCP_KEEPIDLE, tcp: true, v4: true, v6: true},
	{name: "TCP_KEEPINTVL", level: unix.IPPROTO_TCP, opt: unix.TCP_KEEPINTVL, tcp: true, v4: true, v6: true},
	{name: "TCP_KEEPCNT", level: unix.IPPROTO_TCP, opt: unix.TCP_KEEPCNT, tcp: true, v4: true, v6: true},
	{name: "TCP_USER_TIMEOUT", level: unix.IPPROTO_TCP, opt: unix.TCP_USER_TIMEOUT, tcp: true, v4: true, v6: true},
	{name: "TCP_NOTSENT_LOWAT", level: unix.IPPROTO_TCP, opt: unix.TCP_NOTSENT_LOWAT, tcp: true, v4: true, v6: true},
	{name: "TCP_DEFER_ACCEPT", level: unix.IPPROTO_TCP, opt: unix.TCP_DEFER_ACCEPT, tcp: true, v4: true, v6: true},
	{name: "TCP_CORK", level: unix.IPPROTO_TCP, opt: unix.TCP_CORK, tcp: true, v4: true, v6: true, late: true},
	{name: "IP_TOS", level: unix.IPPROTO_IP, opt: unix.IP_TOS, tcp: true, udp: true, v4: true},
	{name: "IP_TTL", level: unix.IPPROTO_IP, opt: unix.IP_TTL, tcp: true, udp: true, v4: true},
	{name: "IP_FREEBIND", level: unix.IPPROTO_IP, opt: unix.IP_FREEBIND, tcp: true, udp: true, v4: true, v6: true},
	{name: "IP_TRANSPARENT", level: unix.IPPROTO_IP, opt: unix.IP_TRANSPARENT, tcp: true, udp: true, v4: true},
	{name: "IP_PKTINFO", level: unix.IPPROTO_IP, opt: unix.IP_PKTINFO, udp: true, v4: true},
	{name: "IP_RECVERR", level: unix.IPPROTO_IP, opt: unix.IP_RECVERR, udp: true, v4: true},
	{name: "IPV6_V6ONLY", level: unix.IPPROTO_IPV6, opt: unix.IPV6_V6ONLY, tcp: true, udp: true, v6: true},
	{name: "IPV6_TCLASS", level: unix.IPPROTO_IPV6, opt: unix.IPV6_TCLASS, tcp: true, udp: true, v6: true},
	{name: "IPV6_UNICAST_HOPS", level: unix.IPPROTO_IPV6, opt: unix.IPV6_UNICAST_HOPS, tcp: true, udp: true, v6: true},
	{name: "IPV6_RECVPKTINFO", level: unix.IPPROTO_IPV6, opt: unix.IPV6_RECVPKTINFO, udp: true, v6: true},
	{name: "IPV6_RECVERR", level: unix.IPPROTO_IPV6, opt: unix.IPV6_RECVERR, udp: true, v6: true},
}

// applies reports whether o exists for a socket of family and protocol.
func (o sockOpt) applies(family, proto int) bool {
	if family == unix.AF_INET && !o.v4 || family == unix.AF_INET6 && !o.v6 {
		return false
	}
	return proto == unix.IPPROTO_TCP && o.tcp || proto == unix.IPPROTO_UDP && o.udp
}

// dumpOptions returns the options of fd that differ from those of a new
// socket of the same kind, and SO_LINGER if it is on.
func dumpOptions(fd, family, typ, proto int) (map[string]int, *int, error) {
	fresh, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, nil, fmt.Errorf("reference socket: %w", err)
	}
	defer unix.Close(fresh)
	opts := map[string]int{}
	for _, o := range sockOpts {
		if !o.applies(family, proto) {
			continue
		}
		v, err := unix.GetsockoptInt(fd, o.level, o.opt)
		if err != nil {
			if errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP) {
				continue
			}
			return nil, nil, fmt.Errorf("getsockopt %s: %w", o.name, err)
		}
		if d, err := unix.GetsockoptInt(fresh, o.level, o.opt); err == nil && d == v {
			continue
		}
		opts[o.name] = v
	}
	var linger *int
	l, err := unix.GetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER)
	if err != nil {
		return nil, nil, fmt.Errorf("getsockopt SO_LINGER: %w", err)
	}
	if l.Onoff != 0 {
		v := int(l.Linger)
		linger = &v
	}
	if len(opts) == 0 {
		opts = nil
	}
	return opts, linger, nil
}

// optionPhase selects the options restoreOptions sets.
type optionPhase int

const (
	early optionPhase = iota // before bind (and before the queues)
	late                     // after repair mode is off
	all
)

// restoreOptions sets the stored options of the phase on fd.
func restoreOptions(fd, family, proto int, opts map[string]int, linger *int, phase optionPhase) error {
	for _, o := range sockOpts {
		v, ok := opts[o.name]
		if !ok || !o.applies(family, proto) || phase == early && o.late || phase == late && !o.late {
			continue
		}
		if err := setOption(fd, o, v); err != nil {
			return err
		}
	}
	if linger != nil && phase != early {
		if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: int32(*linger)}); err != nil {
			return fmt.Errorf("setsockopt SO_LINGER: %w", err)
		}
	}
	return nil
}

func setOption(fd int, o sockOpt, v int) error {
	switch o.opt {
	case unix.SO_SNDBUF, unix.SO_RCVBUF:
		// The kernel doubles the value given; the FORCE variants pass
		// net.core.[rw]mem_max, which the original process may have been
		// below while the new kernel's limit differs.
		force := unix.SO_SNDBUFFORCE
		if o.opt == unix.SO_RCVBUF {
			force = unix.SO_RCVBUFFORCE
		}
		if err := unix.SetsockoptInt(fd, o.level, force, v/2); err != nil {
			if err := unix.SetsockoptInt(fd, o.level, o.opt, v/2); err != nil {
				return fmt.Errorf("setsockopt %s=%d: %w", o.name, v/2, err)
			}
		}
		return nil
	}
	if err := unix.SetsockoptInt(fd, o.level, o.opt, v); err != nil {
		return fmt.Errorf("setsockopt %s=%d: %w", o.name, v, err)
	}
	return nil
}
