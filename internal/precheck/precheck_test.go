package precheck

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckSeccomp(t *testing.T) {
	root := t.TempDir()
	status := map[string]string{"100": "0", "101": "2", "102": "1"}
	for tid, mode := range status {
		dir := filepath.Join(root, "100", "task", tid)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		text := "Name:\tsvc\nNoNewPrivs:\t1\nSeccomp:\t" + mode + "\nSeccomp_filters:\t0\n"
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var got []Problem
	bad := func(what, reason string) { got = append(got, Problem{PID: 100, What: what, Reason: reason}) }
	checkSeccomp(root, 100, []int{100, 101, 102, 103}, bad) // 103 has exited meanwhile
	if len(got) != 1 || got[0].What != "thread 102" || got[0].Reason != "seccomp strict mode cannot be restored" {
		t.Errorf("problems %v, want thread 102 in strict mode only", got)
	}
}

// TestCheckExternalConnections: a unit's unix connections to peers
// outside it are listed by what their restore does: a stream one comes
// back closed by its peer, a datagram one is connected again by name.
func TestCheckExternalConnections(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("reading another process's descriptors needs root")
	}
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "server.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dg, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "log.sock"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer dg.Close()
	stream, err := net.Dial("unix", filepath.Join(dir, "server.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	dgram, err := net.Dial("unixgram", filepath.Join(dir, "log.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer dgram.Close()
	accepted, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer accepted.Close()
	sf, _ := stream.(*net.UnixConn).File()
	df, _ := dgram.(*net.UnixConn).File()
	defer sf.Close()
	defer df.Close()
	// The unit: a process holding the two client ends (fds 3 and 4).
	cmd := exec.Command("sleep", "60")
	cmd.ExtraFiles = []*os.File{sf, df}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	stream.Close()
	dgram.Close()
	r := Check([]int{cmd.Process.Pid})
	join := strings.Join
	if len(r.Closed) != 1 || !strings.Contains(r.Closed[0], "fd 3") || !strings.Contains(r.Closed[0], "server.sock") ||
		!strings.Contains(r.Closed[0], "closed by its peer") {
		t.Errorf("closed connections %q, want fd 3 to server.sock", join(r.Closed, "; "))
	}
	if len(r.External) != 1 || !strings.Contains(r.External[0], "fd 4") || !strings.Contains(r.External[0], "connected again") {
		t.Errorf("external connections %q, want the datagram one on fd 4, connected again", join(r.External, "; "))
	}
}
