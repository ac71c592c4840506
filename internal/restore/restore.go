// Package restore rebuilds a checkpointed process tree from an image, with
// the original PIDs and TIDs, by driving a seed process entirely through
// injected system calls: clone3 with set_tid for every process and thread,
// the address space mapped and filled, descriptors passed in, signal and
// thread state set, credentials last, then the registers.
package restore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/crash"
	"github.com/seamless-linux/seamless/internal/files"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/mem"
	"github.com/seamless-linux/seamless/internal/proc"
	"github.com/seamless-linux/seamless/internal/ptrace"
	"github.com/seamless-linux/seamless/internal/sysvipc"
	"github.com/seamless-linux/seamless/internal/task"
	"github.com/seamless-linux/seamless/internal/timens"
	"github.com/seamless-linux/seamless/internal/unixsock"
)

// Options control a restore.
type Options struct {
	// Dir is the image directory.
	Dir string
	// Verified says the caller verified every checksum of the image and
	// holds it where it cannot change (the restore daemon): only sizes and
	// tree.json are checked again, and Dir may hold the daemon's links to
	// the files it holds (see image.OpenHeld).
	Verified bool
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// PIDWait is how long to wait for a PID held by a zombie to be reaped.
	PIDWait time.Duration
	// UnixExternal replaces peers outside the tree of unix socket
	// connections: key (as tree.json lists it: a path, "@name" or
	// "socket:[INODE]") to a socket already connected to the replacement.
	// Without an entry, a datagram connection is made again to the same
	// name and any other comes back closed by its peer (unixsock.ExternalFate).
	UnixExternal map[string]*os.File
	// VDSO says how the running kernel's vDSO replaces the image's: by
	// taking its place when the two match (VDSOAuto), or always through a
	// proxy at the old address that jumps to the new one (VDSOProxy).
	VDSO mem.VDSOMode
	// HoldForNetwork keeps the complete tree stopped until the network
	// reaches the peers of its TCP connections to other hosts, at most this
	// long (see holdForNetwork); zero lets it run at once.
	HoldForNetwork time.Duration
}

// Result describes a finished restore.
type Result struct {
	Root               int
	Processes, Threads int
	// VDSOProxies are the processes that reach this kernel's vDSO through a
	// proxy at the image's vDSO address.
	VDSOProxies []mem.ProxiedVDSO
	Warnings    []string
	// Phases are the restore's steps with their durations, in order.
	Phases []contract.Phase
	// Filled counts the private memory filled, by how (see mem.FillStats).
	Filled mem.FillStats
}

// Restore rebuilds the tree of the image in opts.Dir and lets it run. The
// calling goroutine must be locked to its OS thread. Nothing is created
// before the whole image has been verified; on failure, whatever was
// created is killed.
func Restore(opts Options) (*Result, error) {
	timing := contract.NewTimer()
	open := image.Open
	if opts.Verified {
		open = image.OpenHeld
	}
	im, err := open(opts.Dir)
	if err != nil {
		return nil, err
	}
	defer im.Close()
	tree := im.Tree
	plan, err := MakePlan(tree)
	if err != nil {
		return nil, err
	}
	if err := checkIDsFree(plan.IDs, opts.PIDWait); err != nil {
		return nil, err
	}
	timing.Mark("open")
	// Restored trees are reparented to the restorer when the seed goes away,
	// so that it can reap them if it has to abandon the restore.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("become child subreaper: %w", err)
	}
	seed, err := startSeed(plan.Region, plan.Channel)
	if err != nil {
		return nil, err
	}
	timing.Mark("seed")
	r := &restorer{im: im, seed: seed, timing: timing, targets: map[int]*inject.Target{}, threads: map[int]*inject.Thread{}, memDone: map[int]bool{}, hold: opts.HoldForNetwork}
	inTree := func(pid int) bool { _, ok := r.targets[pid]; return ok || pid == seed.PID }
	r.opener = files.NewOpener(im, inTree)
	if opts.UnixExternal != nil {
		r.opener.Sockets.Unix.External = opts.UnixExternal
	}
	journal, warning := newJournalStream(tree, r.opener.Sockets.Unix.External)
	if journal != nil {
		defer journal.Close()
	}
	r.mem = mem.NewRestorer(im, r.opener.Refs)
	r.mem.VDSO = opts.VDSO
	defer r.opener.Close()
	defer r.mem.Close()
	defer unix.Close(seed.Local)
	// A bug met halfway must still kill what was created.
	if err := crash.Call(r.run); err != nil {
		r.abandon()
		r.opener.Refs.Discard()
		return nil, err
	}
	res := &Result{Root: tree.Root, Processes: len(tree.Processes), Warnings: r.opener.Warnings,
		VDSOProxies: r.mem.Proxies, Phases: timing.Phases(), Filled: r.mem.Filled}
	if warning != "" {
		res.Warnings = append(res.Warnings, warning)
	}
	res.Warnings = append(res.Warnings, r.opener.Sockets.Unix.Warnings...)
	res.Warnings = append(res.Warnings, r.warnings...)
	res.Warnings = append(res.Warnings, describeProxies(r.mem.Proxies)...)
	for _, p := range tree.Processes {
		res.Threads += len(p.Threads)
	}
	return res, nil
}

