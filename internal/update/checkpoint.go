package update

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/bytesize"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/dump"
	"github.com/seamless-linux/seamless/internal/freezer"
	"github.com/seamless-linux/seamless/internal/proc"
	"github.com/seamless-linux/seamless/internal/units"
)

// ShutdownCheckpoint runs as seamless-checkpoint.service's ExecStop, before
// the carried units are stopped. Without an intent it does nothing. With
// one, it freezes the carried units together, checkpoints each process
// tree, hands the image to the new kernel (appended to its initrd, or on
// disk) with kexec_file_load, and only then kills the frozen processes: any
// failure before that thaws them, and shutdown stops them as a reboot
// would; the plain kernel that `seamless update` loaded stays loaded.
// When no unit is carried, nothing is written nor loaded: the update is a
// plain kexec. The calling goroutine must be locked to its OS thread.
func ShutdownCheckpoint(log io.Writer) error {
	in, err := contract.ReadIntent()
	if err != nil {
		return err
	}
	if in == nil {
		fmt.Fprintln(log, "no update pending: nothing to checkpoint")
		return nil
	}
	if in.Armed && !kexecQueued(log) {
		// A poweroff, a firmware reboot or a stop by hand: the services
		// stop as they would without seamless.
		fmt.Fprintln(log, "seamless: an update is armed, but the system is not going down for a kexec: nothing to checkpoint")
		return nil
	}
	os.Remove(contract.IntentPath()) // consumed, whatever happens next
	st := &contract.Status{State: contract.UpdateFailed, From: in.From, To: in.Kernel.Release, Store: in.Store}
	for _, u := range sortedKeys(in.Stopped) {
		st.Units = append(st.Units, contract.UnitOutcome{Unit: u, Outcome: contract.Stopped, Reason: in.Stopped[u]})
	}
	err = handOver(in, st, log)
	if err != nil {
		st.Error = err.Error()
		fmt.Fprintln(log, "seamless: update without carrying services:", err)
	}
	if serr := contract.WriteStatus(st); serr != nil && err == nil {
		err = serr
	}
	return err
}

// errNoUnit says that no unit could be carried.
var errNoUnit = errors.New("no unit could be carried")

