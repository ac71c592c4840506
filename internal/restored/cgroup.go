package restored

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/seamless-linux/seamless/internal/units"
)

// What leaveUnitCgroup looks at; variables for the tests.
var (
	// initrdRelease exists in an initramfs that systemd runs: systemd acts
	// as the initramfs's manager only when it finds it.
	initrdRelease = "/etc/initrd-release"
	selfCgroup    = "/proc/self/cgroup"
	cgroupRoot    = units.CgroupRoot
)

// leaveUnitCgroup moves the daemon from the cgroup of the unit that ran
// stage 1 to the root cgroup, and says where it was ("" if it stayed).
//
// Only systemd in an initramfs (dracut's systemd mode) runs stage 1 inside
// a unit: dracut-cmdline.service or dracut-pre-pivot.service. The daemon
// would survive there (their KillMode=process spares it when they stop,
// and systemd's switch-root spares '@' processes wherever they are), but
// its holders would count against the unit's TasksMax= (pids.max: 15% of
// the PIDs by default, 1081 in a 1 GiB guest), which caps the PIDs and
// TIDs it can reserve; anything that stopped or killed the unit with
// another KillMode would take it down; and it would stay in a dead unit of
// the real root. The root cgroup belongs to no unit and has no limit (the
// real root's systemd moves what it finds there into init.scope).
//
// Without systemd in the initramfs (initramfs-tools, dracut without
// systemd, u-root) there is no initrd-release or no cgroup2 mounted, or the
// daemon is in the root cgroup already: nothing to do.
func leaveUnitCgroup() (string, error) {
	if _, err := os.Stat(initrdRelease); err != nil {
		return "", nil
	}
	b, err := os.ReadFile(selfCgroup)
	if err != nil {
		return "", nil
	}
	cg := units.CgroupV2(string(b))
	if cg == "" || cg == "/" {
		return "", nil
	}
	root, err := cgroupRoot()
	if err != nil {
		return "", nil
	}
	procs := filepath.Join(root, "cgroup.procs")
	if err := os.WriteFile(procs, []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return "", fmt.Errorf("leave cgroup %s for the root cgroup: %w", cg, err)
	}
	return cg, nil
}
