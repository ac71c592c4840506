package lab

import (
	"context"
	_ "embed" // the guest build scripts
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

//go:embed guest/build-root.sh
var buildRootScript []byte

//go:embed guest/firstboot.sh
var firstBootScript []byte

// Image is a built, cached lab disk image.
type Image struct {
	Dir  string    // images/<hash>
	Disk string    // raw disk: MBR, GRUB, one ext4 partition
	Hash string    // ImageHash of the configuration that built it
	Meta ImageMeta // what was built, and how long it took
}

// ImageMeta is stored next to the disk as meta.json; its presence marks a
// complete image.
type ImageMeta struct {
	Hash          string    `json:"hash"`
	Config        Config    `json:"config"`
	BuiltAt       time.Time `json:"built_at"`
	RootSeconds   float64   `json:"root_seconds"`
	DiskSeconds   float64   `json:"disk_seconds"`
	FirstBootSecs float64   `json:"firstboot_seconds"`
	TotalSeconds  float64   `json:"total_seconds"`
}

// ensureCacheDir creates the root-only cache directory.
func ensureCacheDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create lab cache %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("chmod lab cache %s: %w", dir, err)
	}
	return nil
}

// lockCache takes an exclusive lock on the cache; the returned function releases it.
func lockCache(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open cache lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		logf(os.Stderr, "waiting for another seamless-lab build to finish (lock %s)", f.Name())
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock cache: %w", err)
		}
	}
	return func() { f.Close() }, nil
}

// LoadImage returns the cached image for cfg, or an error if there is none.
func LoadImage(cfg Config) (*Image, error) {
	hash := cfg.ImageHash()
	dir := filepath.Join(cfg.CacheDir, "images", hash)
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, fmt.Errorf("no cached image %s: %w", hash, err)
	}
	img := &Image{Dir: dir, Disk: filepath.Join(dir, "disk.raw"), Hash: hash}
	if err := json.Unmarshal(b, &img.Meta); err != nil {
		return nil, fmt.Errorf("read %s/meta.json: %w", dir, err)
	}
	if _, err := os.Stat(img.Disk); err != nil {
		return nil, fmt.Errorf("cached image %s is incomplete: %w", hash, err)
	}
	return img, nil
}

// Build returns the cached image for cfg, building it first when its inputs
// changed (or when force is set). Progress goes to out.
func Build(ctx context.Context, cfg Config, force bool, out io.Writer) (*Image, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the lab image build needs root (debootstrap, chroot, mount)")
	}
	if err := ensureCacheDir(cfg.CacheDir); err != nil {
		return nil, err
	}
	// A complete image is published by a rename: finding one needs no lock,
	// and a run on one guest's image need not wait for another guest's build.
	if img, err := LoadImage(cfg); err == nil && !force {
		logf(out, "image %s is cached (built %s in %.0f s): %s", img.Hash, img.Meta.BuiltAt.Format(time.RFC3339), img.Meta.TotalSeconds, img.Disk)
		return img, nil
	}
	unlock, err := lockCache(cfg.CacheDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	hash := cfg.ImageHash()
	if img, err := LoadImage(cfg); err == nil && !force {
		logf(out, "image %s is cached (built %s in %.0f s): %s", hash, img.Meta.BuiltAt.Format(time.RFC3339), img.Meta.TotalSeconds, img.Disk)
		return img, nil
	}
	for _, tool := range []string{"debootstrap", "mkfs.ext4", "sfdisk", "unshare", "qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is missing (run lab/demo.sh or install debootstrap e2fsprogs fdisk util-linux qemu-system-x86 qemu-utils): %w", tool, err)
		}
	}
	images := filepath.Join(cfg.CacheDir, "images")
	final := filepath.Join(images, hash)
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil { // a failed earlier build: start over
		return nil, fmt.Errorf("remove stale build dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(tmp, "root"), 0o755); err != nil {
		return nil, fmt.Errorf("create build dir: %w", err)
	}
	meta := ImageMeta{Hash: hash, Config: cfg, BuiltAt: time.Now().UTC()}
	t0 := time.Now()
	logf(out, "building lab image %s in %s", hash, tmp)
	if err := buildRoot(ctx, cfg, tmp, out); err != nil {
		return nil, err
	}
	meta.RootSeconds = time.Since(t0).Seconds()
	t1 := time.Now()
	if err := makeDisk(ctx, cfg, tmp, out); err != nil {
		return nil, err
	}
	meta.DiskSeconds = time.Since(t1).Seconds()
	t2 := time.Now()
	if err := firstBoot(ctx, cfg, tmp, out); err != nil {
		return nil, err
	}
	meta.FirstBootSecs = time.Since(t2).Seconds()
	meta.TotalSeconds = time.Since(t0).Seconds()
	b, _ := json.MarshalIndent(meta, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "meta.json"), b, 0o600); err != nil {
		return nil, fmt.Errorf("write image meta: %w", err)
	}
	if err := os.RemoveAll(final); err != nil {
		return nil, fmt.Errorf("replace old image: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("publish image: %w", err)
	}
	pruneImages(images, hash, out)
	logf(out, "image %s built in %.0f s (root %.0f s, disk %.0f s, first boot %.0f s)",
		hash, meta.TotalSeconds, meta.RootSeconds, meta.DiskSeconds, meta.FirstBootSecs)
	return LoadImage(cfg)
}