// handOver checkpoints the intent's units and hands their image over. Every
// way out of it before the hand-over (an error, a unit that fails, a panic)
// lets go of what it stopped and thaws every cgroup it froze; only the
// units handed over are killed.
func handOver(in *contract.Intent, st *contract.Status, log io.Writer) error {
	phase := func(name string, start time.Time) {
		st.Phases = append(st.Phases, contract.Phase{Name: name, Ms: time.Since(start).Milliseconds()})
	}
	if len(in.Units) == 0 {
		st.State, st.Store = contract.UpdatePlainKexec, ""
		fmt.Fprintln(log, "seamless: no unit to carry: a plain kexec")
		return nil
	}
	dirs := map[string]string{}
	for _, u := range in.Units {
		d, err := units.CgroupDir(in.Cgroups[u])
		if err != nil {
			return err
		}
		dirs[u] = d
	}
	h := &handover{dirs: dirs, touched: map[string]bool{}, carried: map[string]bool{}, log: log}

	sample(st, "start")
	defer watchLowest(st)()
	// Nothing is frozen yet: a failure here stops every unit, as a reboot
	// would.
	stopAll := func(reason string) {
		for _, u := range in.Units {
			st.Units = append(st.Units, contract.UnitOutcome{Unit: u, Outcome: contract.Stopped, Reason: reason})
		}
	}
	sg, err := newStaging(in, log)
	if err != nil {
		stopAll("the image could not be written")
		return err
	}
	st.Store = sg.store // the kmod store may have given way to another
	defer sg.close(in, log)
	// Before the staging closes: memory moved into the image is put back
	// from it.
	defer h.undo()
	var reserve func(int64) error
	var giveBack func(string, [][2]int64) error
	if sg.store == "kmod" {
		reserve, giveBack = sg.reserve, sg.giveBack
	}
	// An image on disk is named on the command line before it exists: the
	// kernel is loaded while the units still run, and the pause holds no
	// kexec_file_load (under emulation, hashing the kernel's segments alone
	// takes seconds).
	if sg.store == "disk" {
		t := time.Now()
		if err := sg.preload(in); err != nil {
			stopAll("the new kernel could not be loaded")
			return err
		}
		phase("kexec load", t)
	}

	// The units run until they have accepted the connections waiting in
	// their listeners' queues, whose door is closed first; the checkpoints'
	// own locks hold the ports from then on.
	t := time.Now()
	var pids []int
	for _, u := range in.Units {
		p, _ := units.CgroupPIDs(in.Cgroups[u])
		pids = append(pids, p...)
	}
	door, err := dump.CloseDoor(pids, log)
	if err != nil {
		return err
	}
	defer door.Open()
	phase("drain", t)

	t = time.Now()
	for _, u := range in.Units {
		h.touched[u] = true
		if err := freezer.Freeze(dirs[u]); err != nil {
			h.thaw(u)
			st.Units = append(st.Units, contract.UnitOutcome{Unit: u, Outcome: contract.Stopped, Reason: err.Error()})
			fmt.Fprintf(log, "seamless: %s will be stopped, not carried: %v\n", u, err)
			continue
		}
		h.carried[u] = true
	}
	phase("freeze", t)

	t = time.Now()
	for _, u := range in.Units {
		if !h.carried[u] {
			continue
		}
		out := contract.UnitOutcome{Unit: u, Outcome: contract.Carried}
		start := time.Now()
		unitDir := contract.UnitDir(sg.dir, u)
		res, err := dumpUnit(in.Cgroups[u], dirs[u], unitDir, reserve, giveBack, &out)
		if err == nil {
			err = contract.WriteStart(unitDir, in.Start[u])
		}
		out.DumpMs = time.Since(start).Milliseconds()
		if err != nil {
			// This unit runs on, to be stopped gracefully by the shutdown;
			// the others go on.
			for _, r := range res {
				r.Abort()
			}
			h.thaw(u)
			delete(h.carried, u)
			os.RemoveAll(unitDir)
			out.Outcome, out.Reason = contract.Stopped, err.Error()
			fmt.Fprintf(log, "seamless: %s will be stopped, not carried: %v\n", u, err)
		} else {
			h.dumped = append(h.dumped, res...)
			st.Bytes += out.Bytes
		}
		st.Units = append(st.Units, out)
	}
	phase("checkpoint", t)
	sample(st, "image written")
	if len(h.carried) == 0 {
		// Nothing to hand over: no image, no seamless.image=; the kernel
		// that `seamless update` loaded without one boots as a plain kexec.
		var why []string
		for _, o := range st.Units {
			why = append(why, o.Unit+": "+o.Reason)
		}
		return fmt.Errorf("%w (%s)", errNoUnit, strings.Join(why, "; "))
	}

	if err := sg.load(in, st, phase); err != nil {
		h.failAll(st, "the image could not be handed to the new kernel")
		return err
	}
	sample(st, "kernel loaded")
	// The point of no return: the stopped processes must never run again
	// on this kernel, or they would change what the image describes.
	t = time.Now()
	if err := h.commit(); err != nil {
		// Too late to go back: the report says what may still run.
		st.Error = fmt.Sprintf("the image was handed over, but not every carried process was killed: %v", err)
		fmt.Fprintf(log, "seamless: %s\n", st.Error)
	}
	phase("kill", t)
	st.State = contract.UpdateHandedOver
	fmt.Fprintf(log, "seamless: %d units carried in a %s image (%s) to %s\n", len(h.carried), bytesize.Format(st.Bytes), st.Store, in.Kernel.Release)
	return nil
}

// handover is what a checkpoint at shutdown has stopped so far.
type handover struct {
	dirs    map[string]string // cgroup directories by unit
	touched map[string]bool   // units whose cgroups it froze, or tried to
	carried map[string]bool   // units frozen and, after the checkpoint, dumped
	dumped  []*dump.Result
	done    bool
	log     io.Writer
}

func (h *handover) thaw(u string) {
	if err := freezer.Thaw(h.dirs[u]); err != nil {
		fmt.Fprintf(h.log, "seamless: %s: %v\n", u, err)
	}
}