// keepClocks makes the seed's children, the whole tree, start in a time
// namespace in which their clocks continue from c (see package timens).
// An image without clocks comes back on this kernel's clocks.
func keepClocks(seed *inject.Target, c *image.Clocks) error {
	if c == nil {
		return nil
	}
	if !timens.Supported() {
		return errors.New("this kernel has no time namespaces (CONFIG_TIME_NS): the tree's clocks cannot continue " +
			"from where they were, and its programs would see time go backwards")
	}
	if _, err := seed.Call(unix.SYS_UNSHARE, unix.CLONE_NEWTIME); err != nil {
		return fmt.Errorf("time namespace for the tree: %w", err)
	}
	off, err := timens.For(c)
	if err != nil {
		return err
	}
	return off.Write(seed.PID)
}

type restorer struct {
	im      *image.Image
	seed    *inject.Target
	targets map[int]*inject.Target
	threads map[int]*inject.Thread
	opener  *files.Opener
	mem     *mem.Restorer
	// seedGone is set once the seed has been ended.
	seedGone bool
	timing   *contract.Timer
	// hold is Options.HoldForNetwork; warnings collects what the hold
	// reports.
	hold     time.Duration
	warnings []string
	// memDone are the processes whose address space is rebuilt.
	memDone map[int]bool
}

