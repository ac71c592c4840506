package update

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/seamless-linux/seamless/internal/dump"
	"github.com/seamless-linux/seamless/internal/inet"
	"github.com/seamless-linux/seamless/internal/kexec"
	"github.com/seamless-linux/seamless/internal/proc"
	"github.com/seamless-linux/seamless/internal/store"
	"github.com/seamless-linux/seamless/internal/units"
)

// ShutdownCheckpoint runs as seamless-checkpoint.service's ExecStop, before
// the carried units are stopped. Without an intent it does nothing. With
// one, it freezes the carried units together, checkpoints each process
// tree, hands the image to the new kernel (appended to its initrd, or on
// disk) with kexec_file_load, and only then kills the frozen processes: any
// failure before that thaws them, and shutdown stops them as a reboot
// would; the plain kernel that `seamless update` loaded stays loaded.
// The calling goroutine must be locked to its OS thread.
func ShutdownCheckpoint(log io.Writer) error {
	in, err := ReadIntent()
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
	os.Remove(intentPath()) // consumed, whatever happens next
	st := &Status{State: "failed", From: in.From, To: in.Kernel.Release, Store: in.Store}
	for _, u := range sortedKeys(in.Stopped) {
		st.Units = append(st.Units, UnitOutcome{Unit: u, Outcome: "stopped", Reason: in.Stopped[u]})
	}
	err = handOver(in, st, log)
	if err != nil {
		st.Error = err.Error()
		fmt.Fprintln(log, "seamless: update without carrying services:", err)
	}
	if serr := saveStatus(st); serr != nil && err == nil {
		err = serr
	}
	return err
}

func handOver(in *Intent, st *Status, log io.Writer) error {
	phase := func(name string, start time.Time) {
		st.Phases = append(st.Phases, Phase{Name: name, Ms: time.Since(start).Milliseconds()})
	}
	dirs := map[string]string{}
	for _, u := range in.Units {
		d, err := units.CgroupDir(in.Cgroups[u])
		if err != nil {
			return err
		}
		dirs[u] = d
	}
	t := time.Now()
	frozen := map[string]bool{}
	thaw := func() {
		for u := range frozen {
			setFrozen(dirs[u], false)
		}
	}
	for _, u := range in.Units {
		if err := setFrozen(dirs[u], true); err != nil {
			st.Units = append(st.Units, UnitOutcome{Unit: u, Outcome: "stopped", Reason: err.Error()})
			continue
		}
		frozen[u] = true
	}
	phase("freeze", t)
	imageDir := filepath.Join(RunDir, "image")
	os.RemoveAll(imageDir)
	if err := os.MkdirAll(imageDir, 0o700); err != nil {
		thaw()
		return err
	}
	defer os.RemoveAll(imageDir)
	t = time.Now()
	var dumped []*dump.Result
	abort := func() {
		for _, r := range dumped {
			r.Abort()
		}
		thaw()
	}
	for _, u := range in.Units {
		if !frozen[u] {
			continue
		}
		out := UnitOutcome{Unit: u, Outcome: "carried"}
		start := time.Now()
		res, err := dumpUnit(in.Cgroups[u], dirs[u], filepath.Join(imageDir, u), &out)
		if err == nil {
			err = writeStart(filepath.Join(imageDir, u), in.Start[u])
		}
		out.DumpMs = time.Since(start).Milliseconds()
		if err != nil {
			for _, r := range res {
				r.Abort()
			}
			// This unit is stopped gracefully by the shutdown; the others go on.
			os.RemoveAll(filepath.Join(imageDir, u))
			delete(frozen, u)
			out.Outcome, out.Reason = "stopped", err.Error()
			fmt.Fprintf(log, "seamless: %s will be stopped, not carried: %v\n", u, err)
		} else {
			dumped = append(dumped, res...)
			st.Bytes += out.Bytes
		}
		st.Units = append(st.Units, out)
	}
	phase("checkpoint", t)
	t = time.Now()
	if err := load(in, imageDir, st); err != nil {
		abort()
		for i := range st.Units {
			if st.Units[i].Outcome == "carried" {
				st.Units[i].Outcome, st.Units[i].Reason = "stopped", "the image could not be handed to the new kernel"
			}
		}
		return err
	}
	phase("store and kexec load", t)
	// The point of no return: the stopped processes must never run again
	// on this kernel, or they would change what the image describes.
	t = time.Now()
	for _, r := range dumped {
		r.Commit()
	}
	for u := range frozen {
		os.WriteFile(filepath.Join(dirs[u], "cgroup.kill"), []byte("1"), 0)
	}
	phase("kill", t)
	st.State = "handed-over"
	fmt.Fprintf(log, "seamless: %d units carried in a %s image (%s) to %s\n", len(frozen), human(st.Bytes), st.Store, in.Kernel.Release)
	return nil
}

