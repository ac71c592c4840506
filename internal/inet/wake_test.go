package inet

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

func TestWakeOf(t *testing.T) {
	conn := func(state, local, peer string, c image.TCPConn) *image.Socket {
		l, p := netip.MustParseAddrPort(local), netip.MustParseAddrPort(peer)
		return &image.Socket{Inet: &image.InetSocket{State: state, TCP: &c,
			Local: &image.InetAddr{IP: l.Addr().String(), Port: int(l.Port())},
			Peer:  &image.InetAddr{IP: p.Addr().String(), Port: int(p.Port())}}}
	}
	win := func(wup, wnd uint32) *image.TCPWindow { return &image.TCPWindow{RcvWup: wup, RcvWnd: wnd} }
	cases := []struct {
		name   string
		sock   *image.Socket
		want   bool
		seq    uint32
		window uint16
		fresh  bool
	}{
		{"all acknowledged", conn("established", "10.0.2.15:11211", "10.0.2.2:40000",
			image.TCPConn{SendSeq: 500, RecvSeq: 900, Window: win(900, 64240)}), true, 500, 64240, false},
		{"scaled window", conn("established", "10.0.2.15:11211", "10.0.2.2:40000",
			image.TCPConn{SendSeq: 500, RecvSeq: 900, RcvWscale: 7, Window: win(900, 3<<20)}), true, 500, 3 << 13, false},
		// Data received and not acknowledged: the window's right edge
		// stays, and the first acknowledgement is a new one.
		{"unacknowledged data", conn("established", "10.0.2.15:11211", "10.0.2.2:40000",
			image.TCPConn{SendSeq: 500, RecvSeq: 1000, Window: win(900, 64240)}), true, 500, 64140, true},
		{"unsent data", conn("established", "[fd00::1]:80", "[fd00::2]:40000",
			image.TCPConn{SendSeq: 800, Unsent: 300, RecvSeq: 1, Window: win(1, 100)}), true, 500, 100, false},
		{"sequence wraps", conn("established", "10.0.2.15:11211", "10.0.2.2:40000",
			image.TCPConn{SendSeq: 10, Unsent: 20, RecvSeq: 5, Window: win(0xfffffff0, 100)}), true, 0xfffffff6, 79, true},
		{"data in flight", conn("established", "10.0.2.15:11211", "10.0.2.2:40000",
			image.TCPConn{SendSeq: 800, SendQueue: make([]byte, 500), Unsent: 200, RecvSeq: 900, Window: win(900, 100)}), true, 600, 100, false},
		{"no window reported", conn("established", "10.0.2.15:11211", "10.0.2.2:40000",
			image.TCPConn{SendSeq: 500, RecvSeq: 900}), true, 500, 0xffff, false},
		{"loopback peer", conn("established", "127.0.0.1:11211", "127.0.0.1:40000", image.TCPConn{}), false, 0, 0, false},
		{"mapped loopback", conn("established", "[::ffff:127.0.0.1]:80", "[::ffff:127.0.0.1]:4000", image.TCPConn{}), false, 0, 0, false},
		{"link-local peer", func() *image.Socket {
			s := conn("established", "[fe80::1]:80", "[fe80::2]:4000", image.TCPConn{})
			s.Inet.Peer.Zone = "eth0"
			return s
		}(), false, 0, 0, false},
		{"closing", conn("fin-wait1", "10.0.2.15:11211", "10.0.2.2:40000", image.TCPConn{}), false, 0, 0, false},
		{"listener", &image.Socket{Inet: &image.InetSocket{State: "listen", Local: &image.InetAddr{IP: "0.0.0.0", Port: 80}}}, false, 0, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws := wakes([]*image.Socket{tc.sock})
			if !tc.want {
				if len(ws) != 0 {
					t.Fatalf("woke %v; want nothing", ws)
				}
				return
			}
			if len(ws) != 1 {
				t.Fatalf("got %d wakes, want 1", len(ws))
			}
			w := ws[0]
			if w.seq != tc.seq || w.ack != tc.sock.Inet.TCP.RecvSeq || w.window != tc.window || w.fresh != tc.fresh {
				t.Errorf("seq %d ack %d window %d fresh %v; want %d %d %d %v", w.seq, w.ack, w.window, w.fresh,
					tc.seq, tc.sock.Inet.TCP.RecvSeq, tc.window, tc.fresh)
			}
			c := tc.sock.Inet.TCP
			if una := c.SendSeq - uint32(len(c.SendQueue)); w.una != una || w.inFlight != (len(c.SendQueue) > c.Unsent) {
				t.Errorf("una %d in flight %v; want %d %v", w.una, w.inFlight, una, len(c.SendQueue) > c.Unsent)
			}
		})
	}
}

