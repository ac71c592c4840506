package plan

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/seamless-linux/seamless/internal/proc"
)

func TestCheckSeccomp(t *testing.T) {
	root := t.TempDir()
	old := proc.Root
	proc.Root = root
	defer func() { proc.Root = old }()
	status := map[string]string{"100": "0", "101": "2", "102": "1"}
	for tid, mode := range status {
		dir := filepath.Join(root, "100", "task", tid)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		text := "Name:\tsvc\nNoNewPrivs:\t1\nSeccomp:\t" + mode + "\nSeccomp_filters:\t0\n"
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var got []Problem
	bad := func(what, reason string) { got = append(got, Problem{PID: 100, What: what, Reason: reason}) }
	checkSeccomp(100, []int{100, 101, 102, 103}, bad) // 103 has exited meanwhile
	if len(got) != 1 || got[0].What != "thread 102" || got[0].Reason != "seccomp strict mode cannot be restored" {
		t.Errorf("problems %v, want thread 102 in strict mode only", got)
	}
}
