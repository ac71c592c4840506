package restored

import (
	"encoding/json"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestServePing: the daemon answers a ping from anyone, restoring nothing
// (Settle tells a hung daemon from a busy one by it).
func TestServePing(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	daemonEnd, client := conn(fds[0]), conn(fds[1])
	defer client.Close()
	d := &daemon{opts: Options{Log: io.Discard}}
	go d.serve(daemonEnd)
	req, _ := json.Marshal(Request{Ping: true})
	if _, err := client.Write(req); err != nil {
		t.Fatal(err)
	}
	client.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := client.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var r Reply
	if err := json.Unmarshal(buf[:n], &r); err != nil || !r.Alive || r.MainPID != 0 || r.Error != "" {
		t.Fatalf("reply to a ping: %s (%v)", buf[:n], err)
	}
}