func (r *restorer) run() error {
	tree := r.im.Tree
	if err := keepClocks(r.seed, tree.Clocks); err != nil {
		return err
	}
	if err := r.createProcesses(); err != nil {
		return err
	}
	if err := sysvipc.Restore(r.im, tree.SysV, r.targets[tree.Root]); err != nil {
		return err
	}
	r.timing.Mark("processes")
	// Every thread exists before any file is opened: a process may hold
	// /proc files of its own threads (pthread_setname_np opens
	// /proc/self/task/TID/comm) or of others in the tree.
	for _, p := range tree.Processes {
		if p.Zombie {
			continue
		}
		if err := r.restoreMemory(p); err != nil {
			return err
		}
	}
	r.timing.Mark("memory")
	watched, locked := map[int]bool{}, map[int]bool{}
	for _, p := range tree.Processes {
		if p.Zombie {
			continue
		}
		t := r.targets[p.PID]
		if err := r.stopNotices(t, p); err != nil {
			return err
		}
		// A process that shares an earlier one's descriptor table
		// (CLONE_FILES) has its descriptors already.
		if p.FDTable == 0 {
			if err := files.Install(t, p, r.opener); err != nil {
				return err
			}
		}
		if err := files.Watch(t, p, r.opener, watched); err != nil {
			return err
		}
		if err := files.Lock(t, p, r.opener, locked); err != nil {
			return err
		}
		for _, th := range p.Threads {
			if err := task.RestoreThread(t, r.threads[th.TID], th); err != nil {
				return err
			}
		}
		var exe *os.File
		if p.Exe != nil {
			var err error
			if exe, err = r.opener.Refs.Open(p.Exe, false); err != nil {
				return fmt.Errorf("process %d executable: %w", p.PID, err)
			}
		}
		err := task.RestoreProcess(t, p, exe)
		if exe != nil {
			exe.Close()
		}
		if err != nil {
			return fmt.Errorf("process %d: %w", p.PID, err)
		}
	}
	// Roots and working directories once every process has its
	// descriptors (a chroot would change where /dev/tty is opened), once
	// per CLONE_FS group.
	for _, p := range tree.Processes {
		if !p.Zombie && p.FSTable == 0 {
			if err := files.RestoreFS(r.targets[p.PID], p, r.opener); err != nil {
				return err
			}
		}
	}
	if err := r.opener.Finish(); err != nil {
		return err
	}
	leased := map[int]bool{}
	for _, p := range tree.Processes {
		if !p.Zombie {
			if err := files.Lease(r.targets[p.PID], p, r.opener, leased); err != nil {
				return err
			}
		}
	}
	if err := r.opener.Owners(); err != nil {
		return err
	}
	sysvipc.Finish(tree.SysV)
	r.timing.Mark("files")
	if err := r.reparentRoot(); err != nil {
		return err
	}
	// Credentials and registers last, once nothing privileged remains to do.
	for _, p := range tree.Processes {
		if p.Zombie {
			continue
		}
		if err := r.finishProcess(p); err != nil {
			return err
		}
	}
	r.timing.Mark("finish")
	if r.hold > 0 {
		// The tree is complete: a failed route lookup lets it run, it
		// does not undo the restore.
		waited, unreached, err := holdForNetwork(tree, r.hold)
		if err != nil {
			r.warnings = append(r.warnings, err.Error())
		}
		if len(unreached) > 0 {
			r.warnings = append(r.warnings, unreachedWarning(unreached, r.hold))
		}
		if waited {
			r.timing.Mark("network")
		}
	}
	// Children first, so that no process runs before its children are
	// complete; a stopped one is back in its stop before its parent runs.
	for i := len(tree.Processes) - 1; i >= 0; i-- {
		p := tree.Processes[i]
		var tids []int
		for _, th := range p.Threads {
			ptrace.Detach(th.TID, 0)
			tids = append(tids, th.TID)
		}
		if p.Attrs != nil && p.Attrs.StopSignal != 0 {
			task.AwaitStopped(p.PID, tids)
		}
	}
	r.releaseSeed()
	r.timing.Mark("resume")
	return nil
}

// restoreMemory rebuilds the address space of p, once.
func (r *restorer) restoreMemory(p *image.Process) error {
	if r.memDone[p.PID] {
		return nil
	}
	r.memDone[p.PID] = true
	return r.mem.Restore(r.targets[p.PID], p)
}

