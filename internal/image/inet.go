package image

import (
	"fmt"
	"net/netip"
)

// InetSocket is the state of a TCP or UDP socket, IPv4 or IPv6. It holds
// only what the socket API exposes (addresses, socket options, TCP_REPAIR
// sequence numbers, windows and queues), so it restores on another kernel.
type InetSocket struct {
	// NetNS is the inode of the network namespace the socket lived in at
	// checkpoint. It identifies the namespace within one boot only.
	NetNS uint64 `json:"netns,omitempty"`
	// Owner is the uid and gid the socket belongs to (those that made it):
	// the kernel groups SO_REUSEPORT sockets by that uid, and routing rules
	// may match it. Absent in older images (the restorer's).
	Owner *[2]uint32 `json:"owner,omitempty"`
	// Lock names the network-lock chain (table inet seamless) that drops the
	// socket's inbound packets between checkpoint and restore.
	Lock string `json:"lock,omitempty"`
	// Local is the bound address (empty if the socket was never bound).
	Local *InetAddr `json:"local,omitempty"`
	// Peer is the connected address (TCP connections, connected UDP).
	Peer *InetAddr `json:"peer,omitempty"`
	// State is the TCP state ("listen", "established", "close-wait", ...)
	// or, for UDP, "unconnected" or "connected".
	State string `json:"state"`
	// Backlog is a listening socket's backlog (sk_max_ack_backlog).
	Backlog int `json:"backlog,omitempty"`
	// Options are the socket options that differ from a new socket's
	// defaults, by name (see internal/inet/options.go): numbers (timevals
	// in nanoseconds), and in NameOptions those whose value is a name
	// (SO_BINDTODEVICE, TCP_CONGESTION).
	Options     map[string]int    `json:"options,omitempty"`
	NameOptions map[string]string `json:"name_options,omitempty"`
	// BufLock is SO_BUF_LOCK (absent on kernels before 5.14): setting a
	// buffer size locks it, which the restore's own sizing does too.
	BufLock *int `json:"buf_lock,omitempty"`
	// Shutdown is the shutdown state as sock_diag reports it (1 receive,
	// 2 send): for TCP the receive side only (a sent FIN is in State).
	Shutdown int `json:"shutdown,omitempty"`
	// Linger is SO_LINGER when it is on (seconds).
	Linger *int `json:"linger,omitempty"`
	// TCP is the repair state of a connection (established or half-closed).
	TCP *TCPConn `json:"tcp,omitempty"`
	// Datagrams are the datagrams queued for reading on a UDP socket, oldest
	// first.
	Datagrams []Datagram `json:"datagrams,omitempty"`
}

// InetAddr is an IPv4 or IPv6 address and a port. IPv4 addresses of an
// AF_INET6 socket are written in the mapped form (::ffff:a.b.c.d).
type InetAddr struct {
	IP   string `json:"ip"`
	Port int    `json:"port"`
	// Zone is the IPv6 scope (interface name) of a link-local address.
	Zone string `json:"zone,omitempty"`
}

// TCPConn is what TCP_REPAIR exposes of a connection.
type TCPConn struct {
	// SendSeq is write_seq (TCP_QUEUE_SEQ of the send queue): the sequence
	// number after the last byte written, FIN included.
	SendSeq uint32 `json:"send_seq"`
	// RecvSeq is rcv_nxt (TCP_QUEUE_SEQ of the receive queue), FIN included.
	RecvSeq uint32 `json:"recv_seq"`
	// SendQueue holds every byte written and not yet acknowledged by the
	// peer; its last Unsent bytes were never transmitted.
	SendQueue []byte `json:"send_queue,omitempty"`
	Unsent    int    `json:"unsent,omitempty"`
	// RecvQueue holds the bytes received and not yet read.
	RecvQueue []byte `json:"recv_queue,omitempty"`
	// MSS is the clamp (TCP_MAXSEG).
	MSS int `json:"mss"`
	// SndWscale and RcvWscale are the window scale factors when the option
	// was negotiated (WScale).
	WScale    bool `json:"wscale,omitempty"`
	SndWscale int  `json:"snd_wscale,omitempty"`
	RcvWscale int  `json:"rcv_wscale,omitempty"`
	SACK      bool `json:"sack,omitempty"`
	// Timestamps is set when TCP timestamps were negotiated; Timestamp is
	// the current TCP_TIMESTAMP value.
	Timestamps bool   `json:"timestamps,omitempty"`
	Timestamp  uint32 `json:"timestamp,omitempty"`
	// Window is TCP_REPAIR_WINDOW (nil if the kernel did not report it).
	Window *TCPWindow `json:"window,omitempty"`
}

// TCPWindow is struct tcp_repair_window.
type TCPWindow struct {
	SndWl1    uint32 `json:"snd_wl1"`
	SndWnd    uint32 `json:"snd_wnd"`
	MaxWindow uint32 `json:"max_window"`
	RcvWnd    uint32 `json:"rcv_wnd"`
	RcvWup    uint32 `json:"rcv_wup"`
}

// Datagram is one queued UDP datagram and its source.
type Datagram struct {
	From InetAddr `json:"from"`
	Data []byte   `json:"data"`
}

func (s *InetSocket) validate() error {
	for _, a := range []*InetAddr{s.Local, s.Peer} {
		if a != nil {
			if err := a.validate(); err != nil {
				return err
			}
		}
	}
	for i := range s.Datagrams {
		if err := s.Datagrams[i].From.validate(); err != nil {
			return fmt.Errorf("queued datagram %d: %w", i, err)
		}
	}
	if t := s.TCP; t != nil {
		if t.Unsent < 0 || t.Unsent > len(t.SendQueue) {
			return fmt.Errorf("%d unsent bytes of a send queue of %d", t.Unsent, len(t.SendQueue))
		}
		if t.MSS <= 0 || t.MSS > 65535 {
			return fmt.Errorf("bad MSS %d", t.MSS)
		}
		if t.SndWscale < 0 || t.SndWscale > 14 || t.RcvWscale < 0 || t.RcvWscale > 14 {
			return fmt.Errorf("bad window scale %d/%d", t.SndWscale, t.RcvWscale)
		}
	}
	if s.Backlog < 0 {
		return fmt.Errorf("bad backlog %d", s.Backlog)
	}
	return nil
}

func (a *InetAddr) validate() error {
	if _, err := netip.ParseAddr(a.IP); err != nil {
		return fmt.Errorf("address %q: %v", a.IP, err)
	}
	if a.Port < 0 || a.Port > 65535 {
		return fmt.Errorf("port %d out of range", a.Port)
	}
	return nil
}
