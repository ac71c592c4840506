package restored

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inet"
	"github.com/seamless-linux/seamless/internal/netlock"
	"github.com/seamless-linux/seamless/internal/units"
)

// JournalStream is where journald accepts the stdout and stderr streams of
// services: a restored service's old stream is replaced by its anchor's.
const JournalStream = "/run/systemd/journal/stdout"

// restoreUnit rebuilds every process tree of unit inside the cgroup and
// namespaces of the anchor p, and returns the main PID and the unit's
// cgroup; the unit stays restoring until the anchor has the answer (see
// handedOver). A caller that may not restore the unit is refused, and the
// unit stays pending for its own anchor; any other failure leaves nothing
// of the restore behind and the unit to start cold.
func (d *daemon) restoreUnit(unit string, p *peer, fds []*os.File) (int, string, error) {
	u, cg, err := d.claim(unit, p)
	if err != nil {
		return 0, "", err
	}
	start := time.Now()
	main, err := d.restoreTrees(u, p, cg, fds)
	d.mu.Lock()
	defer d.mu.Unlock()
	u.RestoreMs = time.Since(start).Milliseconds()
	if err != nil {
		d.giveUp(u, err.Error())
		d.settled()
		return 0, "", err
	}
	return main, cg, nil
}

// handedOver ends a restore whose answer was sent to the anchor: restored
// if the anchor took it, else killed (the anchor cannot tell systemd of
// the restored process, which must not stay next to the cold start that
// follows) and started cold.
func (d *daemon) handedOver(unit, cg string, p *peer, main int, sent error) {
	if sent != nil {
		d.abandon(unit, cg, p, fmt.Sprintf("its anchor went away before it heard the main pid (%v)", sent))
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.state.Unit(unit)
	u.State, u.MainPID = Restored, main
	// The restore removed the lock in the unit's network namespace; the
	// boot-time lock is in the daemon's, which differs for a unit with
	// PrivateNetwork=.
	for _, t := range u.Trees {
		tree := d.trees[t.Dir]
		if err := guard(d.opts.Log, "unlock "+unit, func() error { return unlock(tree) }); err != nil {
			fmt.Fprintf(d.opts.Log, "%s: %v\n", unit, err)
		}
	}
	fmt.Fprintf(d.opts.Log, "%s: restored in %d ms, main pid %d\n", unit, u.RestoreMs, main)
	d.settled()
}

// settled writes the state and the outcomes once a unit has its final
// state, and tells whoever waits for it. The caller holds d.mu.
func (d *daemon) settled() {
	d.state.write()
	recordOutcomes(&d.state, false, d.opts.Log)
	d.cond.Broadcast()
	d.finished()
}

// claim checks that unit waits for a restore and that p may ask for it,
// and marks it restoring. A unit being restored for another anchor (one
// that went away) is waited for: its outcome is the answer.
func (d *daemon) claim(unit string, p *peer) (*UnitState, string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.state.Unit(unit)
	if u == nil {
		return nil, "", fmt.Errorf("%s: %w: it was not carried", unit, errNotPending)
	}
	for u.State == Restoring {
		d.cond.Wait()
	}
	if u.State != Pending {
		return nil, "", fmt.Errorf("%s: %w: it is %s", unit, errNotPending, u.State)
	}
	if err := d.enterRoot(); err != nil {
		d.giveUp(u, err.Error())
		d.settled()
		return nil, "", err
	}
	cg, inUnit, err := d.authorize(u, p)
	if err != nil {
		fmt.Fprintf(d.opts.Log, "%s: refused process %d (uid %d): %s\n", unit, p.pid, p.uid, Bound(err.Error()))
		if inUnit {
			// The unit's own process was refused: its anchor starts the
			// service cold, which must not wait for the lock and PIDs to
			// be released at the daemon's timeout.
			d.giveUp(u, err.Error())
			d.settled()
		}
		return nil, "", err
	}
	u.State = Restoring
	d.state.write()
	return u, cg, nil
}

// abandon ends a unit restored for an anchor that went away before it
// could name the restored process to systemd: the unit's processes other
// than the anchor (if it still runs) are killed and the unit starts cold.
func (d *daemon) abandon(unit, cg string, p *peer, reason string) {
	spare := 0
	if p != nil && p.alive() {
		spare = p.pid
	}
	killed, err := KillOthers(cg, spare, 30*time.Second)
	fmt.Fprintf(d.opts.Log, "%s: %s: killed %v\n", unit, reason, killed)
	if err != nil {
		fmt.Fprintf(d.opts.Log, "%s: %v\n", unit, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if u := d.state.Unit(unit); u != nil {
		d.giveUp(u, reason)
		d.settled()
	}
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

// restoreTrees restores the unit's trees, within the restore timeout. On
// failure (an error, the timeout, a panic), everything the restore put in
// the unit's cgroup is killed, the anchor spared, before the unit is
// given up: the cold start must be the only copy.
func (d *daemon) restoreTrees(u *UnitState, p *peer, cg string, fds []*os.File) (int, error) {
	main := 0
	err := guard(d.opts.Log, "restore "+u.Unit, func() error {
		deadline := time.Now().Add(d.opts.RestoreTimeout)
		for _, t := range u.Trees {
			d.pids.Release(t.IDs)
			root, err := d.runRestorer(t, p.pid, cg, fds, deadline)
			if err != nil {
				return fmt.Errorf("restore of pid %d: %w", t.Root, err)
			}
			if main == 0 || root == u.Start.MainPID {
				main = root
			}
		}
		return nil
	})
	if err == nil {
		return main, nil
	}
	spare := 0
	if p.alive() {
		spare = p.pid
	}
	killed, kerr := KillOthers(cg, spare, 30*time.Second)
	if len(killed) > 0 {
		fmt.Fprintf(d.opts.Log, "%s: killed what the failed restore left in %s: %v\n", u.Unit, cg, killed)
	}
	if kerr != nil {
		return 0, fmt.Errorf("%w; and %v", err, kerr)
	}
	return 0, err
}

// runRestorer runs `seamless restore` for one tree, in the unit's cgroup
// (clone3 into it) and mount namespace (nsenter), so that the tree is
// created there and sees the files the unit sees. The restorer is killed
// at the deadline, and if the daemon dies (PR_SET_PDEATHSIG): then its
// half-restored processes die with it (they are its tracees, with
// PTRACE_O_EXITKILL), and an anchor that lost the daemon finds its cgroup
// empty.
func (d *daemon) runRestorer(t TreeState, anchor int, cg string, fds []*os.File, deadline time.Time) (int, error) {
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
		return 0, err
	}
	if len(enter) > 0 {
		nsenter, err := exec.LookPath("nsenter")
		if err != nil {
			return 0, fmt.Errorf("the unit has namespaces of its own and nsenter is missing: %w", err)
		}
		name = nsenter
		argv = append(append([]string{"nsenter"}, enter...), "--", exe)
		argv = append(argv, args...)
	}
	dir, err := units.CgroupDir(cg)
	if err != nil {
		return 0, err
	}
	cgf, err := os.Open(dir)
	if err != nil {
		return 0, fmt.Errorf("cgroup of the unit: %w", err)
	}
	defer cgf.Close()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name)
	cmd.Args, cmd.Env, cmd.Dir = argv, []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, "/"
	cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = &stdout, &stderr, extra
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgf.Fd()), Pdeathsig: syscall.SIGKILL}
	// PR_SET_PDEATHSIG fires when the thread that forked exits: this one
	// stays until the restorer is reaped.
	runtime.LockOSThread()
	err = cmd.Run()
	runtime.UnlockOSThread()
	if ctx.Err() != nil {
		return 0, fmt.Errorf("the restore did not finish within %s: killed", d.opts.RestoreTimeout)
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return 0, errors.New(Bound(msg))
	}
	for i, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if i == 20 {
			fmt.Fprintf(d.opts.Log, "restore of pid %d: (more lines left out)\n", t.Root)
			break
		}
		if line != "" {
			fmt.Fprintf(d.opts.Log, "restore of pid %d: %s\n", t.Root, Bound(line))
		}
	}
	root, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if err != nil {
		return 0, fmt.Errorf("restore printed %s, not a pid", Bound(stdout.String()))
	}
	return root, nil
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
