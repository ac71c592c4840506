package restored

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inet"
	"github.com/seamless-linux/seamless/internal/kmod"
	"github.com/seamless-linux/seamless/internal/reserve"
)

// DaemonName is argv[0] of the daemon: the '@' asks systemd (in an
// initramfs that runs it, and at shutdown) to spare a process that
// outlives the switch to the real root.
const DaemonName = "@seamless-restored"

// Options configure the daemon.
type Options struct {
	// Image is the image the old kernel handed over, as seamless.image=
	// gives it: a directory in the initramfs (RAM store), or "disk:PATH"
	// for an image directory on the real root (disk store). It holds one
	// directory per unit, with unit.json and one image per process tree.
	Image string
	// Root is where the real root is mounted, for an image on disk.
	Root string
	// Timeout bounds the wait for the anchors: a unit whose anchor has not
	// asked by then is left to start cold.
	Timeout time.Duration
	// RestoreTimeout bounds one unit's restore: a restore that takes
	// longer is killed with whatever it created, and the unit starts
	// cold.
	RestoreTimeout time.Duration
	// Log receives one line per event.
	Log io.Writer
	// Ready, if set, receives the Readiness once every PID is reserved (or
	// the image was refused) and is closed: stage 1 waits for it.
	Ready io.WriteCloser
}

type daemon struct {
	opts  Options
	dir   string     // where the image is read: a path, or the disk image's descriptor
	disk  *diskImage // the image on disk, removed at the end
	state contract.State
	mu    sync.Mutex // guards the state
	cond  *sync.Cond // a unit left the restoring state
	held  []*os.File
	trees map[string]*image.Tree // by contract.TreeState.Dir
	pids  *reserve.Set
	proc  *os.File // /proc, opened before the switch to the real root
	root  bool     // chrooted into the real root
	done  chan struct{}
	// locked is set once the state is written: seamless-netlock.service
	// may then have locked the flows of the units it names pending. Before,
	// no unit has a lock in this kernel (nor may nf_tables be loaded yet).
	locked bool
	// unverified are the images whose memory is still to be checked, by
	// unit; verdicts holds what the check found (nil: it passed), by unit,
	// once it is done (see verify).
	unverified map[string][]*image.Image
	verdicts   map[string]error
	// wakers are waking the peers of restored connections (see wakePeers).
	wakers sync.WaitGroup
}

// Run is the daemon. It returns when every carried unit has been restored
// or started cold, or at the timeout.
func Run(opts Options) error {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Minute
	}
	if opts.RestoreTimeout == 0 {
		opts.RestoreTimeout = DefaultRestoreTimeout
	}
	d := &daemon{opts: opts, dir: opts.Image, trees: map[string]*image.Tree{}, done: make(chan struct{}),
		unverified: map[string][]*image.Image{}, verdicts: map[string]error{}}
	d.cond = sync.NewCond(&d.mu)
	d.state = contract.State{Image: opts.Image, Daemon: os.Getpid(), Started: time.Now().UTC(), RestoreTimeoutMs: opts.RestoreTimeout.Milliseconds()}
	// Before the holders are started: they stay in the daemon's cgroup.
	if cg, err := leaveUnitCgroup(); err != nil {
		fmt.Fprintf(opts.Log, "%v\n", err)
	} else if cg != "" {
		fmt.Fprintf(opts.Log, "left cgroup %s for the root cgroup\n", cg)
	}
	err := d.start()
	if opts.Ready != nil {
		r := Readiness{Summary: d.summary()}
		if err != nil {
			r = Readiness{Error: err.Error()}
		}
		if werr := WriteMessage(opts.Ready, r); werr != nil {
			fmt.Fprintf(opts.Log, "tell stage 1: %v\n", werr)
		}
		opts.Ready.Close()
	}
	if err != nil {
		d.state.Error = Bound(err.Error())
		d.close() // writes the state, with the error
		return err
	}
	if d.pending() == 0 {
		d.close()
		return nil
	}
	go d.verify()
	go loadPeerDiag(func() (bool, bool, error) { return pid1Moved(d.proc) }, d.done)
	select {
	case <-d.done:
	case <-time.After(opts.Timeout):
		d.mu.Lock()
		for i := range d.state.Units {
			if u := &d.state.Units[i]; u.State == contract.Pending {
				d.giveUp(u, fmt.Sprintf("its anchor did not ask within %s", opts.Timeout))
			}
		}
		d.mu.Unlock()
	}
	d.close()
	d.wakers.Wait()
	return nil
}

