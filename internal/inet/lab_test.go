package inet

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var labSeq atomic.Int32

// lab is two network namespaces joined by a veth pair: the workload runs in
// A (10.77.0.1, fd77::1), the peer (the test itself) dials from B
// (10.77.0.2, fd77::2), a different network stack.
type lab struct {
	a, b string
	dir  string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	n := labSeq.Add(1)
	l := &lab{a: fmt.Sprintf("sl%da%d", os.Getpid(), n), b: fmt.Sprintf("sl%db%d", os.Getpid(), n), dir: t.TempDir()}
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	sh("netns", "add", l.a)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.a).Run() })
	sh("netns", "add", l.b)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.b).Run() })
	sh("link", "add", "va", "netns", l.a, "type", "veth", "peer", "name", "vb", "netns", l.b)
	for _, x := range []struct{ ns, dev, v4, v6 string }{{l.a, "va", "10.77.0.1/24", "fd77::1/64"}, {l.b, "vb", "10.77.0.2/24", "fd77::2/64"}} {
		sh("-n", x.ns, "addr", "add", x.v4, "dev", x.dev)
		sh("-n", x.ns, "addr", "add", x.v6, "dev", x.dev, "nodad")
		sh("-n", x.ns, "link", "set", x.dev, "up")
		sh("-n", x.ns, "link", "set", "lo", "up")
	}
	return l
}

// addr is the workload's address in family 4 or 6.
func (l *lab) addr(family, port int) string {
	if family == 6 {
		return fmt.Sprintf("[fd77::1]:%d", port)
	}
	return fmt.Sprintf("10.77.0.1:%d", port)
}

// start runs a workload in namespace A and waits for its "ready" line.
func (l *lab) start(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + l.a, filepath.Join(bin, name)}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("%s: %q, %v", name, line, err)
	}
	return cmd
}

// inB runs fn on a thread in namespace B: sockets it creates stay there.
func (l *lab) inB(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with us
		ns, err := os.Open("/run/netns/" + l.b)
		if err == nil {
			err = unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET)
			ns.Close()
		}
		if err == nil {
			fn()
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func (l *lab) dial(t *testing.T, network, addr string, timeout time.Duration) (c net.Conn, err error) {
	l.inB(t, func() { c, err = net.DialTimeout(network, addr, timeout) })
	return c, err
}

// checkpoint dumps the tree of pid into a new image and kills it.
func (l *lab) checkpoint(t *testing.T, pid int) string {
	t.Helper()
	img := filepath.Join(l.dir, "img")
	start := time.Now()
	out, err := exec.Command(filepath.Join(bin, "seamless"), "checkpoint", "--pid", strconv.Itoa(pid), "--dir", img).CombinedOutput()
	if err != nil {
		t.Fatalf("checkpoint: %v\n%s", err, out)
	}
	t.Logf("checkpoint took %v", time.Since(start).Round(time.Millisecond))
	time.Sleep(100 * time.Millisecond)
	reapZombies()
	return img
}

// restore rebuilds an image inside namespace A and returns the root PID;
// the restored tree is killed and reaped at the end of the test.
func (l *lab) restore(t *testing.T, img string) int {
	t.Helper()
	start := time.Now()
	out, err := exec.Command("nsenter", "--net=/run/netns/"+l.a, filepath.Join(bin, "seamless"), "restore", "--dir", img).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("restore: %v\n%s%s", err, out, msg)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("restore printed %q", out)
	}
	t.Logf("restore took %v, root pid %d", time.Since(start).Round(time.Millisecond), pid)
	t.Cleanup(func() { killTree(pid) })
	return pid
}

// reapZombies reaps the zombies reparented to the test (the killed
// original tree's children).
func reapZombies() {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(os.Getpid()) {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
	}
}

// killTree kills a restored tree and reaps what was reparented to us.
func killTree(pid int) {
	pids := []int{pid}
	for i := 0; i < len(pids); i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pids[i], pids[i]))
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				pids = append(pids, c)
			}
		}
	}
	for _, p := range pids {
		unix.Kill(p, unix.SIGKILL)
	}
	for i := len(pids) - 1; i >= 0; i-- {
		// A child is ours to reap once its parent has died.
		for try := 0; try < 100; try++ {
			var ws unix.WaitStatus
			if _, err := unix.Wait4(pids[i], &ws, 0, nil); err != unix.ECHILD {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
