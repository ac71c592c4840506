// Package dump checkpoints a process tree into an image: it stops every
// thread, records processes, threads, memory and files, verifies the image,
// and then kills the tree or lets it run on.
package dump

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/bytesize"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/crash"
	"github.com/seamless-linux/seamless/internal/fileref"
	"github.com/seamless-linux/seamless/internal/files"
	"github.com/seamless-linux/seamless/internal/freezer"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/mem"
	"github.com/seamless-linux/seamless/internal/proc"
	"github.com/seamless-linux/seamless/internal/ptrace"
	"github.com/seamless-linux/seamless/internal/sysvipc"
	"github.com/seamless-linux/seamless/internal/task"
	"github.com/seamless-linux/seamless/internal/timens"
)

// Options control a checkpoint.
type Options struct {
	// PID is the root of the tree to checkpoint.
	PID int
	// Dir is the image directory to create.
	Dir string
	// LeaveRunning lets the tree continue after the checkpoint instead of
	// killing it.
	LeaveRunning bool
	// KillLater neither kills the tree nor lets it go on: it stays stopped
	// under ptrace, its connections in repair mode, until the caller calls
	// Result.Commit (kill it) or Result.Abort (let it go), once every tree
	// it checkpoints together is safe. The caller's goroutine must stay on
	// the same OS thread until then.
	KillLater bool
	// Cgroup, if set, is a cgroup v2 directory frozen while the tree is
	// seized, so that all of its processes stop at one instant.
	Cgroup string
	// MoveMemory moves the tree's private memory into the image instead
	// of copying it (mem.Mover): each part is dropped from the stopped
	// tree once it is written, so that the tree and its image never hold
	// it twice. Letting the tree go (LeaveRunning, a failure, Abort)
	// writes it all back first, and kills the tree rather than let it go
	// if some of it could not be put back.
	MoveMemory bool
	// Reserve, if set, is called before each part of memory and each
	// write of another image file, with its size, for the store to make
	// room.
	Reserve func(n int64) error
	// Release, if set with MoveMemory, is called once a moved part is
	// back in the tree (a tree let go), with the image file and the ranges
	// ({offset, length}) of it that part was, for the store to give that
	// memory back.
	Release func(path string, ranges [][2]int64) error
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Result summarises a checkpoint.
type Result struct {
	Processes, Threads int
	Bytes              int64
	// Moved is the memory dropped from the tree as it was written (see
	// Options.MoveMemory).
	Moved  int64
	Frozen time.Duration // from the first stop to the image being complete
	// Phases are the checkpoint's steps with their durations, in order:
	// stop (freeze and seize), dump (the tree's state and memory into the
	// image), commit (the manifest, synced) and check (the image read back).
	Phases []contract.Phase
	// PIDs are the processes of the tree.
	PIDs []int
	// Zombies are the processes of the killed tree that are zombies until
	// their parent, outside the tree, reaps them (by PID, with the
	// parent): every other PID and TID of the tree is free once the tree
	// is killed.
	Zombies map[int]int
	// With KillLater, exactly one of Abort (the tree is let go: its
	// connections leave repair mode, the network lock goes, its threads are
	// detached) and Commit (it is killed) must be called.
	Abort, Commit func()
}

// Checkpoint dumps the tree rooted at opts.PID into opts.Dir. The calling
// goroutine must be locked to its OS thread. On failure the tree is left
// running and the partial image removed.
func Checkpoint(opts Options) (res *Result, err error) {
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	if opts.PID <= 1 {
		return nil, fmt.Errorf("refusing to checkpoint pid %d", opts.PID)
	}
	if opts.PID == os.Getpid() {
		return nil, errors.New("refusing to checkpoint seamless itself")
	}
	w, err := image.Create(opts.Dir)
	if err != nil {
		return nil, err
	}
	w.Reserve = opts.Reserve
	// On failure only what the checkpoint created goes: never a directory
	// that was there before, nor anything else in it.
	defer func() {
		if err != nil {
			w.Discard()
		} else {
			w.Close()
		}
	}()
	start := time.Now()
	timing := contract.NewTimer()
	if opts.Cgroup != "" {
		// On a timeout, Freeze has thawed the cgroup again.
		if err := freezer.Freeze(opts.Cgroup); err != nil {
			return nil, err
		}
	}
	procs, tids, err := seizeTree(opts.PID)
	if opts.Cgroup != "" {
		// Seized threads stay in their ptrace stop once the cgroup thaws.
		if ferr := freezer.Thaw(opts.Cgroup); ferr != nil {
			if err == nil {
				err = ferr
			} else {
				err = fmt.Errorf("%w (and the cgroup did not thaw: %v)", err, ferr)
			}
		}
	}
	release := func() { releaseAll(procs, tids) }
	if err != nil {
		release()
		return nil, err
	}
	fmt.Fprintf(logw, "stopped %s, %s\n", bytesize.Count(len(procs), "process", "processes"), bytesize.Count(len(tids), "thread", "threads"))
	timing.Mark("stop")
	// A bug met while the tree is stopped must still let it go as it was.
	var tree *image.Tree
	var fd *files.Dumper
	var mv *mem.Mover
	if opts.MoveMemory {
		mv = &mem.Mover{Reserve: opts.Reserve, Release: opts.Release}
	}
	err = crash.Call(func() error {
		var err error
		tree, err = dumpTree(w, procs, &fd, mv)
		return err
	})
	// abort lets the tree run on as it was: its memory back in place, its
	// connections out of repair mode (and the network lock gone) before
	// its threads run again.
	abort := func() {
		var lost []int
		if mv != nil {
			var perr error
			lost, perr = mv.PutBack()
			if perr != nil {
				fmt.Fprintf(logw, "seamless: %v\n", perr)
			}
		}
		if fd != nil {
			fd.Close(false)
		}
		if len(lost) > 0 {
			// Part of their memory is gone: they must not run again.
			fmt.Fprintf(logw, "seamless: killing the tree of pid %d: the memory of %v could not be put back\n", opts.PID, lost)
			kill(procs, tids, logw)
			return
		}
		release()
	}
	if err != nil {
		abort()
		return nil, err
	}
	if err := w.WriteJSON(image.TreeName, tree); err != nil {
		abort()
		return nil, err
	}
	timing.Mark("dump")
	if err := w.Commit(kernelRelease()); err != nil {
		abort()
		return nil, err
	}
	timing.Mark("commit")
	// Verify what was written before anything irreversible happens.
	im, err := image.OpenUnverified(opts.Dir)
	if err != nil {
		abort()
		return nil, fmt.Errorf("verify image: %w", err)
	}
	im.Close()
	timing.Mark("check")
	res = &Result{Processes: len(procs), Threads: len(tids), Bytes: im.Size(), Frozen: time.Since(start), Phases: timing.Phases()}
	if mv != nil {
		res.Moved = mv.Moved
	}
	for _, p := range procs {
		res.PIDs = append(res.PIDs, p.pid)
	}
	switch {
	case opts.LeaveRunning:
		abort()
		return res, nil
	case opts.KillLater:
		// The tree stays stopped under ptrace until the caller decides.
		res.Abort = abort
		res.Commit = func() {
			res.Zombies = kill(procs, tids, logw)
			fd.Close(true)
		}
		return res, nil
	}
	// The tree must not run on after its checkpoint: it would change files
	// and state the image no longer reflects. Connections stay in repair
	// mode, so that their sockets close without a word to the peers.
	res.Zombies = kill(procs, tids, logw)
	fd.Close(true)
	return res, nil
}

// releaseAll detaches every thread, children before parents: a parent that
// runs again must not find its children still held, and a child that was
// stopped (job control) is back in its stop before its parent runs.
func releaseAll(procs []*seized, tids []int) {
	stopped := map[int]*seized{}
	for _, p := range procs {
		if p.stopSig != 0 {
			for _, tid := range p.tids {
				stopped[tid] = p
			}
		}
	}
	var pending *seized
	for i := len(tids) - 1; i >= 0; i-- {
		if pending != nil && stopped[tids[i]] != pending {
			task.AwaitStopped(pending.pid, pending.tids)
			pending = nil
		}
		ptrace.Detach(tids[i], 0)
		if p := stopped[tids[i]]; p != nil {
			pending = p
		}
	}
	if pending != nil {
		task.AwaitStopped(pending.pid, pending.tids)
	}
}

// killDeadline bounds the wait for a killed tree's threads to be gone: a
// thread in an uninterruptible wait (a hung NFS server, say) dies only
// once that wait ends.
const killDeadline = 60 * time.Second

// kill SIGKILLs a stopped tree and waits until every PID and TID of it is
// free again, or held by a zombie that only its parent outside the tree
// can free by reaping it: the root (whose parent started it), and
// processes whose parents died with the tree (reparented to a subreaper,
// or init). A restore that follows at once then finds every ID it needs
// free, or held by such a zombie, which it waits for. It returns those
// zombies with their parents.
//
// The threads are this process's tracees: reaping one here (wait4)
// releases it, and its TID, before wait4 returns. A main thread is only
// reported once its other threads are gone, so those are reaped first.
func kill(procs []*seized, tids []int, logw io.Writer) map[int]int {
	leader := map[int]bool{}
	for _, p := range procs {
		if p.zombie == nil {
			unix.Kill(p.pid, unix.SIGKILL)
			leader[p.pid] = true
		}
	}
	end := time.Now().Add(killDeadline)
	for _, leaders := range []bool{false, true} {
		for _, tid := range tids {
			if leader[tid] == leaders {
				reapTracee(tid, end)
			}
		}
	}
	inTree := map[int]bool{}
	for _, p := range procs {
		inTree[p.pid] = true
	}
	held := map[int]int{}
	for _, p := range procs {
		ids := p.tids
		if p.zombie != nil {
			ids = []int{p.pid}
		}
		for _, id := range ids {
			if parent, waits := awaitFree(id, inTree, end); waits {
				held[id] = parent
			} else if parent < 0 {
				fmt.Fprintf(logw, "pid %d of the killed tree is still in use after %v\n", id, killDeadline)
			}
		}
	}
	return held
}

// reapTracee waits until the killed tracee tid has exited and reaps it.
func reapTracee(tid int, end time.Time) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
		if err != nil {
			return // not our tracee any more: it is gone
		}
		if got == tid && (ws.Exited() || ws.Signaled()) {
			return
		}
		if time.Now().After(end) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// awaitFree waits until id is no longer in use, or is a zombie process
// whose parent is outside the tree (then it returns that parent and true).
// It returns -1, false if id is still in use at the deadline.
func awaitFree(id int, inTree map[int]bool, end time.Time) (int, bool) {
	for {
		st, err := proc.ReadStat(id)
		if err != nil {
			return 0, false // gone
		}
		if st.State == 'Z' && !inTree[st.PPID] {
			return st.PPID, true
		}
		if time.Now().After(end) {
			return -1, false
		}
		time.Sleep(time.Millisecond)
	}
}

// dumpTree describes the stopped tree into w. The files.Dumper it makes is
// stored in *fdp at once: whatever happens, the caller closes it (it holds
// the tree's connections in repair mode).
func dumpTree(w *image.Writer, procs []*seized, fdp **files.Dumper, mv *mem.Mover) (*image.Tree, error) {
	inTree := map[int]bool{}
	var pids []int
	for _, p := range procs {
		inTree[p.pid] = true
		pids = append(pids, p.pid)
	}
	refs := fileref.NewDumper(w)
	md := mem.NewDumper(w, refs)
	leaders := map[int]*image.Thread{}
	if mv != nil {
		mv.Drop = func(pid int, spans [][2]uint64) error {
			return task.Drop(pid, leaders[pid], spans)
		}
		md.Move = mv
	}
	fd := files.NewDumper(refs, pids)
	*fdp = fd
	tables, fsTables := files.NewTables(), files.NewFSTables()
	tree := &image.Tree{Root: procs[0].pid}
	// Read while the tree is stopped: the clocks it saw last.
	clocks, err := timens.Capture(pids)
	if err != nil {
		return nil, err
	}
	tree.Clocks = clocks
	// Stopped children whose parent has waited for the stop, by PID.
	stopWaited := map[int]bool{}
	for _, s := range procs {
		if s.zombie != nil {
			tree.Processes = append(tree.Processes, &image.Process{PID: s.pid, PPID: s.zombie.PPID, Ctty: -1,
				PGID: s.zombie.PGID, SID: s.zombie.SID, ExitSignal: s.zombie.ExitSignal,
				Zombie: true, WaitStatus: s.zombie.ExitCode, Comm: zombieComm(s.pid)})
			continue
		}
		p, err := task.Dump(s.pid, s.tids, refs)
		if err != nil {
			return nil, err
		}
		if p.FDTable, err = tables.Add(s.pid, p.PPID); err != nil {
			return nil, err
		}
		if p.FSTable, err = fsTables.Add(s.pid, p.PPID); err != nil {
			return nil, err
		}
		if inTree[p.PPID] {
			tid, err := proc.ParentThread(p.PPID, p.PID)
			if err != nil {
				return nil, err
			}
			if tid != p.PPID {
				p.ParentTID = tid
			}
		}
		p.Attrs.StopSignal, p.Attrs.StopWaited = s.stopSig, stopWaited[s.pid]
		if err := stopsWaited(p, procs, stopWaited); err != nil {
			return nil, err
		}
		if p.FDs, err = fd.Dump(s.pid); err != nil {
			return nil, err
		}
		if err := fd.DumpFS(p); err != nil {
			return nil, err
		}
		if p.VDSO, err = mem.VDSOSymbols(s.pid); err != nil {
			return nil, fmt.Errorf("process %d: %w", s.pid, err)
		}
		p.Pages = fmt.Sprintf("pages-%d.img", s.pid)
		leaders[s.pid] = p.Threads[0]
		parent := 0
		if inTree[p.PPID] {
			parent = p.PPID
		}
		if p.Mappings, err = md.Dump(s.pid, p.Pages, parent); err != nil {
			return nil, err
		}
		tree.Processes = append(tree.Processes, p)
	}
	if err := fd.Finish(); err != nil {
		return nil, err
	}
	tree.Ptys = fd.Ptys
	sv, err := sysvipc.Dump(w, func(pid int) bool { return inTree[pid] }, md.SysV)
	if err != nil {
		return nil, err
	}
	tree.SysV = sv
	if err := controllingTerminals(tree); err != nil {
		return nil, err
	}
	tree.Files = fd.Files
	tree.SharedMemory = md.Order
	return tree, nil
}

// stopsWaited asks process p which of its stopped children it has waited
// for, into waited: their restore must leave it nothing to wait for.
func stopsWaited(p *image.Process, procs []*seized, waited map[int]bool) error {
	var kids []int
	for _, s := range procs {
		if s.stopSig != 0 && s.zombie == nil {
			if st, err := proc.ReadStat(s.pid); err == nil && st.PPID == p.PID {
				kids = append(kids, s.pid)
			}
		}
	}
	if len(kids) == 0 {
		return nil
	}
	w, err := task.StopsWaited(p.PID, p.Threads[0], kids)
	for pid, v := range w {
		waited[pid] = v
	}
	return err
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Version[:])
}

func zombieComm(pid int) string {
	comm, _ := proc.ReadString(pid, "comm")
	return comm
}

// controllingTerminals records, for each session leader whose controlling
// terminal is a pty of the tree, that pty and its foreground group.
func controllingTerminals(tree *image.Tree) error {
	ours := map[int]bool{}
	for _, p := range tree.Ptys {
		ours[p.Index] = true
	}
	for _, p := range tree.Processes {
		p.Ctty = -1
		if p.Zombie || p.SID != p.PID {
			continue
		}
		st, err := proc.ReadStat(p.PID)
		if err != nil {
			return err
		}
		if n := files.PtySlaveIndex(uint64(st.TtyNr)); n >= 0 && ours[n] {
			p.Ctty, p.Tpgid = n, st.Tpgid
		}
	}
	return nil
}
