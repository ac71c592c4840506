package inet

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// TCP state sets of half-closed connections (as in libsoccr): which side's
// FIN is part of the sequence space, and whether it was acknowledged.
var (
	sndFinFirst  = states(tcpFinWait1, tcpFinWait2, tcpClosing) // we closed first
	sndFinSecond = states(tcpLastAck)                           // we closed after the peer
	sndFinAcked  = states(tcpFinWait2)
	rcvFin       = states(tcpCloseWait, tcpLastAck, tcpClosing) // the peer's FIN arrived
)

func states(s ...int) map[int]bool {
	m := map[int]bool{}
	for _, x := range s {
		m[x] = true
	}
	return m
}

// tcpInfo flags (linux/tcp.h).
const (
	tcpiOptTimestamps = 1
	tcpiOptSACK       = 2
	tcpiOptWscale     = 4
)

func (d *Dumper) dumpTCP(fd, pid int, s *image.Socket, is *image.InetSocket, h *held) error {
	ti, err := getTCPInfo(fd)
	if err != nil && s.Protocol == unix.IPPROTO_MPTCP {
		ti, err = mptcpListenerInfo(fd)
	}
	if err != nil {
		return err
	}
	is.State = tcpStateNames[int(ti.state)]
	if err := addresses(fd, is); err != nil {
		return err
	}
	conn := ti.state != tcpClose && ti.state != tcpListen
	// A closed socket that carried a connection shows the connection's
	// MSS and window clamp, not settings of its own.
	wasConn := conn || ti.state == tcpClose && ti.segments > 0
	if err := dumpOptions(fd, s, is, wasConn); err != nil {
		return err
	}
	if conn {
		// A shut down receive side changes no TCP state: only sock_diag
		// tells. (A sent FIN is in the state.)
		shut, err := shutdownState(fd, s.Family, s.Protocol, h.inode)
		if err != nil {
			return err
		}
		is.Shutdown = shut & shutdownReceive
	}
	switch int(ti.state) {
	case tcpClose:
		return nil
	case tcpListen:
		if ti.unacked > 0 {
			return fmt.Errorf("listening socket %s has %d connection(s) waiting in its accept queue, which cannot be carried over (retry the checkpoint once the service has accepted them): %w", is.Local.IP, ti.unacked, ErrPendingAccept)
		}
		is.Backlog = int(ti.sacked)
		return d.lockSocket(pid, s, is)
	case tcpEstablished, tcpFinWait1, tcpFinWait2, tcpCloseWait, tcpLastAck, tcpClosing:
	case tcpSynSent:
		return fmt.Errorf("TCP connection in state syn-sent (connect in progress) cannot be checkpointed")
	default:
		return fmt.Errorf("TCP socket in state %d cannot be checkpointed", ti.state)
	}
	// Lock first: packets that arrive after the queues are read would be
	// acknowledged by this kernel and lost.
	if err := d.lockSocket(pid, s, is); err != nil {
		return err
	}
	if h.reuseAddr, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR); err != nil {
		return fmt.Errorf("getsockopt SO_REUSEADDR: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		return fmt.Errorf("TCP_REPAIR (needs CAP_NET_ADMIN): %w", err)
	}
	h.repair = true
	// The state may have moved between TCP_INFO and the lock.
	if ti, err = getTCPInfo(fd); err != nil {
		return err
	}
	state := int(ti.state)
	is.State = tcpStateNames[state]
	if state == tcpClose || state == tcpTimeWait || state == tcpListen || state == tcpSynSent || state == tcpSynRecv {
		return fmt.Errorf("TCP connection changed to state %s during the checkpoint", is.State)
	}
	c := &image.TCPConn{}
	is.TCP = c
	return readRepair(fd, state, ti, c)
}

// lockSocket installs the network lock for s.
func (d *Dumper) lockSocket(pid int, s *image.Socket, is *image.InetSocket) error {
	fl, err := flows(s, is)
	if err != nil || len(fl) == 0 {
		return err
	}
	is.Lock, err = d.lock(pid, is.NetNS, fl...)
	return err
}

