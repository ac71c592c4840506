package inet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestWakeOwnSide restores a service that answers a request it had
// received before the checkpoint while the new network is not up yet: its
// kernel cannot send the answer and backs its timer off. The wake must
// make it send the answer before that timer would have.
func TestWakeOwnSide(t *testing.T) {
	needRoot(t)
	for _, family := range []int{4, 6} {
		t.Run("ipv"+strconv.Itoa(family), func(t *testing.T) {
			l := newLab(t)
			const port = 7030
			srv, c, r := l.echoing(t, family, port)
			// The request reaches the server's kernel, not the server (the
			// child that serves the connection).
			pid := srv.Process.Pid
			child := onlyChild(t, pid)
			unix.Kill(child, unix.SIGSTOP)
			waitUntil(t, "the server stopped", func() bool {
				b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
				f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
				return len(f) > 0 && f[0] == "T"
			})
			c.SetDeadline(time.Time{})
			if _, err := c.Write([]byte("held")); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "the request in the server's receive queue", func() bool {
				rx, _, _, ok := tcpTimer(t, pid, family, port)
				return ok && rx == 4
			})
			img := l.checkpoint(t, pid)
			srv.Wait()
			// The new kernel's network is not up: the answer cannot leave.
			cidr := map[int]string{4: "10.77.0.1/24", 6: "fd77::1/64"}[family]
			ip := func(args ...string) {
				t.Helper()
				if out, err := exec.Command("ip", append([]string{"-n", l.a}, args...)...).CombinedOutput(); err != nil {
					t.Fatalf("ip %v: %v: %s", args, err, out)
				}
			}
			ip("addr", "del", cidr, "dev", "va")
			l.restore(t, img)
			unix.Kill(child, unix.SIGCONT) // restored with its PID
			var due time.Duration
			// The timer that would send the answer: the retransmission
			// timer (1) or, for data never sent, the probe timer (4).
			waitUntil(t, "the server's timer backed off to 3 s", func() bool {
				_, tr, d, ok := tcpTimer(t, child, family, port)
				due = d
				return ok && (tr == 1 || tr == 4) && d >= 3*time.Second
			})
			ws := wakes(imageSockets(t, img))
			if len(ws) != 1 {
				t.Fatalf("image has %d connections to wake, want 1: %v", len(ws), ws)
			}
			ip("addr", "add", cidr, "dev", "va", "nodad")
			woken := time.Now()
			l.inA(t, func() error {
				for {
					ok, err := ws[0].Routed()
					if err != nil || ok {
						if err == nil {
							err = ws[0].Send(true)
						}
						return err
					}
					time.Sleep(10 * time.Millisecond)
				}
			})
			got := make([]byte, 4)
			c.SetDeadline(woken.Add(WakeAgain))
			_, err := r.Read(got)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// As the restore daemon does: a wake can be lost.
				t.Logf("no answer %v after the wake: woken again", WakeAgain)
				l.inA(t, func() error { return ws[0].Send(true) })
				c.SetDeadline(woken.Add(due - time.Second))
				_, err = r.Read(got)
			}
			if err != nil {
				t.Fatalf("the server's timer was due in %v; no answer within %v of the wake: %v",
					due.Round(time.Millisecond), (due - time.Second).Round(time.Millisecond), err)
			}
			t.Logf("answer %q %v after the wake; the server's timer was due in %v", got, time.Since(woken).Round(time.Millisecond), due.Round(time.Millisecond))
		})
	}
}

// onlyChild is the PID of pid's one child.
func onlyChild(t *testing.T, pid int) int {
	t.Helper()
	var kids []string
	waitUntil(t, fmt.Sprintf("a child of %d", pid), func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		kids = strings.Fields(string(b))
		return len(kids) > 0
	})
	if len(kids) != 1 {
		t.Fatalf("%d has children %v, want one", pid, kids)
	}
	child, _ := strconv.Atoi(kids[0])
	return child
}

// tcpTimer reads, from /proc/PID/net/tcp (or tcp6), the receive queue of
// the established connection on local port, its pending timer (1
// retransmission, 2 keepalive, 4 zero-window probe) and when it fires.
func tcpTimer(t *testing.T, pid, family, port int) (rx, timer int, due time.Duration, ok bool) {
	t.Helper()
	name := "tcp"
	if family == 6 {
		name = "tcp6"
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, name))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n") {
		// sl local rem st tx:rx tr:when retrnsmt ...
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasSuffix(f[1], want) || f[3] != "01" {
			continue
		}
		_, q, _ := strings.Cut(f[4], ":")
		n, _ := strconv.ParseUint(q, 16, 32)
		tr, when, _ := strings.Cut(f[5], ":")
		kind, _ := strconv.ParseUint(tr, 16, 8)
		ticks, _ := strconv.ParseUint(when, 16, 64)
		return int(n), int(kind), time.Duration(ticks) * time.Second / 100, true // USER_HZ
	}
	return 0, 0, 0, false
}
