// Package freezer freezes and thaws cgroup v2 cgroups through
// cgroup.freeze, and waits until the kernel reports the new state in
// cgroup.events. It is the only place where seamless freezes anything:
// the checkpoint of one tree (dump) and of a whole update (update) use the
// same rules and the same timeout.
package freezer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Timeout bounds the wait for a cgroup to reach the state asked for. A
// task in an uninterruptible or killable sleep (a FUSE request, an NFS
// server that does not answer) keeps a cgroup from freezing for as long.
var Timeout = 10 * time.Second

// Freeze freezes the cgroup v2 directory dir and waits until every task in
// it is frozen. When that does not happen within Timeout, the cgroup is
// thawed again before Freeze returns its error: a failed freeze never
// leaves a service half frozen.
func Freeze(dir string) error {
	if err := set(dir, true); err != nil {
		if terr := set(dir, false); terr != nil {
			return fmt.Errorf("%w (and thawing it again failed: %v)", err, terr)
		}
		return err
	}
	return nil
}

// Thaw thaws dir and waits until the kernel reports it thawed.
func Thaw(dir string) error { return set(dir, false) }

// Frozen reports whether the kernel reports dir frozen.
func Frozen(dir string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false, fmt.Errorf("freeze cgroup %s: %w", dir, err)
	}
	return strings.Contains(string(b), "frozen 1"), nil
}

func set(dir string, freeze bool) error {
	v, what := "0", "thaw"
	if freeze {
		v, what = "1", "freeze"
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte(v), 0); err != nil {
		return fmt.Errorf("%s cgroup %s: %w", what, dir, err)
	}
	deadline := time.Now().Add(Timeout)
	for {
		frozen, err := Frozen(dir)
		if err != nil {
			return err
		}
		if frozen == freeze {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s cgroup %s: not done within %s (a task may be in an uninterruptible sleep)", what, dir, Timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