// createProcesses forks every process from its parent, parents first, so
// that the tree has its shape before any address space is replaced, except
// the address spaces of parents whose children inherit pages from them
// (copy-on-write since a fork): those are rebuilt before the children are
// forked.
func (r *restorer) createProcesses() error {
	tree := r.im.Tree
	byPID := map[int]*image.Process{}
	for _, p := range tree.Processes {
		byPID[p.PID] = p
	}
	for _, p := range tree.Processes {
		parent, from := r.seed, r.seed.Leader
		var parentImg *image.Process
		if p.PID != tree.Root {
			parent, from = r.targets[p.PPID], r.targets[p.PPID].Leader
			if p.ParentTID != 0 {
				from = r.threads[p.ParentTID]
			}
			parentImg = byPID[p.PPID]
		}
		// A child that shares pages with its parent since a fork is forked
		// from the parent's rebuilt memory, and keeps those pages.
		if parentImg != nil && mem.Inherits(p) {
			if err := r.restoreMemory(parentImg); err != nil {
				return err
			}
		}
		// The image checked that a table shared is the parent's.
		var flags uint64
		if p.FDTable != 0 {
			flags |= unix.CLONE_FILES
		}
		if p.FSTable != 0 {
			flags |= unix.CLONE_FS
		}
		if err := task.CloneFrom(parent, from, p.PID, p.ExitSignal, flags); err != nil {
			return fmt.Errorf("create process %d: %w", p.PID, err)
		}
		t, err := r.attach(p.PID, parent)
		if err != nil {
			return err
		}
		r.targets[p.PID] = t
		if !p.Zombie {
			if err := task.SetLoginUID(t, p, parentImg); err != nil {
				return fmt.Errorf("process %d: %w", p.PID, err)
			}
		}
		switch {
		case p.SID == p.PID:
			if _, err := t.Call(unix.SYS_SETSID); err != nil {
				return fmt.Errorf("process %d setsid: %w", p.PID, err)
			}
			// The controlling terminal before any child: children inherit it
			// at fork, not later.
			if p.Ctty >= 0 {
				if err := r.terminalIoctl(t, p.Ctty, unix.TIOCSCTTY, 0); err != nil {
					return fmt.Errorf("process %d controlling terminal: %w", p.PID, err)
				}
			}
		case p.PGID == p.PID:
			if _, err := t.Call(unix.SYS_SETPGID, 0, 0); err != nil {
				return fmt.Errorf("process %d setpgid: %w", p.PID, err)
			}
		}
		// Its threads before its children: a child may have been created
		// by another thread than the main one.
		if !p.Zombie {
			if err := r.createThreads(t, p); err != nil {
				return err
			}
		}
	}
	if err := r.orphanedGroups(); err != nil {
		return err
	}
	for _, p := range tree.Processes {
		if p.PGID == p.PID || r.targets[p.PGID] == nil {
			continue
		}
		if _, err := r.targets[p.PID].Call(unix.SYS_SETPGID, 0, uintptr(p.PGID)); err != nil {
			return fmt.Errorf("process %d join process group %d: %w", p.PID, p.PGID, err)
		}
	}
	for _, p := range tree.Processes {
		if p.Ctty >= 0 && p.Tpgid > 0 {
			t := r.targets[p.PID]
			pg, err := t.Put(512, inject.Uint64s(uint64(p.Tpgid)))
			if err != nil {
				return err
			}
			if err := r.terminalIoctl(t, p.Ctty, unix.TIOCSPGRP, pg); err != nil {
				return fmt.Errorf("process %d foreground group %d: %w", p.PID, p.Tpgid, err)
			}
		}
	}
	// Stopped processes stop again, before their queued signals are back.
	for _, p := range tree.Processes {
		if p.Zombie || p.Attrs == nil || p.Attrs.StopSignal == 0 {
			continue
		}
		var ths []*inject.Thread
		for _, th := range p.Threads {
			ths = append(ths, r.threads[th.TID])
		}
		if err := task.Stop(r.targets[p.PID], ths, p.Attrs.StopSignal); err != nil {
			return fmt.Errorf("process %d: %w", p.PID, err)
		}
	}
	// Zombies die last: a zombie may still lead a group others joined.
	for _, p := range tree.Processes {
		if p.Zombie {
			if err := task.Exit(r.targets[p.PID], p.WaitStatus, p.Comm); err != nil {
				return fmt.Errorf("zombie %d: %w", p.PID, err)
			}
		}
	}
	return nil
}

// stopNotices takes back from process p what the restore of its zombie
// and stopped children told it (SIGCHLDs, stops to wait for) that it had
// not been told, or had dealt with, at checkpoint.
func (r *restorer) stopNotices(t *inject.Target, p *image.Process) error {
	var waited []int
	told := false
	for _, q := range r.im.Tree.Processes {
		if q.PPID != p.PID || q.PID == r.im.Tree.Root {
			continue
		}
		stopped := q.Attrs != nil && q.Attrs.StopSignal != 0
		told = told || q.Zombie || stopped
		if stopped && q.Attrs.StopWaited {
			waited = append(waited, q.PID)
		}
	}
	if !told {
		return nil
	}
	if err := task.RestoreStopNotices(t, waited); err != nil {
		return fmt.Errorf("process %d: %w", p.PID, err)
	}
	return nil
}