// TestWakePeer restores a connection whose Linux peer has data outstanding
// and has backed its retransmission timer off, and wakes it: the peer
// must retransmit before its timer would have, and receive every packet
// of the wake intact.
func TestWakePeer(t *testing.T) {
	needRoot(t)
	for _, family := range []int{4, 6} {
		t.Run("ipv"+strconv.Itoa(family), func(t *testing.T) {
			l := newLab(t)
			srv, c, r := l.echoing(t, family, 7010)
			img := l.checkpoint(t, srv.Process.Pid)
			srv.Wait()
			// Sent while the service is away: the lock drops it, the peer
			// retransmits, doubling its timer each time.
			c.SetDeadline(time.Time{})
			if _, err := c.Write([]byte("during")); err != nil {
				t.Fatal(err)
			}
			for peerTimer(t, c).backoff < 4 {
				time.Sleep(50 * time.Millisecond)
			}
			l.restore(t, img)
			ws := wakes(imageSockets(t, img))
			if len(ws) != 1 {
				t.Fatalf("image has %d connections to wake, want 1: %v", len(ws), ws)
			}
			// Wait for a moment well before the peer's timer would fire.
			var due time.Duration
			for {
				pt := peerTimer(t, c)
				if due = pt.rto - pt.sinceSent; due >= 3*time.Second {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			before := l.snmp(t)
			woken := time.Now()
			l.inA(t, func() error {
				ok, err := ws[0].Routed()
				if err == nil && !ok {
					t.Errorf("%v: no route to the peer", ws[0])
				}
				if err != nil {
					return err
				}
				return ws[0].Send(true)
			})
			// Not a speed check: whether the wake, rather than the timer,
			// brought the retransmission.
			got := make([]byte, len("during"))
			c.SetDeadline(woken.Add(due - time.Second))
			if _, err := r.Read(got[:1]); err != nil {
				t.Fatalf("peer's timer was due in %v; nothing came back within %v of the wake: %v",
					due.Round(time.Millisecond), (due - time.Second).Round(time.Millisecond), err)
			}
			t.Logf("answer %v after the wake; the peer's timer was due in %v", time.Since(woken).Round(time.Millisecond), due.Round(time.Millisecond))
			after := l.snmp(t)
			icmp, unreach := "Icmp", "InDestUnreachs"
			if family == 6 {
				icmp, unreach = "Icmp6", "InDestUnreachs"
			}
			for _, k := range [][2]string{{"Tcp", "InCsumErrors"}, {icmp, "InCsumErrors"}, {icmp, "InErrors"}} {
				if d := after[k] - before[k]; d != 0 {
					t.Errorf("peer counted %d %s %s", d, k[0], k[1])
				}
			}
			if d := after[[2]string{icmp, unreach}] - before[[2]string{icmp, unreach}]; d != unreachables {
				t.Errorf("peer received %d ICMP errors, want %d", d, unreachables)
			}
		})
	}
}

// peerTimerState is the retransmission timer of the test's connection.
type peerTimerState struct {
	backoff   int
	rto       time.Duration
	sinceSent time.Duration
}

func peerTimer(t *testing.T, c net.Conn) peerTimerState {
	t.Helper()
	ti := tcpInfoOf(t, c)
	return peerTimerState{backoff: int(ti.Backoff), rto: time.Duration(ti.Rto) * time.Microsecond,
		sinceSent: time.Duration(ti.Last_data_sent) * time.Millisecond}
}

// tcpInfoOf is TCP_INFO of the test's end of a connection.
func tcpInfoOf(t *testing.T, c net.Conn) *unix.TCPInfo {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ti *unix.TCPInfo
	raw.Control(func(fd uintptr) { ti, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
	if err != nil {
		t.Fatal(err)
	}
	return ti
}

// echoing starts tcpecho on port in namespace A and returns it with a
// connection to it from B that has echoed once; the connection is closed
// at the end of the test.
func (l *lab) echoing(t *testing.T, family, port int) (*exec.Cmd, net.Conn, *bufio.Reader) {
	t.Helper()
	srv := l.start(t, "tcpecho", strconv.Itoa(family), strconv.Itoa(port), "echo", l.dir)
	c, err := l.dial(t, "tcp", l.addr(family, port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	if err := echo(c, r, "before", time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	return srv, c, r
}

// echo sends msg on c and reads it back from r (c's reader) by deadline.
func echo(c net.Conn, r *bufio.Reader, msg string, deadline time.Time) error {
	c.SetDeadline(deadline)
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(r, got); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// inA runs fn on a thread in namespace A.
func (l *lab) inA(t *testing.T, fn func() error) {
	t.Helper()
	ns, err := os.Open("/run/netns/" + l.a)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := InNetNS(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// snmp reads the protocol counters of namespace B, the peer's, by protocol
// and name (/proc/net/snmp and snmp6).
func (l *lab) snmp(t *testing.T) map[[2]string]int64 {
	t.Helper()
	out := map[[2]string]int64{}
	l.inB(t, func() {
		if b, err := os.ReadFile("/proc/thread-self/net/snmp"); err == nil {
			lines := strings.Split(string(b), "\n")
			for i := 0; i+1 < len(lines); i += 2 {
				names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
				for j := 1; j < len(names) && j < len(values); j++ {
					v, _ := strconv.ParseInt(values[j], 10, 64)
					out[[2]string{strings.TrimSuffix(names[0], ":"), names[j]}] = v
				}
			}
		}
		if b, err := os.ReadFile("/proc/thread-self/net/snmp6"); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				f := strings.Fields(line)
				if len(f) == 2 && strings.HasPrefix(f[0], "Icmp6") {
					v, _ := strconv.ParseInt(f[1], 10, 64)
					out[[2]string{"Icmp6", strings.TrimPrefix(f[0], "Icmp6")}] = v
				}
			}
		}
	})
	return out
}
