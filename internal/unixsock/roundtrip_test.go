package unixsock_test

// Round trips of real processes through `seamless checkpoint` and
// `seamless restore`: the workloads (testdata/unixwl.c) leave data queued
// in their unix sockets, and after the restore check it byte for byte and
// go on using the sockets. Run as root:
//
//	go test ./internal/unixsock/ -v -count=1
//
// SEAMLESS_KEEP=1 keeps the work directory (logs, images); SEAMLESS_BIN
// uses a prebuilt seamless.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	// The kinds of open file description an image may hold.
	_ "github.com/seamless-linux/seamless/internal/files"
	"github.com/seamless-linux/seamless/internal/image"
)

// deadline bounds every wait; generous on purpose: nothing asserts timing.
const deadline = 60 * time.Second

var (
	skipReason  string
	workDir     string
	workload    string // the compiled testdata/unixwl.c
	seamlessBin string
	buildErr    error
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		skipReason = "unix socket round trips need root (ptrace, clone3 with set_tid); run as root"
		return m.Run()
	}
	// Restored trees are reparented to the nearest child subreaper: us.
	// PID 1 on these machines does not reap orphans.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "PR_SET_CHILD_SUBREAPER: %v\n", err)
		return 1
	}
	var err error
	if workDir, err = os.MkdirTemp("", "seamless-unixsock-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if os.Getenv("SEAMLESS_KEEP") == "" {
			os.RemoveAll(workDir)
		} else {
			fmt.Fprintf(os.Stderr, "kept %s\n", workDir)
		}
	}()
	buildErr = build()
	return m.Run()
}

func build() error {
	workload = filepath.Join(workDir, "unixwl")
	if out, err := exec.Command("gcc", "-O1", "-g", "-Wall", "-o", workload, filepath.Join("testdata", "unixwl.c")).CombinedOutput(); err != nil {
		return fmt.Errorf("build workload: %v\n%s", err, out)
	}
	if seamlessBin = os.Getenv("SEAMLESS_BIN"); seamlessBin != "" {
		return nil // a prebuilt one (an older one, to see a test fail without a fix)
	}
	seamlessBin = filepath.Join(workDir, "seamless")
	cmd := exec.Command("go", "build", "-o", seamlessBin, "github.com/seamless-linux/seamless/cmd/seamless")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build seamless: %v\n%s", err, out)
	}
	return nil
}

func need(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// wcase is one workload mode; args gets the run's directory.
type wcase struct {
	name string
	args func(dir string) []string
}

var cases = []wcase{
	{"stream-pair", func(string) []string { return []string{"stream"} }},
	{"seqpacket-pair", func(string) []string { return []string{"seqpacket"} }},
	{"dgram-pair", func(string) []string { return []string{"dgram-pair"} }},
	{"dgram-path-and-abstract", func(dir string) []string {
		return []string{"dgram-named", filepath.Join(dir, "server.sock"), abstract("dgram")}
	}},
	{"listener-path", func(dir string) []string { return []string{"listener", filepath.Join(dir, "listen.sock")} }},
	{"listener-abstract", func(string) []string { return []string{"listener", abstract("listen")} }},
	{"filter-and-options", func(string) []string { return []string{"state"} }},
	{"self-connected-and-removed-dir", func(string) []string { return []string{"names"} }},
	{"relative-path", func(string) []string { return []string{"relative"} }},
}

// abstract returns an abstract name private to this test run.
func abstract(what string) string {
	return fmt.Sprintf("@seamless-unixsock-test-%d-%s", os.Getpid(), what)
}

// run is one started workload.
type run struct {
	t    *testing.T
	dir  string
	log  string
	cmd  *exec.Cmd
	pids []int
}

func start(t *testing.T, args ...string) *run {
	t.Helper()
	r := launch(t, args...)
	r.ready()
	return r
}

// launch starts a workload without waiting for its READY line.
func launch(t *testing.T, args ...string) *run {
	t.Helper()
	dir := t.TempDir()
	r := &run{t: t, dir: dir, log: filepath.Join(dir, "log")}
	out, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	r.cmd = exec.Command(workload, append([]string{args[0], dir}, args[1:]...)...)
	r.cmd.Stdout, r.cmd.Stderr = out, out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.kill)
	return r
}

// ready waits for the workload's READY line and reads its PIDs.
func (r *run) ready() {
	t := r.t
	t.Helper()
	line := r.waitLine("READY")
	for _, p := range strings.Split(strings.TrimPrefix(line, "READY pids="), ",") {
		pid, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("bad READY line %q", line)
		}
		r.pids = append(r.pids, pid)
	}
}

