package inet

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestBindBeforeAddress binds restored sockets to addresses that no
// interface has yet, as on a new kernel whose network is not configured
// when a unit is restored; the socket's own IP_FREEBIND is kept.
func TestBindBeforeAddress(t *testing.T) {
	needRoot(t)
	cases := []struct {
		name     string
		family   int
		typ      int
		addr     string
		freebind int // the socket's own setting, restored before the bind
	}{
		{"tcp4", unix.AF_INET, unix.SOCK_STREAM, "10.99.0.1:11211", 0},
		{"tcp4 freebind", unix.AF_INET, unix.SOCK_STREAM, "10.99.0.1:11212", 1},
		{"udp4", unix.AF_INET, unix.SOCK_DGRAM, "10.99.0.1:5353", 0},
		{"tcp6", unix.AF_INET6, unix.SOCK_STREAM, "[fd00:99::1]:8080", 0},
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
		// With no local routing table at all, the kernel takes any IPv4
		// address as a broadcast one and lets it bind: lo up creates it.
		if err := loUp(); err != nil {
			t.Errorf("lo up: %v", err)
			return
		}
		for _, c := range cases {
			ap := netip.MustParseAddrPort(c.addr)
			fd, err := unix.Socket(c.family, c.typ|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Errorf("%s: socket: %v", c.name, err)
				continue
			}
			if c.freebind != 0 {
				unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_FREEBIND, 1)
			}
			plain, _ := unix.Socket(c.family, c.typ|unix.SOCK_CLOEXEC, 0)
			sa, _ := sockaddr(c.family, ap, "")
			if err := unix.Bind(plain, sa); !errors.Is(err, unix.EADDRNOTAVAIL) {
				t.Errorf("%s: a plain bind gave %v, want EADDRNOTAVAIL (is the address configured?)", c.name, err)
			}
			unix.Close(plain)
			if err := bindTo(fd, c.family, ap, ""); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			if got, _ := unix.GetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_FREEBIND); got != c.freebind {
				t.Errorf("%s: IP_FREEBIND is %d after the bind, want %d", c.name, got, c.freebind)
			}
			if sa, err := unix.Getsockname(fd); err != nil {
				t.Errorf("%s: getsockname: %v", c.name, err)
			} else if got, _ := addrPort(sa); got != ap {
				t.Errorf("%s: bound to %s, want %s", c.name, got, ap)
			}
			unix.Close(fd)
		}
	}()
	<-done
}

// loUp brings the loopback interface of this thread's namespace up.
func loUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// TestBindRoundTrip checkpoints and restores sockets whose addresses a
// plain bind(2) would refuse on the new kernel (testdata/binds.c): bound
// to an address no interface has, with IP_FREEBIND since cleared; two
// listeners sharing a port with SO_REUSEPORT; a connection reset by its
// client, in state close, still holding its listeners' port. The workload
// checks addresses and options, then one of the listeners accepts a new
// connection from namespace B.
func TestBindRoundTrip(t *testing.T) {
	needRoot(t)
	l := newLab(t)
	srv := l.start(t, "binds", l.dir)
	img := l.checkpoint(t, srv.Process.Pid)
	srv.Wait()
	for _, sk := range imageSockets(t, img) {
		t.Logf("%s: options %v", describe(sk), sk.Inet.Options)
	}
	l.restore(t, img)
	if err := os.WriteFile(filepath.Join(l.dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(filepath.Join(l.dir, "stop"), nil, 0o600) })
	c, err := l.dial(t, "tcp", l.addr(4, 7402), 20*time.Second)
	if err != nil {
		t.Fatalf("dial the restored listeners: %v", err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	hi, err := io.ReadAll(io.LimitReader(c, 3))
	if err != nil || string(hi) != "hi\n" {
		t.Errorf("greeting from the restored listener: %q, %v", hi, err)
	}
	var res []byte
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(l.dir, "result")); err == nil {
			res = b
			break
		}
	}
	if got := strings.TrimSpace(string(res)); got != "ok" {
		t.Fatalf("after the restore: %q", got)
	}
}