// start verifies and holds the image, reserves the PIDs and listens.
func (d *daemon) start() error {
	var err error
	if d.proc, err = os.OpenFile("/proc", unix.O_PATH|unix.O_DIRECTORY, 0); err != nil {
		return fmt.Errorf("open /proc: %w", err)
	}
	if err := mkdirs(); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	img, err := contract.ParseImage(d.opts.Image)
	if err != nil {
		return err
	}
	if img.KmodIndex != 0 {
		return fmt.Errorf("%s: stage 1 mounts the kmod store's image, and names its directory", d.opts.Image)
	}
	if img.Disk {
		if d.disk, err = openDiskImage(d.opts.Root, d.opts.Image); err != nil {
			return err
		}
		d.dir = fdPath(d.disk.img)
	}
	if err := d.load(); err != nil {
		return err
	}
	if d.pids, err = reserve.New(); err != nil {
		return err
	}
	d.reserve()
	if err := contract.WriteState(&d.state); err != nil {
		return err
	}
	d.locked = true
	if d.pending() == 0 {
		return nil
	}
	return d.listen()
}

// load reads every tree of every unit, checks all but the memory's
// checksums (verify does, once stage 1 is told) and keeps its files open.
// A unit whose image is damaged or malformed starts cold; the others go on.
func (d *daemon) load() error {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		u := contract.UnitState{Unit: e.Name(), State: contract.Pending}
		err := guard(d.opts.Log, "read "+u.Unit+"'s image", func() error {
			return d.loadUnit(&u, contract.UnitDir(d.dir, e.Name()))
		})
		if err != nil {
			u.State, u.Reason = contract.Cold, Bound(err.Error())
			fmt.Fprintf(d.opts.Log, "%s: image refused, it starts cold: %s\n", u.Unit, u.Reason)
		}
		d.state.Units = append(d.state.Units, u)
	}
	return nil
}

func (d *daemon) loadUnit(u *contract.UnitState, dir string) error {
	start, trees, err := contract.ReadUnit(dir)
	if err != nil {
		return err
	}
	u.Start = start
	for _, tree := range trees {
		im, err := image.OpenUnverified(tree)
		if err != nil {
			return err
		}
		d.unverified[u.Unit] = append(d.unverified[u.Unit], im)
		links := filepath.Join(contract.IncomingDir(), u.Unit, filepath.Base(tree))
		if err := d.hold(im, links); err != nil {
			return fmt.Errorf("keep image %s: %w", im.Dir, err)
		}
		byLock, err := inet.ImageFlows(im.Tree)
		if err != nil {
			return fmt.Errorf("network lock of %s: %w", im.Dir, err)
		}
		locks := slices.Sorted(maps.Keys(byLock))
		d.trees[links] = im.Tree
		u.Trees = append(u.Trees, contract.TreeState{Root: im.Tree.Root, Dir: links, IDs: treeIDs(im.Tree), Locks: locks})
	}
	return nil
}

