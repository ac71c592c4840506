package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/restored"
	"github.com/seamless-linux/seamless/internal/units"
)

var (
	binary      string
	crashBinary string // with a command that panics (crashtest.go)
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "seamless-cli-test-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "seamless")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	crashBinary = filepath.Join(dir, "seamless-crashtest")
	if out, err := exec.Command("go", "build", "-tags", "seamless_crashtest", "-o", crashBinary, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	// Restored processes are reparented to us, and we reap them.
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// seamless runs the binary and returns stdout, stderr and the exit code.
func seamless(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return seamlessEnv(t, nil, args...)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("checkpoint and restore need root")
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "Commands:"},
		{[]string{"--help"}, exitOK, "checkpoint"},
		{[]string{"frobnicate"}, exitUsage, "unknown command"},
		{[]string{"checkpoint", "--dir", "/tmp/x"}, exitUsage, "need --pid"},
		{[]string{"restore"}, exitUsage, "need --dir"},
		{[]string{"inspect"}, exitUsage, "one image directory"},
		{[]string{"checkpoint", "--help"}, exitOK, "--leave-running"},
		{[]string{"restore", "--help"}, exitOK, "--vdso auto|proxy"},
		{[]string{"restore", "--dir", "/tmp/x", "--vdso", "never"}, exitUsage, `unknown vDSO mode "never"`},
		{[]string{"inspect", "/nonexistent"}, exitFailure, "not an image"},
	}
	for _, tt := range tests {
		out, errs, code := seamless(t, tt.args...)
		if code != tt.code || !strings.Contains(out+errs, tt.want) {
			t.Errorf("seamless %v: exit %d, output %q; want exit %d mentioning %q", tt.args, code, out+errs, tt.code, tt.want)
		}
	}
}

// startSleeper starts a process to checkpoint and returns its PID.
func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Kill(cmd.Process.Pid, unix.SIGKILL); cmd.Wait() })
	time.Sleep(50 * time.Millisecond)
	return cmd
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(b), ") Z")
}

// checkpointed makes an image of a sleeping process and leaves its PID free.
func checkpointed(t *testing.T) (dir string, pid int) {
	t.Helper()
	cmd := startSleeper(t)
	dir = filepath.Join(t.TempDir(), "img")
	if _, errs, code := seamless(t, "checkpoint", "--pid", strconv.Itoa(cmd.Process.Pid), "--dir", dir); code != 0 {
		t.Fatalf("checkpoint: %s", errs)
	}
	cmd.Wait()
	return dir, cmd.Process.Pid
}

func TestRestoreRefusesDamagedImage(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name   string
		damage func(dir string, pid int) error
		want   []string
	}{
		{"flipped byte", func(dir string, pid int) error {
			p := filepath.Join(dir, "pages-"+strconv.Itoa(pid)+".img")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 1
			return os.WriteFile(p, b, 0o600)
		}, []string{"pages-", "checksum mismatch"}},
		{"truncated file", func(dir string, pid int) error {
			return os.Truncate(filepath.Join(dir, "tree.json"), 100)
		}, []string{"tree.json", "truncated"}},
		{"missing file", func(dir string, pid int) error {
			return os.Remove(filepath.Join(dir, "pages-"+strconv.Itoa(pid)+".img"))
		}, []string{"pages-", "missing"}},
		{"wrong version", func(dir string, pid int) error {
			p := filepath.Join(dir, "MANIFEST")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, []byte(strings.Replace(string(b), fmt.Sprintf("seamless-image %d\n", image.Version), fmt.Sprintf("seamless-image %d\n", image.Version+1), 1)), 0o600)
		}, []string{"MANIFEST", fmt.Sprintf("version %d is newer", image.Version+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, pid := checkpointed(t)
			if err := tt.damage(dir, pid); err != nil {
				t.Fatal(err)
			}
			out, errs, code := seamless(t, "restore", "--dir", dir)
			if code != exitFailure || out != "" {
				t.Fatalf("restore of a damaged image: exit %d, stdout %q", code, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(errs, w) {
					t.Errorf("error %q does not mention %q", errs, w)
				}
			}
			if alive(pid) {
				t.Errorf("process %d was started from a damaged image", pid)
			}
		})
	}
}

func TestRestoreOntoTakenPID(t *testing.T) {
	needRoot(t)
	cmd := startSleeper(t)
	pid := cmd.Process.Pid
	dir := filepath.Join(t.TempDir(), "img")
	if _, errs, code := seamless(t, "checkpoint", "--leave-running", "--pid", strconv.Itoa(pid), "--dir", dir); code != 0 {
		t.Fatalf("checkpoint: %s", errs)
	}
	if !alive(pid) {
		t.Fatal("--leave-running killed the process")
	}
	_, errs, code := seamless(t, "restore", "--dir", dir, "--pid-wait", "100ms")
	if code != exitFailure || !strings.Contains(errs, "pid "+strconv.Itoa(pid)+" is in use") {
		t.Fatalf("restore onto a taken pid: exit %d, %q", code, errs)
	}
	if !alive(pid) {
		t.Fatal("the process holding the pid was harmed")
	}
}

