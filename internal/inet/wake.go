package inet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// A Wake gets the two ends of a restored TCP connection talking again at
// once when the new kernel's network comes up. While the service was away
// both sides' retransmission timers backed off (they double each time, up
// to two minutes), so after a pause of half a minute either side's next try
// may come tens of seconds after the restore:
//
//   - the peer's, for what it sent while the lock dropped it;
//   - ours, for what the service wrote before the checkpoint and the peer
//     had not acknowledged, or wrote after the restore, before the network
//     was up.
//
// Once the network reaches the peer, Send tells both stacks, in ways a TCP
// stack listens to, to send now:
//
//   - a probe below the peer's window (as a keepalive is): every TCP
//     answers it with an acknowledgement, and that acknowledgement makes
//     our kernel send what it holds unsent;
//   - three duplicate acknowledgements of what the connection had
//     received at the checkpoint: BSD-derived stacks (and libslirp, QEMU's
//     user network) retransmit at the third (fast retransmit, RFC 5681);
//   - ICMP "host unreachable" errors quoting the peer's first
//     unacknowledged segment: Linux (and others that follow RFC 6069) undo
//     one doubling of the timer for each, and retransmit at once when the
//     undone timer has expired already. Linux ignores duplicate
//     acknowledgements after a timeout, so only this reaches it;
//   - the same errors, quoting our first unacknowledged segment, to our own
//     kernel, when the connection had data in flight at the checkpoint.
//
// All are harmless to a stack with nothing outstanding: a duplicate
// acknowledgement counts only while a retransmission is pending, and the
// ICMP error only when it quotes exactly the oldest unacknowledged byte of
// a connection that is retransmitting. The one socket that sees more is
// one that asked for IP_RECVERR (rare on TCP): Linux reports the ICMP error
// to it as a connection error. Ours are never sent one (the image says
// which asked); for the peers' sake the ICMP half can be turned off
// (seamless.conf, wake-peers = acks).
type Wake struct {
	Local, Peer netip.AddrPort
	// seq and ack are the connection's snd_nxt and rcv_nxt at the
	// checkpoint, una its snd_una; window is the receive window it last
	// advertised, as carried in the header (scaled).
	seq, ack, una uint32
	window        uint16
	// fresh is set when the connection had received data it had not
	// acknowledged yet: its first acknowledgement is then a new one to the
	// peer, not a duplicate.
	fresh bool
	// inFlight is set when data was sent and not acknowledged at the
	// checkpoint; recvErr when the socket asked for ICMP errors
	// (IP_RECVERR, IPV6_RECVERR).
	inFlight, recvErr bool
}

// Wakes lists the restored connections of tree whose peers can be woken:
// established TCP connections to another host. Connections over loopback
// need no waking: their peer is on this machine, and was restored, or
// started, with it.
func Wakes(tree *image.Tree) []Wake {
	var socks []*image.Socket
	for _, f := range tree.Files {
		if s := f.Socket(); s != nil {
			socks = append(socks, s)
		}
	}
	return wakes(socks)
}

func wakes(socks []*image.Socket) []Wake {
	var ws []Wake
	for _, s := range socks {
		if s.Inet == nil || s.Inet.TCP == nil || s.Inet.State != "established" {
			continue
		}
		if w, ok := wakeOf(s.Inet); ok {
			ws = append(ws, w)
		}
	}
	return ws
}

func wakeOf(is *image.InetSocket) (Wake, bool) {
	local, err1 := parseAddr(is.Local)
	peer, err2 := parseAddr(is.Peer)
	// A link-local peer (an IPv6 zone) is left to its timer: its raw
	// packets would need the interface, which the new boot may number
	// differently.
	if err1 != nil || err2 != nil || !local.IsValid() || !peer.IsValid() || is.Peer.Zone != "" ||
		local.Addr().Unmap().IsLoopback() || peer.Addr().Unmap().IsLoopback() {
		return Wake{}, false
	}
	c := is.TCP
	w := Wake{Local: local, Peer: peer, ack: c.RecvSeq,
		seq: c.SendSeq - uint32(c.Unsent), una: c.SendSeq - uint32(len(c.SendQueue)), window: 0xffff,
		inFlight: len(c.SendQueue) > c.Unsent, recvErr: is.Options["IP_RECVERR"] != 0 || is.Options["IPV6_RECVERR"] != 0}
	if c.Window != nil {
		// The right edge of the window stays where the last advertisement
		// put it: a peer recognises a duplicate by an unchanged window.
		edge := c.Window.RcvWup + c.Window.RcvWnd - c.RecvSeq
		w.window = uint16(min(edge>>uint(c.RcvWscale), 0xffff))
		w.fresh = c.RecvSeq != c.Window.RcvWup
	}
	return w, true
}

// A Path is a pair of addresses: the connections that share it are
// routed alike, so one route lookup (Routed) answers for them all.
type Path struct{ Local, Peer netip.Addr }

// ByPath groups ws by their Path.
func ByPath(ws []Wake) map[Path][]Wake {
	by := map[Path][]Wake{}
	for _, w := range ws {
		p := Path{w.Local.Addr(), w.Peer.Addr()}
		by[p] = append(by[p], w)
	}
	return by
}

// String names the connection, as the logs show it.
func (w Wake) String() string { return w.Local.String() + " -> " + w.Peer.String() }

