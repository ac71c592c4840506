// Package roundtrip checkpoints and restores real processes with the
// seamless binary and checks that they go on exactly where they were.
//
// The workloads (test/workloads) verify their own state on every tick and
// print FAIL on any difference; this harness drives them through
// `seamless checkpoint` and `seamless restore` and checks what only an
// outsider can see: the same PIDs and TIDs exist again, the tick counter
// and the incarnation nonce continue (a restart from scratch prints a new
// nonce and a second READY), signals sent after the restore are counted,
// and the tree finishes cleanly with status 0.
//
// Run as root: go test ./test/roundtrip/ -v -count=1
// Environment: SEAMLESS_BIN uses a prebuilt seamless instead of building
// ./cmd/seamless; SEAMLESS_KEEP=1 keeps the work directory (logs, images).
package roundtrip

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// deadline bounds every wait; it is generous on purpose: no test asserts timing.
const deadline = 60 * time.Second

// commandTimeout bounds one run of the seamless binary.
const commandTimeout = 120 * time.Second

var (
	skipReason  string // non-empty: every test skips with this message
	workDir     string // temporary directory for binaries and runs
	binDir      string // compiled workloads
	seamlessBin string // the seamless binary
	seamlessErr error  // why seamless could not be built
	buildErr    error  // why the workloads could not be built
)

// workload describes one program of test/workloads.
type workload struct {
	name  string // binary name: test/workloads/NAME.c or test/workloads/gowork
	procs int    // processes in its tree
	usr1  bool   // counts SIGUSR1 in the usr1= field of its TICK lines
	// runtime marks a program whose runtime maps memory and starts threads
	// on its own (Go): its memory map and thread list are not compared.
	runtime bool
	// seccompLog counts the seccomp filters with SECCOMP_FILTER_FLAG_LOG
	// over all threads of its tree.
	seccompLog int
	// maxImage, when set, bounds the size of its images in bytes.
	maxImage int64
	// stopped marks a workload that keeps some of its processes stopped
	// (job control): the ones stopped once it is READY must stay so.
	stopped bool
}

var workloads = []workload{
	{name: "single", procs: 1, usr1: true},
	{name: "threads", procs: 1, usr1: true},
	{name: "blocking", procs: 1, usr1: true},
	{name: "fifo", procs: 1, usr1: true},
	{name: "events", procs: 1, usr1: true},
	{name: "tree", procs: 4},
	{name: "xstate", procs: 1, usr1: true},
	{name: "creds", procs: 1, usr1: true},
	{name: "gowork", procs: 1, usr1: true, runtime: true},
	// Issue 4. zombie.c and deadleader.c have their own tests (TestZombie,
	// TestDeadLeader in programs_test.go): their trees show processes in
	// state Z, and this table expects running ones.
	{name: "pty", procs: 3, usr1: true},
	{name: "locks", procs: 2, usr1: true},
	{name: "sysvipc", procs: 2, usr1: true},
	{name: "bigtree", procs: 54, usr1: true},
	{name: "ctty", procs: 2, usr1: true},
	{name: "seccomp", procs: 1, usr1: true, seccompLog: 2},
	{name: "vdso", procs: 1, usr1: true},
	// Issue 12: shared kernel objects, recreated files, descriptor flags.
	{name: "shared", procs: 3, usr1: true},
	// ghosts.c holds a 1 GiB sparse deleted file: its holes stay out of the image.
	{name: "ghosts", procs: 1, usr1: true, maxImage: 64 << 20},
	{name: "sigio", procs: 1, usr1: true},
	{name: "epollx", procs: 1, usr1: true},
	{name: "chroot", procs: 1, usr1: true},
	{name: "handles", procs: 2, usr1: true},
	{name: "lease", procs: 1, usr1: true},
	{name: "shmfile", procs: 2, usr1: true},
	// Issue 12.
	{name: "attrs", procs: 2, usr1: true},
	{name: "mapattrs", procs: 1, usr1: true},
	{name: "ptyattrs", procs: 1, usr1: true},
	{name: "seccomp_tsync", procs: 1, usr1: true},
	// Clocks 1,000,000 s ahead of the kernel's, as after a kexec.
	{name: "clocks", procs: 1, usr1: true},
}