// buildRoot runs build-root.sh in a private mount namespace, then copies out
// the boot kernel for the first boot and removes nothing else.
func buildRoot(ctx context.Context, cfg Config, dir string, out io.Writer) error {
	// 0755 so that apt's _apt user can write downloads there inside the
	// chroot; the cache directory above it stays root-only (0700).
	debs := filepath.Join(cfg.CacheDir, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return fmt.Errorf("create deb cache: %w", err)
	}
	if err := os.Chmod(debs, 0o755); err != nil {
		return fmt.Errorf("chmod deb cache: %w", err)
	}
	script := filepath.Join(dir, "build-root.sh")
	if err := os.WriteFile(script, buildRootScript, 0o700); err != nil {
		return fmt.Errorf("write build script: %w", err)
	}
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "bash", script)
	cmd.Env = append(os.Environ(),
		"ROOT="+filepath.Join(dir, "root"),
		"DEBCACHE="+debs,
		"SUITE="+cfg.Suite,
		"KERNEL_META="+cfg.KernelMeta,
		"REPOS="+reposEnv(cfg.Repos),
		"MIRROR="+cfg.Mirror,
		"SECURITY_MIRROR="+cfg.SecurityMirror,
		"PACKAGES="+strings.Join(cfg.Packages, " "),
		"BOOT_KERNEL="+cfg.BootKernel,
		"EXTRA_KERNELS="+strings.Join(cfg.ExtraKernels, " "),
	)
	if err := runLogged(cmd, filepath.Join(dir, "build-root.log"), out, func(l string) bool {
		return strings.HasPrefix(l, "[build-root]") || strings.HasPrefix(l, "E:") || strings.HasPrefix(l, "W:")
	}); err != nil {
		return fmt.Errorf("build the guest root (log: %s/build-root.log): %w", dir, err)
	}
	rel := KernelRelease(cfg.BootKernel)
	for _, f := range []string{"vmlinuz-" + rel, "initrd.img-" + rel} {
		if err := copyFile(filepath.Join(dir, "root", "boot", f), filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("copy the boot kernel out of the guest root: %w", err)
		}
	}
	return nil
}

// makeDisk writes a partitioned raw disk (MBR, one bootable ext4 partition
// from 1 MiB, created from the root directory without loop devices) and
// removes the root directory.
func makeDisk(ctx context.Context, cfg Config, dir string, out io.Writer) error {
	disk := filepath.Join(dir, "disk.raw")
	logf(out, "writing %d MiB disk image %s", cfg.DiskMB, disk)
	if err := os.Truncate(disk, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reset disk: %w", err)
	}
	f, err := os.OpenFile(disk, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create disk: %w", err)
	}
	err = f.Truncate(int64(cfg.DiskMB) << 20)
	f.Close()
	if err != nil {
		return fmt.Errorf("size disk: %w", err)
	}
	sf := exec.CommandContext(ctx, "sfdisk", "-q", disk)
	sf.Stdin = strings.NewReader("label: dos\nstart=2048, type=83, bootable\n")
	if b, err := sf.CombinedOutput(); err != nil {
		return fmt.Errorf("partition disk: %w: %s", err, b)
	}
	mk := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", "seamless-root",
		"-E", "offset=1048576", "-d", filepath.Join(dir, "root"), disk,
		strconv.Itoa((cfg.DiskMB-1)*1024)+"k")
	if b, err := mk.CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4 -d: %w: %s", err, b)
	}
	if err := os.RemoveAll(filepath.Join(dir, "root")); err != nil {
		return fmt.Errorf("remove guest root: %w", err)
	}
	return nil
}

