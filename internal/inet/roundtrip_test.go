package inet

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/netlock"
)

// pause is the time between checkpoint and restore.
const pause = 3 * time.Second

// imageSockets returns the inet sockets of an image.
func imageSockets(t *testing.T, img string) []*image.Socket {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(img, image.TreeName))
	if err != nil {
		t.Fatal(err)
	}
	// The kinds are internal/files' (which imports this package): the
	// socket records are read as the image holds them.
	var tree struct {
		Files []struct {
			Kind   string          `json:"kind"`
			Record json.RawMessage `json:"record"`
		} `json:"files"`
	}
	if err := json.Unmarshal(b, &tree); err != nil {
		t.Fatal(err)
	}
	var out []*image.Socket
	for _, f := range tree.Files {
		var s image.Socket
		if f.Kind != image.FileSocket {
			continue
		}
		if err := json.Unmarshal(f.Record, &s); err != nil {
			t.Fatal(err)
		}
		if s.Inet != nil {
			out = append(out, &s)
		}
	}
	return out
}

// TestTCPStream streams data both ways through an echo server across a
// checkpoint, a pause and a restore: every byte must come back once, in
// order.
func TestTCPStream(t *testing.T) {
	needRoot(t)
	cases := []struct {
		name      string
		family    int
		fullQueue bool // the peer stops reading: the send queues fill up
	}{
		{"ipv4", 4, false},
		{"ipv6", 6, false},
		{"ipv4-send-queue-full", 4, true},
		{"ipv6-send-queue-full", 6, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			srv := l.start(t, "tcpecho", strconv.Itoa(tc.family), "7000", "echo", l.dir)
			c, err := l.dial(t, "tcp", l.addr(tc.family, 7000), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s := newStreamer(c, tc.fullQueue)
			time.Sleep(time.Second)
			img := l.checkpoint(t, srv.Process.Pid)
			srv.Wait()
			var queued int
			for _, sk := range imageSockets(t, img) {
				if sk.Inet.TCP != nil {
					queued += len(sk.Inet.TCP.SendQueue) + len(sk.Inet.TCP.RecvQueue)
					t.Logf("%s: send queue %d bytes (%d unsent), receive queue %d bytes", describe(sk),
						len(sk.Inet.TCP.SendQueue), sk.Inet.TCP.Unsent, len(sk.Inet.TCP.RecvQueue))
				}
			}
			if tc.fullQueue && queued == 0 {
				t.Errorf("no data queued at checkpoint")
			}
			time.Sleep(pause)
			root := l.restore(t, img)
			time.Sleep(time.Second)
			kids, _ := os.ReadFile("/proc/" + strconv.Itoa(root) + "/task/" + strconv.Itoa(root) + "/children")
			t.Logf("restored root %d, children %q", root, kids)
			w, r, err := s.finish(60 * time.Second)
			t.Logf("written %d bytes, read back %d", w, r)
			if err != nil {
				t.Fatal(err)
			}
			if w != r || w == 0 {
				t.Fatalf("wrote %d bytes, read back %d", w, r)
			}
		})
	}
}

// TestConnectDuringGap: a client connecting while the service is away sees
// its SYNs dropped (not reset) and gets through after the restore.
func TestConnectDuringGap(t *testing.T) {
	needRoot(t)
	for _, family := range []int{4, 6} {
		t.Run("ipv"+strconv.Itoa(family), func(t *testing.T) {
			l := newLab(t)
			srv := l.start(t, "tcpecho", strconv.Itoa(family), "7001", "echo", l.dir)
			img := l.checkpoint(t, srv.Process.Pid)
			srv.Wait()
			type result struct {
				err  error
				gap  time.Duration
				conn interface{ Close() error }
			}
			res := make(chan result, 1)
			start := time.Now()
			go func() {
				c, err := l.dial(t, "tcp", l.addr(family, 7001), 60*time.Second)
				res <- result{err, time.Since(start), c}
			}()
			time.Sleep(pause)
			l.restore(t, img)
			restored := time.Since(start)
			ns, err := os.Open("/run/netns/" + l.a)
			if err != nil {
				t.Fatal(err)
			}
			if chains, err := netlock.List(ns); err != nil || len(chains) != 0 {
				t.Errorf("after restore, lock chains %v (%v); want none", chains, err)
			}
			ns.Close()
			r := <-res
			if r.err != nil {
				t.Fatalf("connect during the gap: %v", r.err)
			}
			defer r.conn.Close()
			t.Logf("client connected %v after its first SYN (restore done at %v: %v of SYN retry delay)",
				r.gap.Round(time.Millisecond), restored.Round(time.Millisecond), (r.gap - restored).Round(time.Millisecond))
		})
	}
}