// orphanedGroups recreates process groups whose leader had exited and been
// reaped: a short-lived helper takes the group's ID as its PID, creates the
// group, lets the members join, and exits; the member it was forked from
// reaps it. Zombies are members like the others (they have not exited yet:
// zombies die last), and a group may hold nothing but zombies.
func (r *restorer) orphanedGroups() error {
	tree := r.im.Tree
	root := tree.Processes[0]
	done := map[int]bool{}
	for _, p := range tree.Processes {
		g := p.PGID
		if g == p.PID || r.targets[g] != nil || g == root.PGID || done[g] {
			continue
		}
		done[g] = true
		m := r.targets[p.PID]
		if err := task.Clone(m, g, int(unix.SIGCHLD)); err != nil {
			return fmt.Errorf("process group %d: %w", g, err)
		}
		h, err := r.attach(g, m)
		if err != nil {
			return err
		}
		if _, err := h.Call(unix.SYS_SETPGID, 0, 0); err != nil {
			return fmt.Errorf("process group %d: %w", g, err)
		}
		for _, q := range tree.Processes {
			if q.PGID == g {
				if _, err := r.targets[q.PID].Call(unix.SYS_SETPGID, 0, uintptr(g)); err != nil {
					return fmt.Errorf("process %d join process group %d: %w", q.PID, g, err)
				}
			}
		}
		if err := task.Exit(h, 0, ""); err != nil {
			return fmt.Errorf("process group %d helper: %w", g, err)
		}
		delete(r.threads, g)
		if _, err := m.Call(unix.SYS_WAIT4, uintptr(g), 0, unix.WALL, 0); err != nil {
			return fmt.Errorf("reap process group %d helper: %w", g, err)
		}
	}
	return nil
}

// attach prepares injected calls in a freshly cloned task, which shares the
// region layout of the task it was cloned from.
func (r *restorer) attach(tid int, from *inject.Target) (*inject.Target, error) {
	th, err := inject.Attach(tid, from.Leader.Spot)
	if err != nil {
		return nil, err
	}
	th.Stack = from.Leader.Stack
	// No signal may be delivered while the task is rebuilt.
	if err := ptrace.SetSigmask(tid, ^uint64(0)); err != nil {
		return nil, err
	}
	r.threads[tid] = th
	t := *from
	t.PID, t.Leader = tid, th
	return &t, nil
}

func (r *restorer) createThreads(t *inject.Target, p *image.Process) error {
	for _, th := range p.Threads[1:] {
		if err := task.CloneThread(t, th.TID); err != nil {
			return fmt.Errorf("process %d thread %d: %w", p.PID, th.TID, err)
		}
		if _, err := r.attach(th.TID, t); err != nil {
			return err
		}
	}
	return nil
}

