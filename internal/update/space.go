package update

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/bytesize"
	"github.com/seamless-linux/seamless/internal/config"
	"github.com/seamless-linux/seamless/internal/kmod"
	"github.com/seamless-linux/seamless/internal/proc"
)

// What each step of carrying an image really takes.
//
// RAM store: the checkpoint writes the image into a tmpfs of its own (the
// stage), then archives it, file by file, into a memory copy of the initrd
// (removing each file from the stage once archived), and kexec_file_load
// copies that into the kernel. At the peak, the image and the initrd are
// held twice: ramNeed. The carried processes' own memory is in use already
// and is freed only when they are killed, after the load.
//
// Disk store: the image is written straight into the disk directory; the
// kernel's copy of the initrd was made by the preflight's test load.
const (
	ramMargin  = 256 << 20 // left to the rest of the system while it shuts down
	diskMargin = 64 << 20
)

func ramNeed(image, initrd int64) int64 { return 2*(image+initrd) + ramMargin }

// diskNeed allows for the estimate being short (the plan counts private
// memory; files, queues and metadata come on top).
func diskNeed(image int64) int64 { return image + image/8 + diskMargin }

// space is what the machine has for an image.
type space struct {
	mem      int64 // MemAvailable; 0 when unknown
	disk     int64 // free bytes in the disk store's file system; -1 when unknown
	diskPath string
	// offRoot says why the disk directory is not on the root file system
	// ("" when it is): the initramfs mounts the root alone, so an image
	// anywhere else would be out of the new boot's reach.
	offRoot string
	// kernelMem is what the kernel can still allocate for itself when
	// part of memory is ZONE_MOVABLE, where its copy of the initrd cannot
	// go (-1: no ZONE_MOVABLE, MemAvailable says it).
	kernelMem int64
	// kmod is why the kmod store cannot be used ("" when it can), and
	// movable the memory it can count on taking (-1: unknown); only asked
	// when the configuration chooses it.
	kmod    string
	movable int64
}

func measure(cfg config.Config, from, release string) space {
	sp := space{mem: memAvailable(), disk: freeBytes(cfg.DiskDir), diskPath: cfg.DiskDir, offRoot: offRoot(cfg.DiskDir),
		movable: -1, kernelMem: proc.KernelMemAvailable()}
	if cfg.Store == "kmod" {
		sp.kmod = kmodProblem(from, release)
		if m, err := kmod.MovableBytes(kmod.SysMemory, "/proc/iomem"); err == nil {
			sp.movable = int64(m)
		}
	}
	return sp
}

