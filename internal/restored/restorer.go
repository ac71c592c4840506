package restored

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/bytesize"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/units"
	"github.com/seamless-linux/seamless/internal/unixsock"
)

// JournalStream is where journald accepts the stdout and stderr streams of
// services: a restored service's old stream is replaced by its anchor's.
const JournalStream = unixsock.JournalStream

// runRestorer runs `seamless restore` for one tree, in the unit's cgroup
// (clone3 into it) and mount namespace (nsenter), so that the tree is
// created there and sees the files the unit sees. The restorer is killed
// at the deadline, and if the daemon dies (PR_SET_PDEATHSIG): then its
// half-restored processes die with it (they are its tracees, with
// PTRACE_O_EXITKILL), and an anchor that lost the daemon finds its cgroup
// empty. It returns the restored root and the restore's warnings.
func (d *daemon) runRestorer(t contract.TreeState, anchor int, cg string, fds []*os.File, deadline time.Time) (int, []string, error) {
	exe := fmt.Sprintf("/proc/%d/exe", os.Getpid())
	// The daemon verified every checksum at boot and holds the files since.
	// The hold is part of the restore, and must end well before the
	// restore's own deadline kills it.
	hold := min(d.config().HoldForNetwork, d.opts.RestoreTimeout/2)
	args := []string{"restore", "--dir", t.Dir, "--pid-wait", "5s", "--verified", "--json",
		"--hold-for-network", hold.String()}
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
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	// The restorer gives the kmod store's memory back as it fills the
	// tree, but in a sandboxed unit's mount namespace sysfs is read-only:
	// the daemon onlines what it gives back.
	defer onlineGivenBack(d.opts.Log)()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name)
	cmd.Args, cmd.Env, cmd.Dir = argv, []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, "/"
	cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = &stdout, &stderr, extra
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgf.Fd()), Pdeathsig: syscall.SIGKILL}
	// PR_SET_PDEATHSIG fires when the thread that forked exits: this one
	// stays until the restorer is reaped.
	runtime.LockOSThread()
	err = startBoosted(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	runtime.UnlockOSThread()
	if ctx.Err() != nil {
		return 0, nil, fmt.Errorf("the restore did not finish within %s: killed", d.opts.RestoreTimeout)
	}
	var report RestorerReport
	jerr := json.Unmarshal(stdout.Bytes(), &report)
	if err != nil {
		// Without a report (a crash: the stack is on stderr), stderr says
		// why.
		msg := report.Error
		if jerr != nil || msg == "" {
			msg = strings.TrimSpace(stderr.String())
		}
		if msg == "" {
			msg = err.Error()
		}
		return 0, nil, errors.New(Bound(msg))
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
	if jerr != nil || report.Root <= 0 {
		return 0, nil, fmt.Errorf("restore printed %s, not a report with the root pid", Bound(stdout.String()))
	}
	if len(report.Phases) > 0 {
		fmt.Fprintf(d.opts.Log, "restore of pid %d: %s (private memory: %s through userfaultfd, %s written)\n", t.Root, contract.FormatPhases(report.Phases),
			bytesize.Format(int64(report.CopiedBytes)), bytesize.Format(int64(report.WrittenBytes)))
	}
	var warnings []string
	for _, w := range report.Warnings {
		warnings = append(warnings, Bound(w))
	}
	return report.Root, warnings, nil
}

// usesJournal reports whether a tree wrote to journald's stream socket.
func usesJournal(t *image.Tree) bool {
	if t == nil {
		return false
	}
	for _, f := range t.Files {
		if s := f.Socket(); s != nil && s.Unix != nil && s.Unix.External != nil && s.Unix.External.Key == JournalStream {
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

// restorerNice is the restorer's nice value: the unit's pause lasts as long
// as its restore, which competes for the CPUs with the rest of the boot
// (under emulation a restore took 1.5 s on one boot and 6.2 s on another).
// The restored threads get their own nice values back before they run
// (task.RestoreScheduling).
const restorerNice = -10

// startBoosted starts cmd with restorerNice. Nice values are per thread and
// a child inherits the forking thread's: this thread (the caller has locked
// it) forks at restorerNice and goes back to its own value.
func startBoosted(cmd *exec.Cmd) error {
	// The system call (unlike libc's wrapper) returns 20 - nice.
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil || unix.Setpriority(unix.PRIO_PROCESS, 0, restorerNice) != nil {
		return cmd.Start()
	}
	defer unix.Setpriority(unix.PRIO_PROCESS, 0, 20-prio)
	return cmd.Start()
}
