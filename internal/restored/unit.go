package restored

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inet"
	"github.com/seamless-linux/seamless/internal/netlock"
	"github.com/seamless-linux/seamless/internal/units"
	"github.com/seamless-linux/seamless/internal/unixsock"
)

// JournalStream is where journald accepts the stdout and stderr streams of
// services: a restored service's old stream is replaced by its anchor's.
const JournalStream = unixsock.JournalStream

// restoreUnit rebuilds every process tree of unit inside the cgroup and
// mount namespace of the anchor pid, and returns the main PID.
func (d *daemon) restoreUnit(unit string, anchor int, fds []*os.File) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.state.Unit(unit)
	if u == nil {
		return 0, fmt.Errorf("%s: %w: it was not carried", unit, errNotPending)
	}
	if u.State != Pending {
		return 0, fmt.Errorf("%s: %w: it is %s", unit, errNotPending, u.State)
	}
	cg, err := d.cgroupOf(anchor)
	if err != nil {
		return 0, err
	}
	if path.Base(cg) != unit {
		return 0, fmt.Errorf("process %d is in cgroup %s, not in %s's: it may not restore it", anchor, cg, unit)
	}
	if err := d.enterRoot(); err != nil {
		d.giveUp(u, err.Error())
		d.finished()
		return 0, err
	}
	start := time.Now()
	u.State = Restoring
	d.state.write()
	main, err := d.restoreTrees(u, anchor, cg, fds)
	u.RestoreMs = time.Since(start).Milliseconds()
	if err != nil {
		d.giveUp(u, err.Error())
	} else {
		u.State, u.MainPID = Restored, main
		// The restore removed the lock in the unit's network namespace;
		// the boot-time lock is in the daemon's, which differs for a unit
		// with PrivateNetwork=.
		for _, t := range u.Trees {
			if err := unlock(d.trees[t.Dir]); err != nil {
				fmt.Fprintf(d.opts.Log, "%s: %v\n", unit, err)
			}
		}
		fmt.Fprintf(d.opts.Log, "%s: restored in %d ms, main pid %d\n", unit, u.RestoreMs, main)
	}
	d.state.write()
	recordOutcomes(&d.state, false, d.opts.Log)
	d.finished()
	return main, err
}

// finished closes done once no unit waits any more.
func (d *daemon) finished() {
	if d.pending() == 0 {
		select {
		case <-d.done:
		default:
			close(d.done)
		}
	}
}

func (d *daemon) restoreTrees(u *UnitState, anchor int, cg string, fds []*os.File) (int, error) {
	var restored []int
	fail := func(err error) (int, error) {
		// Trees restored already go too: the unit starts cold as a whole.
		for _, pid := range restored {
			unix.Kill(pid, unix.SIGKILL)
		}
		return 0, err
	}
	main := 0
	for _, t := range u.Trees {
		d.pids.Release(t.IDs)
		root, warnings, err := d.runRestorer(t, anchor, cg, fds)
		u.Warnings = append(u.Warnings, warnings...)
		if err != nil {
			return fail(fmt.Errorf("restore of pid %d: %w", t.Root, err))
		}
		restored = append(restored, root)
		if main == 0 || root == u.Start.MainPID {
			main = root
		}
	}
	return main, nil
}

// runRestorer runs `seamless restore` for one tree, in the unit's cgroup
// (clone3 into it) and mount namespace (nsenter), so that the tree is
// created there and sees the files the unit sees. It returns the restored
// root and the restore's warnings.
func (d *daemon) runRestorer(t TreeState, anchor int, cg string, fds []*os.File) (int, []string, error) {
	exe := fmt.Sprintf("/proc/%d/exe", os.Getpid())
	// The daemon verified every checksum at boot and holds the files since.
	args := []string{"restore", "--dir", t.Dir, "--pid-wait", "5s", "--verified"}
	var extra []*os.File
	if len(fds) > 1 && usesJournal(d.trees[t.Dir]) && isSocket(fds[1]) {
		extra = append(extra, fds[1])
		args = append(args, "--unix-peer-fd", JournalStream+"=3")
	}
	name, argv := exe, append([]string{"seamless"}, args...)
	enter, err := namespaces(anchor)
	if err != nil {
		return 0, nil, err
	}
	if len(enter) > 0 {
		nsenter, err := exec.LookPath("nsenter")
		if err != nil {
			return 0, nil, fmt.Errorf("the unit has namespaces of its own and nsenter is missing: %w", err)
		}
		name = nsenter
		argv = append(append([]string{"nsenter"}, enter...), "--", exe)
		argv = append(argv, args...)
	}
	dir, err := units.CgroupDir(cg)
	if err != nil {
		return 0, nil, err
	}
	cgf, err := os.Open(dir)
	if err != nil {
		return 0, nil, fmt.Errorf("cgroup of the unit: %w", err)
	}
	defer cgf.Close()
	var stdout, stderr bytes.Buffer
	cmd := &exec.Cmd{
		Path:        name,
		Args:        argv,
		Env:         []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
		Dir:         "/",
		Stdout:      &stdout,
		Stderr:      &stderr,
		ExtraFiles:  extra,
		SysProcAttr: &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgf.Fd())},
	}
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return 0, nil, fmt.Errorf("%s", msg)
	}
	var warnings []string
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if line != "" {
			fmt.Fprintf(d.opts.Log, "restore of pid %d: %s\n", t.Root, line)
		}
		if w, ok := strings.CutPrefix(line, "seamless restore: warning: "); ok {
			warnings = append(warnings, w)
		}
	}
	root, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if err != nil {
		return 0, nil, fmt.Errorf("restore printed %q, not a pid", stdout.String())
	}
	return root, warnings, nil
}

