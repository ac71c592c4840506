// Package restorer builds the seamless restorer initramfs, a boot image
// for the new kernel that holds what a restore needs before systemd and
// nothing else: the seamless binary as /init (package pid1) and the
// kernel modules of the root device and its file system. There is no
// udev, no shell and no script: under emulation it reaches systemd
// seconds before a distribution's initramfs (docs/lab.md).
//
// It boots simple systems only, and Plan says which: a root file system
// (ext2/3/4, XFS or Btrfs) directly on a disk or a partition, whose
// drivers are modules of the target kernel or built into it, and no
// separate /usr. Anything else (LVM, dm-crypt, RAID, a network root, a
// kernel that cannot decompress its own modules) is refused with the
// reason, and the update boots the distribution's initrd.
package restorer

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// System is where Plan looks: the running system's /proc, /sys, module
// tree, /boot and /etc. Tests point it at a made-up tree.
type System struct {
	Proc, Sys, Modules, Boot, Etc string
}

// Host is the running system.
func Host() System {
	return System{Proc: "/proc", Sys: "/sys", Modules: "/lib/modules", Boot: "/boot", Etc: "/etc"}
}

// Image is the plan of a restorer initramfs for one kernel.
type Image struct {
	Release string
	// Root and FSType are the running root's device and file system, as
	// the restorer will mount them (found again by root=).
	Root, FSType string
	// ModDir is the kernel's module tree; Modules its files to load,
	// relative to ModDir, dependencies first; Needs, by file, the files
	// among Modules that must be loaded before it (the others can be
	// loaded at the same time).
	ModDir  string
	Modules []string
	Needs   map[string][]string
	// Kmod is the seamlessmem module built for Release, archived where
	// stage 1 looks for it (kmod.InitramfsModuleDir), or "": with it, the
	// kmod store hands its image over with this initrd as it is, instead
	// of a copy with the module appended made while the services are
	// frozen.
	Kmod string
}

// fsModules maps the root file systems the restorer can mount to the
// module that mounts them (Debian's ext4 module mounts ext2 and ext3).
var fsModules = map[string]string{
	"ext2": "ext4", "ext3": "ext4", "ext4": "ext4",
	"xfs":   "xfs",
	"btrfs": "btrfs",
}

// stacked are the block devices a restorer cannot assemble: each needs
// user space (lvm, cryptsetup, mdadm, nbd-client...) before the root
// exists.
var stacked = []string{"dm-", "md", "loop", "nbd", "zram", "ram", "rbd", "drbd"}

// Plan checks that the restorer can boot this system into kernel release
// and lists what the image must hold.
func (s System) Plan(release string) (*Image, error) {
	root, devNum, fsType, usr, err := s.rootMount()
	if err != nil {
		return nil, err
	}
	mod, ok := fsModules[fsType]
	if !ok {
		return nil, fmt.Errorf("the root file system is %s: the restorer mounts ext2/3/4, XFS and Btrfs", fsType)
	}
	if usr {
		return nil, errors.New("/usr is a separate file system: the restorer mounts the root alone")
	}
	drivers, err := s.deviceModules(root, devNum)
	if err != nil {
		return nil, err
	}
	tree, err := readTree(filepath.Join(s.Modules, release))
	if err != nil {
		return nil, err
	}
	files, err := tree.resolve(append(drivers, mod))
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", release, err)
	}
	if compressed(files) {
		if err := s.decompresses(release); err != nil {
			return nil, err
		}
	}
	return &Image{Release: release, Root: root, FSType: fsType, ModDir: tree.dir, Modules: files, Needs: tree.needs(files)}, nil
}

// rootMount reads the root's source, device number (MAJ:MIN) and file
// system type from the mount table, and whether /usr is mounted apart.
func (s System) rootMount() (dev, devNum, fsType string, usr bool, err error) {
	f, err := os.Open(filepath.Join(s.Proc, "self", "mountinfo"))
	if err != nil {
		return "", "", "", false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		a, b := strings.Fields(pre), strings.Fields(post)
		if !ok || len(a) < 5 || len(b) < 2 {
			continue
		}
		switch a[4] {
		case "/": // the last mount on / is the one in use
			devNum, fsType, dev = a[2], b[0], b[1]
		case "/usr":
			usr = true
		}
	}
	if err := sc.Err(); err != nil {
		return "", "", "", false, err
	}
	if dev == "" {
		return "", "", "", false, errors.New("no root in the mount table")
	}
	return dev, devNum, fsType, usr, nil
}

// deviceModules finds the root's block device in sysfs, by its number
// (devNum, MAJ:MIN) or, for a file system that reports a device of its
// own (Btrfs), by the name of its source dev, and returns the modules of
// the drivers from its bus down to it: what the restorer must load to see
// the device. A device stacked on others is refused.
func (s System) deviceModules(dev, devNum string) ([]string, error) {
	path, err := filepath.EvalSymlinks(filepath.Join(s.Sys, "dev", "block", devNum))
	if err != nil {
		if !strings.HasPrefix(dev, "/dev/") {
			return nil, fmt.Errorf("the root is on %s, not a block device", dev)
		}
		path, err = filepath.EvalSymlinks(filepath.Join(s.Sys, "class", "block", filepath.Base(dev)))
		if err != nil {
			return nil, fmt.Errorf("the root's device %s (%s) is not in sysfs: %w", dev, devNum, err)
		}
	}
	name := filepath.Base(path)
	for _, p := range stacked {
		if strings.HasPrefix(name, p) {
			return nil, fmt.Errorf("the root is on %s, which needs user space to assemble (LVM, dm-crypt, RAID, a network block device): the restorer has none", name)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(path, "slaves")); len(ents) > 0 {
		return nil, fmt.Errorf("the root is on %s, built on other devices: the restorer cannot assemble it", name)
	}
	top := filepath.Join(s.Sys, "devices")
	// A virtual device (device-mapper, md, loop, nbd, NVMe over fabrics)
	// or an iSCSI session's disk exists only once user space has set it up.
	if strings.HasPrefix(path, filepath.Join(top, "virtual")+"/") || strings.Contains(path, "/session") {
		return nil, fmt.Errorf("the root is on %s, which user space sets up (%s): the restorer has none", name, strings.TrimPrefix(path, s.Sys))
	}
	var mods []string
	for p := path; strings.HasPrefix(p, top+"/"); p = filepath.Dir(p) {
		link, err := os.Readlink(filepath.Join(p, "driver", "module"))
		if err != nil {
			continue // no driver, or one built into the kernel
		}
		if m := filepath.Base(link); !slices.Contains(mods, m) {
			mods = append(mods, m)
		}
	}
	slices.Reverse(mods) // the bus's driver first
	return mods, nil
}

// decompresses checks that kernel release decompresses compressed
// modules itself (finit_module's MODULE_INIT_COMPRESSED_FILE): the
// restorer has no decompressor.
func (s System) decompresses(release string) error {
	path := filepath.Join(s.Boot, "config-"+release)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("kernel %s's modules are compressed and %s cannot be read to tell whether it decompresses them: %w", release, path, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "CONFIG_MODULE_DECOMPRESS=y" {
			return nil
		}
	}
	return fmt.Errorf("kernel %s's modules are compressed and it cannot decompress them itself (CONFIG_MODULE_DECOMPRESS is off)", release)
}

func compressed(files []string) bool {
	for _, f := range files {
		if !strings.HasSuffix(f, ".ko") {
			return true
		}
	}
	return false
}
