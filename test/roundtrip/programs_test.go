package roundtrip

// Acceptance tests of issues 4 and 12 that do not fit the workloads table:
//
//   - TestZombie and TestDeadLeader: zombie.c and deadleader.c, whose trees
//     show processes in state Z (the table's harness expects every process
//     of a tree to be running);
//   - TestStopped: stopped.c, whose children are stopped (job control) and
//     must stay so;
//   - TestRestoreRightAfterCheckpoint: a restore the moment the checkpoint
//     returns;
//   - TestUnsupported: resources seamless must refuse at checkpoint, naming
//     them, without harming the tree;
//   - TestSemUndo: semundo.c, SEM_UNDO adjustments (kept out of the table:
//     user space cannot read them, see docs/limitations.md);
//   - TestSysVIPCFreshKernel: sysvipc.c with its IPC objects removed
//     between checkpoint and restore, as a reboot would;
//   - TestTmux and TestPipeline: real programs (tmux with a shell and top;
//     `producer | gzip -1 | consumer`).
//
// All of them drive the seamless binary through its CLI contract only.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	extraMu    sync.Mutex
	extraBuilt = map[string]error{}
)

// buildExtra compiles test/workloads/NAME.c into binDir once per test
// binary, for programs that are not in the workloads table.
func buildExtra(t *testing.T, names ...string) {
	t.Helper()
	needWorkloads(t)
	extraMu.Lock()
	defer extraMu.Unlock()
	for _, name := range names {
		err, done := extraBuilt[name]
		if !done {
			src := filepath.Join(moduleRoot(), "test", "workloads", name+".c")
			cmd := exec.Command("gcc", "-O1", "-g", "-pthread", "-Wall", "-o", filepath.Join(binDir, name), src)
			if out, e := cmd.CombinedOutput(); e != nil {
				err = fmt.Errorf("build %s: %v\n%s", name, e, out)
			}
			extraBuilt[name] = err
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// needSeamless skips or fails t when the seamless binary is not available.
func needSeamless(t *testing.T) {
	t.Helper()
	needWorkloads(t)
	if seamlessErr != nil {
		t.Fatal(seamlessErr)
	}
}

// cliResult is one run of the seamless binary.
type cliResult struct {
	args    []string
	stdout  string
	stderr  string
	code    int // exit code; -1 if it did not exit normally
	elapsed time.Duration
}

func (c cliResult) String() string {
	return fmt.Sprintf("seamless %s: exit %d after %v\nstdout:\n%s\nstderr:\n%s",
		strings.Join(c.args, " "), c.code, c.elapsed.Round(time.Millisecond), c.stdout, c.stderr)
}

// runSeamless runs the seamless binary and reports how it ended and how long it took.
func runSeamless(args ...string) cliResult {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, seamlessBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	res := cliResult{args: args, elapsed: time.Since(start), code: 0}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		res.code = -1
		stderr.WriteString("\n(" + err.Error() + ")")
	}
	res.stdout, res.stderr = stdout.String(), stderr.String()
	return res
}

// ---------------------------------------------------------------------------
// Zombies

// TestZombie runs zombie.c standalone and through every mode: its zombies
// (exited with status 7 or 3, killed by SIGTERM) must come back as zombies
// of the same parent with the same PIDs and process groups (one in a group
// whose leader exited, one leading its own, one alone in a group whose
// leader exited), its orphans as children of the subreaper root, its
// process group without a leader as it was.
func TestZombie(t *testing.T) {
	zombieTests(t, workload{name: "zombie", procs: 7, usr1: true}, 3)
}

// TestDeadLeader runs deadleader.c: a child whose main thread called
// pthread_exit while its other threads go on. /proc shows its leader as a
// zombie (state Z); the process must be checkpointed and restored as the
// live process it is, its leader still dead.
//
// Such a process is not supported yet (docs/limitations.md): the checkpoint
// must refuse it, name it, and leave the whole tree running as it was.
func TestDeadLeader(t *testing.T) {
	needSeamless(t)
	buildExtra(t, "deadleader")
	r := start(t, workload{name: "deadleader", procs: 2, usr1: true})
	ticks := r.waitTicks(0, 3)
	usr1 := r.signalUSR1(ticks[len(ticks)-1].usr1)
	img := filepath.Join(r.dir, "image")
	res := runSeamless("checkpoint", "--pid", strconv.Itoa(r.pid), "--dir", img)
	after := r.afterFailedCheckpoint()
	if res.code != 1 || !strings.Contains(res.stderr, "main thread has exited") {
		r.fatalf("want exit status 1 naming the process whose main thread exited; got %s\n%s", res, after)
	}
	t.Logf("refused: %s", strings.TrimSpace(res.stderr))
	if !strings.HasPrefix(after, "(after the failed checkpoint") {
		r.fatalf("%s", after)
	}
	if ents, err := os.ReadDir(img); err == nil && len(ents) > 0 {
		t.Errorf("the refused checkpoint left %d files in %s", len(ents), img)
	}
	r.checkConsecutive(0)
	r.finish(r.signalUSR1(usr1))
}

// zombieTests runs w, whose tree shows nzombies processes in state Z,
// standalone and through every mode.
func zombieTests(t *testing.T, w workload, nzombies int) {
	buildExtra(t, w.name)
	t.Run("standalone", func(t *testing.T) {
		r := start(t, w)
		ticks := r.waitTicks(0, 3)
		r.markStopped()
		live, zombies := r.zombieSnapshot(nzombies)
		r.checkZombieTree(live, zombies)
		r.finish(r.signalUSR1(ticks[len(ticks)-1].usr1))
	})
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			needSeamless(t)
			zombieRoundTrip(t, w, m, nzombies)
		})
	}
}

