package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/anchor"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/restored"
)

// The tests of this file prove the safety rules of the new kernel's side
// (issue 10) on one machine: the restore daemon and the anchors of
// cgroups named like units, as in newkernel_test.go.

// anchorArgs are the arguments of an anchor whose cold start is `sleep
// 1001` (the checkpointed process is `sleep 1000`).
func (u *unitEnv) anchorArgs(more ...string) []string {
	return append(append([]string{"anchor", "--unit", u.name}, more...), "--path", "/bin/sleep", "--", "sleep", "1001")
}

// readState reads the state the daemon of u's boot wrote.
func (u *unitEnv) readState(t *testing.T) *contract.State {
	t.Helper()
	t.Cleanup(contract.SetDirs(u.run, ""))
	st, err := contract.ReadState()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// unitState is the state of unit in the daemon's state file ("" if none).
func (u *unitEnv) unitState(t *testing.T) string {
	t.Helper()
	if s := u.readState(t).Unit(u.name); s != nil {
		return s.State
	}
	return ""
}

// procs lists the processes of a cgroup directory.
func procs(dir string) []int {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// waitFor polls cond until it holds, or fails the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freeze freezes or thaws a cgroup and waits until the kernel has.
func freeze(t *testing.T, dir string, on bool) {
	t.Helper()
	v := map[bool]string{true: "1", false: "0"}[on]
	if err := os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte(v), 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "cgroup "+dir+" frozen="+v, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.events"))
		return strings.Contains(string(b), "frozen "+v)
	})
}

// requestQueued reports whether process pid has sent a request on a
// seqpacket socket that nobody has read yet (ss: the socket's send queue
// holds it until the daemon reads it).
func requestQueued(t *testing.T, pid int) bool {
	t.Helper()
	out, err := exec.Command("ss", "-xnH").Output()
	if err != nil {
		t.Skipf("ss: %v", err)
	}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	mine := map[string]bool{}
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	for _, line := range strings.Split(string(out), "\n") {
		// Netid State Recv-Q Send-Q Local Inode Peer Inode
		f := strings.Fields(line)
		if len(f) >= 6 && f[0] == "u_seq" && mine[f[5]] {
			if q, _ := strconv.Atoi(f[3]); q > 0 {
				return true
			}
		}
	}
	return false
}

// restoreInFlight starts the unit's anchor and stops its restore at its
// very start, deterministically: with the daemon frozen (in its cgroup
// dcg) the anchor's request waits on the socket; then the unit's cgroup is
// frozen and the daemon thawed, and the restorer it forks into the unit is
// frozen at birth. It returns the anchor and the restorer's PID.
func (u *unitEnv) restoreInFlight(t *testing.T, dcg string) (*exec.Cmd, int) {
	t.Helper()
	freeze(t, dcg, true)
	a := u.start(t, binary, u.anchorArgs()...)
	t.Cleanup(func() { a.Process.Kill(); a.Wait() })
	waitFor(t, 20*time.Second, "the anchor's request", func() bool { return requestQueued(t, a.Process.Pid) })
	freeze(t, u.cgroup, true)
	freeze(t, dcg, false)
	var restorer int
	waitFor(t, 20*time.Second, "the restorer in the unit", func() bool {
		for _, p := range procs(u.cgroup) {
			if p != a.Process.Pid {
				restorer = p
				return true
			}
		}
		return false
	})
	return a, restorer
}

// exitOf waits for cmd to exit and returns its exit status, failing the
// test after timeout.
func exitOf(t *testing.T, cmd *exec.Cmd, timeout time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s", cmd.Args, timeout)
		return -1
	}
}

// coldStarted waits until the anchor has become the unit's cold start and
// checks that it is the only process of the unit.
func (u *unitEnv) coldStarted(t *testing.T, a *exec.Cmd) {
	t.Helper()
	waitFor(t, 30*time.Second, "the cold start", func() bool { return comm(a.Process.Pid) == "sleep" })
	if got, want := procs(u.cgroup), []int{a.Process.Pid}; !slices.Equal(got, want) {
		t.Fatalf("processes of the unit %v, want only the cold start %v", got, want)
	}
}