// finishProcess sets credentials and seccomp filters, closes the channel,
// unmaps the restore region and loads every thread's registers. The leader
// goes last: its final call removes the code all calls ran from.
func (r *restorer) finishProcess(p *image.Process) error {
	t := r.targets[p.PID]
	// A thread's seccomp filters must not refuse the restore's own calls,
	// nor kill the process for one. They are suspended until the thread is
	// detached (PTRACE_O_SUSPEND_SECCOMP), and go on as late as possible:
	// after the thread's credentials, unless those could not install them.
	// Should the kernel refuse the suspension, the filters then act on few
	// calls: the leader's unmapping of the restore region (and the
	// credentials of a thread whose filters had to go on first).
	suspended := true
	for _, th := range p.Threads {
		if len(th.Seccomp) > 0 && task.SuspendSeccomp(th.TID, traceOptions) != nil {
			suspended = false
		}
	}
	// Filters that every thread has alike are one filter they share: the
	// main thread installs them for all (TSYNC), first, while every thread
	// may still install filters; only suspended filters can come that
	// early (they would act on the credentials' calls).
	shared := 0
	if suspended {
		shared = task.SharedSeccomp(p.Threads)
	}
	if shared > 0 {
		if err := task.RestoreSeccomp(t, t.Leader, p.Threads[0], 0, shared, true); err != nil {
			return fmt.Errorf("process %d: %w", p.PID, err)
		}
	}
	for _, th := range p.Threads {
		if task.SeccompBeforeCreds(th, shared) {
			if err := task.RestoreSeccomp(t, r.threads[th.TID], th, shared, len(th.Seccomp), false); err != nil {
				return fmt.Errorf("process %d: %w", p.PID, err)
			}
		}
		if err := task.RestoreCreds(t, r.threads[th.TID], &th.Creds); err != nil {
			return fmt.Errorf("process %d: %w", p.PID, err)
		}
	}
	// Changing uids resets the dumpable flag and the parent-death signal;
	// put them back afterwards.
	if _, err := t.Call(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, uintptr(p.Dumpable)); err != nil {
		return fmt.Errorf("process %d dumpable: %w", p.PID, err)
	}
	for _, th := range p.Threads {
		if err := task.RestoreThreadLate(r.threads[th.TID], th); err != nil {
			return fmt.Errorf("process %d: %w", p.PID, err)
		}
	}
	// The channel is closed once per descriptor table.
	if p.FDTable == 0 {
		if _, err := t.Call(unix.SYS_CLOSE, uintptr(t.Sock)); err != nil {
			return fmt.Errorf("process %d close channel: %w", p.PID, err)
		}
	}
	for _, th := range p.Threads {
		if !task.SeccompBeforeCreds(th, shared) {
			if err := task.RestoreSeccomp(t, r.threads[th.TID], th, shared, len(th.Seccomp), false); err != nil {
				return fmt.Errorf("process %d: %w", p.PID, err)
			}
		}
	}
	for _, th := range p.Threads[1:] {
		if err := task.RestoreScheduling(th); err != nil {
			return fmt.Errorf("process %d: %w", p.PID, err)
		}
		if err := task.Finish(th.TID, th, task.Resumable(th)); err != nil {
			return fmt.Errorf("process %d: %w", p.PID, err)
		}
	}
	if _, err := t.Leader.SyscallToExit(unix.SYS_MUNMAP, t.Region[0], t.Region[1]-t.Region[0]); err != nil {
		if !suspended && len(p.Threads[0].Seccomp) > 0 {
			return fmt.Errorf("process %d unmap restore region, a call its seccomp filters may refuse: %w", p.PID, err)
		}
		return fmt.Errorf("process %d unmap restore region: %w", p.PID, err)
	}
	lead := p.Threads[0]
	if err := task.RestoreScheduling(lead); err != nil {
		return fmt.Errorf("process %d: %w", p.PID, err)
	}
	if err := task.Finish(lead.TID, lead, task.Resumable(lead)); err != nil {
		return fmt.Errorf("process %d: %w", p.PID, err)
	}
	return nil
}

// releaseSeed ends the seed. Its child, the restored root, is reparented
// to the restorer and, when the restorer exits, further up.
func (r *restorer) releaseSeed() {
	if r.seedGone {
		return
	}
	r.seedGone = true
	unix.Kill(r.seed.PID, unix.SIGKILL)
	var ws unix.WaitStatus
	unix.Wait4(r.seed.PID, &ws, unix.WALL, nil)
}

// reparentRoot gives a root that has a parent-death signal its final
// parent before the signal is set: a reparenting sends it. The restorer
// stops being a child subreaper and ends the seed, so that the root goes
// straight to the restorer's nearest subreaper (or init), where it stays
// when the restorer exits, as it was with its parent outside the tree.
func (r *restorer) reparentRoot() error {
	root := r.im.Tree.Processes[0]
	need := false
	for _, th := range root.Threads {
		need = need || th.Attrs != nil && th.Attrs.PdeathSig != 0
	}
	if !need {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("stop being a child subreaper: %w", err)
	}
	r.releaseSeed()
	return nil
}

