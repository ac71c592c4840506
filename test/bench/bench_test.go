// Package bench measures checkpoint and restore throughput of the engine on
// a real process with 1 GiB of touched memory, the image in tmpfs.
package bench

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// BenchmarkCheckpointRestore1GiB checkpoints a process holding 1 GiB of
// touched anonymous memory into /dev/shm and restores it, and reports each
// direction's throughput in MB/s.
func BenchmarkCheckpointRestore1GiB(b *testing.B) {
	seamless, bigmem := build(b)
	work := b.TempDir()
	logPath := filepath.Join(work, "bigmem.log")
	logf, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bigmem, "1024")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	pid := cmd.Process.Pid
	b.Cleanup(func() { unix.Kill(pid, unix.SIGKILL); reap() })
	line := waitLine(b, logPath, "READY", 0)
	var ckpt, rest time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		img, err := os.MkdirTemp("/dev/shm", "seamless-bench-")
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if out, err := exec.Command(seamless, "checkpoint", "--pid", itoa(pid), "--dir", img).CombinedOutput(); err != nil {
			b.Fatalf("checkpoint: %v\n%s", err, out)
		}
		ckpt += time.Since(start)
		// The killed tree's root is our child (first time) or was reparented
		// to us as the subreaper: reap it so that its PID is free again.
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
			b.Fatalf("reap %d: %v", pid, err)
		}
		start = time.Now()
		cmd := exec.Command(seamless, "restore", "--dir", img)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("restore: %v\n%s", err, stderr.String())
		}
		rest += time.Since(start)
		if strings.TrimSpace(string(out)) != itoa(pid) {
			b.Fatalf("restore printed %q, want %d", out, pid)
		}
		os.RemoveAll(img)
		line = waitLine(b, logPath, "OK", line)
	}
	b.StopTimer()
	mb := float64(memMiB<<20) / 1e6 * float64(b.N)
	b.ReportMetric(mb/ckpt.Seconds(), "checkpoint-MB/s")
	b.ReportMetric(mb/rest.Seconds(), "restore-MB/s")
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
