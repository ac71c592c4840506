package dump

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/proc"
)

// moveChildEnv makes the test binary a child that holds moveChildMiB of
// memory in a pattern and checks it, writing "ok N" (or "bad N") to the
// file the variable names every 20 ms.
const (
	moveChildEnv = "SEAMLESS_TEST_MOVE_CHILD"
	moveChildMiB = 64
)

// moveTracerEnv makes the test binary a checkpoint that moves the memory
// of the PID the variable names, then exits at once, as if seamless died.
const moveTracerEnv = "SEAMLESS_TEST_MOVE_TRACER"

func TestMain(m *testing.M) {
	if path := os.Getenv(moveChildEnv); path != "" {
		moveChild(path)
		return
	}
	if pid, _ := strconv.Atoi(os.Getenv(moveTracerEnv)); pid > 0 {
		runtime.LockOSThread()
		dir, err := os.MkdirTemp("", "move-tracer-")
		if err != nil {
			os.Exit(2)
		}
		defer os.RemoveAll(dir)
		if _, err := Checkpoint(Options{PID: pid, Dir: filepath.Join(dir, "image"), KillLater: true, MoveMemory: true}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		os.Exit(0) // neither Abort nor Commit: the tracer is gone
	}
	os.Exit(m.Run())
}

func moveChild(path string) {
	mem, err := unix.Mmap(-1, 0, moveChildMiB<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		os.Exit(2)
	}
	for i := range mem {
		mem[i] = byte(i*7 + i>>12)
	}
	for n := 0; ; n++ {
		state := "ok"
		for i := range mem {
			if mem[i] != byte(i*7+i>>12) {
				state = "bad"
				break
			}
		}
		os.WriteFile(path+".tmp", []byte(fmt.Sprintf("%s %d", state, n)), 0o600)
		os.Rename(path+".tmp", path)
		time.Sleep(20 * time.Millisecond)
	}
}

// startMoveChild starts the child of moveChildEnv in a new directory; it
// returns the directory, the child's report file and the child.
func startMoveChild(t *testing.T) (string, string, *exec.Cmd) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (ptrace, /proc/PID/mem)")
	}
	dir := t.TempDir()
	report := filepath.Join(dir, "report")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), moveChildEnv+"="+report)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return dir, report, cmd
}

// childState reads the child's last report.
func childState(t *testing.T, path string) (string, int) {
	t.Helper()
	b, _ := os.ReadFile(path)
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return "", -1
	}
	n, _ := strconv.Atoi(f[1])
	return f[0], n
}

