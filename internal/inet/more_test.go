package inet

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestUDPQueued: datagrams queued on a UDP socket at checkpoint are
// delivered after the restore, in order, with their sources.
func TestUDPQueued(t *testing.T) {
	needRoot(t)
	for _, family := range []int{4, 6} {
		t.Run("ipv"+strconv.Itoa(family), func(t *testing.T) {
			l := newLab(t)
			srv := l.start(t, "udpq", strconv.Itoa(family), "7002", l.dir)
			var c net.Conn
			var err error
			l.inB(t, func() { c, err = net.Dial("udp", l.addr(family, 7002)) })
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			msgs := []string{"one", "", "three", strings.Repeat("x", 9000), "end"}
			for _, m := range msgs[:4] {
				if _, err := c.Write([]byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			// Every datagram must be queued before the checkpoint: under load,
			// delivery through the veth pair lags behind the writes.
			waitRxQueue(t, srv.Process.Pid, family, 7002, len(msgs[3]))
			img := l.checkpoint(t, srv.Process.Pid)
			srv.Wait()
			n := 0
			for _, sk := range imageSockets(t, img) {
				n += len(sk.Inet.Datagrams)
			}
			if n != 4 {
				t.Fatalf("image holds %d datagrams, want 4", n)
			}
			time.Sleep(pause)
			l.restore(t, img)
			os.WriteFile(filepath.Join(l.dir, "go"), nil, 0o600)
			c.Write([]byte("end"))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 65536)
			for i, m := range msgs {
				k, err := c.Read(buf)
				if err != nil {
					t.Fatalf("echo %d: %v", i, err)
				}
				if string(buf[:k]) != m {
					t.Fatalf("echo %d: %d bytes, want %q (%d bytes)", i, k, m[:min(len(m), 10)], len(m))
				}
			}
		})
	}
}

// TestHalfClosed: connections checkpointed in close-wait (the peer closed
// first) and fin-wait2 (the service closed first) go on after the restore.
func TestHalfClosed(t *testing.T) {
	needRoot(t)
	for _, family := range []int{4, 6} {
		t.Run("close-wait-ipv"+strconv.Itoa(family), func(t *testing.T) {
			l := newLab(t)
			srv := l.start(t, "tcpecho", strconv.Itoa(family), "7003", "closewait", l.dir)
			c, err := l.dial(t, "tcp", l.addr(family, 7003), 5*time.Second)
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
			time.Sleep(pause)
			l.restore(t, img)
			os.WriteFile(filepath.Join(l.dir, "go"), nil, 0o600)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			rest, err := io.ReadAll(c)
			if err != nil || string(rest) != "bye\n" {
				t.Fatalf("after restore: %q, %v", rest, err)
			}
		})
		t.Run("fin-wait2-ipv"+strconv.Itoa(family), func(t *testing.T) {
			l := newLab(t)
			srv := l.start(t, "tcpecho", strconv.Itoa(family), "7004", "finwait", l.dir)
			c, err := l.dial(t, "tcp", l.addr(family, 7004), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if hello, err := io.ReadAll(c); err != nil || string(hello) != "hello\n" {
				t.Fatalf("greeting: %q %v", hello, err)
			}
			data := make([]byte, 200000)
			fillPattern(data, 0)
			c.Write(data[:100000])
			time.Sleep(200 * time.Millisecond)
			img := l.checkpoint(t, srv.Process.Pid)
			srv.Wait()
			expectState(t, img, "fin-wait2")
			time.Sleep(pause)
			l.restore(t, img)
			c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Write(data[100000:]); err != nil {
				t.Fatal(err)
			}
			c.(*net.TCPConn).CloseWrite()
			res := filepath.Join(l.dir, "result")
			var got []byte
			for i := 0; i < 300 && len(got) == 0; i++ {
				time.Sleep(50 * time.Millisecond)
				got, _ = os.ReadFile(res)
			}
			if want := fmt.Sprintf("ok %d\n", len(data)); !bytes.Equal(got, []byte(want)) {
				t.Fatalf("service read %q, want %q", got, want)
			}
		})
	}
}

func expectState(t *testing.T, img, state string) {
	t.Helper()
	for _, sk := range imageSockets(t, img) {
		if sk.Inet.State == state {
			return
		}
	}
	t.Fatalf("no socket in state %s in the image", state)
}

// waitRxQueue waits until the UDP socket of process pid bound to port holds
// at least min bytes in its receive queue (the rx_queue of /proc/net/udp,
// in the process's network namespace).
func waitRxQueue(t *testing.T, pid, family, port, min int) {
	t.Helper()
	name := "udp"
	if family == 6 {
		name = "udp6"
	}
	path := fmt.Sprintf("/proc/%d/net/%s", pid, name)
	want := fmt.Sprintf(":%04X ", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 5 || !strings.HasSuffix(f[1]+" ", want) {
				continue
			}
			_, rx, _ := strings.Cut(f[4], ":")
			if n, err := strconv.ParseUint(rx, 16, 64); err == nil && int(n) >= min {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server's receive queue on port %d never reached %d bytes:\n%s", port, min, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