// mode is one way of going through checkpoint and restore.
type mode struct {
	name         string
	rounds       int  // checkpoint/restore cycles in a row
	leaveRunning bool // checkpoint with --leave-running, then kill the tree by hand
	// move checkpoints with --move-memory: the tree's memory is dropped as
	// it is written, and written back when the tree runs on.
	move bool
}

var modes = []mode{
	{name: "once", rounds: 1},
	{name: "twice", rounds: 2},
	{name: "leave-running", rounds: 1, leaveRunning: true},
	{name: "move", rounds: 1, move: true},
	{name: "move-leave-running", rounds: 1, leaveRunning: true, move: true},
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		skipReason = "round-trip tests need root (ptrace, clone3 with set_tid, setuid workloads); run as root"
		return m.Run()
	}
	// Restored trees are reparented to the nearest child subreaper: us.
	// PID 1 on these machines does not reap orphans.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintf(os.Stderr, "PR_SET_CHILD_SUBREAPER: %v\n", err)
		return 1
	}
	closeInheritedFds()
	var err error
	workDir, err = os.MkdirTemp("", "seamless-roundtrip-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Workloads that drop privileges must still reach their stop file.
	if err := os.Chmod(workDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		reapStrays()
		// shmfile.c's POSIX shared memory objects, left by a failed run.
		if stale, _ := filepath.Glob("/dev/shm/seamless-wl-*"); len(stale) > 0 {
			for _, f := range stale {
				os.Remove(f)
			}
		}
		if os.Getenv("SEAMLESS_KEEP") == "" {
			os.RemoveAll(workDir)
		} else {
			fmt.Fprintf(os.Stderr, "kept %s\n", workDir)
		}
	}()
	binDir = filepath.Join(workDir, "bin")
	buildErr = buildWorkloads(binDir)
	seamlessBin, seamlessErr = buildSeamless(binDir)
	return m.Run()
}

// closeInheritedFds marks every fd above 2 that the test process inherited
// close-on-exec, so that each workload starts with exactly stdin, stdout
// and stderr whatever ran the tests (a shell or CI may leak pipes).
func closeInheritedFds() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
}

// moduleRoot is the repository root, two levels above this package.
func moduleRoot() string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return root
}

// buildWorkloads compiles every C workload and the Go one into dir.
func buildWorkloads(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	src := filepath.Join(moduleRoot(), "test", "workloads")
	for _, w := range workloads {
		var cmd *exec.Cmd
		if w.name == "gowork" {
			cmd = exec.Command("go", "build", "-o", filepath.Join(dir, w.name),
				"github.com/seamless-linux/seamless/test/workloads/gowork")
			cmd.Dir = moduleRoot()
		} else {
			cmd = exec.Command("gcc", "-O1", "-g", "-pthread", "-Wall", "-o",
				filepath.Join(dir, w.name), filepath.Join(src, w.name+".c"))
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build workload %s: %v\n%s", w.name, err, out)
		}
	}
	return nil
}

// buildSeamless builds ./cmd/seamless, or takes $SEAMLESS_BIN.
func buildSeamless(dir string) (string, error) {
	if bin := os.Getenv("SEAMLESS_BIN"); bin != "" {
		return bin, nil
	}
	bin := filepath.Join(dir, "seamless")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/seamless-linux/seamless/cmd/seamless")
	cmd.Dir = moduleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build seamless: %v\n%s", err, out)
	}
	return bin, nil
}