// zombieSnapshot records the tree like snapshot and splits it: the running
// processes, and those in state Z (zombies, or processes whose main thread
// exited) with their parents and threads. These are left out of r.tree (the
// harness expects its processes to be running).
func (r *run) zombieSnapshot(nzombies int) (tree, tree) {
	r.t.Helper()
	all := r.snapshot()
	if len(all) != r.w.procs {
		r.fatalf("tree has %d processes (zombies included), want %d: %s", len(all), r.w.procs, all)
	}
	live, zombies := tree{}, tree{}
	for pid, rec := range all {
		if procState(pid) == "state Z" {
			zombies[pid] = rec
			delete(r.tree, pid)
		} else {
			live[pid] = rec
		}
	}
	if len(zombies) != nzombies {
		r.fatalf("want %d processes in state Z in the tree, found %d: %s", nzombies, len(zombies), all)
	}
	return live, zombies
}

// checkZombieTree checks the running processes as checkAlive does, that
// every zombie is still in state Z, with its parent and its threads, and
// that nothing else is in the tree.
func (r *run) checkZombieTree(live, zombies tree) {
	r.t.Helper()
	for pid, rec := range live {
		if !alive(pid) {
			r.fatalf("process %d is not running (%s)", pid, procState(pid))
		}
		tids, err := threads(pid)
		if err != nil {
			r.fatalf("threads of %d: %v", pid, err)
		}
		if fmt.Sprint(tids) != fmt.Sprint(rec.tids) {
			r.fatalf("process %d has threads %v, had %v", pid, tids, rec.tids)
		}
		ppid, _ := parentOf(pid)
		want := rec.ppid
		if pid == r.pid && r.restored {
			want = os.Getpid()
		}
		if ppid != want {
			r.fatalf("process %d has parent %d, want %d", pid, ppid, want)
		}
	}
	for pid, rec := range zombies {
		if st := procState(pid); st != "state Z" {
			r.fatalf("process %d is %s, want state Z (a zombie, or a dead main thread)", pid, st)
		}
		if ppid, _ := parentOf(pid); ppid != rec.ppid {
			r.fatalf("process %d in state Z has parent %d, want %d", pid, ppid, rec.ppid)
		}
		if tids, _ := threads(pid); fmt.Sprint(tids) != fmt.Sprint(rec.tids) {
			r.fatalf("process %d in state Z has threads %v, had %v", pid, tids, rec.tids)
		}
	}
	for _, pid := range descendants(r.pid) {
		if _, ok := live[pid]; ok {
			continue
		}
		if _, ok := zombies[pid]; !ok {
			r.fatalf("process %d (%s) appeared in the tree", pid, procState(pid))
		}
	}
}

func zombieRoundTrip(t *testing.T, w workload, m mode, nzombies int) {
	r := start(t, w)
	ticks := r.waitTicks(0, 3)
	r.markStopped()
	usr1 := r.signalUSR1(ticks[len(ticks)-1].usr1)
	live, zombies := r.zombieSnapshot(nzombies)
	r.checkZombieTree(live, zombies)
	t.Logf("running: %s; in state Z: %s", live, zombies)
	for round := 1; round <= m.rounds; round++ {
		img := filepath.Join(r.dir, fmt.Sprintf("image-%d", round))
		before := r.lastTick()
		r.pause()
		fp := takeFingerprint(live, false)
		lo, ref := before.n+1, before
		var hi uint64
		if m.leaveRunning {
			r.checkpoint(img, true, false)
			atCheckpoint := r.lastTick()
			r.checkZombieTree(live, zombies)
			r.compareFingerprint("after checkpoint --leave-running", fp, live)
			r.waitTicks(r.logSize(), 3)
			r.killTree(live)
			hi = atCheckpoint.n + 1
		} else {
			r.checkpoint(img, false, false)
			last := r.lastTick()
			lo, hi, ref = last.n+1, last.n+1, last
		}
		r.reapTree(live)
		if m.leaveRunning {
			r.killTree(zombies) // a process with a dead main thread is not dead
		}
		for pid := range zombies {
			if !waitGone(pid, deadline) {
				r.fatalf("process %d (state Z) is still there after its tree died", pid)
			}
		}
		r.inspect(img)

		from := r.logSize()
		r.restoreN = from
		res := runSeamless("restore", "--dir", img)
		r.exited, r.restored = false, true
		if res.code != 0 {
			r.fatalf("%s", res)
		}
		if got, err := strconv.Atoi(strings.TrimSpace(res.stdout)); err != nil || got != r.pid {
			r.fatalf("seamless restore printed %q, want the root PID %d", res.stdout, r.pid)
		}
		r.checkZombieTree(live, zombies)
		after := r.waitTicks(from, 10)
		if first := after[0]; first.n < lo || first.n > hi || first.nonce != ref.nonce {
			r.fatalf("first TICK after restore %q, want n in %d..%d and the nonce of %q",
				first.line.text, lo, hi, ref.line.text)
		}
		r.checkConsecutive(from)
		r.checkZombieTree(live, zombies)
		t.Logf("restored %s in %v: last TICK before %d, first after %d", img,
			res.elapsed.Round(time.Millisecond), ref.n, after[0].n)
		r.compareFingerprint(fmt.Sprintf("after restore %d", round), fp, live)
		usr1 = r.signalUSR1(usr1)
	}
	// The root reaps its zombies now and checks their statuses (DONE ok).
	r.finish(usr1)
}

