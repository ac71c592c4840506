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

// restoreTCP rebuilds a TCP socket of any supported state on fd.
func restoreTCP(fd int, s *image.Socket) error {
	is := s.Inet
	local, err := parseAddr(is.Local)
	if err != nil {
		return err
	}
	switch is.State {
	case "close", "listen":
		if is.TCP != nil {
			return fmt.Errorf("TCP socket in state %s has connection state", is.State)
		}
		// A closed socket is bound in repair mode, which resets what the
		// Late options set: they come after.
		closed := is.State == "close"
		if err := restoreOptions(fd, s, sockopt.Early, closed); err != nil {
			return err
		}
		if local.IsValid() && closed {
			if err := bindClosed(fd, s.Family, local, is.Local.Zone); err != nil {
				return err
			}
		} else if local.IsValid() {
			if err := bindTo(fd, s.Family, local, is.Local.Zone); err != nil {
				return err
			}
		}
		if is.State == "listen" {
			if !local.IsValid() {
				return errors.New("listening socket without an address")
			}
			if err := unix.Listen(fd, is.Backlog); err != nil {
				return fmt.Errorf("listen: %w", err)
			}
		}
		if closed {
			if err := restoreOptions(fd, s, sockopt.Late, true); err != nil {
				return err
			}
		}
		return restoreOptions(fd, s, sockopt.Final, closed)
	}
	state, ok := tcpStateByName(is.State)
	if !ok || is.TCP == nil || state == tcpSynSent || state == tcpSynRecv || state == tcpTimeWait {
		return fmt.Errorf("TCP socket in state %q cannot be restored", is.State)
	}
	return restoreConn(fd, s, state)
}

// bindTo binds fd to its old address. On the new kernel a restore may run
// before the interface has its address again (the network lock holds the
// packets meanwhile): the bind is made with IP_FREEBIND, and the socket's
// own IP_FREEBIND setting, already restored, is put back afterwards.
func bindTo(fd, family int, ap netip.AddrPort, zone string) error {
	sa, err := sockaddr(family, ap, zone)
	if err != nil {
		return err
	}
	// An MPTCP socket of older kernels cannot report IP_FREEBIND (it can
	// set it): it has the default then, the table of options did not read
	// it either.
	unsupported := func(err error) bool { return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOPROTOOPT) }
	free, err := unix.GetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_FREEBIND)
	if err != nil && !unsupported(err) {
		return fmt.Errorf("bind %s: read IP_FREEBIND: %w", ap, err)
	}
	if free == 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_FREEBIND, 1); err != nil {
			return fmt.Errorf("bind %s: set IP_FREEBIND: %w", ap, err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind %s: %w", ap, err)
	}
	if free == 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_FREEBIND, 0); err != nil {
			return fmt.Errorf("bind %s: clear IP_FREEBIND: %w", ap, err)
		}
	}
	return nil
}

// bindClosed binds a closed socket to its old address in repair mode,
// where the kernel checks no conflict: a connection that was accepted and
// then reset (or closed by its peer) keeps its listener's port, which a
// plain bind next to the listener would refuse with EADDRINUSE. Repair mode
// resets SO_REUSEADDR, which the Late options set back.
func bindClosed(fd, family int, ap netip.AddrPort, zone string) error {
	if err := repair(fd, true); err != nil {
		return err
	}
	if err := bindTo(fd, family, ap, zone); err != nil {
		return err
	}
	return repair(fd, false)
}