// abandon kills everything the restore created and reaps it.
func (r *restorer) abandon() {
	for pid := range r.targets {
		unix.Kill(pid, unix.SIGKILL)
	}
	r.releaseSeed()
	deadline := time.Now().Add(5 * time.Second)
	for len(r.targets) > 0 && time.Now().Before(deadline) {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WALL|unix.WNOHANG, nil)
		if err == unix.ECHILD {
			break
		}
		if pid > 0 && (ws.Exited() || ws.Signaled()) {
			delete(r.targets, pid)
			continue
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkIDsFree makes sure that every PID and TID the restore needs is
// free, so that a restore onto a taken PID fails before anything is
// created. A PID held by a zombie is given time to be reaped.
func checkIDsFree(ids []ID, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for _, id := range ids {
		for {
			st, err := proc.ReadString(id.ID, "stat")
			if errors.Is(err, os.ErrNotExist) {
				break
			}
			zombie := err == nil && zombieStat(st)
			if zombie && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			comm, _ := proc.ReadString(id.ID, "comm")
			state := "running"
			if zombie {
				state = "a zombie that its parent has not reaped"
			}
			return fmt.Errorf("cannot restore %s %d: pid %d is in use by %q (%s)", id.What, id.ID, id.ID, comm, state)
		}
	}
	return nil
}

func zombieStat(stat string) bool {
	for i := len(stat) - 1; i > 0; i-- {
		if stat[i] == ')' && i+2 < len(stat) {
			return stat[i+2] == 'Z' || stat[i+2] == 'X'
		}
	}
	return false
}

// describeProxies says how many vDSO entry points were redirected: in one
// line when every process got the same proxy, as a tree restored on one
// kernel does, else one line per process.
func describeProxies(ps []mem.ProxiedVDSO) []string {
	if len(ps) == 0 {
		return nil
	}
	same := true
	for _, p := range ps {
		same = same && p.Entries == ps[0].Entries
	}
	if same {
		w := fmt.Sprintf("vDSO proxy: %d entry points redirected", ps[0].Entries)
		if len(ps) > 1 {
			w += fmt.Sprintf(" in each of %d processes", len(ps))
		}
		return []string{w}
	}
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("vDSO proxy: %d entry points redirected in process %d", p.Entries, p.PID))
	}
	return out
}

// Describe is a one-line summary of a result.
func (r *Result) Describe() string {
	return "restored " + strconv.Itoa(r.Processes) + " processes, " + strconv.Itoa(r.Threads) + " threads, root pid " + strconv.Itoa(r.Root)
}

// terminalIoctl runs ioctl(req, arg) in t on a temporary descriptor of the
// slave of restored pty index.
func (r *restorer) terminalIoctl(t *inject.Target, index int, req uint, arg uintptr) error {
	s, err := r.opener.PtySlave(index, unix.O_RDWR)
	if err != nil {
		return err
	}
	fd, err := t.SendFile(s)
	s.Close()
	if err != nil {
		return err
	}
	defer t.Call(unix.SYS_CLOSE, uintptr(fd))
	_, err = t.Call(unix.SYS_IOCTL, uintptr(fd), uintptr(req), arg)
	return err
}

// newJournalStream gives a tree whose output went to journald's stream
// socket, when the caller hands over no stream of its own for it (the
// restore daemon hands over the unit's), a new stream announced under the
// name of the process that wrote to it, and says so. It is added to
// external, and returned for the caller to close after the restore.
func newJournalStream(tree *image.Tree, external map[string]*os.File) (*os.File, string) {
	if external[unixsock.JournalStream] != nil {
		return nil, ""
	}
	byFile := map[int]bool{}
	for _, f := range tree.Files {
		if s := f.Socket(); s != nil && s.Unix != nil && s.Unix.External != nil && s.Unix.External.Key == unixsock.JournalStream {
			byFile[f.ID] = true
		}
	}
	if len(byFile) == 0 {
		return nil, ""
	}
	comm := "seamless-restored"
find:
	for _, p := range tree.Processes {
		for _, d := range p.FDs {
			if byFile[d.File] && p.Comm != "" {
				comm = p.Comm
				break find
			}
		}
	}
	f, err := unixsock.DialJournal(comm)
	if err != nil {
		return nil, fmt.Sprintf("the tree wrote to %s, and no new stream could be opened (%v): its output comes back to a closed stream", unixsock.JournalStream, err)
	}
	external[unixsock.JournalStream] = f
	return f, fmt.Sprintf("the tree's output to %s goes to a new journal stream, as %s", unixsock.JournalStream, comm)
}