// markStopped records, for a workload that keeps processes stopped, which
// of its processes are (state T): they must stay stopped.
func (r *run) markStopped() {
	if !r.w.stopped {
		return
	}
	r.stopped = map[int]bool{}
	for _, pid := range descendants(r.pid) {
		if procState(pid) == "state T" {
			r.stopped[pid] = true
		}
	}
	if len(r.stopped) == 0 {
		r.fatalf("no process of the tree is stopped")
	}
	r.t.Logf("stopped processes: %v", r.stopped)
}

// TestStopped runs stopped.c standalone and through every mode: processes
// stopped by SIGSTOP, SIGTSTP and (a whole process group) SIGTTIN must come
// back stopped, with the same stop left to report to their parent (none
// where it had waited for it), no new SIGCHLD for the parent, and the
// signals that arrived while they were stopped still pending.
func TestStopped(t *testing.T) {
	zombieTests(t, workload{name: "stopped", procs: 5, usr1: true, stopped: true}, 0)
}

// ---------------------------------------------------------------------------
// Restoring the moment the checkpoint returns

// TestRestoreRightAfterCheckpoint checkpoints (and kills) a tree of
// multi-threaded processes and restores it the moment the checkpoint has
// returned and the test has reaped its own children (the root, and what
// was reparented to it, the subreaper), with --pid-wait 0: the checkpoint
// returns only once every PID and TID of the killed tree is free, or held
// by a zombie that only its parent outside the tree (here, the test) can
// reap. Twenty rounds of threads.c and tree.c.
func TestRestoreRightAfterCheckpoint(t *testing.T) {
	for _, w := range []workload{{name: "threads", procs: 1, usr1: true}, {name: "tree", procs: 4}} {
		t.Run(w.name, func(t *testing.T) {
			needSeamless(t)
			r := start(t, w)
			r.waitTicks(0, 3)
			tr := r.snapshot()
			r.checkTree(tr)
			for round := 1; round <= 20; round++ {
				img := filepath.Join(r.dir, fmt.Sprintf("image-%d", round))
				cp := runSeamless("checkpoint", "--pid", strconv.Itoa(r.pid), "--dir", img, "-v")
				if cp.code != 0 {
					r.fatalf("%s", cp)
				}
				reapChildren()
				res := runSeamless("restore", "--dir", img, "--pid-wait", "0s")
				if res.code != 0 {
					r.fatalf("round %d: the restore right after the checkpoint failed:\n%s\ncheckpoint said:\n%s", round, res, cp.stderr)
				}
				r.restored, r.exited = true, false
				r.restoreN = r.logSize()
				r.checkAlive(tr)
				r.waitTicks(r.restoreN, 2)
				os.RemoveAll(img)
			}
			usr1 := 0
			if w.usr1 {
				usr1 = r.signalUSR1(r.lastTick().usr1)
			}
			r.finish(usr1)
		})
	}
}

// reapChildren reaps every child of the test process that has exited.
func reapChildren() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WALL, nil)
		if err != nil || pid <= 0 {
			return
		}
	}
}

// ---------------------------------------------------------------------------
// System V semaphore undo values

// sysvKeyPrefix marks the System V objects of sysvipc.c and semundo.c.
const sysvKeyPrefix = 0x5ea10000

