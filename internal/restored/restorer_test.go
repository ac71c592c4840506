package restored

import (
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStartBoosted: the restorer runs at restorerNice, and the thread that
// started it keeps its own nice value.
func TestStartBoosted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a negative nice value needs root")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Setpriority(unix.PRIO_PROCESS, 0, 3); err != nil {
		t.Fatal(err)
	}
	defer unix.Setpriority(unix.PRIO_PROCESS, 0, 0)
	var out bytes.Buffer
	cmd := exec.Command("sh", "-c", "cut -d' ' -f19 /proc/self/stat")
	cmd.Stdout = &out
	if err := startBoosted(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != "-10" {
		t.Errorf("the restorer's nice is %s, want -10", got)
	}
	if p, err := unix.Getpriority(unix.PRIO_PROCESS, 0); err != nil || 20-p != 3 {
		t.Errorf("the starting thread's nice is %d (%v), want its own 3", 20-p, err)
	}
}