// prepare runs the drop-in's ExecStartPre (the anchor's --prepare, as
// root, in the unit's cgroup), as systemd does before each start.
func (u *unitEnv) prepare(t *testing.T) {
	t.Helper()
	r := u.start(t, binary, "anchor", "--prepare", "--unit", u.name)
	if code := exitOf(t, r, 60*time.Second); code != 0 {
		t.Fatalf("anchor --prepare exited with %d", code)
	}
}

// restart is what systemd does after an anchor exited with ExitUncertain
// (RestartForceExitStatus=): the ExecStartPre, then a new anchor.
func (u *unitEnv) restart(t *testing.T) *exec.Cmd {
	t.Helper()
	u.prepare(t)
	a := u.start(t, binary, u.anchorArgs()...)
	t.Cleanup(func() { a.Process.Kill(); a.Wait() })
	return a
}

// TestDaemonKilledDuringRestore: the restore daemon dies while a unit's
// restore is in flight. Exactly one copy of the service runs afterwards:
// the anchor, which cannot know whether the restore passed its point of no
// return, starts nothing and exits with ExitUncertain; at the restart
// systemd gives it, the ExecStartPre kills what is left in the unit (the
// restored tree if it ran already) and settles the unit, and the next
// anchor starts the service cold.
func TestDaemonKilledDuringRestore(t *testing.T) {
	for _, tc := range []struct {
		name     string
		treeRuns bool
	}{
		{"before the tree runs", false},
		{"after the tree runs", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUnitEnv(t)
			img := t.TempDir()
			pid := u.checkpoint(t, img)
			dcg, _ := newCgroup(t, "")
			daemon, ready := u.daemonIn(t, dcg, img)
			if !strings.Contains(ready, u.name+" pending") {
				t.Fatalf("daemon readiness %q", ready)
			}
			a, restorer := u.restoreInFlight(t, dcg)
			t.Logf("anchor %d, restorer %d", a.Process.Pid, restorer)
			t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })
			if tc.treeRuns {
				// The daemon says nothing more; the restorer finishes.
				freeze(t, dcg, true)
				freeze(t, u.cgroup, false)
				waitFor(t, 60*time.Second, "the restored tree", func() bool {
					return comm(pid) == "sleep" && cgroupOf(pid) == "/"+u.name && !alive(restorer)
				})
				// While the daemon lives, the ExecStartPre leaves the unit
				// to it.
				u.prepare(t)
				if !slices.Contains(procs(u.cgroup), pid) {
					t.Fatal("the ExecStartPre killed the restored tree while the daemon ran")
				}
			}
			daemon.Process.Kill()
			waitFor(t, 10*time.Second, "the daemon's end", func() bool { return !alive(daemon.Process.Pid) })
			if !tc.treeRuns {
				// The restorer, frozen before it could run, kills itself
				// (PR_SET_PDEATHSIG with its parent gone) once thawed.
				freeze(t, u.cgroup, false)
				waitFor(t, 10*time.Second, "the restorer's end", func() bool { return !alive(restorer) })
			}
			if code := exitOf(t, a, 60*time.Second); code != anchor.ExitUncertain {
				t.Fatalf("anchor exited with %d, want %d (uncertain)", code, anchor.ExitUncertain)
			}
			if got := procs(u.cgroup); slices.ContainsFunc(got, func(p int) bool { return p != pid }) {
				t.Fatalf("processes of the unit %v: more than the restored tree (%d), a cold copy beside it?", got, pid)
			}
			again := u.restart(t)
			u.coldStarted(t, again)
			if st := u.readState(t).Unit(u.name); st.State != contract.Cold || !strings.Contains(st.Reason, "daemon ended") {
				t.Fatalf("state %s (%s), want started cold because the daemon ended", st.State, st.Reason)
			}
		})
	}
}