// readRepair reads a connection in repair mode: queue lengths, sequence
// numbers, options, windows and the bytes of both queues.
func readRepair(fd, state int, ti *tcpInfo, c *image.TCPConn) error {
	outq, err := ioctlInt(fd, unix.SIOCOUTQ)
	if err != nil {
		return fmt.Errorf("SIOCOUTQ: %w", err)
	}
	unsent, err := ioctlInt(fd, unix.SIOCOUTQNSD)
	if err != nil {
		return fmt.Errorf("SIOCOUTQNSD: %w", err)
	}
	inq, err := ioctlInt(fd, unix.SIOCINQ)
	if err != nil {
		return fmt.Errorf("SIOCINQ: %w", err)
	}
	// Our FIN is counted in the send queue's length until acknowledged; it
	// carries no data (SIOCINQ already leaves the peer's FIN out).
	if sndFinFirst[state] || sndFinSecond[state] {
		if outq > 0 {
			outq--
		}
		if unsent > 0 {
			unsent--
		}
	}
	if c.MSS, err = unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_MAXSEG); err != nil {
		return fmt.Errorf("TCP_MAXSEG: %w", err)
	}
	c.SACK = ti.options&tcpiOptSACK != 0
	if ti.options&tcpiOptWscale != 0 {
		c.WScale, c.SndWscale, c.RcvWscale = true, ti.sndWscale, ti.rcvWscale
	}
	if ti.options&tcpiOptTimestamps != 0 {
		c.Timestamps = true
		v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_TIMESTAMP)
		if err != nil {
			return fmt.Errorf("TCP_TIMESTAMP: %w", err)
		}
		c.Timestamp = uint32(v)
	}
	w, err := getRepairWindow(fd)
	if err != nil {
		return fmt.Errorf("TCP_REPAIR_WINDOW: %w", err)
	}
	c.Window = &image.TCPWindow{SndWl1: w.SndWl1, SndWnd: w.SndWnd, MaxWindow: w.MaxWindow, RcvWnd: w.RcvWnd, RcvWup: w.RcvWup}
	if c.RecvSeq, c.RecvQueue, err = readQueue(fd, tcpRecvQueue, inq); err != nil {
		return fmt.Errorf("receive queue: %w", err)
	}
	if c.SendSeq, c.SendQueue, err = readQueue(fd, tcpSendQueue, outq); err != nil {
		return fmt.Errorf("send queue: %w", err)
	}
	c.Unsent = unsent
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpNoQueue)
	return nil
}

// readQueue returns a queue's sequence number (TCP_QUEUE_SEQ) and its n
// bytes, peeked in repair mode.
func readQueue(fd, queue, n int) (uint32, []byte, error) {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, queue); err != nil {
		return 0, nil, fmt.Errorf("TCP_REPAIR_QUEUE: %w", err)
	}
	seq, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ)
	if err != nil {
		return 0, nil, fmt.Errorf("TCP_QUEUE_SEQ: %w", err)
	}
	if n == 0 {
		return uint32(seq), nil, nil
	}
	// One byte more than expected proves there are exactly n.
	buf := make([]byte, n+1)
	got, _, err := unix.Recvfrom(fd, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if err != nil {
		return 0, nil, fmt.Errorf("peek %d bytes: %w", n, err)
	}
	if got != n {
		return 0, nil, fmt.Errorf("peeked %d bytes, the queue holds %d", got, n)
	}
	return uint32(seq), buf[:n], nil
}

// mptcpListenerInfo is what TCP_INFO says of a listener, for an MPTCP
// listener on a kernel whose MPTCP sockets do not answer TCP_INFO (before
// they passed it to their first subflow): its state, the connections
// waiting in its accept queue and its backlog, read from the TCP listener
// the kernel keeps for it (its subflow), found by address in inet_diag.
func mptcpListenerInfo(fd int) (*tcpInfo, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	local, _ := addrPort(sa)
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	nsfd, err := unix.IoctlRetInt(fd, unix.SIOCGSKNS)
	if err != nil {
		return nil, fmt.Errorf("network namespace of the socket: %w", err)
	}
	defer unix.Close(nsfd)
	var ti *tcpInfo
	err = diagTCP(nsfd, family, 1<<tcpListen, func(_ int, l netip.AddrPort, rq, wq uint32) {
		if l.Port() == local.Port() && l.Addr() == local.Addr().Unmap() {
			ti = &tcpInfo{state: tcpListen, unacked: rq, sacked: wq}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("MPTCP listener: %w", err)
	}
	if ti == nil {
		return nil, fmt.Errorf("MPTCP listener %s: its subflow is not found by inet_diag", local)
	}
	return ti, nil
}