// awaitReport waits for a report after the n-th.
func awaitReport(t *testing.T, path string, n int) (string, int) {
	t.Helper()
	end := time.Now().Add(30 * time.Second)
	for time.Now().Before(end) {
		if s, m := childState(t, path); m > n {
			return s, m
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the child reported nothing after report %d", n)
	return "", 0
}

// TestMoveMemory: a checkpoint that moves memory frees the stopped
// process's memory as it writes it (what lets the kmod store carry a
// service using most of the machine), asks the store for room part by
// part, and, when the process is let go instead of killed, puts every
// byte back, giving the store each part back once it is: the process
// goes on checking its memory and finds it intact.
func TestMoveMemory(t *testing.T) {
	dir, report, cmd := startMoveChild(t)
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	state, n := awaitReport(t, report, -1)
	if state != "ok" {
		t.Fatalf("the child's memory is wrong before any checkpoint: %s", state)
	}
	before := rssAnon(t, cmd.Process.Pid)

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var reserved, released int64
	res, err := Checkpoint(Options{PID: cmd.Process.Pid, Dir: filepath.Join(dir, "image"), KillLater: true, MoveMemory: true,
		Reserve: func(n int64) error { reserved += n; return nil },
		Release: func(path string, ranges [][2]int64) error {
			for _, r := range ranges {
				released += r[1]
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	during := rssAnon(t, cmd.Process.Pid)
	res.Abort()
	if res.Moved < moveChildMiB<<20 {
		t.Errorf("moved %d bytes, want at least the child's %d MiB", res.Moved, moveChildMiB)
	}
	if reserved < res.Moved {
		t.Errorf("the store was asked for %d bytes, less than the %d moved", reserved, res.Moved)
	}
	if released != res.Moved {
		t.Errorf("the store was given back %d bytes as the memory was put back, want the %d moved", released, res.Moved)
	}
	if during > before-moveChildMiB<<20*9/10 {
		t.Errorf("RssAnon %d KiB before the checkpoint, %d KiB while stopped: the memory was not freed", before>>10, during>>10)
	}
	// The child runs again: its next full check must find every byte.
	_, n = awaitReport(t, report, n)
	state, _ = awaitReport(t, report, n)
	if state != "ok" {
		t.Fatalf("after the memory was put back the child reports %q", state)
	}
	if after := rssAnon(t, cmd.Process.Pid); after < before*9/10 {
		t.Errorf("RssAnon %d KiB after the memory was put back, %d KiB before", after>>10, before>>10)
	}
}

// rssAnon is the anonymous memory pid has in RAM, in bytes.
func rssAnon(t *testing.T, pid int) int64 {
	t.Helper()
	st, err := proc.ReadStatus(pid, pid)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := strconv.ParseInt(strings.TrimSuffix(st["RssAnon"], " kB"), 10, 64)
	if err != nil {
		t.Fatalf("RssAnon of %d: %q", pid, st["RssAnon"])
	}
	return kb << 10
}

// TestMoveMemoryUnputBack: memory that cannot be put back (its image
// damaged after the drop) is never let run: the tree is killed instead.
func TestMoveMemoryUnputBack(t *testing.T) {
	dir, report, cmd := startMoveChild(t)
	defer cmd.Process.Kill()
	awaitReport(t, report, -1)

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	img := filepath.Join(dir, "image")
	res, err := Checkpoint(Options{PID: cmd.Process.Pid, Dir: img, KillLater: true, MoveMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	pages, err := os.OpenFile(filepath.Join(img, fmt.Sprintf("pages-%d.img", cmd.Process.Pid)), os.O_RDWR, 0)
	if err != nil {
		res.Commit()
		t.Fatal(err)
	}
	b := make([]byte, 1)
	pages.ReadAt(b, 4096)
	pages.WriteAt([]byte{^b[0]}, 4096)
	pages.Close()
	_, last := childState(t, report)
	res.Abort()
	// Killed, it was reaped as the checkpoint's tracee (or is ours to reap).
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() != unix.SIGKILL {
		t.Fatalf("the process ended with %v, want killed", err)
	}
	if kerr := unix.Kill(cmd.Process.Pid, 0); kerr != unix.ESRCH {
		t.Fatalf("the process whose memory could not be put back still exists (kill 0: %v)", kerr)
	}
	if _, n := childState(t, report); n != last {
		t.Fatalf("the process ran after its memory could not be put back: report %d, then %d", last, n)
	}
}

// TestMoveMemoryTracerDies: should the checkpoint die after it dropped a
// process's memory (an OOM kill, a crash), the kernel kills the process
// (PTRACE_O_EXITKILL) rather than let it run without its memory.
func TestMoveMemoryTracerDies(t *testing.T) {
	_, report, cmd := startMoveChild(t)
	defer cmd.Process.Kill()
	awaitReport(t, report, -1)
	tracer := exec.Command(os.Args[0], "-test.run=^$")
	tracer.Env = append(os.Environ(), moveTracerEnv+"="+strconv.Itoa(cmd.Process.Pid))
	if out, err := tracer.CombinedOutput(); err != nil {
		t.Fatalf("the checkpoint failed: %v\n%s", err, out)
	}
	_, last := childState(t, report)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != unix.SIGKILL {
		t.Fatalf("the process ended with %v once its checkpoint died, want killed", err)
	}
	if _, n := childState(t, report); n != last {
		t.Fatalf("the process ran after its checkpoint died: report %d, then %d", last, n)
	}
}
