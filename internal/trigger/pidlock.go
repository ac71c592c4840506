package trigger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// holdPIDLock waits until the dnf4 lock at path names no live process, then
// writes this process's PID into it, as dnf does: dnf sees it held until
// the returned function removes it (or this process dies, which makes it
// stale). It returns a nil function when the lock's directory is missing
// (no dnf here).
func holdPIDLock(ctx context.Context, path string, told map[string]bool, wait func(holder string)) (func(), error) {
	if _, err := os.Stat(filepath.Dir(path)); os.IsNotExist(err) {
		return nil, nil
	}
	me := os.Getpid()
	for {
		pid, err := tryPIDLock(path, me)
		if err != nil {
			return nil, err
		}
		if pid == me {
			return func() {
				// Only our own: dnf may have taken a stale-looking lock meanwhile.
				if p, err := readPIDLock(path); err == nil && p == me {
					os.Remove(path)
				}
			}, nil
		}
		holder := "another package manager"
		if pid > 0 {
			holder = procName(pid)
			if isAncestor(pid) {
				return nil, fmt.Errorf("%s holds %s: %w", holder, path, ErrInsidePackageRun)
			}
		}
		if wait != nil && !told[holder] {
			told[holder] = true
			wait(holder)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for %s to release %s: %w", holder, path, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// tryPIDLock takes the lock at path for me if it is free (missing, empty,
// or naming a dead process) and returns its holder: me, another PID, or 0
// while another process has the file under flock (dnf is deciding).
func tryPIDLock(path string, me int) (int, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open dnf lock %s: %w", path, err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return 0, nil
		}
		return 0, fmt.Errorf("lock dnf lock %s: %w", path, err)
	}
	b := make([]byte, 20)
	n, err := f.Read(b)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("read dnf lock %s: %w", path, err)
	}
	if s := strings.TrimSpace(string(b[:n])); s != "" {
		pid, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("dnf lock %s holds %q, not a PID: remove it if no dnf runs", path, s)
		}
		if pid == me {
			return me, nil
		}
		if _, err := os.Stat("/proc/" + s); err == nil {
			return pid, nil
		}
	}
	if err := f.Truncate(0); err != nil {
		return 0, fmt.Errorf("take dnf lock %s: %w", path, err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(me)), 0); err != nil {
		return 0, fmt.Errorf("take dnf lock %s: %w", path, err)
	}
	return me, nil
}

// readPIDLock returns the PID a dnf4 lock names.
func readPIDLock(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// procName names a process for people: "dnf (pid 412)".
func procName(pid int) string {
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return fmt.Sprintf("pid %d", pid)
	}
	return fmt.Sprintf("%s (pid %d)", strings.TrimSpace(string(comm)), pid)
}