// TestDaemonGoneBeforeAnchor: the daemon died before the unit's anchor
// asked. The anchor does not start the service cold while the unit is
// unsettled (its network lock would hold its ports): the restart settles
// it, then the service starts cold.
func TestDaemonGoneBeforeAnchor(t *testing.T) {
	u := newUnitEnv(t)
	img := t.TempDir()
	pid := u.checkpoint(t, img)
	daemon, ready := u.daemon(t, img)
	if !strings.Contains(ready, u.name+" pending") {
		t.Fatalf("daemon readiness %q", ready)
	}
	daemon.Process.Kill()
	waitFor(t, 10*time.Second, "the daemon's end", func() bool { return !alive(daemon.Process.Pid) })
	a := u.start(t, binary, u.anchorArgs()...)
	if code := exitOf(t, a, 60*time.Second); code != anchor.ExitUncertain {
		t.Fatalf("anchor exited with %d, want %d", code, anchor.ExitUncertain)
	}
	again := u.restart(t)
	u.coldStarted(t, again)
	if alive(pid) && comm(pid) == "sleep" {
		t.Fatalf("pid %d restored with no daemon", pid)
	}
}

// TestAnchorGoneBeforeAnswer: the anchor dies while its unit is being
// restored. Nobody can tell systemd of the restored tree: the daemon kills
// it and records the unit started cold (the next start of the unit starts
// it cold), instead of leaving a tree no unit accounts for.
func TestAnchorGoneBeforeAnswer(t *testing.T) {
	u := newUnitEnv(t)
	img := t.TempDir()
	pid := u.checkpoint(t, img)
	dcg, _ := newCgroup(t, "")
	daemon, ready := u.daemonIn(t, dcg, img)
	if !strings.Contains(ready, u.name+" pending") {
		t.Fatalf("daemon readiness %q", ready)
	}
	a, restorer := u.restoreInFlight(t, dcg)
	a.Process.Kill() // a fatal signal ends a frozen process
	waitFor(t, 10*time.Second, "the anchor's end", func() bool { return !alive(a.Process.Pid) })
	freeze(t, u.cgroup, false)
	waitFor(t, 60*time.Second, "the daemon to settle the unit", func() bool { return u.unitState(t) == contract.Cold })
	t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })
	if alive(restorer) || slices.Contains(procs(u.cgroup), pid) {
		t.Fatalf("processes %v left in the unit", procs(u.cgroup))
	}
	if r := u.readState(t).Unit(u.name).Reason; !strings.Contains(r, "anchor went away") {
		t.Fatalf("reason %q", r)
	}
	// The daemon writes the state before it stops listening: an anchor
	// that connects in between gets no answer and exits 171, and systemd
	// would start it again. This test starts one anchor: after the daemon.
	if code := exitOf(t, daemon, 60*time.Second); code != 0 {
		t.Fatalf("the daemon exited with %d", code)
	}
	again := u.restart(t)
	u.coldStarted(t, again)
}

// TestRestoreHangs: a restore that does not finish is bounded: the daemon
// kills it with whatever it created, the unit starts cold, one copy.
func TestRestoreHangs(t *testing.T) {
	u := newUnitEnv(t)
	img := t.TempDir()
	pid := u.checkpoint(t, img)
	dcg, _ := newCgroup(t, "")
	_, ready := u.daemonIn(t, dcg, img, "--restore-timeout", "2s")
	if !strings.Contains(ready, u.name+" pending") {
		t.Fatalf("daemon readiness %q", ready)
	}
	a, restorer := u.restoreInFlight(t, dcg)
	hangAfterExec(t, restorer, func() { freeze(t, u.cgroup, false) })
	waitFor(t, 60*time.Second, "the daemon to give up", func() bool { return u.unitState(t) == contract.Cold })
	if alive(restorer) {
		t.Fatalf("the hung restorer %d is still there", restorer)
	}
	st := u.readState(t).Unit(u.name)
	if !strings.Contains(st.Reason, "did not finish within 2s") {
		t.Fatalf("reason %q, want the timeout", st.Reason)
	}
	u.coldStarted(t, a)
	if alive(pid) && cgroupOf(pid) == "/"+u.name {
		t.Fatalf("pid %d of the hung restore is in the unit", pid)
	}
}

