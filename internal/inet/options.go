package inet

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/sockopt"
)

// Where an option exists, for the table below.
const (
	tcp = 1 << iota
	udp
	v4
	v6
	both    = tcp | udp
	anyIP   = v4 | v6
	generic = both | anyIP
)

// opt describes one table entry; where combines tcp, udp, v4 and v6.
func opt(name string, level, o int, where int, kind sockopt.Kind, phase sockopt.Phase) sockopt.Option {
	return sockopt.Option{Name: name, Level: level, Opt: o, Kind: kind, Phase: phase,
		TCP: where&tcp != 0, UDP: where&udp != 0, V4: where&v4 != 0, V6: where&v6 != 0}
}

func intOpt(name string, level, o, where int) sockopt.Option {
	return opt(name, level, o, where, sockopt.Int, sockopt.Early)
}

// notConnected marks an option whose value on a TCP connection is the
// kernel's own (negotiated or computed), not a setting.
func notConnected(o sockopt.Option) sockopt.Option {
	o.NotConnected = true
	return o
}

// sockOpts are the options seamless carries: every option getsockopt(2)
// reports for a TCP or UDP socket that a process can set and a new socket
// can be given again. A value equal to a new socket's is not stored.
// SO_SNDBUF and SO_RCVBUF are stored as getsockopt reports them (doubled
// by the kernel) and set back halved. What is left out is dynamic state
// (SO_INCOMING_CPU, TCP_QUICKACK), read-only, or refused (refuseOptions).
// IP-level options also apply to IPv6 sockets (for IPv4-mapped traffic).
var sockOpts = []sockopt.Option{
	opt("SO_REUSEADDR", unix.SOL_SOCKET, unix.SO_REUSEADDR, generic, sockopt.Int, sockopt.Late),
	intOpt("SO_REUSEPORT", unix.SOL_SOCKET, unix.SO_REUSEPORT, generic),
	intOpt("SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, generic),
	intOpt("SO_SNDBUF", unix.SOL_SOCKET, unix.SO_SNDBUF, generic),
	intOpt("SO_RCVBUF", unix.SOL_SOCKET, unix.SO_RCVBUF, generic),
	intOpt("SO_BROADCAST", unix.SOL_SOCKET, unix.SO_BROADCAST, generic),
	intOpt("SO_MARK", unix.SOL_SOCKET, unix.SO_MARK, generic),
	intOpt("SO_RCVLOWAT", unix.SOL_SOCKET, unix.SO_RCVLOWAT, generic),
	intOpt("SO_OOBINLINE", unix.SOL_SOCKET, unix.SO_OOBINLINE, generic),
	intOpt("SO_DEBUG", unix.SOL_SOCKET, unix.SO_DEBUG, generic),
	// Route lookups of the restore itself (connect) must not be limited to
	// directly reachable hosts when the process set it afterwards.
	opt("SO_DONTROUTE", unix.SOL_SOCKET, unix.SO_DONTROUTE, generic, sockopt.Int, sockopt.Final),
	intOpt("SO_NO_CHECK", unix.SOL_SOCKET, unix.SO_NO_CHECK, generic),
	intOpt("SO_PASSCRED", unix.SOL_SOCKET, unix.SO_PASSCRED, generic),
	intOpt("SO_PASSSEC", unix.SOL_SOCKET, unix.SO_PASSSEC, generic),
	intOpt("SO_TIMESTAMP", unix.SOL_SOCKET, unix.SO_TIMESTAMP, generic),
	intOpt("SO_TIMESTAMPNS", unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, generic),
	// SOF_TIMESTAMPING_OPT_ID needs a connected TCP socket.
	opt("SO_TIMESTAMPING", unix.SOL_SOCKET, unix.SO_TIMESTAMPING, generic, sockopt.Int, sockopt.Late),
	opt("SO_RCVTIMEO", unix.SOL_SOCKET, unix.SO_RCVTIMEO, generic, sockopt.Timeval, sockopt.Early),
	opt("SO_SNDTIMEO", unix.SOL_SOCKET, unix.SO_SNDTIMEO, generic, sockopt.Timeval, sockopt.Early),
	intOpt("SO_RXQ_OVFL", unix.SOL_SOCKET, unix.SO_RXQ_OVFL, generic),
	intOpt("SO_WIFI_STATUS", unix.SOL_SOCKET, unix.SO_WIFI_STATUS, generic),
	intOpt("SO_SELECT_ERR_QUEUE", unix.SOL_SOCKET, unix.SO_SELECT_ERR_QUEUE, generic),
	intOpt("SO_BUSY_POLL", unix.SOL_SOCKET, unix.SO_BUSY_POLL, generic),
	intOpt("SO_PREFER_BUSY_POLL", unix.SOL_SOCKET, unix.SO_PREFER_BUSY_POLL, generic),
	intOpt("SO_BUSY_POLL_BUDGET", unix.SOL_SOCKET, unix.SO_BUSY_POLL_BUDGET, generic),
	opt("SO_MAX_PACING_RATE", unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE, generic, sockopt.Uint64, sockopt.Early),
	intOpt("SO_ZEROCOPY", unix.SOL_SOCKET, unix.SO_ZEROCOPY, generic),
	// struct sock_txtime {clockid, flags}: 8 bytes.
	opt("SO_TXTIME", unix.SOL_SOCKET, unix.SO_TXTIME, generic, sockopt.Uint64, sockopt.Early),
	intOpt("SO_TXREHASH", unix.SOL_SOCKET, unix.SO_TXREHASH, generic),
	intOpt("SO_RCVMARK", unix.SOL_SOCKET, unix.SO_RCVMARK, generic),
	intOpt("SO_RCVPRIORITY", unix.SOL_SOCKET, unix.SO_RCVPRIORITY, generic),
	intOpt("SO_RESERVE_MEM", unix.SOL_SOCKET, unix.SO_RESERVE_MEM, generic),
	opt("SO_BINDTODEVICE", unix.SOL_SOCKET, unix.SO_BINDTODEVICE, generic, sockopt.Name, sockopt.Early),
	opt("SO_PEEK_OFF", unix.SOL_SOCKET, unix.SO_PEEK_OFF, generic, sockopt.Int, sockopt.Final),

	intOpt("IP_TOS", unix.IPPROTO_IP, unix.IP_TOS, generic),
	intOpt("IP_TTL", unix.IPPROTO_IP, unix.IP_TTL, generic),
	intOpt("IP_FREEBIND", unix.IPPROTO_IP, unix.IP_FREEBIND, generic),
	intOpt("IP_TRANSPARENT", unix.IPPROTO_IP, unix.IP_TRANSPARENT, generic),
	intOpt("IP_PKTINFO", unix.IPPROTO_IP, unix.IP_PKTINFO, generic),
	intOpt("IP_RECVERR", unix.IPPROTO_IP, unix.IP_RECVERR, generic),
	intOpt("IP_RECVERR_RFC4884", unix.IPPROTO_IP, unix.IP_RECVERR_RFC4884, generic),
	intOpt("IP_RECVOPTS", unix.IPPROTO_IP, unix.IP_RECVOPTS, generic),
	intOpt("IP_RETOPTS", unix.IPPROTO_IP, unix.IP_RETOPTS, generic),
	intOpt("IP_RECVTTL", unix.IPPROTO_IP, unix.IP_RECVTTL, generic),
	intOpt("IP_RECVTOS", unix.IPPROTO_IP, unix.IP_RECVTOS, generic),
	intOpt("IP_MTU_DISCOVER", unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, generic),
	intOpt("IP_PASSSEC", unix.IPPROTO_IP, unix.IP_PASSSEC, generic),
	intOpt("IP_RECVORIGDSTADDR", unix.IPPROTO_IP, unix.IP_RECVORIGDSTADDR, generic),
	intOpt("IP_MINTTL", unix.IPPROTO_IP, unix.IP_MINTTL, generic),
	intOpt("IP_CHECKSUM", unix.IPPROTO_IP, unix.IP_CHECKSUM, generic),
	intOpt("IP_BIND_ADDRESS_NO_PORT", unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, generic),
	intOpt("IP_RECVFRAGSIZE", unix.IPPROTO_IP, unix.IP_RECVFRAGSIZE, generic),
	intOpt("IP_LOCAL_PORT_RANGE", unix.IPPROTO_IP, unix.IP_LOCAL_PORT_RANGE, generic),
	intOpt("IP_UNICAST_IF", unix.IPPROTO_IP, unix.IP_UNICAST_IF, generic),
	// The interface address as struct in_addr (set by address; one set by
	// interface index reads back as 0.0.0.0).
	// Multicast is for datagrams: a TCP socket refuses these (and an
	// accepted connection shows the TTL of the SYN as its multicast TTL).
	intOpt("IP_MULTICAST_IF", unix.IPPROTO_IP, unix.IP_MULTICAST_IF, udp|anyIP),
	intOpt("IP_MULTICAST_TTL", unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, udp|anyIP),
	intOpt("IP_MULTICAST_LOOP", unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, udp|anyIP),
	intOpt("IP_MULTICAST_ALL", unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, udp|anyIP),
	// After IP_TOS, which sets the priority from the TOS.
	intOpt("SO_PRIORITY", unix.SOL_SOCKET, unix.SO_PRIORITY, generic),

	intOpt("IPV6_V6ONLY", unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, both|v6),
	intOpt("IPV6_TCLASS", unix.IPPROTO_IPV6, unix.IPV6_TCLASS, both|v6),
	intOpt("IPV6_UNICAST_HOPS", unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, both|v6),
	intOpt("IPV6_RECVPKTINFO", unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, both|v6),
	intOpt("IPV6_2292PKTINFO", unix.IPPROTO_IPV6, unix.IPV6_2292PKTINFO, both|v6),
	intOpt("IPV6_RECVERR", unix.IPPROTO_IPV6, unix.IPV6_RECVERR, both|v6),
	intOpt("IPV6_RECVERR_RFC4884", unix.IPPROTO_IPV6, unix.IPV6_RECVERR_RFC4884, both|v6),
	intOpt("IPV6_RECVHOPLIMIT", unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, both|v6),
	intOpt("IPV6_2292HOPLIMIT", unix.IPPROTO_IPV6, unix.IPV6_2292HOPLIMIT, both|v6),
	intOpt("IPV6_RECVRTHDR", unix.IPPROTO_IPV6, unix.IPV6_RECVRTHDR, both|v6),
	intOpt("IPV6_RECVHOPOPTS", unix.IPPROTO_IPV6, unix.IPV6_RECVHOPOPTS, both|v6),
	intOpt("IPV6_RECVDSTOPTS", unix.IPPROTO_IPV6, unix.IPV6_RECVDSTOPTS, both|v6),
	intOpt("IPV6_RECVTCLASS", unix.IPPROTO_IPV6, unix.IPV6_RECVTCLASS, both|v6),
	intOpt("IPV6_RECVPATHMTU", unix.IPPROTO_IPV6, unix.IPV6_RECVPATHMTU, both|v6),
	intOpt("IPV6_RECVORIGDSTADDR", unix.IPPROTO_IPV6, unix.IPV6_RECVORIGDSTADDR, both|v6),
	intOpt("IPV6_RECVFRAGSIZE", unix.IPPROTO_IPV6, unix.IPV6_RECVFRAGSIZE, both|v6),
	intOpt("IPV6_FLOWINFO", unix.IPPROTO_IPV6, ipv6FlowInfo, both|v6),
	intOpt("IPV6_FLOWINFO_SEND", unix.IPPROTO_IPV6, ipv6FlowInfoSend, both|v6),
	intOpt("IPV6_AUTOFLOWLABEL", unix.IPPROTO_IPV6, unix.IPV6_AUTOFLOWLABEL, both|v6),
	intOpt("IPV6_ADDR_PREFERENCES", unix.IPPROTO_IPV6, unix.IPV6_ADDR_PREFERENCES, both|v6),
	intOpt("IPV6_MINHOPCOUNT", unix.IPPROTO_IPV6, unix.IPV6_MINHOPCOUNT, both|v6),
	intOpt("IPV6_TRANSPARENT", unix.IPPROTO_IPV6, unix.IPV6_TRANSPARENT, both|v6),
	intOpt("IPV6_FREEBIND", unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, both|v6),
	intOpt("IPV6_UNICAST_IF", unix.IPPROTO_IPV6, unix.IPV6_UNICAST_IF, both|v6),
	intOpt("IPV6_DONTFRAG", unix.IPPROTO_IPV6, unix.IPV6_DONTFRAG, both|v6),
	intOpt("IPV6_MTU_DISCOVER", unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, both|v6),
	intOpt("IPV6_ROUTER_ALERT", unix.IPPROTO_IPV6, unix.IPV6_ROUTER_ALERT, both|v6),
	intOpt("IPV6_MULTICAST_IF", unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, udp|v6),
	intOpt("IPV6_MULTICAST_HOPS", unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, udp|v6),
	intOpt("IPV6_MULTICAST_LOOP", unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, udp|v6),
	intOpt("IPV6_MULTICAST_ALL", unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL, udp|v6),

	intOpt("TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, tcp|anyIP),
	intOpt("TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, tcp|anyIP),
	intOpt("TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, tcp|anyIP),
	intOpt("TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, tcp|anyIP),
	intOpt("TCP_USER_TIMEOUT", unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, tcp|anyIP),
	intOpt("TCP_NOTSENT_LOWAT", unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, tcp|anyIP),
	intOpt("TCP_DEFER_ACCEPT", unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, tcp|anyIP),
	opt("TCP_CORK", unix.IPPROTO_TCP, unix.TCP_CORK, tcp|anyIP, sockopt.Int, sockopt.Late),
	intOpt("TCP_SYNCNT", unix.IPPROTO_TCP, unix.TCP_SYNCNT, tcp|anyIP),
	intOpt("TCP_LINGER2", unix.IPPROTO_TCP, unix.TCP_LINGER2, tcp|anyIP),
	notConnected(intOpt("TCP_WINDOW_CLAMP", unix.IPPROTO_TCP, unix.TCP_WINDOW_CLAMP, tcp|anyIP)),
	notConnected(intOpt("TCP_MAXSEG", unix.IPPROTO_TCP, unix.TCP_MAXSEG, tcp|anyIP)),
	opt("TCP_CONGESTION", unix.IPPROTO_TCP, unix.TCP_CONGESTION, tcp|anyIP, sockopt.Name, sockopt.Early),
	intOpt("TCP_THIN_LINEAR_TIMEOUTS", unix.IPPROTO_TCP, unix.TCP_THIN_LINEAR_TIMEOUTS, tcp|anyIP),
	intOpt("TCP_FASTOPEN", unix.IPPROTO_TCP, unix.TCP_FASTOPEN, tcp|anyIP),
	intOpt("TCP_FASTOPEN_CONNECT", unix.IPPROTO_TCP, unix.TCP_FASTOPEN_CONNECT, tcp|anyIP),
	intOpt("TCP_FASTOPEN_NO_COOKIE", unix.IPPROTO_TCP, unix.TCP_FASTOPEN_NO_COOKIE, tcp|anyIP),
	intOpt("TCP_SAVE_SYN", unix.IPPROTO_TCP, unix.TCP_SAVE_SYN, tcp|anyIP),
	intOpt("TCP_INQ", unix.IPPROTO_TCP, unix.TCP_INQ, tcp|anyIP),
	intOpt("TCP_TX_DELAY", unix.IPPROTO_TCP, unix.TCP_TX_DELAY, tcp|anyIP),

	intOpt("UDP_CORK", unix.IPPROTO_UDP, unix.UDP_CORK, udp|anyIP),
	intOpt("UDP_ENCAP", unix.IPPROTO_UDP, unix.UDP_ENCAP, udp|anyIP),
	intOpt("UDP_NO_CHECK6_TX", unix.IPPROTO_UDP, unix.UDP_NO_CHECK6_TX, udp|v6),
	intOpt("UDP_NO_CHECK6_RX", unix.IPPROTO_UDP, unix.UDP_NO_CHECK6_RX, udp|v6),
	intOpt("UDP_SEGMENT", unix.IPPROTO_UDP, unix.UDP_SEGMENT, udp|anyIP),
	intOpt("UDP_GRO", unix.IPPROTO_UDP, unix.UDP_GRO, udp|anyIP),
}

// IPV6_FLOWINFO and IPV6_FLOWINFO_SEND (linux/in6.h).
const (
	ipv6FlowInfo     = 11
	ipv6FlowInfoSend = 33
)

// bufferOpts are the options a TCP connection gets back after its queues
// are refilled (the restore enlarges the buffers meanwhile).
var bufferOpts = map[string]bool{"SO_SNDBUF": true, "SO_RCVBUF": true}

// sofTimestampingBindPHC is SOF_TIMESTAMPING_BIND_PHC: timestamps from a
// PTP clock bound by index, which getsockopt does not report.
const sofTimestampingBindPHC = 1 << 15

// dumpOptions returns the options of fd that differ from those of a new
// socket of the same kind, SO_LINGER if it is on, SO_BUF_LOCK, and the
// attached socket filter. connected says fd is a TCP connection. Options
// whose state cannot be carried are refused.
func dumpOptions(fd int, s *image.Socket, is *image.InetSocket, connected bool) error {
	if err := refuseOptions(fd, s); err != nil {
		return err
	}
	fresh, err := unix.Socket(s.Family, s.Type|unix.SOCK_CLOEXEC, s.Protocol)
	if err != nil {
		return fmt.Errorf("reference socket: %w", err)
	}
	defer unix.Close(fresh)
	v, err := sockopt.Read(fd, fresh, s.Family, s.Protocol, sockOpts, connected)
	if err != nil {
		return err
	}
	is.Options, is.NameOptions = v.Ints, v.Names
	l, err := unix.GetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER)
	if err != nil {
		return fmt.Errorf("getsockopt SO_LINGER: %w", err)
	}
	if l.Onoff != 0 {
		v := int(l.Linger)
		is.Linger = &v
	}
	if lock, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BUF_LOCK); err == nil {
		is.BufLock = &lock
	} else if !errors.Is(err, unix.ENOPROTOOPT) {
		return fmt.Errorf("getsockopt SO_BUF_LOCK: %w", err)
	}
	if s.Filter, err = dumpFilter(fd); err != nil {
		return err
	}
	return nil
}

// dumpFilter reads the socket's classic BPF filter.
func dumpFilter(fd int) (*image.SocketFilter, error) {
	prog, locked, err := sockopt.ReadFilter(fd)
	if err != nil || prog == nil {
		return nil, err
	}
	return &image.SocketFilter{Prog: prog, Locked: locked}, nil
}

// refuseOptions fails for settings that exist on fd and that seamless
// cannot read back whole: kernel TLS and other upper-layer protocols,
// IPv4 options and IPv6 extension headers attached to the socket,
// timestamps bound to a PTP clock, and a corked UDP socket holding data.
func refuseOptions(fd int, s *image.Socket) error {
	if s.Protocol == unix.IPPROTO_TCP {
		ulp, err := unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_ULP)
		if err == nil && ulp != "" {
			return fmt.Errorf("the TCP upper-layer protocol %q (kernel TLS, MPTCP subflow...) is attached; its state cannot be read back", ulp)
		}
	}
	if b, err := getBytes(fd, unix.IPPROTO_IP, unix.IP_OPTIONS); err == nil && len(b) > 0 {
		return fmt.Errorf("IPv4 options (IP_OPTIONS, %d bytes) are attached; they are not carried", len(b))
	}
	if s.Family == unix.AF_INET6 {
		for _, h := range []struct {
			name string
			opt  int
		}{{"IPV6_HOPOPTS", unix.IPV6_HOPOPTS}, {"IPV6_RTHDR", unix.IPV6_RTHDR}, {"IPV6_DSTOPTS", unix.IPV6_DSTOPTS},
			{"IPV6_RTHDRDSTOPTS", unix.IPV6_RTHDRDSTOPTS}} {
			if b, err := getBytes(fd, unix.IPPROTO_IPV6, h.opt); err == nil && len(b) > 0 {
				return fmt.Errorf("IPv6 extension headers (%s) are attached; they are not carried", h.name)
			}
		}
	}
	if ts, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING); err == nil && ts&sofTimestampingBindPHC != 0 {
		return errors.New("SO_TIMESTAMPING is bound to a PTP clock (SOF_TIMESTAMPING_BIND_PHC), which getsockopt does not report")
	}
	if s.Protocol == unix.IPPROTO_UDP {
		corked, _ := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_CORK)
		if pending, err := ioctlInt(fd, unix.SIOCOUTQ); corked != 0 && err == nil && pending > 0 {
			return fmt.Errorf("the UDP socket is corked (UDP_CORK) with %d bytes of a datagram not sent yet, which cannot be read back", pending)
		}
	}
	return nil
}