// removeStaleSysV removes System V objects that sysvipc.c and semundo.c
// left behind in earlier runs (a workload that fails, or is killed, does
// not remove them): those with the workloads' key prefix, unattached and
// untouched for ten minutes.
func removeStaleSysV(t *testing.T) {
	old := time.Now().Add(-10 * time.Minute).Unix()
	// Columns of /proc/sysvipc/{shm,sem,msg}: the ipcrm flag, nattch (-1: none), times.
	for _, k := range []struct {
		file, flag string
		nattch     int
		times      []int
	}{
		{"shm", "-m", 6, []int{11, 12, 13}},
		{"sem", "-s", -1, []int{8, 9}},
		{"msg", "-q", -1, []int{11, 12, 13}},
	} {
		data, err := os.ReadFile("/proc/sysvipc/" + k.file)
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) <= k.times[len(k.times)-1] {
				continue
			}
			key, err1 := strconv.ParseInt(f[0], 10, 64)
			if err1 != nil || uint32(key)&0xffff0000 != sysvKeyPrefix {
				continue
			}
			if k.nattch >= 0 && f[k.nattch] != "0" {
				continue
			}
			stale := true
			for _, c := range k.times {
				if v, err := strconv.ParseInt(f[c], 10, 64); err != nil || v > old {
					stale = false
				}
			}
			if stale {
				out, err := exec.Command("ipcrm", k.flag, f[1]).CombinedOutput()
				t.Logf("removed a left-over System V %s, key %#x id %s: %v %s", k.file, key, f[1], err, bytes.TrimSpace(out))
			}
		}
	}
}

// TestSemUndo runs semundo.c through every mode: a process's SEM_UNDO
// adjustments must still be applied when it exits after a restore.
func TestSemUndo(t *testing.T) {
	if os.Getenv("SEAMLESS_SEM_UNDO") == "" {
		t.Skip("known limitation (docs/limitations.md): SEM_UNDO adjustments cannot be read from user space; set SEAMLESS_SEM_UNDO=1 to run this test")
	}
	buildExtra(t, "semundo")
	removeStaleSysV(t)
	w := workload{name: "semundo", procs: 2, usr1: true}
	// A failed run leaves its semaphore set behind: remove it by key.
	t.Cleanup(func() {
		logs, _ := filepath.Glob(filepath.Join(workDir, "semundo-*", "out.log"))
		for _, l := range logs {
			data, _ := os.ReadFile(l)
			if m := regexp.MustCompile(`INFO sem=\d+ key=(0x[0-9a-f]+)`).FindSubmatch(data); m != nil {
				exec.Command("ipcrm", "-S", string(m[1])).Run()
			}
		}
	})
	t.Run("standalone", func(t *testing.T) {
		r := start(t, w)
		ticks := r.waitTicks(0, 3)
		r.checkTree(r.snapshot())
		r.finish(r.signalUSR1(ticks[len(ticks)-1].usr1))
	})
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			needSeamless(t)
			roundTrip(t, w, m)
		})
	}
}

// ---------------------------------------------------------------------------
// Resources that must be refused

// holders are workloads that hold one unsupported resource on fd 40.
var holders = []struct {
	name     string
	resource string // what the checkpoint error must name
}{
	{"hold_uring", "io_uring"},
	{"hold_fanotify", "fanotify"},
	{"hold_perf", "perf_event"},
	{"hold_tun", "/dev/net/tun"},
	// Sockets of kinds seamless does not carry (docs/limitations.md).
	{"hold_icmp", "ICMP (ping) IPv4 socket"},
	{"hold_udplite", "UDP-Lite IPv4 socket"},
	{"hold_raw", "raw IPv4 socket"},
	{"hold_packet", "packet (AF_PACKET) socket"},
	{"hold_netlink", "netlink (NETLINK_ROUTE) socket"},
}

// TestUnsupported checks that a checkpoint of a tree holding a resource
// seamless does not support fails with exit status 1, names the fd and the
// resource, leaves no image, and leaves the tree running, untraced, with
// its state unchanged (the workload checks the resource still works).
func TestUnsupported(t *testing.T) {
	for _, h := range holders {
		testRefused(t, h.name, func(r *run, _ tree) []string {
			checkPlanRefuses(r, []string{"fd 40", h.resource})
			return []string{"fd 40", h.resource}
		})
	}
}

// testRefused runs workload name (built from test/workloads) and checks,
// with and without --leave-running, that its checkpoint is refused with
// exit status 1 and an error holding every string mustName returns for
// the run and its tree, that no image is left, and that the tree runs on, untraced,
// with its state unchanged.
func testRefused(t *testing.T, name string, mustName func(*run, tree) []string) {
	for _, leave := range []bool{false, true} {
		sub := name
		if leave {
			sub += "/leave-running"
		}
		t.Run(sub, func(t *testing.T) {
			needSeamless(t)
			buildExtra(t, name)
			r := start(t, workload{name: name, procs: 1, usr1: true})
			ticks := r.waitTicks(0, 3)
			usr1 := r.signalUSR1(ticks[len(ticks)-1].usr1)
			tr := r.snapshot()
			r.checkTree(tr)
			fp := takeFingerprint(tr, false)
			img := filepath.Join(r.dir, "image")
			args := []string{"checkpoint", "--pid", strconv.Itoa(r.pid), "--dir", img}
			if leave {
				args = append(args, "--leave-running")
			}
			res := runSeamless(args...)
			after := r.afterFailedCheckpoint()
			if res.code != 1 {
				r.fatalf("want exit status 1 (refused); got %s\n%s", res, after)
			}
			for _, want := range mustName(r, tr) {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("the refusal must name %q; stderr:\n%s", want, res.stderr)
				}
			}
			t.Logf("refused in %v: %s", res.elapsed.Round(time.Millisecond), strings.TrimSpace(res.stderr))
			if !strings.HasPrefix(after, "(after the failed checkpoint") {
				r.fatalf("%s", after)
			}
			r.checkAlive(tr)
			r.compareFingerprint("after the refused checkpoint", fp, tr)
			if ents, err := os.ReadDir(img); err == nil {
				t.Errorf("the refused checkpoint left its directory %s, with %d files", img, len(ents))
			}
			r.checkConsecutive(0)
			r.finish(r.signalUSR1(usr1))
		})
	}
}

