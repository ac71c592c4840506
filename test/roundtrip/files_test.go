package roundtrip

// Issue 12's descriptor kinds: every kind that internal/files carries is
// accepted alike by `seamless plan`, the checkpoint and the restore
// (TestKindsAgree), and what the checkpoint refuses, plan refuses too, for
// the same reason (TestRefusedFiles, TestUnsupported).

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/files"
	"github.com/seamless-linux/seamless/internal/precheck"
)

// kindOf is the kind internal/files carries descriptor fd of pid as.
func kindOf(r *run, pid, fd int) string {
	r.t.Helper()
	k, err := files.Check(files.NewScope([]int{pid}), pid, fd)
	if err != nil {
		r.fatalf("fd %d of %d: %v", fd, pid, err)
	}
	return k
}

// planProblems is what `seamless plan` finds in the way of checkpointing
// the tree of r.
func planProblems(r *run) []string {
	var out []string
	for _, p := range precheck.Check(append([]int{r.pid}, descendants(r.pid)...)).Problems {
		out = append(out, p.String())
	}
	return out
}

// checkPlanRefuses fails unless plan names every string of want among its
// problems, as the checkpoint's refusal does.
func checkPlanRefuses(r *run, want []string) {
	r.t.Helper()
	probs := strings.Join(planProblems(r), "\n")
	for _, w := range want {
		if !strings.Contains(probs, w) {
			r.t.Errorf("the checkpoint refuses %q but seamless plan does not name it; plan found:\n%s", w, probs)
		}
	}
}

// TestKindsAgree walks every kind of descriptor internal/files carries:
// kinds.c holds one on fd 40; plan must find nothing in the way and count
// it under its kind, the checkpoint must take it, the restore must rebuild
// it as the same kind, and the workload must go on.
func TestKindsAgree(t *testing.T) {
	needSeamless(t)
	buildExtra(t, "kinds")
	for _, kind := range files.Kinds() {
		t.Run(kind, func(t *testing.T) {
			t.Setenv("WL_KIND", kind)
			if kind == files.KindTerminal {
				// A terminal of somebody else: a pty whose master the test holds.
				master, path := openPty(t)
				defer master.Close()
				t.Setenv("WL_PATH", path)
			}
			r := start(t, workload{name: "kinds", procs: 1, usr1: true})
			ticks := r.waitTicks(0, 3)
			usr1 := r.signalUSR1(ticks[len(ticks)-1].usr1)
			if probs := planProblems(r); len(probs) > 0 {
				r.fatalf("seamless plan refuses a %s descriptor:\n%s", kind, strings.Join(probs, "\n"))
			}
			if n := precheck.Check([]int{r.pid}).Resources[kind]; n == 0 {
				r.fatalf("seamless plan counts no %s descriptor", kind)
			}
			if got := kindOf(r, r.pid, 40); got != kind {
				r.fatalf("fd 40 is carried as %q, want %q", got, kind)
			}
			tr := r.snapshot()
			r.checkTree(tr)
			before := r.lastTick()
			fp := takeFingerprint(tr, false)
			img := filepath.Join(r.dir, "image")
			r.checkpoint(img, true, false)
			atCheckpoint := r.lastTick()
			r.killTree(tr)
			r.reapTree(tr)
			r.restoreAndCheck(img, tr, before.n+1, atCheckpoint.n+1, before)
			if got := kindOf(r, r.pid, 40); got != kind {
				r.fatalf("the restored fd 40 is carried as %q, want %q", got, kind)
			}
			r.compareFingerprint("after restore", fp, tr)
			r.finish(r.signalUSR1(usr1))
		})
	}
}

// openPty opens a pseudo-terminal and returns its master and the path of
// its slave.
func openPty(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

// fileRefusals are the resources of hold_files.c (WL_HOLD) that the
// checkpoint refuses, with what the refusal must name.
var fileRefusals = []struct {
	hold  string
	names []string
	// transient is refused only once the checkpoint's retries are spent:
	// plan, which sees the tree running, does not name it.
	transient bool
}{
	{"proccwd", []string{"working directory", "/proc/", "process that has exited"}, false},
	{"aio", []string{"AIO context (io_setup)"}, false},
	{"epollout", []string{"fd 40", "epoll instance watching fd"}, false},
	{"pidfdout", []string{"fd 40", "pidfd of process"}, false},
	{"nsother", []string{"fd 40", "namespace file uts:["}, false},
	{"unshare", []string{"descriptor table of its own"}, false},
	{"ownerout", []string{"fd 40", "SIGIO and SIGURG going to process"}, false},
	{"inotifyunread", []string{"fd 40", "inotify instance", "not read"}, true},
}

// TestRefusedFiles checks that each resource of fileRefusals is refused
// at checkpoint, named, with the tree left running, and that seamless
// plan refuses it for the same reason.
func TestRefusedFiles(t *testing.T) {
	for _, rf := range fileRefusals {
		t.Run(rf.hold, func(t *testing.T) {
			t.Setenv("WL_HOLD", rf.hold)
			testRefused(t, "hold_files", func(r *run, _ tree) []string {
				if !rf.transient {
					checkPlanRefuses(r, rf.names[len(rf.names)-1:])
				}
				return rf.names
			})
		})
	}
}

// TestShmFreshKernel checkpoints shmfile.c, removes its POSIX shared memory
// object from /dev/shm (a tmpfs: a reboot empties it) and restores: the
// object must come back at its name with the contents it had, shared by
// both processes' descriptors and mappings again.
func TestShmFreshKernel(t *testing.T) {
	needSeamless(t)
	r := start(t, workload{name: "shmfile", procs: 2, usr1: true})
	var shm string
	for _, l := range r.readLog() {
		if v, ok := strings.CutPrefix(l.text, "INFO shm="); ok {
			shm = v
		}
	}
	if !strings.HasPrefix(shm, "/dev/shm/seamless-wl-shmfile-") {
		r.fatalf("no INFO shm= line naming the object in the log")
	}
	t.Cleanup(func() { os.Remove(shm) })
	ticks := r.waitTicks(0, 3)
	usr1 := r.signalUSR1(ticks[len(ticks)-1].usr1)
	tr := r.snapshot()
	r.checkTree(tr)
	fp := takeFingerprint(tr, false)
	img := filepath.Join(r.dir, "image")
	r.checkpoint(img, false, false)
	r.reapTree(tr)
	if err := os.Remove(shm); err != nil {
		t.Fatalf("remove %s after the checkpoint: %v", shm, err)
	}
	last := r.lastTick()
	r.restoreAndCheck(img, tr, last.n+1, last.n+1, last)
	if _, err := os.Stat(shm); err != nil {
		t.Errorf("the restore did not bring %s back: %v", shm, err)
	}
	r.compareFingerprint("after restore", fp, tr)
	r.finish(r.signalUSR1(usr1))
}
