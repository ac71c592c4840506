package reserve

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seamless-linux/seamless/internal/proc"
)

func TestReserveAndRelease(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (ns_last_pid)")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b, err := os.ReadFile(lastPIDPath)
	if err != nil {
		t.Skip(err)
	}
	last, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	b, err = os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Skip(err)
	}
	max, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	// PIDs well ahead of the counter, so that nothing else takes them.
	// PIDs well ahead of the counter (it wraps at pid_max), so that nothing
	// else takes them.
	base := last + 2000
	if base+10 >= max {
		base = base - max + 1000
	}
	want := []int{base + 3, base, base + 1}
	for _, pid := range want {
		if who := holder(pid); who != "" {
			t.Skipf("pid %d is used by %s", pid, who)
		}
	}
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