// kill ends whatever is left of the tree (after a failure).
func (r *run) kill() {
	for _, pid := range r.pids {
		unix.Kill(pid, unix.SIGKILL)
	}
	for _, pid := range r.pids {
		reap(pid)
	}
}

// waitLine waits for a log line starting with prefix; a FAIL line fails.
func (r *run) waitLine(prefix string) string {
	r.t.Helper()
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		data, _ := os.ReadFile(r.log)
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			l := sc.Text()
			if strings.HasPrefix(l, "FAIL") {
				r.t.Fatalf("workload failed: %s\nlog:\n%s", l, data)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	data, _ := os.ReadFile(r.log)
	r.t.Fatalf("no %q line within %v; log:\n%s", prefix, deadline, data)
	return ""
}

func (r *run) touch(name string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), nil, 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// seamless runs the seamless binary and returns its stdout and stderr.
func seamless(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*deadline)
	defer cancel()
	var stdout, stderr strings.Builder
	cmd := exec.CommandContext(ctx, seamlessBin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// checkpoint checkpoints the tree (which is killed), reaps its root and
// checks that every process is gone.
func (r *run) checkpoint() string {
	r.t.Helper()
	img := filepath.Join(r.dir, "image")
	if _, stderr, err := seamless(r.t, "checkpoint", "--pid", strconv.Itoa(r.pids[0]), "--dir", img); err != nil {
		r.t.Fatalf("checkpoint: %v\n%s", err, stderr)
	}
	if r.cmd.ProcessState == nil {
		r.cmd.Wait() // the root, killed (later rounds: reaped below)
	}
	for _, pid := range r.pids {
		reap(pid)
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			r.t.Fatalf("process %d still exists after the checkpoint", pid)
		}
	}
	return img
}

// restore restores the image, checks the root's PID and returns the
// restore's standard error (its warnings).
func (r *run) restore(img string) string {
	r.t.Helper()
	stdout, stderr, err := seamless(r.t, "restore", "--dir", img)
	if err != nil {
		log, _ := os.ReadFile(r.log)
		r.t.Fatalf("restore: %v\n%s\nlog:\n%s", err, stderr, log)
	}
	if got := strings.TrimSpace(stdout); got != strconv.Itoa(r.pids[0]) {
		r.t.Fatalf("restore printed root %q, want %d", got, r.pids[0])
	}
	return stderr
}

// finish lets the workload verify and stop, and checks its exit status.
// restored: the root is our (subreaper's) child now, not r.cmd's process.
func (r *run) finish(restored bool) {
	r.t.Helper()
	r.touch("go")
	r.waitLine("VERIFIED")
	r.touch("stop")
	r.waitLine("DONE ok")
	if !restored {
		if err := r.cmd.Wait(); err != nil {
			r.t.Fatalf("workload: %v", err)
		}
		return
	}
	ws, err := waitExit(r.pids[0])
	if err != nil {
		r.t.Fatal(err)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		r.t.Fatalf("restored root %d ended with status %v", r.pids[0], ws)
	}
}

// reap waits for a dead process that was reparented to us; it returns once
// the PID is no longer our child or has gone.
func reap(pid int) {
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
		if err != nil || got == pid {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitExit waits for our child pid to exit.
func waitExit(pid int) (unix.WaitStatus, error) {
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
		if err != nil {
			return ws, fmt.Errorf("wait for %d: %w", pid, err)
		}
		if got == pid {
			return ws, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, fmt.Errorf("process %d did not exit within %v", pid, deadline)
}

// TestUnixWorkloadsStandalone runs every workload without seamless.
func TestUnixWorkloadsStandalone(t *testing.T) {
	need(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := start(t, c.args(t.TempDir())...)
			r.finish(false)
		})
	}
}

// TestUnixRoundTrip checkpoints and restores every workload, twice in a
// row (the restored sockets must be as checkpointable as the originals).
func TestUnixRoundTrip(t *testing.T) {
	need(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := start(t, c.args(t.TempDir())...)
			for round := 1; round <= 2; round++ {
				img := r.checkpoint()
				r.restore(img)
				os.Rename(img, fmt.Sprintf("%s-%d", img, round))
			}
			r.finish(true)
		})
	}
}