// hangAfterExec makes the restorer, frozen at birth, hang once it runs
// seamless: traced with PTRACE_O_TRACEEXEC, it stops at its exec and is
// never let go (its death is reaped by the tracer, for its parent to see
// it). thaw lets it run to the exec.
func hangAfterExec(t *testing.T, pid int, thaw func()) {
	t.Helper()
	seized := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // ptrace requests come from the tracing thread
		defer runtime.UnlockOSThread()
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(pid), 0, unix.PTRACE_O_TRACEEXEC, 0, 0)
		if e != 0 {
			seized <- e
			return
		}
		seized <- nil
		for {
			var ws unix.WaitStatus
			if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil || ws.Exited() || ws.Signaled() {
				return
			}
		}
	}()
	if err := <-seized; err != nil {
		t.Fatalf("trace the restorer: %v", err)
	}
	thaw()
	waitFor(t, 20*time.Second, "the restorer's exec", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return bytes.Contains(b, []byte("\x00restore\x00--dir\x00"))
	})
}

// TestRestoreOnlyForItsUnit: the daemon restores a unit only for a process
// of the unit's own cgroup, by its full path, running as the unit's user.
func TestRestoreOnlyForItsUnit(t *testing.T) {
	t.Run("cgroup of the same name elsewhere", func(t *testing.T) {
		u := newUnitEnv(t)
		img := t.TempDir()
		pid := u.checkpoint(t, img)
		_, ready := u.daemon(t, img)
		if !strings.Contains(ready, u.name+" pending") {
			t.Fatalf("daemon readiness %q", ready)
		}
		// What `systemd-run --user --unit=NAME` makes: a cgroup of the
		// unit's name in another subtree.
		parent, _ := newCgroup(t, "")
		evil := filepath.Join(parent, u.name)
		if err := os.Mkdir(evil, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeCgroup(evil) })
		e := startIn(t, evil, u.env, nil, binary, u.anchorArgs()...)
		t.Cleanup(func() { e.Process.Kill(); e.Wait() })
		waitFor(t, 30*time.Second, "the impostor to give up", func() bool { return comm(e.Process.Pid) == "sleep" })
		t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })
		if comm(pid) == "sleep" {
			t.Fatalf("pid %d was restored for a process of %s (in %s)", pid, evil, cgroupOf(pid))
		}
		if !strings.Contains(u.logs.String(), "refused process") || u.unitState(t) != contract.Pending {
			t.Fatalf("the daemon did not refuse the impostor, or gave the unit up (state %q)", u.unitState(t))
		}
		// The unit's own anchor still gets it.
		a := u.start(t, binary, u.anchorArgs()...)
		if err := a.Wait(); err != nil {
			t.Fatalf("anchor: %v", err)
		}
		if c, cg := comm(pid), cgroupOf(pid); c != "sleep" || cg != "/"+u.name {
			t.Fatalf("pid %d after the unit's anchor: %q in %q", pid, c, cg)
		}
	})
	t.Run("another user", func(t *testing.T) {
		u := newUnitEnv(t)
		img := t.TempDir()
		pid := u.checkpoint(t, img)
		_, ready := u.daemon(t, img)
		if !strings.Contains(ready, u.name+" pending") {
			t.Fatalf("daemon readiness %q", ready)
		}
		letNobodyIn(u.run, binary)
		a := startIn(t, u.cgroup, u.env, &syscall.Credential{Uid: 65534, Gid: 65534}, binary, u.anchorArgs()...)
		t.Cleanup(func() { a.Process.Kill(); a.Wait() })
		waitFor(t, 30*time.Second, "the daemon to refuse", func() bool { return u.unitState(t) == contract.Cold })
		t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })
		if comm(pid) == "sleep" {
			t.Fatalf("pid %d was restored for uid 65534", pid)
		}
		if r := u.readState(t).Unit(u.name).Reason; !strings.Contains(r, "uid 65534") {
			t.Fatalf("reason %q, want the uid named", r)
		}
	})
}

