package restored

import (
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/units"
)

// Others lists the processes of cgroup cg (and the cgroups below it)
// other than spare.
func Others(cg string, spare int) ([]int, error) {
	pids, err := units.CgroupPIDs(cg)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(pids, func(p int) bool { return p == spare }), nil
}

// KillOthers SIGKILLs every process of cgroup cg (and below) but spare,
// until none is left or the timeout passes, and returns the PIDs it
// killed. A PID is signalled through a pidfd taken while the process is
// seen in cg: a process that exits meanwhile cannot have its PID reused
// by one outside the cgroup and killed in its place.
func KillOthers(cg string, spare int, timeout time.Duration) ([]int, error) {
	var killed []int
	deadline := time.Now().Add(timeout)
	for {
		pids, err := Others(cg, spare)
		if err != nil {
			return killed, err
		}
		if len(pids) == 0 {
			return killed, nil
		}
		if time.Now().After(deadline) {
			return killed, fmt.Errorf("processes %v of %s are still there after %s", pids, cg, timeout)
		}
		for _, pid := range pids {
			if kill(pid, cg) && !slices.Contains(killed, pid) {
				killed = append(killed, pid)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill SIGKILLs pid if it is (still) in cgroup cg or below.
func kill(pid int, cg string) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false
	}
	// The pidfd was taken before the read: if the process is still alive
	// now, the cgroup read was its own.
	if in := units.CgroupV2(string(b)); in != cg && !isBelow(in, cg) {
		return false
	}
	return unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil
}

// isBelow reports whether cgroup path sub is strictly inside cg.
func isBelow(sub, cg string) bool {
	if cg == "/" {
		return sub != "/"
	}
	return len(sub) > len(cg) && sub[:len(cg)] == cg && sub[len(cg)] == '/'
}