// getBytes reads a buffer-valued option.
func getBytes(fd, level, o int) ([]byte, error) {
	s, err := unix.GetsockoptString(fd, level, o)
	return []byte(s), err
}

// restoreOptions sets the stored options of the phase on fd; connected
// says fd is a TCP connection (whose Late options come after repair mode).
func restoreOptions(fd int, s *image.Socket, phase sockopt.Phase, connected bool) error {
	is := s.Inet
	v := sockopt.Values{Ints: is.Options, Names: is.NameOptions}
	if err := sockopt.Apply(fd, s.Family, s.Protocol, sockOpts, v, phase, connected, setOption); err != nil {
		return err
	}
	if is.Linger != nil && (phase == sockopt.Late || phase == sockopt.Early && !connected) {
		if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: int32(*is.Linger)}); err != nil {
			return fmt.Errorf("setsockopt SO_LINGER: %w", err)
		}
	}
	if phase != sockopt.Final {
		return nil
	}
	// The restore's own buffer sizing locks the buffers: the stored lock
	// state comes back last, then the filter, which would otherwise judge
	// the data put back into the queues.
	// (An MPTCP socket refuses to set it even to the value it has.)
	if cur, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BUF_LOCK); is.BufLock != nil && (err != nil || cur != *is.BufLock) {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BUF_LOCK, *is.BufLock); err != nil {
			return fmt.Errorf("setsockopt SO_BUF_LOCK=%d: %w", *is.BufLock, err)
		}
	}
	if f := s.Filter; f != nil {
		return sockopt.AttachFilter(fd, f.Prog, f.Locked)
	}
	return nil
}

// setOption sets a numeric option; SO_SNDBUF and SO_RCVBUF are set through
// their FORCE variants, halved.
func setOption(fd int, o sockopt.Option, v int) error {
	switch o.Opt {
	case unix.SO_SNDBUF, unix.SO_RCVBUF:
		if o.Level != unix.SOL_SOCKET {
			break
		}
		// The kernel doubles the value given; the FORCE variants pass
		// net.core.[rw]mem_max, which the original process may have been
		// below while the new kernel's limit differs.
		force := unix.SO_SNDBUFFORCE
		if o.Opt == unix.SO_RCVBUF {
			force = unix.SO_RCVBUFFORCE
		}
		if err := unix.SetsockoptInt(fd, o.Level, force, v/2); err != nil {
			if err := unix.SetsockoptInt(fd, o.Level, o.Opt, v/2); err != nil {
				return fmt.Errorf("setsockopt %s=%d: %w", o.Name, v/2, err)
			}
		}
		return nil
	}
	return sockopt.Set(fd, o, v, "")
}
