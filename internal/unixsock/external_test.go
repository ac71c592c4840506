package unixsock

import (
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
	return &image.Tree{Files: []*image.File{{ID: 1, Kind: image.FileSocket, Socket: s}}}, s
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

// TestExternalUnreachable checks that a peer that is neither replaced nor
// reachable by name fails the restore with an error naming it.
func TestExternalUnreachable(t *testing.T) {
	const key = "/nonexistent/seamless-test/stdout"
	tree, s := externalTree(key)
	o := NewOpener(tree)
	defer o.Close()
	_, err := o.Open(s)
	if err == nil || !strings.Contains(err.Error(), key) {
		t.Fatalf("Open = %v, want an error naming %s", err, key)
	}
	t.Log(err)
}

// TestUnixName checks the formatting of raw addresses.
func TestUnixName(t *testing.T) {
	for in, want := range map[string]string{"": "", "\x00abc": "@abc", "/run/x.sock": "/run/x.sock", "\x00a\x00b": "@a@b"} {
		if got := image.UnixName([]byte(in)); got != want {
			t.Errorf("UnixName(%q) = %q, want %q", in, got, want)
		}
	}
}