func TestCheckpointRestoreInspect(t *testing.T) {
	needRoot(t)
	dir, pid := checkpointed(t)
	if alive(pid) {
		t.Fatal("checkpoint left the process running")
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("image directory: %v, mode %v; want 0700", err, st.Mode().Perm())
	}
	out, errs, code := seamless(t, "inspect", dir)
	if code != 0 || !strings.Contains(out, "pid "+strconv.Itoa(pid)+" (sleep)") || !strings.Contains(out, "verified") {
		t.Fatalf("inspect: exit %d, %q %q", code, out, errs)
	}
	out, _, code = seamless(t, "inspect", "--json", dir)
	var s struct {
		Verified  bool `json:"verified"`
		Processes []struct {
			PID     int   `json:"pid"`
			Threads []int `json:"threads"`
		} `json:"processes"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil || !s.Verified || len(s.Processes) != 1 || s.Processes[0].PID != pid {
		t.Fatalf("inspect --json: exit %d, %.200q", code, out)
	}
	out, errs, code = seamless(t, "restore", "--dir", dir)
	if code != 0 || strings.TrimSpace(out) != strconv.Itoa(pid) {
		t.Fatalf("restore: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL); var ws unix.WaitStatus; unix.Wait4(pid, &ws, 0, nil) })
	if !alive(pid) {
		t.Fatal("restored process is not running")
	}
	comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if strings.TrimSpace(string(comm)) != "sleep" {
		t.Fatalf("restored process is %q", comm)
	}
}

// TestRestoreJSON: the restore daemon reads `restore --json`: the root PID
// and the warnings on success, the error on failure, one JSON object on
// stdout either way.
func TestRestoreJSON(t *testing.T) {
	needRoot(t)
	out, errs, code := seamless(t, "restore", "--json", "--dir", filepath.Join(t.TempDir(), "absent"))
	var r restored.RestorerReport
	if code != exitFailure || json.Unmarshal([]byte(out), &r) != nil || r.Error == "" || r.Root != 0 || !strings.Contains(errs, r.Error) {
		t.Fatalf("restore --json of no image: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	dir, pid := checkpointed(t)
	out, errs, code = seamless(t, "restore", "--json", "--dir", dir)
	t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL); var ws unix.WaitStatus; unix.Wait4(pid, &ws, 0, nil) })
	r = restored.RestorerReport{}
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || r.Root != pid || r.Error != "" {
		t.Fatalf("restore --json: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if !alive(pid) {
		t.Fatal("restored process is not running")
	}
	var names []string
	for _, p := range r.Phases {
		names = append(names, p.Name)
	}
	// No hold was asked for: no "network" phase.
	if got := strings.Join(names, " "); got != "open seed processes memory files finish resume" {
		t.Errorf("restore --json phases %q", got)
	}
	if r.CopiedBytes+r.WrittenBytes == 0 {
		t.Errorf("restore --json says no private memory was filled: %s", out)
	}
}

func TestCheckpointFreezesCgroup(t *testing.T) {
	needRoot(t)
	root, err := units.CgroupRoot()
	if err != nil {
		t.Skip(err)
	}
	cg := filepath.Join(root, "seamless-cli-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Skipf("cannot create a cgroup: %v", err)
	}
	cmd := startSleeper(t)
	t.Cleanup(func() {
		unix.Kill(cmd.Process.Pid, unix.SIGKILL)
		cmd.Wait()
		for i := 0; i < 100 && os.Remove(cg) != nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	})
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "img")
	if _, errs, code := seamless(t, "checkpoint", "--leave-running", "--cgroup", cg, "--pid", strconv.Itoa(cmd.Process.Pid), "--dir", dir); code != 0 {
		t.Fatalf("checkpoint --cgroup: %s", errs)
	}
	ev, _ := os.ReadFile(filepath.Join(cg, "cgroup.events"))
	if !strings.Contains(string(ev), "frozen 0") || !alive(cmd.Process.Pid) {
		t.Fatalf("after checkpoint the cgroup is %q, process alive %v; want thawed and running", ev, alive(cmd.Process.Pid))
	}
	if _, errs, code := seamless(t, "checkpoint", "--cgroup", filepath.Join(cg, "missing"), "--pid", strconv.Itoa(cmd.Process.Pid), "--dir", dir+"2"); code != exitFailure || !strings.Contains(errs, "freeze cgroup") {
		t.Fatalf("checkpoint with a missing cgroup: exit %d, %q", code, errs)
	}
}

func TestUpdatePreflightFailures(t *testing.T) {
	needRoot(t)
	boot := t.TempDir()
	// Only kernels older than any running kernel.
	for _, n := range []string{"vmlinuz-2.6.32-1-amd64", "initrd.img-2.6.32-1-amd64"} {
		os.WriteFile(filepath.Join(boot, n), []byte("not a kernel"), 0o644)
	}
	junk := filepath.Join(t.TempDir(), "vmlinuz-junk")
	os.WriteFile(junk, []byte("not a kernel either"), 0o644)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no newer kernel", []string{"update", "--boot", boot, "--yes"}, "no installed kernel is newer than the running one"},
		{"kernel not installed", []string{"update", "--boot", boot, "--kernel", "9.9.9", "--yes"}, "kernel 9.9.9 is not installed"},
		{"no initrd", []string{"update", "--boot", boot, "--kernel", junk, "--yes"}, "has no initrd"},
		{"kexec load fails", []string{"update", "--boot", boot, "--kernel", junk, "--initrd", filepath.Join(boot, "initrd.img-2.6.32-1-amd64"), "--yes"}, "kexec_file_load"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := seamless(t, tt.args...)
			if code != exitFailure || !strings.Contains(errs, tt.want) {
				t.Fatalf("seamless %v: exit %d, %q; want exit 1 mentioning %q", tt.args, code, errs, tt.want)
			}
		})
	}
	if b, err := os.ReadFile("/sys/kernel/kexec_loaded"); err == nil && strings.TrimSpace(string(b)) == "1" {
		t.Error("a failed preflight left a kernel loaded for kexec")
	}
}
