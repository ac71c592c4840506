package inet

import (
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/netlock"
)

// Dumper checkpoints the TCP and UDP sockets of one tree. It installs the
// network lock for each socket before reading its state, and owns the
// checkpointer's duplicates of the sockets until Close.
type Dumper struct {
	inTree func(int) bool
	name   string                   // the lock chain of this checkpoint
	locks  map[uint64]*netlock.Lock // by network namespace inode
	socks  []*held
}

// held is a socket the Dumper keeps until Close.
type held struct {
	f         *os.File
	repair    bool // TCP_REPAIR is on
	reuseAddr int  // SO_REUSEADDR before repair mode (which resets it)
	inode     uint64
}

// NewDumper returns a Dumper; inTree reports the PIDs of the tree.
func NewDumper(inTree func(int) bool) *Dumper {
	return &Dumper{inTree: inTree, name: netlock.NewName(), locks: map[uint64]*netlock.Lock{}}
}

// Dump describes the socket that process pid holds as fd; local is the
// checkpointer's duplicate, which the Dumper keeps until Close. The tree is
// stopped.
func (d *Dumper) Dump(local *os.File, pid, fd int, s *image.Socket) (*image.InetSocket, error) {
	h := &held{f: local}
	d.socks = append(d.socks, h)
	lfd := int(local.Fd())
	is := &image.InetSocket{}
	var st unix.Stat_t
	if err := unix.Fstat(lfd, &st); err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	h.inode = st.Ino
	is.Owner = &[2]uint32{st.Uid, st.Gid}
	var err error
	if is.NetNS, err = netnsInode(pid); err != nil {
		return nil, err
	}
	listening, _ := unix.GetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err := CheckKind(s, listening != 0); err != nil {
		return nil, err
	}
	if s.Type == unix.SOCK_STREAM { // TCP, or an MPTCP listener
		err = d.dumpTCP(lfd, pid, s, is, h)
	} else {
		err = d.dumpUDP(lfd, pid, s, is, h)
	}
	if err != nil {
		return nil, err
	}
	return is, nil
}

// CheckKind refuses the IPv4 and IPv6 sockets that are neither TCP nor
// UDP, nor MPTCP listeners: the decision of `seamless plan` and of the
// checkpoint. listening says whether the socket listens.
//
// An MPTCP listener (IPPROTO_MPTCP: every Go 1.24+ net.Listen where the
// kernel has MPTCP) holds no connection state: it comes back as an MPTCP
// listener. A connection it accepted from a client that does not speak
// MPTCP (nearly all of them) is a plain TCP socket (SO_PROTOCOL says
// IPPROTO_TCP), carried like any. A connection that the peer opened with
// MPTCP is an MPTCP socket whose TCP subflows the kernel keeps to itself:
// TCP_REPAIR and the other repair options are refused on MPTCP sockets
// (even after a fallback to TCP), so no user-space program can read or
// rebuild it; it is refused, naming the way out.
func CheckKind(s *image.Socket, listening bool) error {
	switch {
	case s.Type == unix.SOCK_STREAM && s.Protocol == unix.IPPROTO_TCP,
		s.Type == unix.SOCK_DGRAM && s.Protocol == unix.IPPROTO_UDP,
		s.Type == unix.SOCK_STREAM && s.Protocol == unix.IPPROTO_MPTCP && listening:
		return nil
	case s.Protocol == unix.IPPROTO_MPTCP:
		return fmt.Errorf("%s socket that is not a listener (a connection its peer opened with Multipath TCP, or an MPTCP socket not listening yet): the kernel does not let TCP_REPAIR read or rebuild MPTCP connections; MPTCP listeners and the plain TCP connections they accept are carried. Run the service without MPTCP (Go: GODEBUG=multipathtcp=0 in its environment), or retry once the connection is closed", kindName(s))
	}
	return fmt.Errorf("%s socket (type %d, protocol %d): only TCP and UDP sockets are carried", kindName(s), s.Type, s.Protocol)
}