// dumpUnit checkpoints every process tree of a unit's cgroup into dir, one
// image per tree root. It returns the trees dumped, even on failure: the
// caller aborts or commits each.
func dumpUnit(cg, cgdir, dir string, out *UnitOutcome) ([]*dump.Result, error) {
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
		res, err := checkpointTree(r, filepath.Join(dir, strconv.Itoa(r)), cgdir)
		if err != nil {
			return all, fmt.Errorf("checkpoint of pid %d: %w", r, err)
		}
		out.Processes += res.Processes
		out.Bytes += res.Bytes
		all = append(all, res)
	}
	return all, nil
}

// load hands the image to the next kernel: appended to its initrd in RAM,
// or written to the disk store, and kexec_file_load with seamless.image=.
func load(in *Intent, imageDir string, st *Status) error {
	cmdline := in.Cmdline
	var initrd *os.File
	var err error
	switch in.Store {
	case "disk":
		dir := filepath.Join(in.DiskDir, time.Now().UTC().Format("20060102T150405Z"))
		if err := copyTree(imageDir, dir); err != nil {
			return fmt.Errorf("disk store: %w", err)
		}
		st.Image = dir
		cmdline += " seamless.image=disk:" + dir
		if initrd, err = os.Open(in.Kernel.Initrd); err != nil {
			return err
		}
	default:
		if initrd, err = store.InitrdWithImage(in.Kernel.Initrd, imageDir); err != nil {
			return err
		}
		st.Image = "/" + store.Prefix
		cmdline += " seamless.image=/" + store.Prefix
	}
	defer initrd.Close()
	return kexec.Load(in.Kernel.Image, initrd, cmdline)
}

// setFrozen freezes or thaws a cgroup v2 and waits for the kernel to agree.
func setFrozen(dir string, on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte(v), 0); err != nil {
		return fmt.Errorf("freeze %s: %w", dir, err)
	}
	for i := 0; i < 1000; i++ {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "frozen "+v) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("cgroup %s did not reach frozen=%s", dir, v)
}

// copyTree copies an image directory to the disk store, 0700, fsync'd.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		r, err := os.Open(p)
		if err != nil {
			return err
		}
		defer r.Close()
		w, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, r); err != nil {
			w.Close()
			return err
		}
		if err := w.Sync(); err != nil {
			w.Close()
			return err
		}
		return w.Close()
	})
}

// checkpointTree checkpoints one tree for a later kill. Connections waiting
// in a listener's accept queue cannot be carried, but the service accepts
// them within moments if it runs: the checkpoint is retried for a while
// (each failed attempt lets the tree go on).
func checkpointTree(pid int, dir, cgdir string) (*dump.Result, error) {
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		var res *dump.Result
		res, err = dump.Checkpoint(dump.Options{PID: pid, Dir: dir, KillLater: true, Cgroup: cgdir})
		if !errors.Is(err, inet.ErrPendingAccept) {
			return res, err
		}
		time.Sleep(100 * time.Millisecond)
		// Freeze again: the next attempt starts from a consistent instant.
		if ferr := setFrozen(cgdir, true); ferr != nil {
			return nil, ferr
		}
	}
	return nil, err
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// writeStart keeps, beside a unit's images, how the unit is started.
func writeStart(dir string, st units.Start) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, units.StartFile), append(b, '\n'), 0o600)
}
