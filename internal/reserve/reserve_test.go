package reserve

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/proc"
)

// readInt reads a number from a file of /proc/sys, or skips the test.
func readInt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skip(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// freePIDs returns want with base added, base well ahead of the kernel's
// PID counter (which wraps at pid_max), so that nothing else takes them;
// it skips the test where one is used already, or where it cannot set
// ns_last_pid.
func freePIDs(t *testing.T, want ...int) []int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (ns_last_pid)")
	}
	last, pidMax := readInt(t, lastPIDPath), readInt(t, "/proc/sys/kernel/pid_max")
	base := last + 2000
	if base+10 >= pidMax {
		base = base - pidMax + 1000
	}
	pids := make([]int, len(want))
	for i, d := range want {
		pids[i] = base + d
		if who := holder(pids[i]); who != "" {
			t.Skipf("pid %d is used by %s", pids[i], who)
		}
	}
	return pids
}

func TestOrder(t *testing.T) {
	for _, tc := range []struct{ in, want []int }{
		{nil, nil},
		{[]int{7}, []int{7}},
		// A service's TIDs with gaps (the failed lab run's memcached).
		{[]int{2374, 2385, 2387, 2388, 2389, 2390, 2392, 2393, 2394, 2395},
			[]int{2395, 2394, 2393, 2392, 2390, 2389, 2388, 2387, 2385, 2374}},
		// Two units, in no order, one PID named twice.
		{[]int{12, 30, 11, 31, 12}, []int{31, 30, 12, 11}},
	} {
		if got := order(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("order(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestHolderNamesOwnThreads: a PID used by one of the caller's own threads
// is reported as such, not by the comm the thread shares with the caller.
func TestHolderNamesOwnThreads(t *testing.T) {
	done := make(chan string)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		done <- holder(unix.Gettid())
	}()
	if got := <-done; !strings.Contains(got, "a thread of this process") {
		t.Fatalf("holder(own thread) = %q, want it named a thread of this process", got)
	}
}

// TestReserveWhileTasksAreCreated: what is created between two holders (the
// Go runtime's threads, in the restore daemon) takes none of the PIDs still
// to reserve, and the kernel's next PID ends above the reserved ones.
func TestReserveWhileTasksAreCreated(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	want := freePIDs(t, 0, 1, 2, 4) // a gap, as in a service's TIDs
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var thieves []*exec.Cmd
	defer func() {
		for _, c := range thieves {
			c.Process.Kill()
			c.Wait()
		}
	}()
	s.afterTake = func() {
		c := exec.Command(fmt.Sprintf("/proc/self/fd/%d", s.exe.Fd()))
		c.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
		if err := c.Start(); err != nil {
			t.Error(err)
			return
		}
		thieves = append(thieves, c)
	}
	if taken := s.Reserve(want); len(taken) != 0 {
		t.Fatalf("Reserve with processes started between the holders: %v", taken)
	}
	if last := readInt(t, lastPIDPath); last < slices.Max(want) {
		t.Errorf("ns_last_pid = %d after Reserve, want at least %d", last, slices.Max(want))
	}
	for _, c := range thieves {
		if slices.Contains(want, c.Process.Pid) {
			t.Errorf("a process started between the holders got pid %d", c.Process.Pid)
		}
	}
}

func TestReserveAndRelease(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	want := freePIDs(t, 3, 0, 1)
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if taken := s.Reserve(want); len(taken) != 0 {
		t.Fatalf("Reserve: %v", taken)
	}
	for _, pid := range want {
		// The holder names itself first thing; give it the time to run.
		var comm []byte
		for i := 0; i < 100; i++ {
			if comm, err = os.ReadFile(proc.Path(pid, "comm")); err != nil || string(comm) == "seamless-pid\n" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil || strings.TrimSpace(string(comm)) != "seamless-pid" {
			t.Fatalf("pid %d: comm %q, %v; want the holder", pid, comm, err)
		}
		cmdline, _ := os.ReadFile(proc.Path(pid, "cmdline"))
		if !strings.HasPrefix(string(cmdline), HolderName) {
			t.Errorf("pid %d: cmdline %q, want %s", pid, cmdline, HolderName)
		}
	}
	// A PID in use is reported with its user, not taken.
	self := os.Getpid()
	taken := s.Reserve([]int{self})
	if len(taken) != 1 || taken[0].PID != self || !strings.Contains(taken[0].Reason, "already used") {
		t.Fatalf("Reserve(own pid) = %v, want it reported as used", taken)
	}
	s.Release(want[:1])
	if _, err := os.Stat(proc.Path(want[0], "")); err == nil {
		t.Fatalf("pid %d still exists after Release", want[0])
	}
	if !s.Held(want[1]) || s.Held(want[0]) {
		t.Fatalf("Held: want %d held and %d free", want[1], want[0])
	}
}