// restoreConn rebuilds a connection in repair mode: sequence numbers,
// connect without a handshake, options, both queues, windows, FINs.
func restoreConn(fd int, s *image.Socket, state int) error {
	is, c := s.Inet, s.Inet.TCP
	local, err := parseAddr(is.Local)
	if err != nil {
		return err
	}
	peer, err := parseAddr(is.Peer)
	if err != nil {
		return err
	}
	if !local.IsValid() || !peer.IsValid() {
		return errors.New("TCP connection without both addresses")
	}
	if c.Unsent < 0 || c.Unsent > len(c.SendQueue) || c.MSS <= 0 || c.MSS > 65535 {
		return fmt.Errorf("inconsistent TCP state (unsent %d of %d bytes, mss %d)", c.Unsent, len(c.SendQueue), c.MSS)
	}
	if err := restoreOptions(fd, s, sockopt.Early, true); err != nil {
		return err
	}
	if err := repair(fd, true); err != nil {
		return err
	}
	if err := bindTo(fd, s.Family, local, is.Local.Zone); err != nil {
		return err
	}
	var rcvAdj, sndAdj uint32
	if rcvFin[state] {
		rcvAdj = 1
	}
	if sndFinFirst[state] || sndFinSecond[state] {
		sndAdj = 1
	}
	sndUna := c.SendSeq - sndAdj - uint32(len(c.SendQueue))
	if err := setQueueSeq(fd, tcpRecvQueue, c.RecvSeq-rcvAdj-uint32(len(c.RecvQueue))); err != nil {
		return err
	}
	if err := setQueueSeq(fd, tcpSendQueue, sndUna); err != nil {
		return err
	}
	sa, err := sockaddr(s.Family, peer, is.Peer.Zone)
	if err != nil {
		return err
	}
	if err := connectAnyway(fd, s.Family, sa); err != nil {
		return fmt.Errorf("connect %s in repair mode: %w", peer, err)
	}
	opts := []unix.TCPRepairOpt{{Code: unix.TCPOPT_MAXSEG, Val: uint32(c.MSS)}}
	if c.SACK {
		opts = append(opts, unix.TCPRepairOpt{Code: unix.TCPOPT_SACK_PERMITTED})
	}
	// Always given: connect() in repair mode left the socket the scale it
	// would have offered in its SYN, and without this its windows would
	// go out shifted by it to a peer that did not agree to scaling (and
	// reads them unscaled). Scales of 0 are no scaling.
	sndScale, rcvScale := 0, 0
	if c.WScale {
		sndScale, rcvScale = c.SndWscale, c.RcvWscale
	}
	if sndScale > 14 || rcvScale > 14 || sndScale < 0 || rcvScale < 0 {
		return fmt.Errorf("inconsistent TCP state (window scale %d/%d)", sndScale, rcvScale)
	}
	opts = append(opts, unix.TCPRepairOpt{Code: unix.TCPOPT_WINDOW, Val: uint32(sndScale) | uint32(rcvScale)<<16})
	if c.Timestamps {
		opts = append(opts, unix.TCPRepairOpt{Code: unix.TCPOPT_TIMESTAMP})
	}
	if err := unix.SetsockoptTCPRepairOpt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_OPTIONS, opts); err != nil {
		return fmt.Errorf("TCP_REPAIR_OPTIONS: %w", err)
	}
	if c.Timestamps {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_TIMESTAMP, int(c.Timestamp)); err != nil {
			return fmt.Errorf("TCP_TIMESTAMP: %w", err)
		}
	}
	// Room for both queues whatever the buffer sizes (the stored sizes are
	// set back below): the peer's acknowledgements are held back by the
	// lock, so nothing would make room.
	if err := roomFor(fd, len(c.SendQueue), len(c.RecvQueue)); err != nil {
		return err
	}
	if err := writeQueue(fd, tcpRecvQueue, c.RecvQueue); err != nil {
		return fmt.Errorf("receive queue: %w", err)
	}
	sent := len(c.SendQueue) - c.Unsent
	if err := writeQueue(fd, tcpSendQueue, c.SendQueue[:sent]); err != nil {
		return fmt.Errorf("send queue: %w", err)
	}
	if c.Unsent > 0 {
		// Never transmitted: an ordinary write, out of repair mode.
		if err := repair(fd, false); err != nil {
			return err
		}
		if err := writeAll(fd, c.SendQueue[sent:]); err != nil {
			return fmt.Errorf("unsent data: %w", err)
		}
		if err := repair(fd, true); err != nil {
			return err
		}
	}
	if err := restoreBuffers(fd, s); err != nil {
		return err
	}
	if w := c.Window; w != nil {
		rw := tcpRepairWindow{SndWl1: w.SndWl1, SndWnd: w.SndWnd, MaxWindow: w.MaxWindow, RcvWnd: w.RcvWnd, RcvWup: w.RcvWup}
		if rcvFin[state] {
			rw.RcvWup--
			rw.RcvWnd++
		}
		if err := setRepairWindow(fd, &rw); err != nil {
			return fmt.Errorf("TCP_REPAIR_WINDOW (inconsistent with the sequence numbers?): %w", err)
		}
	}
	if err := restoreFins(fd, s, state, local, peer, sndUna); err != nil {
		return err
	}
	if err := repair(fd, false); err != nil {
		return err
	}
	if err := restoreOptions(fd, s, sockopt.Late, true); err != nil {
		return err
	}
	if is.Shutdown&shutdownReceive != 0 {
		if err := unix.Shutdown(fd, unix.SHUT_RD); err != nil {
			return fmt.Errorf("shutdown(SHUT_RD): %w", err)
		}
	}
	return restoreOptions(fd, s, sockopt.Final, true)
}

