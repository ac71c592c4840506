package inet

import (
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestConnectAnyway connects restored sockets (TCP in repair mode, UDP) in
// a network namespace where neither their address nor any route exists
// yet, as on a new kernel whose network is not configured when a unit is
// restored; nothing of the fallback is left on the socket or in the
// routing table afterwards.
func TestConnectAnyway(t *testing.T) {
	needRoot(t)
	cases := []struct {
		name          string
		family, typ   int
		local, peer   string
		transparentOn bool // the socket's own IP_TRANSPARENT
	}{
		{"tcp4", unix.AF_INET, unix.SOCK_STREAM, "10.99.0.1:11211", "10.98.0.2:40000", false},
		{"tcp4 transparent", unix.AF_INET, unix.SOCK_STREAM, "10.99.0.1:11212", "10.98.0.2:40001", true},
		{"udp4", unix.AF_INET, unix.SOCK_DGRAM, "10.99.0.1:5353", "10.98.0.2:53", false},
		{"tcp6", unix.AF_INET6, unix.SOCK_STREAM, "[fd00:99::1]:8080", "[fd00:98::2]:40000", false},
		{"udp6", unix.AF_INET6, unix.SOCK_DGRAM, "[fd00:99::1]:5353", "[fd00:98::2]:53", false},
		// A dual-stack socket (Go's listeners) with an IPv4 peer: routed by IPv4.
		{"tcp6 v4-mapped", unix.AF_INET6, unix.SOCK_STREAM, "[::ffff:10.99.0.1]:8080", "[::ffff:10.98.0.2]:40002", false},
		{"udp6 v4-mapped", unix.AF_INET6, unix.SOCK_DGRAM, "[::ffff:10.99.0.1]:5354", "[::ffff:10.98.0.2]:53", false},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// This thread alone moves to an empty network namespace and is
		// thrown away afterwards (never unlocked).
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		if err := loUp(); err != nil {
			t.Errorf("lo up: %v", err)
			return
		}
		for _, c := range cases {
			local, peer := netip.MustParseAddrPort(c.local), netip.MustParseAddrPort(c.peer)
			fd, err := unix.Socket(c.family, c.typ|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Errorf("%s: socket: %v", c.name, err)
				continue
			}
			if c.typ == unix.SOCK_STREAM {
				if err := repair(fd, true); err != nil {
					t.Errorf("%s: %v", c.name, err)
				}
			}
			if c.transparentOn {
				unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TRANSPARENT, 1)
			}
			if err := bindTo(fd, c.family, local, ""); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			sa, _ := sockaddr(c.family, peer, "")
			if err := unix.Connect(fd, sa); err != unix.ENETUNREACH {
				t.Errorf("%s: a plain connect gave %v, want ENETUNREACH (is there a route?)", c.name, err)
			}
			if err := connectAnyway(fd, c.family, sa); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			if got, err := unix.Getpeername(fd); err != nil {
				t.Errorf("%s: getpeername: %v", c.name, err)
			} else if ap, _ := addrPort(got); ap != peer {
				t.Errorf("%s: connected to %s, want %s", c.name, ap, peer)
			}
			if got, _ := unix.Getsockname(fd); got != nil {
				if ap, _ := addrPort(got); ap != local {
					t.Errorf("%s: bound to %s, want %s", c.name, ap, local)
				}
			}
			if dev, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BINDTOIFINDEX); dev != 0 {
				t.Errorf("%s: left bound to device %d", c.name, dev)
			}
			want := 0
			if c.transparentOn {
				want = 1
			}
			// (One flag of the socket: IPV6_TRANSPARENT reads it on an IPv6 one.)
			if c.family == unix.AF_INET || strings.Contains(c.name, "v4-mapped") {
				if got, _ := unix.GetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TRANSPARENT); got != want {
					t.Errorf("%s: IP_TRANSPARENT is %d, want %d", c.name, got, want)
				}
			}
			unix.Close(fd)
		}
		for _, fam := range []string{"-4", "-6"} {
			out, _ := exec.Command("ip", fam, "route", "show", "table", "all", "proto", strconv.Itoa(fallbackProto)).CombinedOutput()
			if strings.TrimSpace(string(out)) != "" {
				t.Errorf("fallback routes left: %s", out)
			}
		}
	}()
	<-done
}

// TestRestoreBeforeNetwork: connections are restored while their namespace
// has neither its address nor a route to the peer (a new kernel whose
// network comes up after the unit): the restore succeeds (the connect, and
// the peer's FIN put back into a half-closed connection), and once the
// address is back the connections go on.
func TestRestoreBeforeNetwork(t *testing.T) {
	needRoot(t)
	for _, family := range []int{4, 6} {
		t.Run("established-ipv"+strconv.Itoa(family), func(t *testing.T) {
			l := newLab(t)
			srv := l.start(t, "tcpecho", strconv.Itoa(family), "7005", "echo", l.dir)
			c, err := l.dial(t, "tcp", l.addr(family, 7005), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s := newStreamer(c, false)
			time.Sleep(time.Second)
			img := l.checkpoint(t, srv.Process.Pid)
			srv.Wait()
			l.restoreWithoutNetwork(t, img)
			w, r, err := s.finish(60 * time.Second)
			t.Logf("written %d bytes, read back %d", w, r)
			if err != nil {
				t.Fatal(err)
			}
			if w != r || w == 0 {
				t.Fatalf("wrote %d bytes, read back %d", w, r)
			}
		})
		t.Run("close-wait-ipv"+strconv.Itoa(family), func(t *testing.T) {
			l := newLab(t)
			srv := l.start(t, "tcpecho", strconv.Itoa(family), "7006", "closewait", l.dir)
			c, err := l.dial(t, "tcp", l.addr(family, 7006), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("ping"))
			c.(*net.TCPConn).CloseWrite()
			buf := make([]byte, 4)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("echo: %q %v", buf, err)
			}
			time.Sleep(200 * time.Millisecond)
			img := l.checkpoint(t, srv.Process.Pid)
			srv.Wait()
			expectState(t, img, "close-wait")
			l.restoreWithoutNetwork(t, img)
			os.WriteFile(filepath.Join(l.dir, "go"), nil, 0o600)
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			rest, err := io.ReadAll(c)
			if err != nil || string(rest) != "bye\n" {
				t.Fatalf("after restore: %q, %v", rest, err)
			}
		})
	}
}

// restoreWithoutNetwork restores img in namespace A with its interface's
// addresses (and the routes that come with them) gone, then puts them
// back; no temporary route of the restore is left.
func (l *lab) restoreWithoutNetwork(t *testing.T, img string) {
	t.Helper()
	ip := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"-n", l.a}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	ip("addr", "flush", "dev", "va")
	l.restore(t, img)
	for _, fam := range []string{"-4", "-6"} {
		if out := ip(fam, "route", "show", "table", "all", "proto", strconv.Itoa(fallbackProto)); strings.TrimSpace(out) != "" {
			t.Errorf("temporary routes left: %s", out)
		}
	}
	ip("addr", "add", "10.77.0.1/24", "dev", "va")
	ip("addr", "add", "fd77::1/64", "dev", "va", "nodad")
}