// letNobodyIn lets other users traverse the test's directories (0700)
// down to each path.
func letNobodyIn(paths ...string) {
	for _, p := range paths {
		for d := filepath.Dir(p); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
			os.Chmod(d, 0o711)
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			os.Chmod(p, 0o711)
		}
	}
}

// TestOneBadUnitOfTwo: a unit whose image is malformed (valid checksums,
// a null where a file belongs) starts cold; the other one is restored.
func TestOneBadUnitOfTwo(t *testing.T) {
	good := newUnitEnv(t)
	bad := good.sibling(t)
	img := t.TempDir()
	pid := good.checkpoint(t, img)
	bad.checkpoint(t, img)
	trees, _ := filepath.Glob(filepath.Join(img, bad.name, "*"))
	for _, tree := range trees {
		if fi, err := os.Stat(tree); err == nil && fi.IsDir() {
			patchTree(t, tree, func(tr map[string]any) { tr["files"] = append([]any{nil}, tr["files"].([]any)...) })
		}
	}
	daemon, ready := good.daemon(t, img)
	if !strings.Contains(ready, good.name+" pending") || !strings.Contains(ready, bad.name+" started cold") {
		t.Fatalf("daemon readiness %q, want %s pending and %s started cold", ready, good.name, bad.name)
	}
	a := good.start(t, binary, good.anchorArgs()...)
	if err := a.Wait(); err != nil {
		t.Fatalf("anchor: %v", err)
	}
	t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })
	if comm(pid) != "sleep" {
		t.Fatalf("pid %d was not restored", pid)
	}
	done := make(chan error, 1)
	go func() { done <- daemon.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("daemon: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not end")
	}
	st := good.readState(t)
	if s := st.Unit(good.name); s == nil || s.State != contract.Restored {
		t.Fatalf("state of %s: %+v", good.name, s)
	}
	if s := st.Unit(bad.name); s == nil || s.State != contract.Cold || strings.Contains(s.Reason, "checksum") {
		t.Fatalf("state of %s: %+v; want it started cold for its content, not its checksums", bad.name, s)
	}
}

// patchTree changes a tree's tree.json and writes its MANIFEST again with
// valid checksums: a malformed image that no checksum catches.
func patchTree(t *testing.T, dir string, change func(map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, image.TreeName)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // 64-bit numbers stay exact
	if err := dec.Decode(&tree); err != nil {
		t.Fatal(err)
	}
	change(tree)
	if b, err = json.Marshal(tree); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	rewriteManifest(t, dir, image.TreeName, b)
}

