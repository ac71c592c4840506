package task

import (
	"os"
	"strings"
	"testing"
)

// TestHolder: the task holding an ID is named, with its state and parent;
// a free ID names nobody.
func TestHolder(t *testing.T) {
	got := holder(os.Getpid())
	comm, _ := os.ReadFile("/proc/self/comm")
	if !strings.HasPrefix(got, " by \""+strings.TrimSpace(string(comm))+"\" (state ") || !strings.Contains(got, ", parent ") {
		t.Errorf("holder of this process: %q", got)
	}
	if got := holder(1 << 30); got != "" {
		t.Errorf("holder of a free ID: %q", got)
	}
}