// ---------------------------------------------------------------------------
// System V IPC across a "reboot"

var infoKeyRe = regexp.MustCompile(`\(key (0x[0-9a-f]+)\)`)

// TestSysVIPCFreshKernel checkpoints sysvipc.c, removes its keyed shared
// memory, semaphore set and message queue (ipcrm), as booting a new kernel
// would, and restores: everything must come back from the image alone,
// under the same ids (the workload keeps them in its memory).
func TestSysVIPCFreshKernel(t *testing.T) {
	needSeamless(t)
	buildExtra(t, "sysvipc")
	if _, err := exec.LookPath("ipcrm"); err != nil {
		t.Skip("ipcrm (util-linux) is not installed")
	}
	removeStaleSysV(t)
	r := start(t, workload{name: "sysvipc", procs: 2, usr1: true})
	var keys []string
	for _, l := range r.readLog() {
		if strings.HasPrefix(l.text, "INFO ids") {
			t.Logf("before: %s", l.text)
			for _, m := range infoKeyRe.FindAllStringSubmatch(l.text, -1) {
				keys = append(keys, m[1])
			}
		}
	}
	if len(keys) != 3 {
		r.fatalf("no INFO ids line with three keys in the log")
	}
	ipcrm := func() string {
		out, err := exec.Command("ipcrm", "-M", keys[0], "-S", keys[1], "-Q", keys[2]).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("%v: %s", err, bytes.TrimSpace(out))
		}
		return "removed"
	}
	t.Cleanup(func() { ipcrm() })
	ticks := r.waitTicks(0, 3)
	usr1 := r.signalUSR1(ticks[len(ticks)-1].usr1)
	tr := r.snapshot()
	r.checkTree(tr)
	fp := takeFingerprint(tr, false)
	img := filepath.Join(r.dir, "image")
	r.checkpoint(img, false, false)
	r.reapTree(tr)
	t.Logf("ipcrm of keys %v after the checkpoint: %s", keys, ipcrm())
	last := r.lastTick()
	r.restoreAndCheck(img, tr, last.n+1, last.n+1, last)
	r.compareFingerprint("after restore", fp, tr)
	t.Logf("last tick before: %s", last.line.text)
	t.Logf("first tick after: %s", r.ticksFrom(r.readLog(), r.restoreN)[0].line.text)
	r.finish(r.signalUSR1(usr1))
}

// ---------------------------------------------------------------------------
// Real programs

// progRun is a real program's process tree under test.
type progRun struct {
	t    *testing.T
	dir  string
	root int
	seen map[int]bool // every PID ever seen in the tree, for cleanup
}

func newProgRun(t *testing.T, name string) *progRun {
	t.Helper()
	dir, err := os.MkdirTemp(workDir, name+"-")
	if err != nil {
		t.Fatal(err)
	}
	p := &progRun{t: t, dir: dir, seen: map[int]bool{}}
	t.Cleanup(p.cleanup)
	return p
}

// cleanup kills every process ever seen in the tree and its descendants.
func (p *progRun) cleanup() {
	if p.root != 0 {
		for _, pid := range descendants(p.root) {
			p.seen[pid] = true
		}
		p.seen[p.root] = true
	}
	for pid := range p.seen {
		unix.Kill(pid, unix.SIGKILL)
	}
	for pid := range p.seen {
		waitGone(pid, 10*time.Second)
	}
	reapStrays()
}

// snapshot records the root and its descendants.
func (p *progRun) snapshot() tree {
	p.t.Helper()
	tr := tree{}
	for _, pid := range append([]int{p.root}, descendants(p.root)...) {
		tids, err := threads(pid)
		if err != nil {
			p.t.Fatalf("threads of %d: %v", pid, err)
		}
		ppid, err := parentOf(pid)
		if err != nil {
			p.t.Fatalf("parent of %d: %v", pid, err)
		}
		tr[pid] = procRec{ppid: ppid, tids: tids}
		p.seen[pid] = true
	}
	return tr
}