// TestUnixExternalPeer connects a workload to a listener of the test
// process (outside the tree): the checkpoint records the peer by its path,
// and the restore gives the connection back closed by its peer, with a
// warning: the workload reads end of file and connects again itself.
func TestUnixExternalPeer(t *testing.T) {
	need(t)
	path := filepath.Join(t.TempDir(), "external.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln.(*net.UnixListener).SetDeadline(time.Now().Add(deadline))
	r := start(t, "external", path)
	c1, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c1.SetDeadline(time.Now().Add(deadline))
	expect(t, c1, "before\n")

	img := r.checkpoint()
	im, err := image.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range im.Tree.Files {
		if s := f.Socket(); s != nil && s.Unix != nil && s.Unix.External != nil {
			found = true
			if s.Unix.External.Key != path {
				t.Fatalf("external peer recorded as %q, want %q", s.Unix.External.Key, path)
			}
		}
	}
	if !found {
		t.Fatal("the connection to the test's listener is not recorded as external")
	}
	if n, err := c1.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("the old connection is still open after the checkpoint (read %d, %v)", n, err)
	}

	stderr := r.restore(img)
	if !strings.Contains(stderr, "warning") || !strings.Contains(stderr, path) || !strings.Contains(stderr, "closed by its peer") {
		t.Fatalf("the restore does not warn that the connection to %s comes back closed:\n%s", path, stderr)
	}
	r.touch("go")
	c2, err := ln.Accept()
	if err != nil {
		t.Fatalf("the workload did not connect again after restore: %v", err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(deadline))
	expect(t, c2, "after\n")
	if _, err := c2.Write([]byte("ok\n")); err != nil {
		t.Fatal(err)
	}
	r.waitLine("VERIFIED")
	r.touch("stop")
	r.waitLine("DONE ok")
	if ws, err := waitExit(r.pids[0]); err != nil || !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("restored root: %v %v", ws, err)
	}
}

// TestUnixAcceptedFromOutside checkpoints a server holding a connection it
// accepted from a client outside the tree (PostgreSQL with psql on its
// socket): the restore gives that connection back closed by its peer, so
// the server reads end of file as after a client disconnect, and its
// listener accepts the next client.
func TestUnixAcceptedFromOutside(t *testing.T) {
	need(t)
	path := filepath.Join(t.TempDir(), "server.sock")
	r := launch(t, "accepted", path)
	r.waitLine("LISTENING")
	c1, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if _, err := c1.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	r.ready()
	img := r.checkpoint()
	stderr := r.restore(img)
	if !strings.Contains(stderr, "closed by its peer") || !strings.Contains(stderr, "accepted by the listener "+path) {
		t.Fatalf("the restore does not warn that the accepted connection comes back closed:\n%s", stderr)
	}
	r.touch("go")
	c2, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("connect to the restored listener: %v", err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(deadline))
	if _, err := c2.Write([]byte("again\n")); err != nil {
		t.Fatal(err)
	}
	expect(t, c2, "ok\n")
	r.waitLine("VERIFIED")
	r.touch("stop")
	r.waitLine("DONE ok")
	if ws, err := waitExit(r.pids[0]); err != nil || !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("restored root: %v %v", ws, err)
	}
}

func expect(t *testing.T, c net.Conn, want string) {
	t.Helper()
	buf := make([]byte, len(want))
	for got := 0; got < len(buf); {
		n, err := c.Read(buf[got:])
		if err != nil {
			t.Fatalf("read %q from the workload: got %q: %v", want, buf[:got], err)
		}
		got += n
	}
	if string(buf) != want {
		t.Fatalf("read %q from the workload, want %q", buf, want)
	}
}

// TestUnixRightsInFlightRefused checks that a descriptor queued in a unix
// socket (SCM_RIGHTS) makes the checkpoint fail with a clear message, and
// that the tree runs on untouched: the workload then receives the
// descriptor and uses it.
func TestUnixRightsInFlightRefused(t *testing.T) {
	need(t)
	r := start(t, "rights")
	img := filepath.Join(r.dir, "image")
	_, stderr, err := seamless(t, "checkpoint", "--pid", strconv.Itoa(r.pids[0]), "--dir", img)
	if err == nil {
		t.Fatal("checkpoint succeeded with a descriptor in flight")
	}
	if !strings.Contains(stderr, "SCM_RIGHTS") || !strings.Contains(stderr, "in flight") {
		t.Fatalf("checkpoint error does not explain the refusal:\n%s", stderr)
	}
	t.Logf("refused as expected: %s", strings.TrimSpace(stderr))
	if _, err := os.Stat(img); err == nil {
		t.Fatalf("a failed checkpoint left its image %s", img)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.pids[0]))
	if err != nil {
		t.Fatalf("the workload is gone after the refused checkpoint: %v", err)
	}
	if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && (f[0] == "t" || f[0] == "T") {
		t.Fatalf("the workload is left stopped (%s)", f[0])
	}
	r.finish(false)
}
