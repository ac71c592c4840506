package unixsock

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// externalTree is a tree whose only socket is connected to a peer outside
// it, named key, that cannot be reached by name.
func externalTree(key string) (*image.Tree, *image.Socket) {
	s := &image.Socket{Family: unix.AF_UNIX, Type: unix.SOCK_STREAM, Unix: &image.UnixSocket{
		Inode: 42, State: image.UnixConnected, Options: image.UnixOptions{PeekOff: -1},
		External: &image.UnixExternal{Name: []byte(key), Key: key},
	}}
	return &image.Tree{Files: []*image.File{{ID: 1, Kind: image.FileSocket, Record: s}}}, s
}

// TestExternalReplacement checks the restore hook for peers outside the
// tree: Opener.External gives the socket to use instead.
func TestExternalReplacement(t *testing.T) {
	const key = "/nonexistent/seamless-test/stdout"
	tree, s := externalTree(key)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	repl, far := os.NewFile(uintptr(pair[0]), "repl"), os.NewFile(uintptr(pair[1]), "far")
	defer repl.Close()
	defer far.Close()
	o := NewOpener(tree)
	o.External[key] = repl
	h, err := o.Open(s)
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	defer h.Close()
	if _, err := h.Write([]byte("via replacement")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := far.Read(buf)
	if err != nil || string(buf[:n]) != "via replacement" {
		t.Fatalf("read %q, %v from the replacement's peer", buf[:n], err)
	}
}

// TestExternalClosed checks that a stream connection to a peer outside the
// tree, with no replacement given, comes back closed by its peer: the
// queued bytes, then end of file; the warning names the peer.
func TestExternalClosed(t *testing.T) {
	const key = "/nonexistent/seamless-test/server.sock"
	tree, s := externalTree(key)
	s.Unix.Queue = []image.UnixMessage{{Data: []byte("queued")}}
	tree.Processes = []*image.Process{{PID: 77, FDs: []image.FD{{FD: 5, File: 1}}}}
	o := NewOpener(tree)
	h, err := o.Open(s)
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	defer h.Close()
	buf := make([]byte, 64)
	n, err := h.Read(buf)
	if err != nil || string(buf[:n]) != "queued" {
		t.Fatalf("read %q, %v; want the queued bytes", buf[:n], err)
	}
	if n, err := h.Read(buf); n != 0 {
		t.Fatalf("read %q, %v after the queue; want end of file", buf[:n], err)
	}
	if len(o.Warnings) != 1 || !strings.Contains(o.Warnings[0], key) || !strings.Contains(o.Warnings[0], "process 77 fd 5") {
		t.Fatalf("warnings %q; want one naming %s and process 77 fd 5", o.Warnings, key)
	}
}

// TestExternalDatagram checks the datagram cases: a peer reachable by its
// name is connected again; one that is gone leaves the socket connected to
// nothing (sends fail with ECONNREFUSED), with a warning.
func TestExternalDatagram(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/dgram.sock"
	srv, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(srv)
	if err := unix.Bind(srv, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key     string
		reached bool
	}{{path, true}, {dir + "/gone.sock", false}} {
		tree, s := externalTree(c.key)
		s.Type = unix.SOCK_DGRAM
		o := NewOpener(tree)
		h, err := o.Open(s)
		if err != nil {
			t.Fatalf("%s: %v", c.key, err)
		}
		o.Close()
		_, err = h.Write([]byte("hello"))
		h.Close()
		if c.reached {
			buf := make([]byte, 16)
			n, _, rerr := unix.Recvfrom(srv, buf, unix.MSG_DONTWAIT)
			if err != nil || rerr != nil || string(buf[:n]) != "hello" {
				t.Fatalf("%s: write %v, the server read %q, %v", c.key, err, buf[:n], rerr)
			}
			if len(o.Warnings) != 0 {
				t.Fatalf("%s: warnings %q", c.key, o.Warnings)
			}
			continue
		}
		if !errors.Is(err, unix.ECONNREFUSED) {
			t.Fatalf("%s: write = %v, want ECONNREFUSED", c.key, err)
		}
		if len(o.Warnings) != 1 || !strings.Contains(o.Warnings[0], c.key) {
			t.Fatalf("%s: warnings %q", c.key, o.Warnings)
		}
	}
}

// TestExternalFate checks the decision table.
func TestExternalFate(t *testing.T) {
	named := &image.UnixExternal{Name: []byte("/run/x"), Key: "/run/x"}
	unnamed := &image.UnixExternal{Key: "socket:[7]"}
	for _, c := range []struct {
		typ      int
		e        *image.UnixExternal
		replaced bool
		want     Fate
	}{
		{unix.SOCK_STREAM, named, true, Replaced},
		{unix.SOCK_STREAM, named, false, Closed},
		{unix.SOCK_SEQPACKET, named, false, Closed},
		{unix.SOCK_STREAM, unnamed, false, Closed},
		{unix.SOCK_DGRAM, named, false, Reconnected},
		{unix.SOCK_DGRAM, unnamed, false, Closed},
		{unix.SOCK_DGRAM, unnamed, true, Replaced},
	} {
		if got := ExternalFate(c.typ, c.e, c.replaced); got != c.want {
			t.Errorf("ExternalFate(%d, %q, %v) = %d, want %d", c.typ, c.e.Key, c.replaced, got, c.want)
		}
	}
}

// TestUnixName checks the formatting of raw addresses.
func TestUnixName(t *testing.T) {
	for in, want := range map[string]string{"": "", "\x00abc": "@abc", "/run/x.sock": "/run/x.sock", "\x00a\x00b": "@a@b"} {
		if got := image.UnixName([]byte(in)); got != want {
			t.Errorf("UnixName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDialJournal checks the header a new journal stream starts with.
func TestDialJournal(t *testing.T) {
	path := t.TempDir() + "/stdout"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := dialJournal(path, "redis\nserver")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("a line\n"))
	f.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, _ := io.ReadAll(c)
	if want := "redis server\n\n6\n1\n0\n0\n0\na line\n"; string(got) != want {
		t.Fatalf("the journal read %q, want %q", got, want)
	}
}

func TestDiagName(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"", ""},
		{"/run/x.sock", "/run/x.sock"},
		// journald binds with the NUL counted in the address length.
		{"/run/systemd/journal/stdout\x00", "/run/systemd/journal/stdout"},
		{"\x00abstract", "@abstract"},
	} {
		if got := diagName([]byte(tc.in)); got != tc.want {
			t.Errorf("diagName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
