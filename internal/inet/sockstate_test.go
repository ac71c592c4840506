package inet

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSocketState checkpoints and restores sockets whose state only
// getsockopt, SO_GET_FILTER and their behaviour show (testdata/sockstate.c):
// the options of TCP listeners and connections and of UDP sockets over IPv4
// and IPv6 (SO_DONTROUTE, SO_NO_CHECK, IP_PKTINFO, IP_MULTICAST_LOOP and
// _TTL, SO_BINDTODEVICE, SO_BUF_LOCK, TCP_CONGESTION, ...), classic BPF
// filters (still filtering), a UDP socket shut down for writing and a TCP
// connection shut down for reading. The workload compares everything with
// what it set.
func TestSocketState(t *testing.T) {
	needRoot(t)
	l := newLab(t)
	srv := l.start(t, "sockstate", l.dir)
	img := l.checkpoint(t, srv.Process.Pid)
	srv.Wait()
	for _, sk := range imageSockets(t, img) {
		t.Logf("%s: options %v %v, buffer lock %v, shutdown %d, filter %v", describe(sk), sk.Inet.Options,
			sk.Inet.NameOptions, deref(sk.Inet.BufLock), sk.Inet.Shutdown, sk.Filter != nil)
	}
	l.restore(t, img)
	if err := os.WriteFile(filepath.Join(l.dir, "go"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(filepath.Join(l.dir, "stop"), nil, 0o600) })
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

func deref(p *int) string {
	if p == nil {
		return "-"
	}
	return strconv.Itoa(*p)
}

// TestEBPFFilterRefused: a socket with an eBPF filter (SO_ATTACH_BPF) is
// refused at checkpoint, the refusal names it, and the process runs on
// with its filter.
func TestEBPFFilterRefused(t *testing.T) {
	needRoot(t)
	l := newLab(t)
	srv := l.start(t, "ebpffilter", l.dir)
	img := filepath.Join(l.dir, "img")
	out, err := exec.Command(filepath.Join(bin, "seamless"), "checkpoint", "--pid", strconv.Itoa(srv.Process.Pid), "--dir", img).CombinedOutput()
	if err == nil {
		t.Fatalf("the checkpoint succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "eBPF socket filter") || !strings.Contains(string(out), "fd 4") {
		t.Errorf("the refusal does not name the eBPF filter and its fd:\n%s", out)
	}
	t.Logf("refused: %s", strings.TrimSpace(string(out)))
	if _, err := os.Stat(img); err == nil {
		t.Errorf("the refused checkpoint left %s", img)
	}
	time.Sleep(100 * time.Millisecond)
	if err := unix.Kill(srv.Process.Pid, 0); err != nil {
		t.Fatalf("the process is gone after the refused checkpoint: %v", err)
	}
	st, _ := os.ReadFile("/proc/" + strconv.Itoa(srv.Process.Pid) + "/status")
	if !strings.Contains(string(st), "TracerPid:\t0") || strings.Contains(string(st), "State:\tt") {
		t.Errorf("the process is still traced or stopped:\n%s", st)
	}
	os.WriteFile(filepath.Join(l.dir, "stop"), nil, 0o600)
	if err := srv.Wait(); err != nil {
		t.Errorf("ebpffilter ended with %v (its filter was lost?)", err)
	}
}