// hold opens every file of im and makes links to the open files in dir:
// the files stay readable after the initramfs they are in is emptied, and
// the restore reads them through the links, without a copy.
func (d *daemon) hold(im *image.Image, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	names := []string{image.ManifestName}
	for _, e := range im.Entries {
		names = append(names, e.Name)
	}
	for _, n := range names {
		f, err := os.Open(filepath.Join(im.Dir, n))
		if err != nil {
			return err
		}
		d.held = append(d.held, f)
		target := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
		if err := os.Symlink(target, filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	return nil
}

// verify checks the memory of every pending unit's image while the system
// boots, on CPU time the boot does not want (SCHED_IDLE: at normal priority
// the checksums of a 20 MiB image took both CPUs from the end of the
// initramfs and systemd's start): stage 1 waits only for the PIDs, a
// restore (claim) waits for the verdict. A unit whose image is damaged is
// given up when its anchor asks (or at the daemon's timeout), not here: its network lock may not be
// installed yet, and must not be installed after its removal.
func (d *daemon) verify() {
	for unit, ims := range d.unverified {
		start := time.Now()
		var err error
		for _, im := range ims {
			if err == nil {
				err = guard(d.opts.Log, "verify "+unit+"'s image", im.VerifyIdle)
			}
			im.Close()
		}
		if err == nil {
			fmt.Fprintf(d.opts.Log, "%s: image verified in %d ms\n", unit, time.Since(start).Milliseconds())
		}
		if err != nil {
			fmt.Fprintf(d.opts.Log, "%s: image refused, it starts cold: %s\n", unit, Bound(err.Error()))
		}
		d.mu.Lock()
		d.verdicts[unit] = err
		d.cond.Broadcast()
		d.mu.Unlock()
	}
}

// treeIDs lists every PID and TID a tree needs, with the process groups
// whose leaders are gone (the restore recreates them with a helper of that
// PID). The root's group and session are where the root was put: for a
// service, its own.
func treeIDs(t *image.Tree) []int {
	seen := map[int]bool{}
	rootGroup := 0
	if len(t.Processes) > 0 {
		rootGroup = t.Processes[0].PGID
	}
	for _, p := range t.Processes {
		seen[p.PID] = true
		if p.PGID != rootGroup {
			seen[p.PGID] = true
		}
		for _, th := range p.Threads {
			seen[th.TID] = true
		}
	}
	var ids []int
	for id := range seen {
		if id > 1 {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	return ids
}

// reserve takes every ID of every pending unit; a unit missing one starts
// cold, and gives back the others.
func (d *daemon) reserve() {
	var all []int
	for _, u := range d.state.Units {
		if u.State == contract.Pending {
			for _, t := range u.Trees {
				all = append(all, t.IDs...)
			}
		}
	}
	taken := map[int]string{}
	for _, t := range d.pids.Reserve(all) {
		taken[t.PID] = t.Reason
	}
	for i := range d.state.Units {
		u := &d.state.Units[i]
		if u.State != contract.Pending {
			continue
		}
		for _, t := range u.Trees {
			for _, id := range t.IDs {
				if why, ok := taken[id]; ok && u.State == contract.Pending {
					d.giveUp(u, fmt.Sprintf("pid %d is %s", id, why))
				}
			}
		}
	}
}

// giveUp leaves u to start cold: its PIDs are released, its network lock
// removed if one may have been installed (see locked). The caller holds
// d.mu or runs before the daemon serves.
func (d *daemon) giveUp(u *contract.UnitState, reason string) {
	u.State, u.Reason = contract.Cold, Bound(reason)
	for _, t := range u.Trees {
		d.pids.Release(t.IDs)
		if !d.locked {
			continue
		}
		tree := d.trees[t.Dir]
		if err := guard(d.opts.Log, "unlock "+u.Unit, func() error { return unlock(tree) }); err != nil {
			fmt.Fprintf(d.opts.Log, "%s: %v\n", u.Unit, err)
		}
	}
	fmt.Fprintf(d.opts.Log, "%s: starts cold: %s\n", u.Unit, u.Reason)
}

func (d *daemon) pending() int {
	n := 0
	for _, u := range d.state.Units {
		if u.Waiting() {
			n++
		}
	}
	return n
}

func (d *daemon) summary() string {
	var parts []string
	for _, u := range d.state.Units {
		s := u.Unit + " " + u.State
		if u.Reason != "" {
			s += " (" + u.Reason + ")"
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		if d.state.Error != "" {
			return "image refused"
		}
		return "no unit in the image"
	}
	return strings.Join(parts, "; ")
}

// close ends the daemon: holders killed, images released and, for a disk
// image, deleted; the state file stays for `seamless status`.
func (d *daemon) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pids != nil {
		d.pids.Close()
	}
	// An image in the kmod store's memory goes back to the system as
	// soon as it is no longer needed (a no-op for the other stores).
	for _, f := range d.held {
		if err := kmod.Release(f, 0, -1); err != nil {
			fmt.Fprintf(d.opts.Log, "%v\n", err)
		}
		f.Close()
	}
	d.held = nil
	releaseKmod(d.dir, d.opts.Log)
	// The state first: once the socket is gone, a unit's ExecStartPre
	// takes whatever the state leaves unsettled as its own to settle.
	d.writeState()
	os.RemoveAll(contract.IncomingDir())
	os.Remove(contract.SocketPath())
	// Started in the initramfs, the daemon follows the boot into the real
	// root to leave the outcome where `seamless status` reads it.
	if d.proc != nil {
		if err := d.awaitRoot(time.Now().Add(d.opts.Timeout)); err != nil {
			fmt.Fprintf(d.opts.Log, "%v: the outcome is only in %s\n", err, contract.StatePath())
			if d.disk != nil {
				fmt.Fprintf(d.opts.Log, "the image %s stays on disk: remove it by hand\n", d.disk.path)
			}
			fmt.Fprintf(d.opts.Log, "done: %s\n", d.summary())
			return
		}
	}
	if d.disk != nil {
		d.removeDisk()
	}
	recordOutcomes(&d.state, true, d.opts.Log)
	fmt.Fprintf(d.opts.Log, "done: %s\n", d.summary())
}

// removeDisk deletes the image on disk once nothing needs it. Right after
// the switch to the real root, its file system may still be read-only.
func (d *daemon) removeDisk() {
	defer d.disk.close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := d.disk.remove(d.opts.Log)
		if err == nil {
			return
		}
		if !errors.Is(err, syscall.EROFS) || time.Now().After(deadline) {
			fmt.Fprintf(d.opts.Log, "remove the image: %s\n", Bound(err.Error()))
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// writeState writes the daemon's state once the daemon serves: a failure
// is logged (the anchors and the generator read the state; the unit's
// outcome is still recorded) and does not stop the daemon, which holds the
// PIDs and the image. The caller holds d.mu or runs before the daemon
// serves.
func (d *daemon) writeState() {
	if err := contract.WriteState(&d.state); err != nil {
		fmt.Fprintf(d.opts.Log, "%s\n", Bound(err.Error()))
	}
}
