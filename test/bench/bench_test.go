// Package bench measures checkpoint and restore throughput of the engine on
// a real process with 1 GiB of touched memory, the image in a tmpfs: the
// system's /dev/shm and one mounted as the RAM store's stage.
package bench

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/store"
)

const memMiB = 1024

func build(b *testing.B) (seamless, bigmem string) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("checkpoint/restore benchmarks need root")
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	seamless = filepath.Join(dir, "seamless")
	if out, err := exec.Command("go", "build", "-o", seamless, "github.com/seamless-linux/seamless/cmd/seamless").CombinedOutput(); err != nil {
		b.Fatalf("build seamless: %v\n%s", err, out)
	}
	bigmem = filepath.Join(dir, "bigmem")
	if out, err := exec.Command("gcc", "-O2", "-o", bigmem, "testdata/bigmem.c").CombinedOutput(); err != nil {
		b.Fatalf("build bigmem: %v\n%s", err, out)
	}
	return seamless, bigmem
}

// waitLine waits until the log file contains a line starting with prefix.
func waitLine(b *testing.B, path, prefix string, after int) int {
	b.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		f, err := os.Open(path)
		if err == nil {
			sc := bufio.NewScanner(f)
			n := 0
			for sc.Scan() {
				n++
				if n > after && strings.HasPrefix(sc.Text(), prefix) {
					f.Close()
					return n
				}
				if strings.HasPrefix(sc.Text(), "BAD") {
					b.Fatalf("workload reports %s", sc.Text())
				}
			}
			f.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("no %q line in %s", prefix, path)
	return 0
}

// destinations are where the benchmarks put the images: /dev/shm, the
// tmpfs every system has, and a tmpfs mounted as the RAM store mounts its
// stage (store.NewStage: huge pages where the kernel has them).
var destinations = []struct {
	name  string
	mount func(b *testing.B) string
}{
	{"dev-shm", func(*testing.B) string { return "/dev/shm" }},
	{"stage", func(b *testing.B) string {
		sg, err := store.NewStage(filepath.Join(b.TempDir(), "stage"), 4<<30)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { sg.Close() })
		if !sg.Huge {
			b.Log("the stage has no huge pages on this kernel")
		}
		return sg.Dir
	}},
}

// BenchmarkCheckpointRestore1GiB checkpoints a process holding 1 GiB of
// touched anonymous memory into each destination and restores it, and
// reports each direction's throughput in MB/s.
func BenchmarkCheckpointRestore1GiB(b *testing.B) {
	seamless, bigmem := build(b)
	for _, d := range destinations {
		b.Run(d.name, func(b *testing.B) {
			parent := d.mount(b)
			w := startBigmem(b, bigmem)
			var t engineTimes
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w.cycle(b, seamlessEngine(seamless), parent, &t)
			}
			b.StopTimer()
			mb := float64(memMiB<<20) / 1e6 * float64(b.N)
			b.ReportMetric(mb/t.checkpoint.Seconds(), "checkpoint-MB/s")
			b.ReportMetric(mb/t.restore.Seconds(), "restore-MB/s")
		})
	}
}

// BenchmarkVersusCRIU1GiB does what BenchmarkCheckpointRestore1GiB does,
// alternately with seamless and with the CRIU binary that SEAMLESS_CRIU
// names (make bench CRIU=/path/to/criu), on the same process and into the
// same directory, and reports both throughputs and CRIU's time over
// seamless's for each direction.
func BenchmarkVersusCRIU1GiB(b *testing.B) {
	criu := os.Getenv("SEAMLESS_CRIU")
	if criu == "" {
		b.Skip("no CRIU to compare with: set SEAMLESS_CRIU (make bench CRIU=/usr/sbin/criu)")
	}
	if out, err := exec.Command(criu, "check").CombinedOutput(); err != nil {
		b.Fatalf("%s check: %v\n%s", criu, err, out)
	}
	seamless, bigmem := build(b)
	for _, d := range destinations {
		b.Run(d.name, func(b *testing.B) {
			parent := d.mount(b)
			w := startBigmem(b, bigmem)
			var ours, theirs engineTimes
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w.cycle(b, seamlessEngine(seamless), parent, &ours)
				w.cycle(b, criuEngine(criu), parent, &theirs)
			}
			b.StopTimer()
			mb := float64(memMiB<<20) / 1e6 * float64(b.N)
			b.ReportMetric(mb/ours.checkpoint.Seconds(), "checkpoint-MB/s")
			b.ReportMetric(mb/ours.restore.Seconds(), "restore-MB/s")
			b.ReportMetric(mb/theirs.checkpoint.Seconds(), "criu-dump-MB/s")
			b.ReportMetric(mb/theirs.restore.Seconds(), "criu-restore-MB/s")
			b.ReportMetric(theirs.checkpoint.Seconds()/ours.checkpoint.Seconds(), "checkpoint-x-criu")
			b.ReportMetric(theirs.restore.Seconds()/ours.restore.Seconds(), "restore-x-criu")
		})
	}
}