// failAll marks every unit still carried as stopped, for reason.
func (h *handover) failAll(st *contract.Status, reason string) {
	for i := range st.Units {
		if st.Units[i].Outcome == contract.Carried {
			st.Units[i].Outcome, st.Units[i].Reason = contract.Stopped, reason
		}
	}
}

// commit kills the carried units: the image is with the new kernel. It
// returns what it could not kill; the hand-over stands (the new kernel has
// the image), but those processes must be named.
func (h *handover) commit() error {
	h.done = true
	for _, r := range h.dumped {
		r.Commit()
	}
	var errs []error
	for u := range h.carried {
		if err := killCgroup(h.dirs[u]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
		}
	}
	// A unit frozen but not carried (none today) must not stay frozen.
	for u := range h.touched {
		if !h.carried[u] {
			h.thaw(u)
		}
	}
	return errors.Join(errs...)
}

// killCgroup kills every process of the cgroup directory dir and below:
// with cgroup.kill, or, if that cannot be written, one by one (SIGKILL
// reaches a frozen process too).
func killCgroup(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "cgroup.kill"), os.O_WRONLY, 0)
	if err == nil {
		_, err = f.Write([]byte("1"))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		return nil
	}
	// A cgroup is removed only once it is empty: gone, it has nothing left
	// to kill (systemd removes a carried unit's as soon as its killed
	// processes are reaped).
	if _, serr := os.Lstat(dir); errors.Is(serr, fs.ErrNotExist) {
		return nil
	}
	pids, lerr := units.DirPIDs(dir)
	if lerr != nil {
		return fmt.Errorf("kill cgroup %s: %w; list its processes: %v", dir, err, lerr)
	}
	var left []int
	for _, pid := range pids {
		if kerr := unix.Kill(pid, unix.SIGKILL); kerr != nil && kerr != unix.ESRCH {
			left = append(left, pid)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("kill cgroup %s: %w; processes %v could not be killed", dir, err, left)
	}
	return nil
}

// undo lets every stopped tree go and thaws every cgroup touched, unless
// the image was handed over. It runs on every way out of handOver.
func (h *handover) undo() {
	if h.done {
		return
	}
	for _, r := range h.dumped {
		r.Abort()
	}
	h.dumped = nil
	for u := range h.touched {
		h.thaw(u)
	}
}

// dumpUnit checkpoints every process tree of a unit's cgroup into dir, one
// image per tree root; with reserve, it moves their memory into the image
// (dump.Options.MoveMemory), reserve making room before each part and
// giveBack giving it back as a tree let go takes its memory back. It
// returns the trees dumped, even on failure: the caller aborts or commits
// each.
func dumpUnit(cg, cgdir, dir string, reserve func(int64) error, giveBack func(string, [][2]int64) error, out *contract.UnitOutcome) ([]*dump.Result, error) {
	pids, err := units.CgroupPIDs(cg)
	if err != nil {
		return nil, err
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("no processes")
	}
	in := map[int]bool{}
	for _, p := range pids {
		in[p] = true
	}
	var roots []int
	for _, p := range pids {
		s, err := proc.ReadStat(p)
		if err != nil {
			return nil, err
		}
		if !in[s.PPID] {
			roots = append(roots, p)
		}
	}
	sort.Ints(roots)
	var all []*dump.Result
	for _, r := range roots {
		// The cgroup is frozen already; Checkpoint seizes the tree and thaws
		// it, since a frozen task cannot run the calls injected into it.
		// The tree stays stopped for a later kill; it is checkpointed again
		// for a while when a listener has connections waiting to be
		// accepted (the door of the units' listeners closed before the
		// freeze), each failed attempt letting it go on, thawed, its
		// memory put back.
		res, err := dump.CheckpointRetrying(dump.Options{PID: r, Dir: contract.TreeDir(dir, r), KillLater: true, Cgroup: cgdir,
			MoveMemory: reserve != nil, Reserve: reserve, Release: giveBack})
		if err != nil {
			return all, fmt.Errorf("checkpoint of pid %d: %w", r, err)
		}
		out.Processes += res.Processes
		out.Bytes += res.Bytes
		out.Moved += res.Moved
		all = append(all, res)
	}
	return all, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