// problems lists how the live tree differs from tr: missing processes or
// threads, other parents (the restored root's parent is this test, the
// subreaper), extra processes, traced or stopped threads.
func (p *progRun) problems(tr tree, restored bool) []string {
	var out []string
	for pid, rec := range tr {
		if !alive(pid) {
			out = append(out, fmt.Sprintf("process %d is not running (%s)", pid, procState(pid)))
			continue
		}
		tids, _ := threads(pid)
		have := map[int]bool{}
		for _, tid := range tids {
			have[tid] = true
		}
		for _, tid := range rec.tids {
			if !have[tid] {
				out = append(out, fmt.Sprintf("thread %d of process %d is missing", tid, pid))
			}
		}
		want := rec.ppid
		if pid == p.root && restored {
			want = os.Getpid()
		}
		if ppid, _ := parentOf(pid); ppid != want {
			out = append(out, fmt.Sprintf("process %d has parent %d, want %d", pid, ppid, want))
		}
	}
	for _, pid := range descendants(p.root) {
		if _, ok := tr[pid]; !ok {
			out = append(out, fmt.Sprintf("process %d appeared in the tree", pid))
		}
	}
	return append(out, untraced(tr, nil)...)
}

// checkpointAndRestore checkpoints the tree (killing it), waits until it is
// gone, restores it and checks that the same processes run again. It
// returns the two command runs.
func (p *progRun) checkpointAndRestore(tr tree, img string, between func()) (cp, rs cliResult) {
	p.t.Helper()
	cp = runSeamless("checkpoint", "--pid", strconv.Itoa(p.root), "--dir", img)
	if cp.code != 0 {
		state := "after the failed checkpoint the tree is intact"
		if bad := p.problems(tr, false); len(bad) > 0 {
			state = "AFTER THE FAILED CHECKPOINT: " + strings.Join(bad, "; ")
		}
		p.t.Fatalf("%s\n%s", cp, state)
	}
	for pid := range tr {
		if !waitGone(pid, deadline) {
			p.t.Fatalf("process %d still exists after the checkpoint (%s)", pid, procState(pid))
		}
	}
	if between != nil {
		between()
	}
	rs = runSeamless("restore", "--dir", img)
	if rs.code != 0 {
		p.t.Fatalf("%s", rs)
	}
	if got, err := strconv.Atoi(strings.TrimSpace(rs.stdout)); err != nil || got != p.root {
		p.t.Fatalf("seamless restore printed %q, want the root PID %d", rs.stdout, p.root)
	}
	if bad := p.problems(tr, true); len(bad) > 0 {
		p.t.Fatalf("after restore: %s", strings.Join(bad, "; "))
	}
	return cp, rs
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// needPackage makes sure that a Debian package's command exists, installing
// the package with apt-get if it is missing; it skips the test otherwise.
func needPackage(t *testing.T, command, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(command); err == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", pkg)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if _, lerr := exec.LookPath(command); lerr != nil {
		t.Skipf("%s is not installed and apt-get install %s failed (%v): %s", command, pkg, err, lastLines(string(out), 5))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFor polls cond every 50 ms until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("no %s within %v; last state:\n%s", what, d, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTmux checkpoints and restores a tmux server with two windows: an
// interactive bash with a variable and history, and top. After the restore
// a new tmux client must find the same server (its socket), the same
// windows, the shell's screen and the shell's state.
func TestTmux(t *testing.T) {
	needSeamless(t)
	needPackage(t, "tmux", "tmux")
	needPackage(t, "top", "procps")
	needPackage(t, "bash", "bash")
	p := newProgRun(t, "tmux")
	sock := filepath.Join(p.dir, "sock")
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + p.dir, "SHELL=/bin/sh", "TERM=xterm-256color", "LANG=C.UTF-8", "HISTFILE=/dev/null"}
	tmux := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "tmux", append([]string{"-S", sock}, args...)...)
		cmd.Env = env
		cmd.Dir = p.dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	mustTmux := func(args ...string) string {
		t.Helper()
		out, err := tmux(args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// The server is started by this first client; it daemonizes and, as
	// an orphan, becomes a child of this test (the subreaper).
	mustTmux("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "120", "-y", "40",
		"bash --norc --noprofile -i")
	pidOut := mustTmux("display-message", "-p", "-t", "t", "#{pid}")
	root, err := strconv.Atoi(strings.TrimSpace(pidOut))
	if err != nil {
		t.Fatalf("tmux display -p '#{pid}' printed %q", pidOut)
	}
	p.root = root
	t.Cleanup(func() { tmux("kill-server") })
	// -a after window 0: a bare session as the target can resolve to its
	// current window, index 0, which is taken.
	mustTmux("new-window", "-a", "-t", "t:0", "top -d 0.5")
	capture := func(target string) string {
		out, err := tmux("capture-pane", "-p", "-t", target)
		if err != nil {
			return err.Error()
		}
		return out
	}
	hasLine := func(screen string, re *regexp.Regexp) bool {
		for _, l := range strings.Split(screen, "\n") {
			if re.MatchString(strings.TrimRight(l, " ")) {
				return true
			}
		}
		return false
	}
	for _, keys := range []string{"export VAR=seamless-var-4711", "echo marker-before-one", "echo marker-before-two"} {
		mustTmux("send-keys", "-t", "t:0", keys, "Enter")
	}
	markerTwo := regexp.MustCompile(`^marker-before-two$`)
	waitFor(t, "output of the shell commands", deadline, func() (bool, string) {
		s := capture("t:0")
		return hasLine(s, markerTwo), s
	})
	waitFor(t, "top's screen", deadline, func() (bool, string) {
		s := capture("t:1")
		return strings.Contains(s, "top -"), s
	})
	// pane_current_command is the foreground process group of the pane's
	// terminal as tmux sees it through the master (tcgetpgrp).
	const windowFormat = "#{window_index} #{pane_pid} #{pane_tty} #{pane_current_command} #{pane_width}x#{pane_height}"
	windowsBefore := mustTmux("list-windows", "-t", "t", "-F", windowFormat)
	t.Logf("windows before:\n%s", windowsBefore)
	time.Sleep(300 * time.Millisecond)
	tr := p.snapshot()
	t.Logf("tmux tree before checkpoint (%d processes): %s", len(tr), tr)
	if len(tr) < 3 {
		t.Fatalf("the tmux tree has %d processes, want the server, bash and top at least: %s", len(tr), tr)
	}
	screenBefore := capture("t:0")

	img := filepath.Join(p.dir, "image")
	cp, rs := p.checkpointAndRestore(tr, img, func() {
		// The socket file stays behind; a client must not find a server now.
		if out, err := tmux("list-sessions"); err == nil {
			t.Errorf("a tmux server answered while the tree was checkpointed: %s", out)
		}
	})
	t.Logf("tmux tree of %d processes: checkpoint %v, restore %v, image %d KiB",
		len(tr), cp.elapsed.Round(time.Millisecond), rs.elapsed.Round(time.Millisecond), dirSize(img)/1024)

	windowsAfter, err := tmux("list-windows", "-t", "t", "-F", windowFormat)
	if err != nil {
		t.Fatalf("after restore: %v", err)
	}
	if windowsAfter != windowsBefore {
		t.Errorf("list-windows after restore:\n%s\nwant:\n%s", windowsAfter, windowsBefore)
	}
	screenAfter := capture("t:0")
	if !hasLine(screenAfter, markerTwo) || !strings.Contains(screenAfter, "marker-before-one") {
		t.Errorf("the shell's screen lost its earlier output; now:\n%s\nbefore:\n%s", screenAfter, screenBefore)
	}
	mustTmux("send-keys", "-t", "t:0", `echo "var=$VAR"; history | tail -3`, "Enter")
	varLine := regexp.MustCompile(`^var=seamless-var-4711$`)
	histLine := regexp.MustCompile(`^\s*[0-9]+\s+echo marker-before-two$`)
	waitFor(t, "the shell's variable and history after restore", deadline, func() (bool, string) {
		s := capture("t:0")
		return hasLine(s, varLine) && hasLine(s, histLine), s
	})
	// top must go on drawing: its first line carries the time of day.
	first := capture("t:1")
	waitFor(t, "top redrawing its screen after restore", 10*time.Second, func() (bool, string) {
		s := capture("t:1")
		return strings.Contains(s, "top -") && s != first, s
	})
	if bad := p.problems(tr, true); len(bad) > 0 {
		t.Errorf("after using the restored server: %s", strings.Join(bad, "; "))
	}
	if _, err := tmux("kill-server"); err != nil {
		t.Errorf("kill-server: %v", err)
	}
	if !waitGone(root, deadline) {
		t.Errorf("the tmux server %d did not exit after kill-server", root)
	}
}

// pipelineBlock is the size of the producer's numbered blocks.
const pipelineBlock = 4096

// mix is wl_mix of common.h.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// checkBlocks checks that data is exactly blocks 0..n-1 of the producer.
func checkBlocks(data []byte, n uint64) error {
	if uint64(len(data)) != n*pipelineBlock {
		return fmt.Errorf("%d bytes, want %d blocks = %d bytes", len(data), n, n*pipelineBlock)
	}
	for seq := uint64(0); seq < n; seq++ {
		b := data[seq*pipelineBlock : (seq+1)*pipelineBlock]
		if got := binary.LittleEndian.Uint64(b); got != seq {
			return fmt.Errorf("block %d is numbered %d (blocks lost or duplicated)", seq, got)
		}
		for i := 8; i < pipelineBlock; i++ {
			if want := byte(mix(seq*pipelineBlock + uint64(i))); b[i] != want {
				return fmt.Errorf("block %d byte %d is %#x, want %#x", seq, i, b[i], want)
			}
		}
	}
	return nil
}

// TestPipeline checkpoints and restores `sh -c 'producer | gzip -1 |
// consumer OUT'` as one tree (the shell is the root): the bytes in the
// pipes and inside gzip must all arrive, once, in order, so that the
// decompressed output is exactly the producer's numbered blocks.
func TestPipeline(t *testing.T) {
	for _, rounds := range []int{1, 2} {
		t.Run(fmt.Sprintf("rounds=%d", rounds), func(t *testing.T) {
			needSeamless(t)
			needPackage(t, "gzip", "gzip")
			buildExtra(t, "pipeline_producer", "pipeline_consumer")
			pipeline(t, rounds)
		})
	}
}

func pipeline(t *testing.T, rounds int) {
	p := newProgRun(t, "pipeline")
	stop := filepath.Join(p.dir, "stop")
	out := filepath.Join(p.dir, "out.gz")
	logPath := filepath.Join(p.dir, "stderr.log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	script := fmt.Sprintf("%s %s | gzip -1 | %s %s",
		filepath.Join(binDir, "pipeline_producer"), stop, filepath.Join(binDir, "pipeline_consumer"), out)
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = p.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.root = cmd.Process.Pid
	logTail := func() string {
		data, _ := os.ReadFile(logPath)
		return lastLines(string(data), 10)
	}
	size := func() int64 {
		st, err := os.Stat(out)
		if err != nil {
			return 0
		}
		return st.Size()
	}
	// gzip reads up to 256 KiB before it writes: wait until output flows.
	waitFor(t, "gzip output in "+out, deadline, func() (bool, string) {
		return size() > 0, logTail()
	})
	var tr tree
	waitFor(t, "the pipeline's four processes", deadline, func() (bool, string) {
		tr = p.snapshot()
		return len(tr) == 4, tr.String()
	})
	t.Logf("pipeline tree: %s", tr)
	for round := 1; round <= rounds; round++ {
		time.Sleep(time.Duration(500+round*700) * time.Millisecond)
		atCheckpoint := size()
		img := filepath.Join(p.dir, fmt.Sprintf("image-%d", round))
		cp, rs := p.checkpointAndRestore(tr, img, nil)
		t.Logf("round %d: checkpoint %v, restore %v, image %d KiB, output %d bytes at checkpoint",
			round, cp.elapsed.Round(time.Millisecond), rs.elapsed.Round(time.Millisecond), dirSize(img)/1024, atCheckpoint)
		waitFor(t, "output growing after restore", deadline, func() (bool, string) {
			return size() > atCheckpoint, fmt.Sprintf("output %d bytes; %s", size(), logTail())
		})
		if bad := p.problems(tr, true); len(bad) > 0 {
			t.Fatalf("after restore %d: %s\n%s", round, strings.Join(bad, "; "), logTail())
		}
	}
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The root is our child: started by us, or restored and reparented to us.
	var st unix.WaitStatus
	end := time.Now().Add(deadline)
	for {
		got, err := unix.Wait4(p.root, &st, unix.WNOHANG, nil)
		if err != nil && !errors.Is(err, unix.EINTR) {
			t.Fatalf("wait4(%d): %v", p.root, err)
		}
		if got == p.root {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the pipeline did not finish after the stop file: %s\n%s", procState(p.root), logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Release()
	if !st.Exited() || st.ExitStatus() != 0 {
		t.Fatalf("sh ended with %s\n%s", describeStatus(st), logTail())
	}
	for pid := range tr {
		if !waitGone(pid, deadline) {
			t.Fatalf("process %d of the pipeline still exists (%s)", pid, procState(pid))
		}
	}
	logData, _ := os.ReadFile(logPath)
	var produced, consumed uint64
	var sawP, sawC bool
	for _, l := range strings.Split(string(logData), "\n") {
		if v, ok := strings.CutPrefix(l, "PRODUCED "); ok {
			produced, err = strconv.ParseUint(v, 10, 64)
			sawP = err == nil
		}
		if v, ok := strings.CutPrefix(l, "CONSUMED "); ok {
			consumed, err = strconv.ParseUint(v, 10, 64)
			sawC = err == nil
		}
	}
	if !sawP || !sawC {
		t.Fatalf("no PRODUCED/CONSUMED lines in the log:\n%s", logData)
	}
	if uint64(size()) != consumed {
		t.Errorf("the consumer read %d bytes, the output file has %d", consumed, size())
	}
	gunzip := exec.Command("gunzip", "-c", out)
	var data, gerr bytes.Buffer
	gunzip.Stdout, gunzip.Stderr = &data, &gerr
	if err := gunzip.Run(); err != nil {
		t.Fatalf("gunzip < %s: %v: %s (%d bytes decompressed, %d blocks produced)",
			out, err, gerr.String(), data.Len(), produced)
	}
	if err := checkBlocks(data.Bytes(), produced); err != nil {
		t.Fatalf("decompressed output: %v", err)
	}
	t.Logf("%d blocks (%d KiB) produced, compressed to %d KiB, all arrived exactly once",
		produced, produced*pipelineBlock/1024, consumed/1024)
}