// engine checkpoints pid into the empty directory img (killing it) and
// restores it from there.
type engine struct {
	name       string
	checkpoint func(pid int, img string) *exec.Cmd
	restore    func(img string) *exec.Cmd
}

func seamlessEngine(bin string) engine {
	return engine{
		name: "seamless",
		checkpoint: func(pid int, img string) *exec.Cmd {
			return exec.Command(bin, "checkpoint", "--pid", itoa(pid), "--dir", img)
		},
		restore: func(img string) *exec.Cmd { return exec.Command(bin, "restore", "--dir", img) },
	}
}

// criuEngine runs CRIU as its own documentation shows for a process
// started from a shell: the restored tree detaches and is reparented to
// the benchmark, the subreaper.
func criuEngine(bin string) engine {
	return engine{
		name: "criu",
		checkpoint: func(pid int, img string) *exec.Cmd {
			return exec.Command(bin, "dump", "-t", itoa(pid), "-D", img, "--shell-job", "-o", "dump.log")
		},
		restore: func(img string) *exec.Cmd {
			return exec.Command(bin, "restore", "-D", img, "--shell-job", "--restore-detached", "-o", "restore.log")
		},
	}
}

type engineTimes struct{ checkpoint, restore time.Duration }

// bigmem is the workload: a process that holds 1 GiB of memory and checks
// its pattern every moment, logging OK (or BAD) lines.
type bigmem struct {
	pid     int
	logPath string
	line    int
}

func startBigmem(b *testing.B, bin string) *bigmem {
	b.Helper()
	w := &bigmem{logPath: filepath.Join(b.TempDir(), "bigmem.log")}
	logf, err := os.Create(w.logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, strconv.Itoa(memMiB))
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: CRIU's --shell-job takes a process group leader.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	w.pid = cmd.Process.Pid
	b.Cleanup(func() { unix.Kill(w.pid, unix.SIGKILL); reap() })
	w.line = waitLine(b, w.logPath, "READY", 0)
	return w
}

// cycle checkpoints and restores the workload with e, its image in a new
// directory in parent, adds the times to t, and waits until the restored
// process has checked its memory again.
func (w *bigmem) cycle(b *testing.B, e engine, parent string, t *engineTimes) {
	b.Helper()
	img, err := os.MkdirTemp(parent, "seamless-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(img)
	start := time.Now()
	if out, err := e.checkpoint(w.pid, img).CombinedOutput(); err != nil {
		b.Fatalf("%s checkpoint: %v\n%s%s", e.name, err, out, logTail(img, "dump.log"))
	}
	t.checkpoint += time.Since(start)
	// The killed tree's root is our child (first time) or was reparented
	// to us as the subreaper: reap it so that its PID is free again.
	var ws unix.WaitStatus
	if _, err := unix.Wait4(w.pid, &ws, 0, nil); err != nil {
		b.Fatalf("reap %d: %v", w.pid, err)
	}
	start = time.Now()
	cmd := e.restore(img)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("%s restore: %v\n%s%s", e.name, err, stderr.String(), logTail(img, "restore.log"))
	}
	t.restore += time.Since(start)
	if e.name == "seamless" && strings.TrimSpace(string(out)) != itoa(w.pid) {
		b.Fatalf("restore printed %q, want %d", out, w.pid)
	}
	if err := unix.Kill(w.pid, 0); err != nil {
		b.Fatalf("%s restore: pid %d is not back: %v", e.name, w.pid, err)
	}
	w.line = waitLine(b, w.logPath, "OK", w.line)
}

// logTail is the end of a CRIU log in img, for an error message.
func logTail(img, name string) string {
	data, err := os.ReadFile(filepath.Join(img, name))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.Join(lines[max(0, len(lines)-15):], "\n")
}

// reap collects every exited child, including restored trees that were
// reparented to this process.
func reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WALL, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