// chooseStore picks where the image waits for the new kernel, and says why
// in a line for `seamless update`'s output. With store = auto, the disk
// directory when its file system (the root's) has room: the new kernel is
// then loaded before the services are frozen, and no copy of the image
// passes through the kernel and the initramfs, so the pause is shorter
// (docs/lab.md) and the memory peak lower; else RAM when the image and the
// initrd fit twice in available memory with room to spare. Auto never
// picks the kmod store: store = kmod chooses it when its module loads and
// the memory blocks can be taken, and otherwise chooses as auto, saying
// why.
func chooseStore(cfg config.Config, need, initrd int64, sp space) (string, string, error) {
	ram := ramNeed(need, initrd)
	ramWhy := fmt.Sprintf("image about %s and initrd %s, held twice while the kernel is loaded: %s of memory, %s available",
		bytesize.Format(need), bytesize.Format(initrd), bytesize.Format(ram), bytesize.Format(sp.mem))
	ramFits := sp.mem == 0 || ram <= sp.mem
	// kexec_file_load copies the initrd into the kernel's own memory,
	// which ZONE_MOVABLE cannot give (found in the lab: an OOM kill).
	if kcopy := need + initrd + ramMargin/2; ramFits && sp.kernelMem >= 0 && kcopy > sp.kernelMem {
		ramFits = false
		ramWhy += fmt.Sprintf(", but the kernel's copy (%s) must come from memory outside ZONE_MOVABLE: %s available there", bytesize.Format(need+initrd), bytesize.Format(sp.kernelMem))
	}
	disk := diskNeed(need)
	diskWhy := fmt.Sprintf("%s: image about %s, %s needed, %s free", sp.diskPath, bytesize.Format(need), bytesize.Format(disk), bytesize.Format(sp.disk))
	if sp.disk < 0 {
		diskWhy = fmt.Sprintf("%s: image about %s, free space unknown", sp.diskPath, bytesize.Format(need))
	}
	diskFits := sp.disk < 0 || disk <= sp.disk
	if sp.offRoot != "" {
		diskWhy = fmt.Sprintf("%s: %s", sp.diskPath, sp.offRoot)
		diskFits = false
	}
	fallback := ""
	switch cfg.Store {
	case "kmod":
		// The services' private memory moves into the pool as it is
		// written: on top of it the pool needs about a piece and a part.
		pool := int64(kmodNeed(need))
		switch {
		case sp.kmod != "":
			fallback = "kmod store unavailable: " + sp.kmod + "; "
		case sp.movable >= 0 && pool > sp.movable:
			fallback = fmt.Sprintf("kmod store: image about %s needs %s of memory, only %s of movable memory can be taken (boot with movablecore= to have more: memory of the kernel's own zones holds kernel allocations, which cannot move out of the way); ", bytesize.Format(need), bytesize.Format(pool), bytesize.Format(sp.movable))
		case sp.mem != 0 && kmodOnTop() > sp.mem:
			fallback = fmt.Sprintf("kmod store: moving the image about %s into the pool needs %s available besides the services' memory, %s available; ", bytesize.Format(need), bytesize.Format(kmodOnTop()), bytesize.Format(sp.mem))
		default:
			return "kmod", fmt.Sprintf("kmod (image about %s moved, part by part, out of the services into %s of memory taken out of the system, reserved for the new kernel; %s)", bytesize.Format(need), bytesize.Format(pool), kmodExperimental), nil
		}
	case "ram":
		if !ramFits {
			return "", "", fmt.Errorf("store = ram, but the image does not fit in memory (%s)", ramWhy)
		}
		return "ram", "ram (" + ramWhy + ")", nil
	case "disk":
		if sp.offRoot != "" {
			return "", "", fmt.Errorf("store = disk, but %s", diskWhy)
		}
		if !diskFits {
			return "", "", fmt.Errorf("store = disk, but the image does not fit in %s", diskWhy)
		}
		return "disk", "disk in " + diskWhy, nil
	}
	switch {
	case diskFits:
		return "disk", fallback + "disk in " + diskWhy, nil
	case ramFits:
		return "ram", fallback + "ram (" + ramWhy + "; not on disk: " + diskWhy + ")", nil
	}
	return "", "", fmt.Errorf("%sthe image fits neither in memory (%s) nor on disk (%s)", fallback, ramWhy, diskWhy)
}

// stageSize is the room the RAM store's stage may take: what is available,
// less what the archive and the kernel's copy of the initrd need.
func stageSize(initrd int64) int64 {
	avail := memAvailable()
	if avail == 0 {
		return 1 << 40 // unknown: the tmpfs default would be half of RAM
	}
	return max(avail-2*initrd-ramMargin/2, 16<<20)
}

func memAvailable() int64 { return proc.Meminfo("MemAvailable") }

// freeBytes is the space root may fill in the file system of dir (or of
// its nearest existing parent), or -1 when it cannot be told.
func freeBytes(dir string) int64 {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		var st unix.Statfs_t
		if err := unix.Statfs(d, &st); err == nil {
			return int64(st.Bfree) * st.Bsize
		}
		if d == "/" || d == "." {
			return -1
		}
	}
}

// offRoot says why the image directory dir (or its nearest existing
// parent, as it is created on the same file system) is not on the root
// file system's mount, or "" when it is.
func offRoot(dir string) string {
	mountOf := func(path string) (uint64, error) {
		var stx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_MNT_ID, &stx); err != nil {
			return 0, err
		}
		if stx.Mask&unix.STATX_MNT_ID == 0 {
			return 0, fmt.Errorf("the kernel does not tell the mount of %s", path)
		}
		return stx.Mnt_id, nil
	}
	root, err := mountOf("/")
	if err != nil {
		return fmt.Sprintf("cannot tell whether it is on the root file system: %v", err)
	}
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		id, err := mountOf(d)
		if err == nil {
			if id != root {
				return fmt.Sprintf("not on the root file system (%s is a mount of its own), and the initramfs mounts only the root", mountPoint(id))
			}
			return ""
		}
		if !errors.Is(err, unix.ENOENT) || d == "/" || d == "." {
			return fmt.Sprintf("cannot tell whether it is on the root file system: %v", err)
		}
	}
}

// mountPoint is the mount point of the mount with ID id, as
// /proc/self/mountinfo lists it (the ID is its first field).
func mountPoint(id uint64) string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Sprintf("mount %d", id)
	}
	want := strconv.FormatUint(id, 10)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[0] == want {
			return f[4]
		}
	}
	return fmt.Sprintf("mount %d", id)
}

func fileSize(path string) int64 {
	if st, err := os.Stat(path); err == nil {
		return st.Size()
	}
	return 0
}
