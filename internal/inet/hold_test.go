package inet

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seamless-linux/seamless/internal/proc"
)

// TestHoldForNetwork restores an echo server whose client is on another
// host while the new network is not up: with --hold-for-network the tree
// stays stopped, complete, until its address and route to the client are
// back, then runs and answers on the held connection at once; without the
// network the hold ends at its bound, with a warning naming the peer.
func TestHoldForNetwork(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name   string
		family int
		hold   time.Duration
		// back is when the address returns (0: only after the restore).
		back time.Duration
	}{
		{"ipv4-network-back", 4, 30 * time.Second, time.Second},
		{"ipv6-network-back", 6, 30 * time.Second, time.Second},
		{"ipv4-bound", 4, time.Second, 0},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			port := 7040 + i
			srv, c, r := l.echoing(t, tc.family, port)
			pid := srv.Process.Pid
			img := l.checkpoint(t, pid)
			srv.Wait()
			cidr := map[int]string{4: "10.77.0.1/24", 6: "fd77::1/64"}[tc.family]
			ip := func(args ...string) {
				t.Helper()
				if out, err := exec.Command("ip", append([]string{"-n", l.a}, args...)...).CombinedOutput(); err != nil {
					t.Fatalf("ip %v: %v: %s", args, err, out)
				}
			}
			addBack := func() {
				if tc.family == 6 {
					ip("addr", "add", cidr, "dev", "va", "nodad")
				} else {
					ip("addr", "add", cidr, "dev", "va")
				}
			}
			ip("addr", "del", cidr, "dev", "va")
			var stdout, stderr bytes.Buffer
			cmd := exec.Command("nsenter", "--net=/run/netns/"+l.a, filepath.Join(bin, "seamless"), "restore",
				"--dir", img, "--hold-for-network", tc.hold.String(), "--json")
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() { killTree(pid) })
			waitUntil(t, "the restored server held in its tracing stop", func() bool {
				return procState(pid) == 't'
			})
			if tc.back > 0 {
				time.Sleep(tc.back)
				select {
				case err := <-done:
					t.Fatalf("the restore returned before the network was back: %v\n%s%s", err, stdout.String(), stderr.String())
				default:
				}
				if s := procState(pid); s != 't' {
					t.Fatalf("the server is in state %c before the network is back, want t (held)", s)
				}
				addBack()
			}
			if err := <-done; err != nil {
				t.Fatalf("restore: %v\n%s%s", err, stdout.String(), stderr.String())
			}
			took := time.Since(start)
			out := stdout.String() + stderr.String()
			t.Logf("restore returned after %v: %s", took.Round(time.Millisecond), out)
			if tc.back > 0 {
				if !strings.Contains(out, `"network"`) || strings.Contains(out, "runs without it") {
					t.Errorf("want a network phase and no warning, got %s", out)
				}
			} else {
				peer := map[int]string{4: "10.77.0.2", 6: "fd77::2"}[tc.family]
				if took < tc.hold || !strings.Contains(out, "no route to "+peer) {
					t.Errorf("returned after %v with %s; want the hold's whole %v and a warning naming %s", took, out, tc.hold, peer)
				}
				addBack()
			}
			if s := procState(pid); s == 't' {
				t.Fatalf("the server is still held after the restore returned")
			}
			if err := echo(c, r, "after", time.Now().Add(20*time.Second)); err != nil {
				t.Fatalf("echo on the held connection: %v", err)
			}
		})
	}
}

// procState is the state of pid (proc(5): 't' is a tracing stop), or 0
// once it is gone.
func procState(pid int) byte {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return 0
	}
	return st.State
}
