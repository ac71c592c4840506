package restored

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/kmod"
	"github.com/seamless-linux/seamless/internal/reserve"
	"github.com/seamless-linux/seamless/internal/units"
)

// DaemonName is argv[0] of the daemon: the '@' asks systemd (in an
// initramfs that runs it, and at shutdown) to spare a process that
// outlives the switch to the real root.
const DaemonName = "@seamless-restored"

// Options configure the daemon.
type Options struct {
	// Image is the image directory the old kernel handed over: one
	// directory per unit, holding unit.json and one image per process tree.
	Image string
	// Remove is, for an image on disk, its path in the real root: it is
	// deleted once used.
	Remove string
	// Timeout bounds the wait for the anchors: a unit whose anchor has not
	// asked by then is left to start cold.
	Timeout time.Duration
	// Log receives one line per event.
	Log io.Writer
	// Ready, if set, receives one line once every PID is reserved (or the
	// image was refused) and is closed: stage 1 waits for it.
	Ready io.WriteCloser
}

type daemon struct {
	opts  Options
	state State
	mu    sync.Mutex // serializes restores and state changes
	held  []*os.File
	trees map[string]*image.Tree // by TreeState.Dir
	pids  *reserve.Set
	proc  *os.File // /proc, opened before the switch to the real root
	root  bool     // chrooted into the real root
	done  chan struct{}
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
	d := &daemon{opts: opts, trees: map[string]*image.Tree{}, done: make(chan struct{})}
	d.state = State{Image: opts.Image, Daemon: os.Getpid(), Started: time.Now().UTC()}
	// Before the holders are started: they stay in the daemon's cgroup.
	if cg, err := leaveUnitCgroup(); err != nil {
		fmt.Fprintf(opts.Log, "%v\n", err)
	} else if cg != "" {
		fmt.Fprintf(opts.Log, "left cgroup %s for the root cgroup\n", cg)
	}
	err := d.start()
	if opts.Ready != nil {
		if err != nil {
			fmt.Fprintf(opts.Ready, "error: %v\n", err)
		} else {
			fmt.Fprintf(opts.Ready, "ok: %s\n", d.summary())
		}
		opts.Ready.Close()
	}
	if err != nil {
		d.state.Error = err.Error()
		d.close() // writes the state, with the error
		return err
	}
	if d.pending() == 0 {
		d.close()
		return nil
	}
	select {
	case <-d.done:
	case <-time.After(opts.Timeout):
		d.mu.Lock()
		for i := range d.state.Units {
			if u := &d.state.Units[i]; u.State == Pending {
				d.giveUp(u, fmt.Sprintf("its anchor did not ask within %s", opts.Timeout))
			}
		}
		d.mu.Unlock()
	}
	d.close()
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
	if err := d.load(); err != nil {
		return err
	}
	if d.pids, err = reserve.New(); err != nil {
		return err
	}
	d.reserve()
	if err := d.state.write(); err != nil {
		return fmt.Errorf("write %s: %w", StatePath, err)
	}
	if d.pending() == 0 {
		return nil
	}
	return d.listen()
}

// load verifies every tree of every unit and keeps its files open. A unit
// whose image is damaged starts cold; the others go on.
func (d *daemon) load() error {
	ents, err := os.ReadDir(d.opts.Image)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		u := UnitState{Unit: e.Name(), State: Pending}
		if err := d.loadUnit(&u, filepath.Join(d.opts.Image, e.Name())); err != nil {
			u.State, u.Reason = Cold, err.Error()
			fmt.Fprintf(d.opts.Log, "%s: image refused, it starts cold: %v\n", u.Unit, err)
		}
		d.state.Units = append(d.state.Units, u)
	}
	return nil
}