// needWorkloads skips or fails t when the environment cannot run workloads.
func needWorkloads(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// TestWorkloadsStandalone runs every workload without seamless: it must
// start, tick, count a SIGUSR1 and finish with DONE ok. This checks the
// workloads themselves.
func TestWorkloadsStandalone(t *testing.T) {
	needWorkloads(t)
	for _, w := range workloads {
		t.Run(w.name, func(t *testing.T) {
			r := start(t, w)
			ticks := r.waitTicks(0, 3)
			r.checkTree(r.snapshot())
			usr1 := 0
			if w.usr1 {
				usr1 = r.signalUSR1(ticks[len(ticks)-1].usr1)
			}
			r.finish(usr1)
		})
	}
}

// TestRoundTrip checkpoints and restores every workload in every mode.
func TestRoundTrip(t *testing.T) {
	needWorkloads(t)
	if seamlessErr != nil {
		t.Fatal(seamlessErr)
	}
	for _, w := range workloads {
		for _, m := range modes {
			t.Run(w.name+"/"+m.name, func(t *testing.T) {
				roundTrip(t, w, m)
			})
		}
	}
}

// roundTrip is one workload through one mode, start to clean finish.
func roundTrip(t *testing.T, w workload, m mode) {
	r := start(t, w)
	ticks := r.waitTicks(0, 3)
	usr1 := 0
	if w.usr1 {
		usr1 = r.signalUSR1(ticks[len(ticks)-1].usr1)
	}
	tree := r.snapshot()
	r.checkTree(tree)
	t.Logf("tree before checkpoint: %s", tree)

	for round := 1; round <= m.rounds; round++ {
		img := filepath.Join(r.dir, fmt.Sprintf("image-%d", round))
		before := r.lastTick()
		r.pause()
		fp := takeFingerprint(tree, w.runtime)
		if m.leaveRunning {
			r.checkpoint(img, true, m.move)
			r.checkImageSize(img)
			r.checkImageSeccomp(img, fp)
			atCheckpoint := r.lastTick()
			// The tree must go on, untouched, after a --leave-running checkpoint.
			r.checkAlive(tree)
			r.compareFingerprint("after checkpoint --leave-running", fp, tree)
			r.waitTicks(r.logSize(), 3)
			r.checkConsecutive(0)
			r.inspect(img)
			r.killTree(tree)
			r.reapTree(tree)
			r.restoreAndCheck(img, tree, before.n+1, atCheckpoint.n+1, before)
		} else {
			r.checkpoint(img, false, m.move)
			r.checkImageSize(img)
			r.checkImageSeccomp(img, fp)
			r.reapTree(tree)
			r.inspect(img)
			last := r.lastTick() // the tree is dead: nothing was printed after this
			r.restoreAndCheck(img, tree, last.n+1, last.n+1, last)
		}
		r.compareFingerprint(fmt.Sprintf("after restore %d", round), fp, tree)
		if w.usr1 {
			usr1 = r.signalUSR1(usr1)
		}
	}
	r.finish(usr1)
}

// checkImageSize fails when img is larger than the workload allows.
func (r *run) checkImageSize(img string) {
	r.t.Helper()
	if r.w.maxImage == 0 {
		return
	}
	if n := dirSize(img); n > r.w.maxImage {
		r.fatalf("image %s is %d MiB, want at most %d MiB", img, n>>20, r.w.maxImage>>20)
	}
}

// run is one started workload and everything known about it.
type run struct {
	t        *testing.T
	w        workload
	dir      string // its working directory
	logPath  string // its stdout and stderr
	stopPath string // created to ask it to finish
	pid      int    // the root PID
	cmd      *exec.Cmd
	restored bool            // the root is no longer cmd's process but a restored one
	tree     map[int]procRec // every process ever seen in the tree
	exited   bool            // the root has been reaped
	restoreN int64           // offset in the log where the latest restored run starts
	// filters are the seccomp filters of the first image, by thread.
	filters map[threadKey][]imageFilter
	// restoreArgs are added to `seamless restore`; restoreStderr is what the
	// latest restore printed on stderr (its warnings).
	restoreArgs   []string
	restoreStderr string
	// vdsoProxies are the address ranges ("lo-hi" as in maps) where a
	// restore put a vDSO proxy: memory maps are compared without them and
	// without the kernel's vDSO mappings, which moved.
	vdsoProxies map[string]bool
	// stopped are the processes the workload keeps stopped (job control).
	stopped map[int]bool
}

// procRec is what the harness records about one process of a tree.
type procRec struct {
	ppid int
	tids []int
}

// tree maps PID to its record.
type tree map[int]procRec

func (tr tree) String() string {
	var pids []int
	for pid := range tr {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	var b strings.Builder
	for i, pid := range pids {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "pid %d ppid %d tids %v", pid, tr[pid].ppid, tr[pid].tids)
	}
	return b.String()
}

// start launches w in its own session, in a fresh directory, with stdout
// and stderr appended to a log file and stdin from /dev/null.
func start(t *testing.T, w workload) *run {
	t.Helper()
	dir, err := os.MkdirTemp(workDir, w.name+"-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &run{t: t, w: w, dir: dir, logPath: filepath.Join(dir, "out.log"),
		stopPath: filepath.Join(dir, "stop"), tree: map[int]procRec{}}
	logf, err := os.OpenFile(r.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	r.cmd = exec.Command(filepath.Join(binDir, w.name), r.stopPath)
	r.cmd.Dir = dir
	r.cmd.Stdout = logf
	r.cmd.Stderr = logf
	// Its own session: every pgid and sid of the tree is then inside the tree.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.pid = r.cmd.Process.Pid
	t.Cleanup(r.cleanup)
	r.waitLine(0, "READY", func(l string) bool { return l == "READY" })
	return r
}

// cleanup kills whatever is left of the tree and reaps it, and any stray
// child of the test process (a half-restored tree, for instance).
func (r *run) cleanup() {
	if !r.exited {
		pids := map[int]bool{r.pid: true}
		for pid := range r.tree {
			pids[pid] = true
		}
		for _, pid := range descendants(r.pid) {
			pids[pid] = true
		}
		for pid := range pids {
			if alive(pid) {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
		for pid := range pids {
			waitGone(pid, 10*time.Second)
		}
		r.exited = true
	}
	if r.cmd.Process != nil {
		r.cmd.Process.Release()
	}
	reapStrays()
	if r.t.Failed() {
		r.t.Logf("work directory %s; log tail:\n%s", r.dir, r.logTail(40))
	}
}

// fatalf fails the test with the workload log's tail appended.
func (r *run) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("%s\n--- %s log tail ---\n%s", fmt.Sprintf(format, args...), r.w.name, r.logTail(25))
}

// logLine is one line of the workload log and where it starts.
type logLine struct {
	off  int64
	text string
}

// tick is a parsed TICK line.
type tick struct {
	n     uint64
	pid   int
	nonce string
	usr1  int
	line  logLine
}

func (r *run) readLog() []logLine {
	data, err := os.ReadFile(r.logPath)
	if err != nil {
		r.t.Fatalf("read log: %v", err)
	}
	var lines []logLine
	var off int64
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break // a partial line: not written completely yet
		}
		lines = append(lines, logLine{off: off, text: string(data[:i])})
		off += int64(i + 1)
		data = data[i+1:]
	}
	return lines
}

func (r *run) logSize() int64 {
	st, err := os.Stat(r.logPath)
	if err != nil {
		r.t.Fatalf("stat log: %v", err)
	}
	return st.Size()
}

func (r *run) logTail(n int) string {
	data, err := os.ReadFile(r.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func parseTick(l logLine) (tick, bool) {
	f := strings.Fields(l.text)
	if len(f) < 2 || f[0] != "TICK" {
		return tick{}, false
	}
	n, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return tick{}, false
	}
	tk := tick{n: n, line: l, usr1: -1}
	for _, kv := range f[2:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "pid":
			tk.pid, _ = strconv.Atoi(v)
		case "nonce":
			tk.nonce = v
		case "usr1":
			tk.usr1, _ = strconv.Atoi(v)
		}
	}
	return tk, true
}

// ticksFrom returns the TICK lines starting at or after offset from.
func (r *run) ticksFrom(lines []logLine, from int64) []tick {
	var out []tick
	for _, l := range lines {
		if l.off < from {
			continue
		}
		if tk, ok := parseTick(l); ok {
			out = append(out, tk)
		}
	}
	return out
}

// checkLog fails on a FAIL line anywhere and on a second READY (a cold restart).
func (r *run) checkLog(lines []logLine) {
	r.t.Helper()
	ready := 0
	for _, l := range lines {
		if strings.HasPrefix(l.text, "FAIL") {
			r.fatalf("workload reported: %s", l.text)
		}
		if l.text == "READY" {
			ready++
		}
	}
	if ready > 1 {
		r.fatalf("workload printed READY %d times: it started again from scratch", ready)
	}
}

// waitLine waits for a line after offset from that satisfies ok, failing
// early on FAIL lines or when the root process has died.
func (r *run) waitLine(from int64, what string, ok func(string) bool) logLine {
	r.t.Helper()
	end := time.Now().Add(deadline)
	for {
		lines := r.readLog()
		r.checkLog(lines)
		for _, l := range lines {
			if l.off >= from && ok(l.text) {
				return l
			}
		}
		if !alive(r.pid) {
			lines = r.readLog()
			r.checkLog(lines)
			for _, l := range lines {
				if l.off >= from && ok(l.text) {
					return l
				}
			}
			r.fatalf("waiting for %s: root process %d died (%s)", what, r.pid, r.exitStatus())
		}
		if time.Now().After(end) {
			r.fatalf("no %s within %v", what, deadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitTicks waits for n TICK lines after offset from and returns them.
func (r *run) waitTicks(from int64, n int) []tick {
	r.t.Helper()
	var got []tick
	r.waitLine(from, fmt.Sprintf("%d TICK lines", n), func(string) bool {
		got = r.ticksFrom(r.readLog(), from)
		return len(got) >= n
	})
	r.checkConsecutive(0)
	return got
}

// lastTick is the last TICK line in the log so far.
func (r *run) lastTick() tick {
	r.t.Helper()
	ticks := r.ticksFrom(r.readLog(), 0)
	if len(ticks) == 0 {
		r.fatalf("no TICK line yet")
	}
	return ticks[len(ticks)-1]
}

// checkConsecutive checks that the ticks from offset from on count up by
// one, keep the PID and nonce, except where a restore starts over from an
// older image (the harness checks that boundary itself).
func (r *run) checkConsecutive(from int64) {
	r.t.Helper()
	ticks := r.ticksFrom(r.readLog(), from)
	for i := 1; i < len(ticks); i++ {
		prev, cur := ticks[i-1], ticks[i]
		if cur.line.off >= r.restoreN && prev.line.off < r.restoreN {
			continue
		}
		if cur.n != prev.n+1 {
			r.fatalf("TICK %d followed by TICK %d (lines %q, %q)", prev.n, cur.n, prev.line.text, cur.line.text)
		}
		if cur.nonce != prev.nonce || cur.pid != prev.pid {
			r.fatalf("incarnation changed between %q and %q", prev.line.text, cur.line.text)
		}
	}
}

// signalUSR1 sends SIGUSR1 to the root and waits until it has been counted.
func (r *run) signalUSR1(count int) int {
	r.t.Helper()
	from := r.logSize()
	if err := unix.Kill(r.pid, unix.SIGUSR1); err != nil {
		r.fatalf("kill -USR1 %d: %v", r.pid, err)
	}
	want := count + 1
	r.waitLine(from, fmt.Sprintf("a TICK with usr1=%d", want), func(l string) bool {
		tk, ok := parseTick(logLine{text: l})
		if ok && tk.usr1 > want {
			r.fatalf("usr1=%d after %d SIGUSR1s: %q", tk.usr1, want, l)
		}
		return ok && tk.usr1 == want
	})
	return want
}

// snapshot records every process of the tree (root and descendants) with
// its parent and threads, and remembers them for cleanup.
func (r *run) snapshot() tree {
	r.t.Helper()
	tr := tree{}
	for _, pid := range append([]int{r.pid}, descendants(r.pid)...) {
		tids, err := threads(pid)
		if err != nil {
			r.fatalf("threads of %d: %v", pid, err)
		}
		ppid, err := parentOf(pid)
		if err != nil {
			r.fatalf("parent of %d: %v", pid, err)
		}
		tr[pid] = procRec{ppid: ppid, tids: tids}
		r.tree[pid] = tr[pid]
	}
	return tr
}

// checkTree checks the size of the tree against the workload's.
func (r *run) checkTree(tr tree) {
	r.t.Helper()
	if len(tr) != r.w.procs {
		r.fatalf("tree has %d processes, want %d: %s", len(tr), r.w.procs, tr)
	}
}

// checkAlive checks that every PID and TID of tr exists, each TID as a
// thread of its process, and that each process has its recorded parent
// (the root's parent is this test process, as the subreaper, once restored).
func (r *run) checkAlive(tr tree) {
	r.t.Helper()
	for pid, rec := range tr {
		if !alive(pid) {
			r.fatalf("process %d is not running (%s)", pid, procState(pid))
		}
		tids, err := threads(pid)
		if err != nil {
			r.fatalf("threads of %d: %v", pid, err)
		}
		have := map[int]bool{}
		for _, tid := range tids {
			have[tid] = true
		}
		for _, tid := range rec.tids {
			if !have[tid] {
				r.fatalf("thread %d of process %d is missing: threads now %v, were %v", tid, pid, tids, rec.tids)
			}
		}
		ppid, err := parentOf(pid)
		if err != nil {
			r.fatalf("parent of %d: %v", pid, err)
		}
		want := rec.ppid
		if pid == r.pid && r.restored {
			want = os.Getpid()
		}
		if ppid != want {
			r.fatalf("process %d has parent %d, want %d", pid, ppid, want)
		}
	}
	now := r.snapshotQuiet()
	for pid := range now {
		if _, ok := tr[pid]; !ok {
			r.fatalf("process %d appeared in the tree: %s", pid, now)
		}
	}
}

// snapshotQuiet lists the live tree without recording it.
func (r *run) snapshotQuiet() tree {
	tr := tree{}
	for _, pid := range append([]int{r.pid}, descendants(r.pid)...) {
		tids, _ := threads(pid)
		ppid, _ := parentOf(pid)
		tr[pid] = procRec{ppid: ppid, tids: tids}
	}
	return tr
}

// seamless runs the seamless binary and returns its stdout.
func (r *run) seamless(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, seamlessBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("seamless %s: %v\nstdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// pause waits a random 0-25 ms so that checkpoints land at varied points
// of the workload's cycle: in a system call or in the middle of its checks.
func (r *run) pause() {
	d := time.Duration(rand.IntN(25000)) * time.Microsecond
	r.t.Logf("checkpoint after a pause of %v", d)
	time.Sleep(d)
}

// compareFingerprint reports every difference between what /proc showed
// before the checkpoint and now, and any thread still traced or stopped.
// The differences are errors, not fatal: the workload's own checks still run.
func (r *run) compareFingerprint(when string, before fingerprint, tr tree) {
	r.t.Helper()
	if bad := untraced(tr, r.stopped); len(bad) > 0 {
		r.t.Errorf("%s: %s", when, strings.Join(bad, "; "))
	}
	after := takeFingerprint(tr, r.w.runtime)
	if len(r.vdsoProxies) > 0 {
		before, after = before.withoutVDSO(r.vdsoProxies), after.withoutVDSO(r.vdsoProxies)
	}
	if d := before.diff(after); len(d) > 0 {
		r.t.Errorf("%s: /proc differs from before the checkpoint:\n%s", when, strings.Join(d, "\n"))
	}
}

// checkpoint dumps the tree into img, killing it unless leave is set.
func (r *run) checkpoint(img string, leave, move bool) {
	r.t.Helper()
	args := []string{"checkpoint", "--pid", strconv.Itoa(r.pid), "--dir", img}
	if leave {
		args = append(args, "--leave-running")
	}
	if move {
		args = append(args, "--move-memory")
	}
	if _, err := r.seamless(args...); err != nil {
		r.fatalf("%v\n%s", err, r.afterFailedCheckpoint())
	}
}

// afterFailedCheckpoint checks that a failed checkpoint left the tree as it
// was: running, untraced, still ticking without FAIL (a failure before the
// point of no return must never be worse than not trying). It describes
// what it found.
func (r *run) afterFailedCheckpoint() string {
	var problems []string
	for pid := range r.tree {
		if !alive(pid) {
			problems = append(problems, fmt.Sprintf("process %d is not running (%s)", pid, procState(pid)))
		}
	}
	problems = append(problems, untraced(tree(r.tree), r.stopped)...)
	if len(problems) == 0 {
		from := r.logSize()
		end := time.Now().Add(deadline)
		for {
			lines := r.readLog()
			var fail string
			for _, l := range lines {
				if strings.HasPrefix(l.text, "FAIL") {
					fail = l.text
				}
			}
			if fail != "" {
				problems = append(problems, "the workload then reported: "+fail)
				break
			}
			if len(r.ticksFrom(lines, from)) >= 3 {
				break
			}
			if time.Now().After(end) || !alive(r.pid) {
				problems = append(problems, "the workload stopped ticking after the failed checkpoint")
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if len(problems) == 0 {
		return "(after the failed checkpoint the tree is still running, untraced, and ticking: good)"
	}
	return "AFTER THE FAILED CHECKPOINT: " + strings.Join(problems, "; ")
}

// inspect describes img; an inspect failure is reported but not fatal.
func (r *run) inspect(img string) {
	r.t.Helper()
	out, err := r.seamless("inspect", img)
	if err != nil {
		r.t.Errorf("%v", err)
		return
	}
	if strings.TrimSpace(out) == "" {
		r.t.Errorf("seamless inspect %s printed nothing", img)
	}
	out, err = r.seamless("inspect", img, "--json")
	if err != nil {
		r.t.Errorf("%v", err)
		return
	}
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		r.t.Errorf("seamless inspect --json: not JSON: %v\n%s", err, out)
	}
}

// killTree SIGKILLs every process of tr, parents before children, so that
// no process of the tree sees a child die and reports it as a failure.
func (r *run) killTree(tr tree) {
	depth := func(pid int) int {
		d := 0
		for p := pid; p != r.pid && d <= len(tr); d++ {
			rec, ok := tr[p]
			if !ok {
				break
			}
			p = rec.ppid
		}
		return d
	}
	var pids []int
	for pid := range tr {
		pids = append(pids, pid)
	}
	sort.Slice(pids, func(i, j int) bool { return depth(pids[i]) < depth(pids[j]) })
	// Stop them all first, so that no child sees its parent die and
	// reports that as a failure before it is killed itself.
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGSTOP)
	}
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGKILL)
	}
}

// reapTree waits until every process of tr is gone, reaping those that are
// children of the test process (the root, and orphans reparented to us).
func (r *run) reapTree(tr tree) {
	r.t.Helper()
	for pid := range tr {
		if !waitGone(pid, deadline) {
			r.fatalf("process %d still exists after the checkpoint (%s)", pid, procState(pid))
		}
	}
	r.exited = true
}

// restoreAndCheck restores img and checks the tree and its output: the
// first tick after the restore must lie in [lo, hi], with the nonce and
// PID of ref, and the usr1 count of ref or more.
func (r *run) restoreAndCheck(img string, tr tree, lo, hi uint64, ref tick) {
	r.t.Helper()
	from := r.logSize()
	r.restoreN = from
	res := runSeamless(append([]string{"restore", "--dir", img}, r.restoreArgs...)...)
	r.exited = false
	r.restored = true
	if res.code != 0 {
		r.fatalf("%v", res)
	}
	r.restoreStderr = res.stderr
	out := res.stdout
	got, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		r.fatalf("seamless restore printed %q, want the root PID on one line", out)
	}
	if got != r.pid {
		r.fatalf("seamless restore printed PID %d, want %d", got, r.pid)
	}
	r.checkAlive(tr)
	ticks := r.waitTicks(from, 10)
	first := ticks[0]
	r.t.Logf("restored %s: last TICK before %d, first after %d (allowed %d..%d)", img, ref.n, first.n, lo, hi)
	if first.n < lo || first.n > hi {
		r.fatalf("first TICK after restore is %d, want %d..%d (last before: %q; first after: %q)",
			first.n, lo, hi, ref.line.text, first.line.text)
	}
	if first.nonce != ref.nonce || first.pid != ref.pid {
		r.fatalf("restored run is another incarnation: before %q, after %q", ref.line.text, first.line.text)
	}
	if first.usr1 < ref.usr1 {
		r.fatalf("SIGUSR1 count went back from %d to %d", ref.usr1, first.usr1)
	}
	r.checkConsecutive(from)
	r.checkAlive(tr)
}

// finish asks the workload to stop, waits for DONE ok and a clean exit of
// the root, and checks that the whole tree is gone.
func (r *run) finish(usr1 int) {
	r.t.Helper()
	from := r.logSize()
	if err := os.WriteFile(r.stopPath, nil, 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.waitLine(from, "DONE ok", func(l string) bool { return l == "DONE ok" })
	st := r.waitExit()
	if !st.Exited() || st.ExitStatus() != 0 {
		r.fatalf("root %d ended with %s after DONE ok", r.pid, describeStatus(st))
	}
	for pid := range r.tree {
		if !waitGone(pid, deadline) {
			r.fatalf("process %d of the tree still exists after the root exited (%s)", pid, procState(pid))
		}
	}
	r.exited = true
	lines := r.readLog()
	r.checkLog(lines)
	r.checkConsecutive(0)
	if r.w.usr1 {
		ticks := r.ticksFrom(lines, 0)
		if last := ticks[len(ticks)-1]; last.usr1 != usr1 {
			r.fatalf("usr1=%d at the end, %d SIGUSR1s were sent", last.usr1, usr1)
		}
	}
}

// waitExit reaps the root (our child: started by us, or reparented to us
// as the subreaper) and returns its wait status.
func (r *run) waitExit() unix.WaitStatus {
	r.t.Helper()
	end := time.Now().Add(deadline)
	for {
		var st unix.WaitStatus
		got, err := unix.Wait4(r.pid, &st, unix.WNOHANG, nil)
		if err != nil && !errors.Is(err, unix.EINTR) {
			r.fatalf("wait4(%d): %v (is the restored root reparented to the test process?)", r.pid, err)
		}
		if got == r.pid {
			r.exited = true
			return st
		}
		if time.Now().After(end) {
			r.fatalf("root %d did not exit within %v after DONE ok (%s)", r.pid, deadline, procState(r.pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exitStatus reaps the root if it is a zombie child and describes how it ended.
func (r *run) exitStatus() string {
	var st unix.WaitStatus
	got, err := unix.Wait4(r.pid, &st, unix.WNOHANG, nil)
	switch {
	case err != nil:
		return fmt.Sprintf("not our child: %v", err)
	case got == r.pid:
		r.exited = true
		return describeStatus(st)
	default:
		return procState(r.pid)
	}
}

func describeStatus(st unix.WaitStatus) string {
	switch {
	case st.Exited():
		return fmt.Sprintf("exit status %d", st.ExitStatus())
	case st.Signaled():
		return fmt.Sprintf("signal %v (core dumped: %v)", st.Signal(), st.CoreDump())
	default:
		return fmt.Sprintf("wait status %#x", uint32(st))
	}
}

// threads lists the TIDs of pid, sorted.
func threads(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	sort.Ints(tids)
	return tids, nil
}

// children lists the children of every thread of pid.
func children(pid int) []int {
	tids, _ := threads(pid)
	var kids []int
	for _, tid := range tids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, tid))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if k, err := strconv.Atoi(f); err == nil {
				kids = append(kids, k)
			}
		}
	}
	return kids
}

// descendants lists every descendant of pid, parents before children.
func descendants(pid int) []int {
	var out []int
	queue := children(pid)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, p)
		queue = append(queue, children(p)...)
	}
	return out
}

// statFields returns the fields of /proc/PID/stat after the command name.
func statFields(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return nil, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return strings.Fields(string(data[i+1:])), nil
}

// parentOf returns the PPID of pid.
func parentOf(pid int) (int, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[1])
}

// procState describes pid from /proc: its state letter, or that it is gone.
func procState(pid int) string {
	f, err := statFields(pid)
	if err != nil {
		return "no such process"
	}
	return "state " + f[0]
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	f, err := statFields(pid)
	return err == nil && f[0] != "Z" && f[0] != "X"
}

// waitGone waits until pid has disappeared, reaping it if it is our child.
func waitGone(pid int, d time.Duration) bool {
	end := time.Now().Add(d)
	for {
		var st unix.WaitStatus
		unix.Wait4(pid, &st, unix.WNOHANG, nil)
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reapStrays kills and reaps every remaining descendant of the test process.
func reapStrays() {
	self := os.Getpid()
	pids := descendants(self)
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGKILL)
	}
	for _, pid := range pids {
		waitGone(pid, 10*time.Second)
	}
	// Zombies reparented to us after the walk.
	for {
		var st unix.WaitStatus
		got, err := unix.Wait4(-1, &st, unix.WNOHANG, nil)
		if err != nil || got <= 0 {
			return
		}
	}
}