// kindName names an IPv4 or IPv6 socket that is neither TCP nor UDP.
func kindName(s *image.Socket) string {
	v := "IPv4"
	if s.Family == unix.AF_INET6 {
		v = "IPv6"
	}
	switch {
	case s.Type == unix.SOCK_RAW:
		return "raw " + v
	case s.Protocol == unix.IPPROTO_ICMP || s.Protocol == unix.IPPROTO_ICMPV6:
		return "ICMP (ping) " + v
	case s.Protocol == unix.IPPROTO_UDPLITE:
		return "UDP-Lite " + v
	case s.Protocol == unix.IPPROTO_SCTP:
		return "SCTP " + v
	case s.Protocol == unix.IPPROTO_MPTCP:
		return "MPTCP " + v
	}
	return v
}

// addresses fills in the bound and connected addresses.
func addresses(fd int, is *image.InetSocket) error {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fmt.Errorf("getsockname: %w", err)
	}
	if ap, zone := addrPort(sa); ap.IsValid() && (ap.Port() != 0 || !ap.Addr().IsUnspecified()) {
		is.Local = &image.InetAddr{IP: ap.Addr().String(), Port: int(ap.Port()), Zone: zone}
	}
	if sa, err := unix.Getpeername(fd); err == nil {
		if ap, zone := addrPort(sa); ap.IsValid() {
			is.Peer = &image.InetAddr{IP: ap.Addr().String(), Port: int(ap.Port()), Zone: zone}
		}
	} else if err != unix.ENOTCONN {
		return fmt.Errorf("getpeername: %w", err)
	}
	return nil
}

// lock drops the inbound packets of flows in the network namespace of pid,
// creating this checkpoint's chain there first.
func (d *Dumper) lock(pid int, netns uint64, flows ...netlock.Flow) (string, error) {
	if netlock.Disabled() {
		return "", nil
	}
	l := d.locks[netns]
	if l == nil {
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			return "", fmt.Errorf("network lock: %w", err)
		}
		defer ns.Close()
		if l, err = netlock.Open(ns, d.name); err != nil {
			return "", fmt.Errorf("network lock: %w", err)
		}
		d.locks[netns] = l
		if err := l.Init(); err != nil {
			return "", err
		}
	}
	if err := l.Add(flows...); err != nil {
		return "", err
	}
	return d.name, nil
}

// Finish completes the tree's sockets; every socket is complete after Dump.
func (d *Dumper) Finish() error { return nil }

// Close releases the Dumper's descriptors. With kill (the tree is being
// killed) TCP connections stay in repair mode, so that closing them sends
// nothing, and the network lock stays until the restore removes it;
// otherwise repair mode is turned off and the lock removed.
func (d *Dumper) Close(kill bool) {
	for _, h := range d.socks {
		if h.repair && !kill {
			fd := int(h.f.Fd())
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF)
			// Leaving repair mode resets SO_REUSEADDR.
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, h.reuseAddr)
		}
		h.f.Close()
	}
	d.socks = nil
	if !kill {
		for _, l := range d.locks {
			if err := l.Remove(); err != nil {
				fmt.Fprintf(os.Stderr, "seamless: %v (remove it with: nft delete chain inet %s %s)\n", err, netlock.TableName, l.Name())
			}
		}
	} else {
		for _, l := range d.locks {
			l.Release()
		}
	}
	d.locks = map[uint64]*netlock.Lock{}
}

// parseAddr converts an image address.
func parseAddr(a *image.InetAddr) (netip.AddrPort, error) {
	if a == nil {
		return netip.AddrPort{}, nil
	}
	ip, err := netip.ParseAddr(a.IP)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: %w", a.IP, err)
	}
	if a.Port < 0 || a.Port > 65535 {
		return netip.AddrPort{}, fmt.Errorf("port %d out of range", a.Port)
	}
	return netip.AddrPortFrom(ip, uint16(a.Port)), nil
}
