package timens

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seamless-linux/seamless/internal/image"
)

func TestParseOffsets(t *testing.T) {
	tests := []struct {
		in      string
		want    Offsets
		wantErr string
	}{
		{in: "monotonic           0         0\nboottime            0         0\n", want: Offsets{}},
		{in: "monotonic  1000000 5\nboottime -2 500000000\n", want: Offsets{Monotonic: 1e15 + 5, Boottime: -1.5e9}},
		{in: "monotonic 1 2 3\n", wantErr: "malformed"},
		{in: "monotonic 1 1000000000\n", wantErr: "malformed"},
		{in: "monotonic x 0\n", wantErr: "malformed"},
		{in: "realtime 1 0\n", wantErr: "unknown clock"},
	}
	for _, tt := range tests {
		got, err := parseOffsets(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseOffsets(%q) = %v, %v; want an error with %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseOffsets(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestSplit(t *testing.T) {
	tests := []struct{ ns, sec, nsec int64 }{
		{0, 0, 0},
		{1.5e9, 1, 5e8},
		{-1.5e9, -2, 5e8},
		{-1e9, -1, 0},
		{-1, -1, 999999999},
	}
	for _, tt := range tests {
		if sec, nsec := split(tt.ns); sec != tt.sec || nsec != tt.nsec {
			t.Errorf("split(%d) = %d, %d; want %d, %d", tt.ns, sec, nsec, tt.sec, tt.nsec)
		}
		if sec, nsec := split(tt.ns); sec*1e9+nsec != tt.ns {
			t.Errorf("split(%d) does not add up", tt.ns)
		}
	}
}

func TestOffsetsAt(t *testing.T) {
	// An old kernel up for 1000 s; a new one up for 30 s, 40 s later.
	c := &image.Clocks{MonotonicNs: 1000e9, BoottimeNs: 1200e9, RealtimeNs: 5000e9}
	tests := []struct {
		name string
		now  readings
		want Offsets
	}{
		{"after a kexec", readings{Monotonic: 30e9, Boottime: 31e9, Realtime: 5040e9},
			Offsets{Monotonic: 970e9, Boottime: 1200e9 + 40e9 - 31e9}},
		{"the wall clock went back", readings{Monotonic: 30e9, Boottime: 31e9, Realtime: 4000e9},
			Offsets{Monotonic: 970e9, Boottime: 1200e9 - 31e9}},
		{"same boot, later", readings{Monotonic: 1010e9, Boottime: 1210e9, Realtime: 5010e9},
			Offsets{Monotonic: -10e9, Boottime: 0}},
	}
	for _, tt := range tests {
		got := offsetsAt(c, tt.now)
		if got != tt.want {
			t.Errorf("%s: offsetsAt = %+v, want %+v", tt.name, got, tt.want)
		}
		// What the tree reads right after: monotonic where it was,
		// boottime never behind it.
		if m := tt.now.Monotonic + got.Monotonic; m != c.MonotonicNs {
			t.Errorf("%s: monotonic continues at %d, want %d", tt.name, m, c.MonotonicNs)
		}
		if b := tt.now.Boottime + got.Boottime; b < c.BoottimeNs {
			t.Errorf("%s: boottime continues at %d, behind %d", tt.name, b, c.BoottimeNs)
		}
	}
}

// start runs cmd and returns its PID once it runs, killing it at the end.
func start(t *testing.T, args ...string) int {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	if err := cmd.Start(); err != nil {
		t.Skipf("%s: %v", args[0], err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// waitExec waits until pid runs the program named comm.
func waitExec(t *testing.T, pid int, comm string) {
	t.Helper()
	for i := 0; i < 500; i++ {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		if strings.TrimSpace(string(b)) == comm {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d never ran %s", pid, comm)
}

func TestCheck(t *testing.T) {
	if os.Geteuid() != 0 || !Supported() {
		t.Skip("needs root and time namespaces")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare(1)")
	}
	self := os.Getpid()
	if _, err := Check([]int{self}); err != nil {
		t.Fatalf("Check(self): %v", err)
	}

	// A process that made a namespace for its children only.
	if _, err := exec.LookPath("python3"); err == nil {
		// (Not exec: exec moves a process into its children's namespace.)
		half := start(t, "python3", "-c", "import ctypes, os, time; ctypes.CDLL(None).unshare(0x80); "+
			"open('/proc/self/comm', 'w').write('half'); time.sleep(60)")
		waitExec(t, half, "half")
		if _, err := Check([]int{half}); err == nil || !strings.Contains(err.Error(), "for its children") {
			t.Errorf("Check(a process with a namespace for its children only) = %v", err)
		}
	}

	// With --fork: the child lives in a namespace 100 s ahead.
	parent := start(t, "unshare", "--time", "--fork", "--monotonic", "100", "--boottime", "200", "sleep", "60")
	var child int
	for i := 0; i < 500 && child == 0; i++ {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(parent) + "/task/" + strconv.Itoa(parent) + "/children")
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		time.Sleep(10 * time.Millisecond)
	}
	if child == 0 {
		t.Fatal("unshare --fork started no child")
	}
	waitExec(t, child, "sleep")
	off, err := Check([]int{child})
	if err != nil || off != (Offsets{Monotonic: 100e9, Boottime: 200e9}) {
		t.Errorf("Check(child) = %+v, %v; want 100 s and 200 s", off, err)
	}
	if _, err := Check([]int{self, child}); err == nil || !strings.Contains(err.Error(), "different time namespaces") {
		t.Errorf("Check(processes in two namespaces) = %v", err)
	}
	c, err := Capture([]int{child})
	if err != nil {
		t.Fatal(err)
	}
	mine, _ := Capture([]int{self})
	if d := c.MonotonicNs - mine.MonotonicNs; d < 99e9 || d > 101e9 {
		t.Errorf("the child's monotonic clock is %d ns ahead, want about 100 s", d)
	}
}