// usesJournal reports whether a tree wrote to journald's stream socket.
func usesJournal(t *image.Tree) bool {
	if t == nil {
		return false
	}
	for _, f := range t.Files {
		if s := f.Socket; s != nil && s.Unix != nil && s.Unix.External != nil && s.Unix.External.Key == JournalStream {
			return true
		}
	}
	return false
}

func isSocket(f *os.File) bool {
	var st unix.Stat_t
	return unix.Fstat(int(f.Fd()), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK
}

// namespaces returns the nsenter options that put the restorer into the
// namespaces of process pid that differ from the daemon's: the mount
// namespace of a sandboxed unit (PrivateTmp=, ProtectSystem=, ...), and its
// network, IPC and UTS namespaces (PrivateNetwork=, PrivateIPC=, ...), so
// that files, sockets and IPC objects are rebuilt where the unit sees them.
// A user namespace (PrivateUsers=) is refused: the restore needs the
// privileges of the initial one.
func namespaces(pid int) ([]string, error) {
	var opts []string
	for _, ns := range []struct{ name, opt string }{{"user", ""}, {"mnt", "--mount"}, {"net", "--net"}, {"ipc", "--ipc"}, {"uts", "--uts"}} {
		mine, err := os.Readlink("/proc/self/ns/" + ns.name)
		if err != nil {
			return nil, err
		}
		its, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns.name))
		if err != nil {
			return nil, err
		}
		if mine == its {
			continue
		}
		if ns.opt == "" {
			return nil, fmt.Errorf("the unit runs in a user namespace of its own (PrivateUsers=): not supported")
		}
		opts = append(opts, fmt.Sprintf("%s=/proc/%d/ns/%s", ns.opt, pid, ns.name))
	}
	return opts, nil
}

// cgroupOf returns the cgroup v2 path of process pid.
func (d *daemon) cgroupOf(pid int) (string, error) {
	s, err := d.procRead(pid, "cgroup")
	if err != nil {
		return "", err
	}
	if cg := units.CgroupV2(s); cg != "" {
		return cg, nil
	}
	return "", fmt.Errorf("process %d is in no cgroup v2", pid)
}

// enterRoot moves the daemon into the real root, once: it started in the
// initramfs, and PID 1 has switched root since (an anchor only runs after
// the switch). The real root is PID 1's.
func (d *daemon) enterRoot() error {
	if d.root {
		return nil
	}
	moved, err := d.rootMoved()
	if err != nil {
		return err
	}
	if moved {
		if err := d.chroot(); err != nil {
			return err
		}
	}
	d.root = true
	return nil
}

// awaitRoot waits, at most until deadline, for PID 1 to switch to the real
// root, and follows it there: the outcome of the restore is recorded on
// the real root's disk, even when no unit was left to restore.
func (d *daemon) awaitRoot(deadline time.Time) error {
	for !d.root {
		moved, err := d.rootMoved()
		if err != nil {
			return err
		}
		if moved {
			return d.enterRoot()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the system did not switch to its real root in time")
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

// rootMoved reports whether PID 1's root differs from the daemon's. When
// PID 1 is out of reach (another user namespace, in tests), it cannot have
// switched root under the daemon either: the daemon is where it belongs.
func (d *daemon) rootMoved() (bool, error) {
	fd, err := unix.Openat(int(d.proc.Fd()), "1/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == unix.EACCES {
		d.root = true
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("find the real root: %w", err)
	}
	defer unix.Close(fd)
	var theirs, mine unix.Stat_t
	if err := unix.Fstat(fd, &theirs); err != nil {
		return false, err
	}
	if err := unix.Stat("/", &mine); err != nil {
		return false, err
	}
	return theirs.Dev != mine.Dev || theirs.Ino != mine.Ino, nil
}

func (d *daemon) chroot() error {
	fd, err := unix.Openat(int(d.proc.Fd()), "1/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("find the real root: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Fchdir(fd); err != nil {
		return fmt.Errorf("enter the real root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("enter the real root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	fmt.Fprintln(d.opts.Log, "moved into the real root")
	return nil
}

// unlock removes the network lock of a tree that will not be restored, so
// that the service started cold can take its ports.
func unlock(t *image.Tree) error {
	if t == nil || netlock.Disabled() {
		return nil
	}
	byLock, err := inet.ImageFlows(t)
	if err != nil {
		return err
	}
	for name := range byLock {
		l, err := netlock.Open(nil, name)
		if err != nil {
			return fmt.Errorf("network lock %s: %w", name, err)
		}
		err = l.Remove()
		l.Release()
		if err != nil {
			return fmt.Errorf("remove network lock %s: %w", name, err)
		}
	}
	return nil
}
