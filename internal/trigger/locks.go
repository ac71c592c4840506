package trigger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// PackageLocks are the fcntl locks of the package managers: apt's and
// dpkg's, in the order apt takes them, then dnf5's transaction lock and
// rpm's database lock (Fedora's and RHEL 9's /usr/lib/sysimage/rpm, older
// systems' /var/lib/rpm). A lock whose directory is missing belongs to a
// package manager this system does not have and is skipped. Whoever holds
// them all (and DNFPIDLocks) is alone: no package run (install, upgrade,
// list update) is under way or can start.
var PackageLocks = []string{
	"/var/lib/dpkg/lock-frontend",
	"/var/lib/dpkg/lock",
	"/var/cache/apt/archives/lock",
	"/var/lib/apt/lists/lock",
	"/run/dnf/rpmtransaction.lock",
	"/usr/lib/sysimage/rpm/.rpm.lock",
	"/var/lib/rpm/.rpm.lock",
}

// DNFPIDLocks are dnf4's locks: not fcntl locks but files that name their
// holder, present while a dnf4 transaction runs (dnf takes them under
// flock(2) and removes them when done; a file naming a dead process is
// stale, to dnf and to seamless).
var DNFPIDLocks = []string{
	"/var/lib/dnf/rpmdb_lock.pid",
}

// ErrInsidePackageRun is returned by HoldPackageLocks when the lock is held
// by one of the caller's own ancestors: waiting would never end.
var ErrInsidePackageRun = errors.New("called from inside the package manager run (apt, dpkg, dnf, rpm) that holds its lock: run it once that run is done")

// HoldPackageLocks waits until apt and dpkg have released their locks and
// takes them all; the returned function releases them. While they are
// held no package run can start, so nothing is interrupted by what the
// caller does next (the locks die with the process if it is killed by the
// shutdown it starts). wait is told, once per holder, who is waited for.
func HoldPackageLocks(ctx context.Context, wait func(holder string)) (func(), error) {
	var held []*os.File
	release := func() {
		for _, f := range held {
			f.Close() // an open file description's lock goes with it
		}
	}
	told := map[string]bool{}
	for _, path := range PackageLocks {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o640)
		if os.IsNotExist(err) { // no apt here (its directory is missing)
			continue
		}
		if err != nil {
			release()
			return nil, fmt.Errorf("open package lock %s: %w", path, err)
		}
		held = append(held, f)
		for {
			lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
			err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
			if err == nil {
				break
			}
			if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
				release()
				return nil, fmt.Errorf("lock %s: %w", path, err)
			}
			holder := lockHolder(f)
			if pid := holderPID(f); pid > 0 && isAncestor(pid) {
				release()
				return nil, fmt.Errorf("%s holds %s: %w", holder, path, ErrInsidePackageRun)
			}
			if wait != nil && !told[holder] {
				told[holder] = true
				wait(holder)
			}
			select {
			case <-ctx.Done():
				release()
				return nil, fmt.Errorf("wait for %s to release %s: %w", holder, path, ctx.Err())
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	for _, path := range DNFPIDLocks {
		rel, err := holdPIDLock(ctx, path, told, wait)
		if err != nil {
			release()
			return nil, err
		}
		if rel != nil {
			prev := release
			release = func() { rel(); prev() }
		}
	}
	return release, nil
}

// holderPID returns the process holding a classic POSIX lock on f (apt and
// dpkg use those), or 0 when it cannot tell (an OFD lock has no process).
func holderPID(f *os.File) int {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err != nil || lk.Type == unix.F_UNLCK {
		return 0
	}
	return int(lk.Pid)
}

// lockHolder names who holds the lock on f: "apt-get (pid 412)".
func lockHolder(f *os.File) string {
	pid := holderPID(f)
	if pid <= 0 {
		return "another package manager"
	}
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return fmt.Sprintf("pid %d", pid)
	}
	return fmt.Sprintf("%s (pid %d)", strings.TrimSpace(string(comm)), pid)
}

// isAncestor tells whether pid is a parent, grandparent, ... of this process.
func isAncestor(pid int) bool {
	for p := os.Getppid(); p > 1; {
		if p == pid {
			return true
		}
		next, err := parentOf(p)
		if err != nil {
			return false
		}
		p = next
	}
	return false
}

// parentOf reads the parent of pid from /proc/PID/stat (the field after the
// command name, which may itself hold spaces and parentheses).
func parentOf(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: too short", pid)
	}
	return strconv.Atoi(f[1])
}
