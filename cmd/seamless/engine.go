package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/seamless-linux/seamless/internal/bytesize"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/dump"
	"github.com/seamless-linux/seamless/internal/mem"
	"github.com/seamless-linux/seamless/internal/restore"
	"github.com/seamless-linux/seamless/internal/restored"
)

func runCheckpoint(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("checkpoint", "--pid PID --dir DIR [--leave-running] [--move-memory] [--cgroup PATH]",
		`Stop the process tree rooted at PID (every descendant and every thread),
write its state into the image directory DIR (created 0700; it holds process
memory), verify the image, then kill the tree. With --leave-running the tree
continues instead. On failure the tree keeps running and DIR is removed.

New connections to the tree's TCP listeners are dropped (their clients
retry) from before the tree is stopped until it is restored, and the tree
accepts those already waiting before it is stopped.

With --move-memory each part of the tree's private memory is dropped from
the stopped tree once it is in the image, so that the two never hold it
twice (what an update at shutdown does with the kmod store); with
--leave-running, or on failure, it is written back, checked against the
image's checksums, before the tree runs again.`, stdout)
	pid := fs.Int("pid", 0, "root `PID` of the tree to checkpoint")
	dir := fs.String("dir", "", "image `DIR`ectory to create (must not exist or be empty)")
	leave := fs.Bool("leave-running", false, "let the tree run on after the checkpoint")
	cgroup := fs.String("cgroup", "", "cgroup v2 `PATH` to freeze while stopping the tree")
	move := fs.Bool("move-memory", false, "drop the tree's private memory as it is written into the image (written back if the tree runs on)")
	verbose := fs.Bool("v", false, "print progress on stderr")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || *pid <= 0 || *dir == "" {
		return fmt.Errorf("%w: need --pid PID and --dir DIR", errUsage)
	}
	opts := dump.Options{PID: *pid, Dir: *dir, LeaveRunning: *leave, Cgroup: *cgroup, MoveMemory: *move}
	if *verbose {
		opts.Log = stderr
	}
	start := time.Now()
	// A serving tree has connections waiting in its accept queues: close
	// the door first and let it accept them.
	door, err := dump.CloseDoor(dump.Tree(*pid), stderr)
	if err != nil {
		return err
	}
	defer door.Open()
	res, err := dump.CheckpointRetrying(opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "checkpointed %s, %s, %s in %v\n", bytesize.Count(res.Processes, "process", "processes"),
		bytesize.Count(res.Threads, "thread", "threads"), bytesize.Format(res.Bytes), time.Since(start).Round(time.Millisecond))
	if *verbose {
		fmt.Fprintf(stderr, "seamless checkpoint: phases: %s\n", contract.FormatPhases(res.Phases))
		if *move {
			fmt.Fprintf(stderr, "seamless checkpoint: %s of memory moved into the image\n", bytesize.Format(res.Moved))
		}
		for _, pid := range sortedPIDs(res.Zombies) {
			fmt.Fprintf(stderr, "pid %d is a zombie until its parent %d reaps it\n", pid, res.Zombies[pid])
		}
	}
	return nil
}