// restoreFins puts back the FINs of a half-closed connection: ours with
// shutdown(SHUT_WR) in repair mode, the peer's as an injected segment.
func restoreFins(fd int, s *image.Socket, state int, local, peer netip.AddrPort, sndUna uint32) error {
	c := s.Inet.TCP
	var window uint16 = 0xffff
	if c.Window != nil {
		window = uint16(min(c.Window.SndWnd>>uint(c.SndWscale), 0xffff))
	}
	if sndFinFirst[state] {
		if err := shutdownWrite(fd, sndFinAcked[state]); err != nil {
			return err
		}
	}
	if rcvFin[state] {
		seg := tcpSegment{seq: c.RecvSeq - 1, ack: sndUna, flags: tcpFlagFIN | tcpFlagACK, window: window}
		if err := injectTCP(peer, local, seg); err != nil {
			return fmt.Errorf("restore the peer's FIN: %w", err)
		}
	}
	if sndFinSecond[state] {
		if err := shutdownWrite(fd, false); err != nil {
			return err
		}
	}
	if sndFinAcked[state] {
		seg := tcpSegment{seq: c.RecvSeq, ack: c.SendSeq, flags: tcpFlagACK, window: window}
		if err := injectTCP(peer, local, seg); err != nil {
			return fmt.Errorf("acknowledge our FIN: %w", err)
		}
	}
	if sndFinFirst[state] || rcvFin[state] {
		return waitState(fd, state)
	}
	return nil
}

// shutdownWrite queues our FIN; acked marks it as already transmitted.
func shutdownWrite(fd int, acked bool) error {
	if acked {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpSendQueue); err != nil {
			return fmt.Errorf("TCP_REPAIR_QUEUE: %w", err)
		}
	}
	if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil {
		return fmt.Errorf("restore our FIN: %w", err)
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpNoQueue)
	return nil
}

func repair(fd int, on bool) error {
	v := unix.TCP_REPAIR_OFF
	if on {
		v = unix.TCP_REPAIR_ON
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, v); err != nil {
		return fmt.Errorf("TCP_REPAIR=%d (needs CAP_NET_ADMIN): %w", v, err)
	}
	return nil
}

func setQueueSeq(fd, queue int, seq uint32) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, queue); err != nil {
		return fmt.Errorf("TCP_REPAIR_QUEUE: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ, int(int32(seq))); err != nil {
		return fmt.Errorf("TCP_QUEUE_SEQ: %w", err)
	}
	return nil
}

// writeQueue fills a queue in repair mode. The kernel allocates one linear
// buffer per write to the receive queue, so large writes are split when it
// refuses them.
func writeQueue(fd, queue int, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, queue); err != nil {
		return fmt.Errorf("TCP_REPAIR_QUEUE: %w", err)
	}
	chunk := len(data)
	for len(data) > 0 {
		n, err := unix.SendmsgN(fd, data[:min(chunk, len(data))], nil, nil, unix.MSG_DONTWAIT)
		if err != nil || n <= 0 {
			if chunk > 1024 {
				chunk /= 2
				continue
			}
			return fmt.Errorf("write %d bytes: %w", len(data), err)
		}
		data = data[n:]
	}
	return nil
}

func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := unix.SendmsgN(fd, data, nil, nil, unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// waitState waits until the rebuilt connection reaches the checkpointed
// state (injected segments are processed asynchronously).
func waitState(fd, state int) error {
	var got uint8
	for i := 0; i < 200; i++ {
		ti, err := getTCPInfo(fd)
		if err != nil {
			return err
		}
		if got = ti.state; int(got) == state {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("half-closed connection reached state %s, not %s", tcpStateNames[int(got)], tcpStateNames[state])
}

// roomFor makes the socket buffers large enough for the queues.
func roomFor(fd, send, recv int) error {
	for _, b := range []struct{ opt, n int }{{unix.SO_SNDBUFFORCE, send}, {unix.SO_RCVBUFFORCE, recv}} {
		if b.n == 0 {
			continue
		}
		cur, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, b.opt-(unix.SO_SNDBUFFORCE-unix.SO_SNDBUF))
		if want := 4*b.n + 1<<20; cur < want {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, b.opt, want/2); err != nil {
				return fmt.Errorf("enlarge socket buffer for %d queued bytes: %w", b.n, err)
			}
		}
	}
	return nil
}

// restoreBuffers sets SO_SNDBUF and SO_RCVBUF back to their stored values.
// A socket whose buffers were never set (autotuned) keeps the enlarged,
// fixed size: the socket API cannot hand a buffer back to autotuning.
func restoreBuffers(fd int, s *image.Socket) error {
	for _, o := range sockOpts {
		if v, ok := s.Inet.Options[o.Name]; ok && bufferOpts[o.Name] {
			if err := setOption(fd, o, v); err != nil {
				return err
			}
		}
	}
	return nil
}