// Routed reports whether this network namespace can reach the peer from
// the connection's address: an interface has the address, and a route
// leads to the peer with it as the source. Before that, whatever Send
// sends is lost.
func (w Wake) Routed() (bool, error) {
	local := w.Local.Addr().Unmap()
	family := unix.AF_INET
	if local.Is6() {
		family = unix.AF_INET6
	}
	sa, err := sockaddr(family, w.Peer, "")
	if err != nil {
		return false, err
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("route to %s: %w", w.Peer, err)
	}
	defer unix.Close(fd)
	// A datagram socket's connect is a route lookup that sends nothing;
	// binding first makes it one from the connection's address (refused
	// while no interface has it).
	bind, err := sockaddr(family, netip.AddrPortFrom(w.Local.Addr(), 0), "")
	if err != nil {
		return false, err
	}
	if err := unix.Bind(fd, bind); err != nil {
		if errors.Is(err, unix.EADDRNOTAVAIL) {
			return false, nil
		}
		return false, fmt.Errorf("route to %s: bind %s: %w", w.Peer, local, err)
	}
	switch err := unix.Connect(fd, sa); {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENETUNREACH), errors.Is(err, unix.EHOSTUNREACH), errors.Is(err, unix.EINVAL):
		return false, nil
	default:
		return false, fmt.Errorf("route to %s: %w", w.Peer, err)
	}
}

// WakeAgain is how long after a wake it is sent once more. A wake can be
// lost: the peer answers a segment below its window at most once per
// 500 ms (tcp_invalid_ratelimit), and what is sent right after an address
// was added may meet a neighbour not yet resolved; TestWakeOwnSide saw
// one lost in a CI run. The second costs a few packets: the duplicate
// acknowledgements repeat, and each ICMP error only undoes a doubling
// that is already undone.
const WakeAgain = time.Second

// unreachables is how many ICMP errors Send sends: each undoes one doubling
// of the peer's timer, and from its first value (200 ms or more) 10 reach
// Linux's two-minute cap.
const unreachables = 12

// Send sends the probe, the duplicate acknowledgements and, with icmp,
// the ICMP errors (see Wake).
func (w Wake) Send(icmp bool) error {
	if err := w.send(icmp); err != nil {
		return fmt.Errorf("wake %s: %w", w, err)
	}
	return nil
}

func (w Wake) send(icmp bool) error {
	raw, err := openRaw(w.Peer.Addr())
	if err != nil {
		return err
	}
	defer raw.close()
	ack := func(seq uint32) ([]byte, error) {
		seg := tcpSegment{seq: seq, ack: w.ack, flags: tcpFlagACK, window: w.window}
		return ipPacket(w.Local.Addr(), w.Peer.Addr(), unix.IPPROTO_TCP, tcpHeader(w.Local, w.Peer, seg), 16)
	}
	probe, err := ack(w.una - 1)
	if err != nil {
		return err
	}
	dup, err := ack(w.seq)
	if err != nil {
		return err
	}
	pkts := [][]byte{probe, dup, dup, dup}
	if w.fresh {
		pkts = append(pkts, dup) // the first one acknowledges, the next three are duplicates
	}
	for _, pkt := range pkts {
		if err := raw.send(w.Peer.Addr(), pkt); err != nil {
			return fmt.Errorf("acknowledgement: %w", err)
		}
	}
	if !icmp {
		return nil
	}
	// The peer's segment starting at the first byte we lack, to the peer;
	// ours starting at the first byte the peer lacks, to us.
	type unreachable struct {
		from     netip.Addr
		src, dst netip.AddrPort
		seq      uint32
	}
	errs := []unreachable{{w.Local.Addr(), w.Peer, w.Local, w.ack}}
	if w.inFlight && !w.recvErr {
		errs = append(errs, unreachable{w.Peer.Addr(), w.Local, w.Peer, w.una})
	}
	for _, u := range errs {
		pkt, err := unreachablePacket(u.from, u.src, u.dst, u.seq)
		if err != nil {
			return err
		}
		for range unreachables {
			if err := raw.send(u.src.Addr(), pkt); err != nil {
				return fmt.Errorf("ICMP error to %s: %w", u.src.Addr().Unmap(), err)
			}
		}
	}
	return nil
}

// unreachablePacket is an ICMP (or ICMPv6) error "host unreachable" ("no
// route" for IPv6, the code Linux's RFC 6069 support takes), from the
// address from to src.Addr(), about its TCP segment from src to dst that
// starts at seq: the IP header and the first 8 bytes of TCP header, as a
// router would quote them.
func unreachablePacket(from netip.Addr, src, dst netip.AddrPort, seq uint32) ([]byte, error) {
	to, peer := src.Addr().Unmap(), dst.Addr().Unmap()
	quoted := tcpHeader(src, dst, tcpSegment{seq: seq})[:8]
	msg := make([]byte, 8) // type, code, checksum, 4 unused bytes
	proto := unix.IPPROTO_ICMP
	if to.Is4() {
		ip := ipv4Header(to, peer, unix.IPPROTO_TCP, 20)
		binary.BigEndian.PutUint16(ip[10:], checksum(ip, 0))
		msg[0], msg[1] = 3, 1 // destination unreachable, host unreachable
		msg = append(append(msg, ip...), quoted...)
	} else {
		proto = unix.IPPROTO_ICMPV6
		msg[0], msg[1] = 1, 0 // destination unreachable, no route
		msg = append(append(msg, ipv6Header(to, peer, unix.IPPROTO_TCP, 20)...), quoted...)
	}
	return ipPacket(from, to, proto, msg, 2)
}

// tcpHeader is the 20-byte header of seg from src to dst, checksum zero.
func tcpHeader(src, dst netip.AddrPort, seg tcpSegment) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], src.Port())
	binary.BigEndian.PutUint16(h[2:], dst.Port())
	binary.BigEndian.PutUint32(h[4:], seg.seq)
	binary.BigEndian.PutUint32(h[8:], seg.ack)
	h[12] = 5 << 4
	h[13] = seg.flags
	binary.BigEndian.PutUint16(h[14:], seg.window)
	return h
}
