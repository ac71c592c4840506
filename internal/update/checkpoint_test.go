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
	}{
		{"disk store full", "disk", full, "no space left on device"},
		{"kernel does not load", "ram", "", "kexec_file_load"},
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
			var log strings.Builder
			err := ShutdownCheckpoint(&log)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ShutdownCheckpoint = %v, want an error mentioning %q", err, tt.want)
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
