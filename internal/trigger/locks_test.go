package trigger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as a process that holds a lock the way apt and
// dpkg do (a classic POSIX record lock), or that waits for the locks.
func TestMain(m *testing.M) {
	switch os.Getenv("TRIGGER_TEST_HELPER") {
	case "hold":
		f, err := os.OpenFile(os.Getenv("TRIGGER_TEST_LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
		if err == nil {
			err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &unix.Flock_t{Type: unix.F_WRLCK})
		}
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("held")
		time.Sleep(time.Minute)
		os.Exit(0)
	case "wait":
		PackageLocks = strings.Split(os.Getenv("TRIGGER_TEST_LOCK"), ",")
		DNFPIDLocks = strings.Split(os.Getenv("TRIGGER_TEST_PIDLOCK"), ",")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := HoldPackageLocks(ctx, nil)
		fmt.Println(err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holder starts a process that holds a POSIX lock on path.
func holder(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "TRIGGER_TEST_HELPER=hold", "TRIGGER_TEST_LOCK="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "held") {
		t.Fatalf("lock holder: %q", buf[:n])
	}
	return cmd
}

func lockFiles(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	old := PackageLocks
	PackageLocks = []string{filepath.Join(dir, "lock-frontend"), filepath.Join(dir, "lock"), filepath.Join(dir, "missing", "lock")}
	oldPID := DNFPIDLocks
	DNFPIDLocks = []string{filepath.Join(dir, "dnf", "rpmdb_lock.pid")}
	t.Cleanup(func() { PackageLocks, DNFPIDLocks = old, oldPID })
	return PackageLocks
}

func TestHoldPackageLocksWaits(t *testing.T) {
	locks := lockFiles(t)
	h := holder(t, locks[1])
	type result struct {
		release func()
		err     error
	}
	waited := make(chan string, 4)
	done := make(chan result, 1)
	go func() {
		r, err := HoldPackageLocks(context.Background(), func(who string) { waited <- who })
		done <- result{r, err}
	}()
	select {
	case who := <-waited:
		if want := fmt.Sprintf("(pid %d)", h.Process.Pid); !strings.Contains(who, want) {
			t.Errorf("waited for %q, want the holder %s", who, want)
		}
	case r := <-done:
		t.Fatalf("HoldPackageLocks returned (%v) while the lock was held", r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("HoldPackageLocks neither waited nor returned")
	}
	select {
	case r := <-done:
		t.Fatalf("HoldPackageLocks returned (%v) while the lock was held", r.err)
	case <-time.After(time.Second):
	}
	h.Process.Kill()
	h.Wait()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("HoldPackageLocks still waits after the holder ended")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	// While we hold them, an apt-like taker is refused.
	for _, p := range locks[:2] {
		f, _ := os.OpenFile(p, os.O_RDWR, 0)
		lk := unix.Flock_t{Type: unix.F_WRLCK}
		if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err == nil {
			t.Errorf("%s could be locked while held", p)
		}
		f.Close()
	}
	r.release()
	f, _ := os.OpenFile(locks[0], os.O_RDWR, 0)
	defer f.Close()
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &unix.Flock_t{Type: unix.F_WRLCK}); err != nil {
		t.Errorf("after release: %v", err)
	}
}

func TestHoldPackageLocksCancelled(t *testing.T) {
	locks := lockFiles(t)
	holder(t, locks[0])
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, err := HoldPackageLocks(ctx, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), locks[0]) {
		t.Fatalf("err = %v, want a deadline naming %s", err, locks[0])
	}
}

// A hook run by apt that waited for apt's lock would wait forever.
func TestHoldPackageLocksInsideRun(t *testing.T) {
	locks := lockFiles(t)
	f, err := os.OpenFile(locks[0], os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &unix.Flock_t{Type: unix.F_WRLCK}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "TRIGGER_TEST_HELPER=wait", "TRIGGER_TEST_LOCK="+strings.Join(locks, ","), "TRIGGER_TEST_PIDLOCK="+strings.Join(DNFPIDLocks, ","))
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), ErrInsidePackageRun.Error()) || !strings.Contains(string(out), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("child said %q, want %q naming pid %d", out, ErrInsidePackageRun, os.Getpid())
	}
}

func TestParentOf(t *testing.T) {
	p, err := parentOf(os.Getpid())
	if err != nil || p != os.Getppid() {
		t.Fatalf("parentOf(self) = %d, %v; want %d", p, err, os.Getppid())
	}
}

// dnf4's lock is a file naming its holder: a live holder is waited for, a
// dead one's lock taken over, the caller's own ancestor refused.
func TestHoldPackageLocksDNF4(t *testing.T) {
	lockFiles(t)
	path := DNFPIDLocks[0]
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	os.WriteFile(path, []byte(strconv.Itoa(sleeper.Process.Pid)), 0o644)
	waited := make(chan string, 2)
	type result struct {
		release func()
		err     error
	}
	done := make(chan result, 1)
	go func() {
		r, err := HoldPackageLocks(context.Background(), func(who string) { waited <- who })
		done <- result{r, err}
	}()
	select {
	case who := <-waited:
		if want := fmt.Sprintf("sleep (pid %d)", sleeper.Process.Pid); who != want {
			t.Errorf("waited for %q, want %q", who, want)
		}
	case r := <-done:
		t.Fatalf("HoldPackageLocks returned (%v) while dnf's lock named a live process", r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("HoldPackageLocks neither waited nor returned")
	}
	sleeper.Process.Kill()
	sleeper.Wait() // now the file names a dead process: stale
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("HoldPackageLocks still waits on a stale dnf lock")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if b, _ := os.ReadFile(path); string(b) != strconv.Itoa(os.Getpid()) {
		t.Errorf("while held the lock says %q, want our pid %d (dnf reads it)", b, os.Getpid())
	}
	r.release()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("after release: %v, want the lock removed", err)
	}

	// Garbage: named, not overwritten.
	os.WriteFile(path, []byte("x1"), 0o644)
	if _, err := HoldPackageLocks(context.Background(), nil); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("malformed lock: err = %v, want one naming %s", err, path)
	}

	// Held by an ancestor (dnf running the hook): refused, not waited for.
	os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())), 0o644)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "TRIGGER_TEST_HELPER=wait", "TRIGGER_TEST_LOCK="+strings.Join(PackageLocks, ","), "TRIGGER_TEST_PIDLOCK="+path)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), ErrInsidePackageRun.Error()) {
		t.Fatalf("child said %q, want %q", out, ErrInsidePackageRun)
	}
}