// TestStateRootOnlyAndBounded: the daemon's state is root's alone; the
// public part has states and no reasons; a reason quoting a damaged image
// is bounded.
func TestStateRootOnlyAndBounded(t *testing.T) {
	u := newUnitEnv(t)
	img := t.TempDir()
	u.checkpoint(t, img)
	trees, _ := filepath.Glob(filepath.Join(img, u.name, "*", image.ManifestName))
	if len(trees) != 1 {
		t.Fatalf("manifests %v", trees)
	}
	// A first line of 100 KB: what memory a damaged MANIFEST may hold.
	b, _ := os.ReadFile(trees[0])
	secret := strings.Repeat("S", 100<<10)
	os.WriteFile(trees[0], append([]byte(secret+"\n"), b...), 0o600)
	daemon, ready := u.daemon(t, img)
	if !strings.Contains(ready, u.name+" started cold") {
		t.Fatalf("daemon readiness %q", ready)
	}
	daemon.Wait()
	if len(ready) > 2*restored.MaxReason {
		t.Errorf("readiness line of %d bytes", len(ready))
	}
	st := u.readState(t)
	if r := st.Unit(u.name).Reason; len(r) > restored.MaxReason+40 || !strings.Contains(r, "more bytes") {
		t.Errorf("reason of %d bytes, want it bounded to %d: %.80q...", len(r), restored.MaxReason, r)
	}
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{"restore.json", 0o600}, {"restore-public.json", 0o644}} {
		fi, err := os.Stat(filepath.Join(u.run, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != f.mode {
			t.Errorf("%s has mode %#o, want %#o", f.name, fi.Mode().Perm(), f.mode)
		}
	}
	pub, _ := os.ReadFile(filepath.Join(u.run, "restore-public.json"))
	if !strings.Contains(string(pub), u.name) || strings.Contains(string(pub), "SSSS") || strings.Contains(string(pub), "reason") || strings.Contains(string(pub), img) {
		t.Errorf("public state says more than units and states:\n%s", pub)
	}
	// An unprivileged `seamless status` reads the public part.
	letNobodyIn(u.run, binary)
	cmd := exec.Command(binary, "status")
	cmd.Env = u.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), u.name+": started cold") || strings.Contains(string(out), "SSSS") {
		t.Errorf("unprivileged status:\n%s", out)
	}
}

// TestDiskImageBootParameter: seamless.image=disk:PATH only names an image
// of the disk store. A path elsewhere is refused and left alone (it used
// to be deleted, whatever it held); an image of the disk directory is
// used, then removed.
func TestDiskImageBootParameter(t *testing.T) {
	u := newUnitEnv(t)
	root := t.TempDir()
	images := filepath.Join(root, "var/lib/seamless/images")
	keep := filepath.Join(root, "home/user/keep")
	os.MkdirAll(filepath.Dir(keep), 0o755)
	os.WriteFile(keep, []byte("mine"), 0o644)
	if err := os.MkdirAll(images, 0o700); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(images, "20260101T000000Z")
	pid := u.checkpoint(t, img)
	for _, arg := range []string{"disk:/home", "disk:/var/lib/seamless/images/../../../../home", "disk:" + root + "/home"} {
		daemon, ready := u.daemon(t, arg, "--root", root)
		if !strings.HasPrefix(ready, "error: ") || !strings.Contains(ready, "refused") {
			t.Fatalf("%s: readiness %q, want the image refused", arg, ready)
		}
		daemon.Wait()
		if b, err := os.ReadFile(keep); err != nil || string(b) != "mine" {
			t.Fatalf("%s: the fake root's /home/user/keep: %q, %v", arg, b, err)
		}
	}
	daemon, ready := u.daemon(t, "disk:/var/lib/seamless/images/20260101T000000Z", "--root", root)
	if !strings.Contains(ready, u.name+" pending") {
		t.Fatalf("readiness %q", ready)
	}
	a := u.start(t, binary, u.anchorArgs()...)
	if err := a.Wait(); err != nil {
		t.Fatalf("anchor: %v", err)
	}
	t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })
	if comm(pid) != "sleep" {
		t.Fatalf("pid %d not restored from the disk image", pid)
	}
	if code := exitOf(t, daemon, 30*time.Second); code != 0 {
		t.Fatalf("daemon exited with %d", code)
	}
	if _, err := os.Stat(img); !os.IsNotExist(err) {
		t.Fatalf("the used image is still on disk (%v)", err)
	}
	if _, err := os.Stat(images); err != nil {
		t.Fatalf("the disk directory went: %v", err)
	}
}
