package update

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/kernel"
	"github.com/seamless-linux/seamless/internal/units"
)

// TestShutdownCheckpointFailures runs the checkpoint at shutdown against a
// real process in its own cgroup, with a hand-over that must fail: the
// service must be left running and thawed, and the status must say why.
func TestShutdownCheckpointFailures(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	root, err := units.CgroupRoot()
	if err != nil {
		t.Skip(err)
	}
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

	full := t.TempDir()
	if err := unix.Mount("tmpfs", full, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(full, unix.MNT_DETACH) })

	notKernel := filepath.Join(t.TempDir(), "vmlinuz")
	os.WriteFile(notKernel, []byte("not a kernel"), 0o644)
	tests := []struct {
		name  string
		store string
		dir   string
		want  string
		// loads: the command lines a fake kernel load must see (the
		// preloaded one, then the plain one back); nil: the real
		// kexec_file_load, which refuses the fake kernel.
		loads []string
	}{
		{"disk store full", "disk", full, "no space left on device", []string{"ro seamless.image=disk:" + full + "/", "ro"}},
		{"kernel does not load", "ram", "", "kexec_file_load", nil},
		{"kernel does not load before a disk image", "disk", filepath.Join(t.TempDir(), "images"), "kexec_file_load", nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// ptrace ties tracees to one OS thread.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			t.Cleanup(contract.SetDirs(t.TempDir(), t.TempDir()))
			cg := "seamless-update-test-" + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(i)
			if err := os.Mkdir(filepath.Join(root, cg), 0o755); err != nil {
				t.Skipf("cannot create a cgroup: %v", err)
			}
			// A service with a few MiB of memory, more than the full store holds.
			cmd := exec.Command("sh", "-c", `x=$(head -c 1048576 /dev/urandom | od -An -tx1); exec sleep 300`)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				os.WriteFile(filepath.Join(root, cg, "cgroup.kill"), []byte("1"), 0)
				cmd.Process.Kill()
				cmd.Wait()
				for i := 0; i < 100 && os.Remove(filepath.Join(root, cg)) != nil; i++ {
					time.Sleep(10 * time.Millisecond)
				}
			})
			if err := os.WriteFile(filepath.Join(root, cg, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
				t.Fatal(err)
			}
			// Wait until the shell holds its data and sleeps.
			for i := 0; i < 200; i++ {
				if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/comm"); strings.TrimSpace(string(comm)) == "sleep" {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			in := &contract.Intent{From: "old", Kernel: kernel.Kernel{Release: "new", Image: notKernel, Initrd: notKernel},
				Cmdline: "ro", Units: []string{"test.service"}, Cgroups: map[string]string{"test.service": "/" + cg},
				Store: tt.store, DiskDir: tt.dir, Requested: time.Now()}
			if err := contract.WriteIntent(in); err != nil {
				t.Fatal(err)
			}
			var loads *[]string
			if tt.loads != nil {
				loads = fakeLoads(t)
			}
			var log strings.Builder
			err := ShutdownCheckpoint(&log)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ShutdownCheckpoint = %v, want an error mentioning %q", err, tt.want)
			}
			if tt.loads != nil {
				got := *loads
				if len(got) != len(tt.loads) {
					t.Fatalf("kernel loads %q, want %q", got, tt.loads)
				}
				for i := range got {
					if !strings.HasPrefix(got[i], tt.loads[i]) || (i == len(got)-1 && got[i] != tt.loads[i]) {
						t.Fatalf("kernel loads %q, want %q", got, tt.loads)
					}
				}
			}
			st, err := contract.ReadStatus()
			if err != nil || st == nil || st.State != "failed" || !strings.Contains(st.Error, tt.want) {
				t.Fatalf("status = %+v, %v", st, err)
			}
			if len(st.Units) != 1 || st.Units[0].Outcome != contract.Stopped {
				t.Fatalf("unit outcome = %+v, want stopped", st.Units)
			}
			ev, _ := os.ReadFile(filepath.Join(root, cg, "cgroup.events"))
			state, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat")
			if !strings.Contains(string(ev), "frozen 0") || !strings.Contains(string(state), ") S") {
				t.Fatalf("after a failed hand-over the service is %q (cgroup %q): want running and thawed", state, ev)
			}
			if in, _ := contract.ReadIntent(); in != nil {
				t.Fatal("the intent was not consumed")
			}
			if ents, _ := os.ReadDir(tt.dir); tt.store == "disk" && len(ents) != 0 {
				t.Fatalf("the disk store keeps %v after a failed hand-over", ents)
			}
		})
	}
}

func TestShutdownCheckpointWithoutIntent(t *testing.T) {
	t.Cleanup(contract.SetDirs(t.TempDir(), t.TempDir()))
	var log strings.Builder
	if err := ShutdownCheckpoint(&log); err != nil || !strings.Contains(log.String(), "nothing to checkpoint") {
		t.Fatalf("ShutdownCheckpoint without intent = %v, %q", err, log.String())
	}
	if st, _ := contract.ReadStatus(); st != nil {
		t.Fatal("a status was recorded without an update")
	}
}

// TestKillCgroupWithoutCgroupKill: at the point of no return, a cgroup
// whose cgroup.kill cannot be written has its processes killed one by one,
// and what cannot be killed is an error, never dropped.
func TestKillCgroupWithoutCgroupKill(t *testing.T) {
	// A directory that is not a cgroup: it has no cgroup.kill, and lists
	// a child of the test, and one below it a PID that does not exist.
	dir := t.TempDir()
	child := exec.Command("sleep", "100")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	t.Cleanup(func() { child.Process.Kill() })
	os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(child.Process.Pid)+"\n"), 0o600)
	os.Mkdir(filepath.Join(dir, "sub"), 0o700)
	os.WriteFile(filepath.Join(dir, "sub", "cgroup.procs"), []byte("4194304\n"), 0o600)
	if err := killCgroup(dir); err != nil {
		t.Fatalf("killCgroup: %v", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the process of a cgroup without cgroup.kill was not killed")
	}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err == nil {
		t.Error("killCgroup created cgroup.kill")
	}
	// Removed (it was empty): nothing to kill, nothing to report.
	if err := killCgroup(filepath.Join(dir, "absent")); err != nil {
		t.Errorf("killCgroup of a removed cgroup = %v, want nil", err)
	}

}