func (d *daemon) loadUnit(u *UnitState, dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, units.StartFile))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &u.Start); err != nil {
		return fmt.Errorf("%s: %w", units.StartFile, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		im, err := image.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		links := filepath.Join(IncomingDir, u.Unit, e.Name())
		if err := d.hold(im, links); err != nil {
			return fmt.Errorf("keep image %s: %w", im.Dir, err)
		}
		d.trees[links] = im.Tree
		u.Trees = append(u.Trees, TreeState{Root: im.Tree.Root, Dir: links, IDs: treeIDs(im.Tree)})
	}
	if len(u.Trees) == 0 {
		return fmt.Errorf("no process tree in %s", dir)
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
		if u.State == Pending {
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
		if u.State != Pending {
			continue
		}
		for _, t := range u.Trees {
			for _, id := range t.IDs {
				if why, ok := taken[id]; ok && u.State == Pending {
					d.giveUp(u, fmt.Sprintf("pid %d is %s", id, why))
				}
			}
		}
	}
}

// giveUp leaves u to start cold: its PIDs are released, its network lock
// removed. The caller holds d.mu or runs before the daemon serves.
func (d *daemon) giveUp(u *UnitState, reason string) {
	u.State, u.Reason = Cold, reason
	for _, t := range u.Trees {
		d.pids.Release(t.IDs)
		if err := unlock(d.trees[t.Dir]); err != nil {
			fmt.Fprintf(d.opts.Log, "%s: %v\n", u.Unit, err)
		}
	}
	fmt.Fprintf(d.opts.Log, "%s: starts cold: %s\n", u.Unit, reason)
}

func (d *daemon) pending() int {
	n := 0
	for _, u := range d.state.Units {
		if u.State == Pending || u.State == Restoring {
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
		return "no unit in the image"
	}
	return strings.Join(parts, "; ")
}

// listen opens the socket the anchors connect to. Anyone may connect: the
// daemon restores a unit only for a process inside that unit's cgroup.
func (d *daemon) listen() error {
	os.Remove(SocketPath)
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: SocketPath, Net: "unixpacket"})
	if err != nil {
		return fmt.Errorf("listen on %s: %w", SocketPath, err)
	}
	if err := os.Chmod(SocketPath, 0o666); err != nil {
		l.Close()
		return err
	}
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			go d.serve(c)
		}
	}()
	return nil
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
	releaseKmod(d.opts.Image, d.opts.Log)
	os.RemoveAll(IncomingDir)
	os.Remove(SocketPath)
	d.state.write()
	// Started in the initramfs, the daemon follows the boot into the real
	// root to leave the outcome where `seamless status` reads it.
	if d.proc != nil {
		if err := d.awaitRoot(time.Now().Add(d.opts.Timeout)); err != nil {
			fmt.Fprintf(d.opts.Log, "%v: the outcome is only in %s\n", err, StatePath)
			fmt.Fprintf(d.opts.Log, "done: %s\n", d.summary())
			return
		}
	}
	if d.opts.Remove != "" {
		if err := os.RemoveAll(d.opts.Remove); err != nil {
			fmt.Fprintf(d.opts.Log, "remove the image %s: %v\n", d.opts.Remove, err)
		}
	}
	recordOutcomes(&d.state, true, d.opts.Log)
	fmt.Fprintf(d.opts.Log, "done: %s\n", d.summary())
}

// serve answers one anchor.
func (d *daemon) serve(c *net.UnixConn) {
	defer c.Close()
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return
	}
	fds := rights(oob[:oobn])
	defer func() {
		for _, f := range fds {
			f.Close()
		}
	}()
	reply := Reply{}
	var req Request
	pid, err := peerPID(c)
	if err == nil {
		err = json.Unmarshal(buf[:n], &req)
	}
	if err == nil {
		reply.MainPID, err = d.restoreUnit(req.Unit, pid, fds)
	}
	if err != nil {
		reply.Error = err.Error()
	}
	b, _ := json.Marshal(reply)
	c.Write(b)
}

// rights returns the descriptors of an SCM_RIGHTS message.
func rights(oob []byte) []*os.File {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
			files = append(files, os.NewFile(uintptr(fd), "anchor-fd"))
		}
	}
	return files
}

func peerPID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cerr != nil {
		return 0, fmt.Errorf("peer credentials: %w", cerr)
	}
	return int(cred.Pid), nil
}

// errNotPending is returned to an anchor whose unit has nothing to restore.
var errNotPending = errors.New("nothing to restore")

// procRead reads a file below /proc through the descriptor opened in the
// initramfs: until the daemon moves to the real root, its /proc is the
// empty directory the initramfs's /proc was moved away from.
func (d *daemon) procRead(pid int, name string) (string, error) {
	fd, err := unix.Openat(int(d.proc.Fd()), strconv.Itoa(pid)+"/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("read /proc/%d/%s: %w", pid, name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}
