package restored

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// connect returns both ends of a connection to a fresh seqpacket socket.
func connect(t *testing.T) (server, client *net.UnixConn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	if server, err = l.AcceptUnix(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// TestPeerOf pins the process at the other end of a connection, with
// SO_PEERPIDFD and the way of older kernels; a PID that no longer holds
// the connection is refused.
func TestPeerOf(t *testing.T) {
	proc, err := os.Open("/proc")
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Close()
	for _, pidfd := range []bool{true, false} {
		name := map[bool]string{true: "SO_PEERPIDFD", false: "pidfd_open and sock_diag"}[pidfd]
		t.Run(name, func(t *testing.T) {
			old := usePeerPIDFD
			usePeerPIDFD = pidfd
			t.Cleanup(func() { usePeerPIDFD = old })
			server, _ := connect(t)
			p, err := peerOf(server, proc)
			if err != nil {
				t.Fatal(err)
			}
			defer p.close()
			if p.pid != os.Getpid() || p.uid != os.Geteuid() || !p.alive() {
				t.Fatalf("peer %+v, want this process", p)
			}
		})
	}
	t.Run("pid that no longer holds the connection", func(t *testing.T) {
		old := usePeerPIDFD
		usePeerPIDFD = false
		t.Cleanup(func() { usePeerPIDFD = old })
		// The connection was made by this process (SO_PEERCRED names it)
		// and handed to another one: this PID no longer holds it, as a
		// process that took the PID of an exited one would not.
		server, client := connect(t)
		f, err := client.File()
		if err != nil {
			t.Fatal(err)
		}
		holder := exec.Command("sleep", "100")
		holder.ExtraFiles = []*os.File{f}
		if err := holder.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { holder.Process.Kill(); holder.Wait() }()
		f.Close()
		client.Close()
		_, err = peerOf(server, proc)
		if err == nil || !strings.Contains(err.Error(), "does not hold the connection") {
			t.Fatalf("peerOf = %v, want a refusal", err)
		}
	})
}

func TestBound(t *testing.T) {
	long := strings.Repeat("x", 3*MaxReason)
	for _, tc := range []struct{ in, want string }{
		{"plain reason", "plain reason"},
		{"two\nlines\tand a tab", `two\nlines\tand a tab`},
		{"bell\x07 and \xff", `bell\u0007 and \xff`},
		{"naïve", "naïve"},
		{long, long[:MaxReason] + "... (800 more bytes)"},
	} {
		if got := Bound(tc.in); got != tc.want {
			t.Errorf("Bound(%.20q) = %.60q, want %.60q", tc.in, got, tc.want)
		}
	}
}