// firstBoot boots the new disk once with the kernel given directly to QEMU,
// installs GRUB on the disk from inside the guest, and powers off.
func firstBoot(ctx context.Context, cfg Config, dir string, out io.Writer) error {
	rel := KernelRelease(cfg.BootKernel)
	logf(out, "first boot (direct kernel %s): install GRUB on /dev/vda", rel)
	vm, err := StartVM(VMConfig{
		Dir: dir, Disk: filepath.Join(dir, "disk.raw"), DiskFormat: "raw",
		Kernel: filepath.Join(dir, "vmlinuz-"+rel), Initrd: filepath.Join(dir, "initrd.img-"+rel),
		Append:   "root=LABEL=seamless-root ro console=ttyS0,115200n8",
		MemoryMB: cfg.MemoryMB, CPUs: cfg.CPUs,
	})
	if err != nil {
		return err
	}
	defer vm.Kill()
	g := &Guest{VM: vm, Out: out}
	if _, err := g.WaitBoot(ctx, 3*time.Minute, "", time.Time{}); err != nil {
		return err
	}
	res, err := g.Run(ctx, string(firstBootScript), 5*time.Minute)
	if err != nil {
		return g.Fail("first boot script", err)
	}
	if res.ExitCode != 0 {
		return g.Fail("first boot script", fmt.Errorf("exit %d: %s%s", res.ExitCode, res.Stdout, res.Stderr))
	}
	if _, err := vm.Agent.Start(ctx, []string{"/bin/systemctl", "poweroff"}, nil); err != nil {
		logf(out, "poweroff request: %v (waiting for power-off anyway)", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := vm.WaitExit(pctx); err != nil {
		return g.Fail("first boot power-off", err)
	}
	for _, f := range []string{"qga.sock", "qmp.sock"} {
		_ = os.Remove(filepath.Join(dir, f))
	}
	return os.Rename(filepath.Join(dir, "serial.log"), filepath.Join(dir, "firstboot-serial.log"))
}

// reposEnv writes the local repositories for build-root.sh: one line each,
// NAME|ORIGIN|LABEL|SUITE|NOTAUTOMATIC|package=version ...
func reposEnv(repos []Repo) string {
	var b strings.Builder
	for _, r := range repos {
		na := "0"
		if r.NotAutomatic {
			na = "1"
		}
		fmt.Fprintf(&b, "%s|%s|%s|%s|%s|%s\n", r.Name, r.Origin, r.Label, r.Suite, na, strings.Join(r.Packages, " "))
	}
	return b.String()
}

// pruneImages removes cached images except keep and, for each guest
// distribution, the newest other image: every guest keeps an image (one
// engineer's trixie build does not evict the bookworm image others run),
// and switching between two branches of a guest's configuration does not
// rebuild.
func pruneImages(dir, keep string, out io.Writer) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type img struct {
		name, suite string
		mod         time.Time
	}
	var old []img
	for _, e := range ents {
		if e.Name() == keep || !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		i := img{name: e.Name(), suite: DefaultGuest, mod: fi.ModTime()}
		var meta ImageMeta
		if b, err := os.ReadFile(filepath.Join(dir, e.Name(), "meta.json")); err == nil && json.Unmarshal(b, &meta) == nil && meta.Config.Suite != "" {
			i.suite = meta.Config.Suite // images from before the suite was recorded are bookworm's
		}
		old = append(old, i)
	}
	sort.Slice(old, func(i, j int) bool { return old[i].mod.After(old[j].mod) })
	kept := map[string]bool{}
	for _, o := range old {
		if !kept[o.suite] {
			kept[o.suite] = true
			continue
		}
		logf(out, "removing old image %s (%s)", o.name, o.suite)
		_ = os.RemoveAll(filepath.Join(dir, o.name))
	}
}
