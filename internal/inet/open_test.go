package inet

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// TestOpenRefusesBadState: Open refuses inconsistent socket state from an
// image, and leaves no half-built connection behind.
func TestOpenRefusesBadState(t *testing.T) {
	needRoot(t)
	l := newLab(t)
	good := func() *image.Socket {
		return &image.Socket{Family: unix.AF_INET, Type: unix.SOCK_STREAM, Protocol: unix.IPPROTO_TCP,
			Inet: &image.InetSocket{State: "established",
				Local: &image.InetAddr{IP: "10.77.0.1", Port: 7100}, Peer: &image.InetAddr{IP: "10.77.0.2", Port: 40000},
				TCP: &image.TCPConn{SendSeq: 1000, RecvSeq: 5000, MSS: 1460, SendQueue: []byte("abc"),
					Window: &image.TCPWindow{SndWl1: 4990, SndWnd: 65535, MaxWindow: 65535, RcvWnd: 65535, RcvWup: 5000}}}}
	}
	cases := []struct {
		name   string
		modify func(s *image.Socket)
		want   string
	}{
		{"window beyond received data", func(s *image.Socket) { s.Inet.TCP.Window.RcvWup = 9000 }, "TCP_REPAIR_WINDOW"},
		{"unsent larger than queue", func(s *image.Socket) { s.Inet.TCP.Unsent = 10 }, "inconsistent"},
		{"no mss", func(s *image.Socket) { s.Inet.TCP.MSS = 0 }, "inconsistent"},
		{"window scale", func(s *image.Socket) { s.Inet.TCP.WScale, s.Inet.TCP.SndWscale = true, 15 }, "window scale"},
		{"unknown state", func(s *image.Socket) { s.Inet.State = "syn-sent" }, "cannot be restored"},
		{"no peer", func(s *image.Socket) { s.Inet.Peer = nil }, "both addresses"},
		{"bad address", func(s *image.Socket) { s.Inet.Local.IP = "10.77.0.999" }, "address"},
		{"udp with tcp state", func(s *image.Socket) { s.Type, s.Protocol = unix.SOCK_DGRAM, unix.IPPROTO_UDP }, "UDP socket with TCP state"},
		{"listener with queues", func(s *image.Socket) { s.Inet.State = "listen" }, "has connection state"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := good()
			tc.modify(s)
			o := NewOpener(nil)
			o.NetNS = "/run/netns/" + l.a
			defer o.Close()
			f, err := o.Open(s)
			if err == nil {
				f.Close()
				t.Fatalf("Open accepted the state")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	// The unmodified state is accepted (the test's reference is sound).
	o := NewOpener(nil)
	o.NetNS = "/run/netns/" + l.a
	defer o.Close()
	f, err := o.Open(good())
	if err != nil {
		t.Fatalf("good state refused: %v", err)
	}
	unix.SetsockoptInt(int(f.Fd()), unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON)
	f.Close()
}

// TestMPTCPListenerInfo: the inet_diag fallback for an MPTCP listener's
// TCP_INFO (kernels whose MPTCP sockets do not answer it) reports what
// TCP_INFO reports: listening, connections waiting, backlog.
func TestMPTCPListenerInfo(t *testing.T) {
	needRoot(t)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_MPTCP)
	if err != nil {
		t.Skipf("no MPTCP here: %v", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 7); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	for i := 0; i < 2; i++ {
		c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(c)
		if err := unix.Connect(c, sa); err != nil {
			t.Fatal(err)
		}
	}
	got, err := mptcpListenerInfo(fd)
	if err != nil {
		t.Fatal(err)
	}
	if got.state != tcpListen || got.unacked != 2 || got.sacked != 7 {
		t.Fatalf("state %d, waiting %d, backlog %d; want %d, 2, 7", got.state, got.unacked, got.sacked, tcpListen)
	}
	if ti, err := getTCPInfo(fd); err == nil && (ti.unacked != got.unacked || ti.sacked != got.sacked) {
		t.Fatalf("TCP_INFO says waiting %d, backlog %d", ti.unacked, ti.sacked)
	}
}
