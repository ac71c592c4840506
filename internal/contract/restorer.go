package contract

import (
	"errors"
	"fmt"
	"strings"
)

// The restorer initramfs's layout, which package restorer (old kernel)
// writes and package pid1 (new kernel) reads.
const (
	// RestorerRoot is where the restorer mounts the real root.
	RestorerRoot = "/newroot"
	// RestorerStage1 is the seamless binary under the name the restorer
	// runs stage 1 as (a link to its /init).
	RestorerStage1 = "/bin/seamless-restore"
	// RestorerModules names the modules to load, one file of
	// RestorerModuleDir per line, dependencies first, each followed by the
	// files it needs.
	RestorerModules = "/etc/seamless/modules"
	// RestorerModuleDir holds the modules.
	RestorerModuleDir = "/lib/modules"
)

// RestorerRootSpec says whether the restorer's PID 1 can find the root
// that a root= value names: a device node (/dev/NAME), or LABEL= or UUID=
// of a file system it reads the superblock of. It has no udev, so no
// /dev/disk/by-* links, and the kernel's own PARTUUID= and PARTLABEL= are
// not looked up either.
func RestorerRootSpec(spec string) error {
	key, _, _ := strings.Cut(spec, "=")
	switch {
	case spec == "":
		return errors.New("no root= on the kernel command line")
	case strings.HasPrefix(spec, "/dev/disk/"):
		return fmt.Errorf("root=%s: there are no /dev/disk links without udev", spec)
	case strings.HasPrefix(spec, "/dev/"), key == "LABEL", key == "UUID":
		return nil
	}
	return fmt.Errorf("root=%s: only /dev/NAME, LABEL= and UUID= are understood", spec)
}