func runRestore(args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlags("restore", "--dir DIR [--vdso auto|proxy]",
		`Verify the image in DIR, then rebuild its process tree with the original
PIDs and TIDs and let it run, detached. Prints the restored root PID on
stdout. Nothing is created unless the whole image verifies and every PID is
free.

Restored processes keep calling the vDSO at the addresses they looked up
when they started. When this kernel's vDSO differs from the image's, a proxy
at the old address jumps to this kernel's vDSO, which lies elsewhere; a
warning says how many entry points it redirects.`, stdout)
	dir := fs.String("dir", "", "image `DIR`ectory")
	wait := fs.Duration("pid-wait", 5*time.Second, "how long to wait for a PID held by an unreaped zombie")
	var peers, peerFDs peerFlags
	fs.Var(&peers, "unix-peer", "reconnect the unix socket peer `KEY=PATH` (KEY as 'seamless inspect --json' lists it) to the stream socket at PATH instead; repeatable")
	fs.Var(&peerFDs, "unix-peer-fd", "replace the connection to the unix socket peer `KEY=FD` by the socket this command inherited as FD (a unit's new journal stream); repeatable")
	verified := fs.Bool("verified", false, "the caller verified the image's checksums and holds it unchanged (the restore daemon): check only sizes and tree.json")
	vdso := fs.String("vdso", "auto", "`MODE` of reaching this kernel's vDSO: 'auto' moves it to the image's vDSO address if the two match, else proxies it; 'proxy' always proxies it (to test the proxy on one kernel)")
	hold := fs.Duration("hold-for-network", 0, "keep the restored tree stopped until the network reaches the peers of its TCP connections to other hosts, at most `DURATION` (the restore daemon passes seamless.conf's hold-for-network; 0: run at once)")
	verbose := fs.Bool("v", false, "print progress on stderr")
	asJSON := fs.Bool("json", false, `print the outcome on stdout as JSON: {"root": PID, "warnings": [...]}, or {"error": "..."} (the restore daemon reads it)`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || *dir == "" {
		return fmt.Errorf("%w: need --dir DIR", errUsage)
	}
	if *asJSON {
		defer func() {
			if err != nil {
				restored.WriteMessage(stdout, restored.RestorerReport{Error: err.Error()})
			}
		}()
	}
	mode, err := mem.ParseVDSOMode(*vdso)
	if err != nil {
		return fmt.Errorf("%w: --vdso: %v", errUsage, err)
	}
	if *hold < 0 {
		return fmt.Errorf("%w: --hold-for-network must not be negative", errUsage)
	}
	opts := restore.Options{Dir: *dir, PIDWait: *wait, Verified: *verified, VDSO: mode, HoldForNetwork: *hold}
	if len(peers)+len(peerFDs) > 0 {
		opts.UnixExternal = map[string]*os.File{}
		for key, v := range peerFDs {
			fd, err := strconv.Atoi(v)
			if err != nil || fd < 3 {
				return fmt.Errorf("%w: --unix-peer-fd %s=%s: not an inherited descriptor", errUsage, key, v)
			}
			f := os.NewFile(uintptr(fd), key)
			if _, err := f.Stat(); err != nil {
				return fmt.Errorf("--unix-peer-fd %s=%d: %w", key, fd, err)
			}
			defer f.Close()
			opts.UnixExternal[key] = f
		}
		for key, path := range peers {
			f, err := dialUnix(path)
			if err != nil {
				return fmt.Errorf("--unix-peer %s=%s: %w", key, path, err)
			}
			defer f.Close()
			opts.UnixExternal[key] = f
		}
	}
	if *verbose {
		opts.Log = stderr
	}
	res, err := restore.Restore(opts)
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(stderr, "seamless restore: warning:", w)
	}
	if *verbose {
		fmt.Fprintf(stderr, "seamless restore: phases: %s\n", contract.FormatPhases(res.Phases))
		fmt.Fprintf(stderr, "seamless restore: private memory: %d bytes filled through userfaultfd, %d written\n",
			res.Filled.Copied, res.Filled.Written)
	}
	if *asJSON {
		return restored.WriteMessage(stdout, restored.RestorerReport{Root: res.Root, Warnings: res.Warnings, Phases: res.Phases,
			CopiedBytes: res.Filled.Copied, WrittenBytes: res.Filled.Written})
	}
	fmt.Fprintln(stdout, res.Root)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// peerFlags collects repeated KEY=PATH flags.
type peerFlags map[string]string

func (p *peerFlags) String() string { return fmt.Sprint(map[string]string(*p)) }

func (p *peerFlags) Set(v string) error {
	key, path, ok := strings.Cut(v, "=")
	if !ok || key == "" || path == "" {
		return fmt.Errorf("want KEY=PATH, got %q", v)
	}
	if *p == nil {
		*p = peerFlags{}
	}
	(*p)[key] = path
	return nil
}

// dialUnix connects a stream socket to path.
func dialUnix(path string) (*os.File, error) {
	c, err := net.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(*net.UnixConn).File()
}

// sortedPIDs lists the keys of m in order.
func sortedPIDs(m map[int]int) []int {
	out := make([]int, 0, len(m))
	for pid := range m {
		out = append(out, pid)
	}
	sort.Ints(out)
	return out
}
