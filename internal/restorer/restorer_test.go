package restorer

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

const release = "6.1.0-50-amd64"

// fakeSystem makes a system with a virtio disk (a PCI device driven by
// virtio-pci, the virtio device by virtio_blk) whose partition vda1, 254:1,
// holds the root, described by mountinfo; ext is the modules' suffix.
func fakeSystem(t *testing.T, mountinfo, ext string) System {
	t.Helper()
	d := t.TempDir()
	s := System{Proc: filepath.Join(d, "proc"), Sys: filepath.Join(d, "sys"), Modules: filepath.Join(d, "lib/modules"), Boot: filepath.Join(d, "boot")}
	mkdir := func(p string) {
		if err := os.MkdirAll(filepath.Join(d, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, text string) {
		mkdir(filepath.Dir(p))
		if err := os.WriteFile(filepath.Join(d, p), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(p, target string) {
		mkdir(filepath.Dir(p))
		if err := os.Symlink(target, filepath.Join(d, p)); err != nil {
			t.Fatal(err)
		}
	}
	pci := "sys/devices/pci0000:00/0000:00:04.0"
	mkdir(pci + "/virtio3/block/vda/vda1")
	mkdir("sys/devices/virtual/block/dm-0/slaves")
	link("sys/devices/virtual/block/dm-0/slaves/vda1", "../../../../"+pci+"/virtio3/block/vda/vda1")
	link(pci+"/driver", "../../../bus/pci/drivers/virtio-pci")
	link(pci+"/virtio3/driver", "../../../../bus/virtio/drivers/virtio_blk")
	link("sys/bus/pci/drivers/virtio-pci/module", "../../../../module/virtio_pci")
	link("sys/bus/virtio/drivers/virtio_blk/module", "../../../../module/virtio_blk")
	link("sys/dev/block/254:1", "../../devices/pci0000:00/0000:00:04.0/virtio3/block/vda/vda1")
	link("sys/dev/block/253:0", "../../devices/virtual/block/dm-0")
	link("sys/class/block/vda1", "../../devices/pci0000:00/0000:00:04.0/virtio3/block/vda/vda1")
	mkdir("sys/devices/virtual/block/nvme9n1")
	link("sys/dev/block/259:9", "../../devices/virtual/block/nvme9n1")
	mkdir("sys/devices/platform/host2/session1/target2:0:0/2:0:0:0/block/sdb/sdb1")
	link("sys/dev/block/8:17", "../../devices/platform/host2/session1/target2:0:0/2:0:0:0/block/sdb/sdb1")
	write("proc/self/mountinfo", mountinfo)
	m := "lib/modules/" + release + "/"
	write(m+"modules.dep", strings.ReplaceAll(`kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/fs/ext4/ext4.ko: kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko kernel/lib/crc16.ko
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/lib/crc16.ko:
kernel/crypto/crc32c_generic.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
`, ".ko", ext))
	write(m+"modules.softdep", "# Soft dependencies\nsoftdep ext4 pre: crc32c\n")
	write(m+"modules.alias", "alias crc32c crc32c_generic\nalias crypto-crc32c crc32c_generic\nalias crc32c crc32c_intel\n")
	write(m+"modules.builtin", "kernel/fs/xfs/xfs.ko\n")
	for _, f := range []string{"kernel/drivers/virtio/virtio_pci.ko", "kernel/fs/ext4/ext4.ko"} {
		write(m+strings.ReplaceAll(f, ".ko", ext), "module "+f)
	}
	return s
}

const (
	ext4Root = "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro\n" +
		"23 22 0:21 / /proc rw shared:2 - proc proc rw\n"
	dmRoot    = "22 1 253:0 / / rw shared:1 - xfs /dev/mapper/vg-root rw\n"
	usrApart  = ext4Root + "30 22 254:2 / /usr rw shared:3 - ext4 /dev/vda2 rw\n"
	btrfsRoot = "22 1 0:33 /@ / rw shared:1 - btrfs /dev/vda1 rw,subvol=/@\n"
	nfsRoot   = "22 1 0:40 / / rw shared:1 - nfs4 server:/export rw\n"
	overRoot  = "22 1 254:1 / / rw shared:1 - ext4 /dev/vda1 rw\n40 1 0:50 / / rw shared:9 - overlay overlay rw\n"
)

var ext4Files = []string{
	"kernel/drivers/virtio/virtio_pci_modern_dev.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko",
	"kernel/drivers/virtio/virtio_pci.ko", "kernel/drivers/block/virtio_blk.ko",
	"kernel/crypto/crc32c_generic.ko", "kernel/arch/x86/crypto/crc32c-intel.ko",
	"kernel/fs/mbcache.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/lib/crc16.ko", "kernel/fs/ext4/ext4.ko",
}

func TestPlan(t *testing.T) {
	xz := func(files []string) []string {
		var out []string
		for _, f := range files {
			out = append(out, f+".xz")
		}
		return out
	}
	tests := []struct {
		name, mountinfo, ext, config string
		files                        []string // the plan's modules, in order
		err                          string
	}{
		{name: "ext4 on a virtio partition", mountinfo: ext4Root, ext: ".ko", files: ext4Files},
		{name: "btrfs, found by its source's name", mountinfo: btrfsRoot, ext: ".ko", err: "module btrfs is neither"},
		{name: "compressed modules, kernel decompresses", mountinfo: ext4Root, ext: ".ko.xz", config: "CONFIG_MODULE_COMPRESS_XZ=y\nCONFIG_MODULE_DECOMPRESS=y\n", files: xz(ext4Files)},
		{name: "compressed modules, kernel does not", mountinfo: ext4Root, ext: ".ko.xz", config: "# CONFIG_MODULE_DECOMPRESS is not set\n", err: "cannot decompress them itself"},
		{name: "compressed modules, no config", mountinfo: ext4Root, ext: ".ko.zst", err: "cannot be read"},
		{name: "LVM or dm-crypt", mountinfo: dmRoot, ext: ".ko", err: "needs user space"},
		{name: "a virtual disk", mountinfo: "22 1 259:9 / / rw - ext4 /dev/nvme9n1 rw\n", ext: ".ko", err: "which user space sets up"},
		{name: "an iSCSI disk", mountinfo: "22 1 8:17 / / rw - ext4 /dev/sdb1 rw\n", ext: ".ko", err: "/session1/"},
		{name: "separate /usr", mountinfo: usrApart, ext: ".ko", err: "/usr is a separate"},
		{name: "network root", mountinfo: nfsRoot, ext: ".ko", err: "root file system is nfs4"},
		{name: "the last mount on / counts", mountinfo: overRoot, ext: ".ko", err: "root file system is overlay"},
		{name: "no root", mountinfo: "23 22 0:21 / /proc rw - proc proc rw\n", ext: ".ko", err: "no root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fakeSystem(t, tt.mountinfo, tt.ext)
			if tt.config != "" {
				os.MkdirAll(s.Boot, 0o755)
				os.WriteFile(filepath.Join(s.Boot, "config-"+release), []byte(tt.config), 0o644)
			}
			img, err := s.Plan(release)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(img.Modules, tt.files) {
				t.Fatalf("modules\n%q\nwant\n%q", img.Modules, tt.files)
			}
			if img.Root != "/dev/vda1" || img.FSType != "ext4" {
				t.Fatalf("root %s %s", img.Root, img.FSType)
			}
			ext4 := tt.files[len(tt.files)-1]
			want := []string{"kernel/crypto/crc32c_generic.ko", "kernel/arch/x86/crypto/crc32c-intel.ko", "kernel/fs/mbcache.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/lib/crc16.ko"}
			if tt.ext != ".ko" {
				for i := range want {
					want[i] += ".xz"
				}
			}
			if got := img.Needs[ext4]; !slices.Equal(got, want) {
				t.Fatalf("ext4 needs %q, want %q", got, want)
			}
			if got := img.Needs[tt.files[0]]; len(got) != 0 {
				t.Fatalf("%s needs %q, want nothing", tt.files[0], got)
			}
		})
	}
}

func TestPlanBuiltinFileSystem(t *testing.T) {
	s := fakeSystem(t, "22 1 254:1 / / rw - xfs /dev/vda1 rw\n", ".ko")
	img, err := s.Plan(release)
	if err != nil {
		t.Fatal(err)
	}
	want := ext4Files[:5] // the disk's drivers; xfs is built in
	if !slices.Equal(img.Modules, want) {
		t.Fatalf("modules %q, want %q", img.Modules, want)
	}
}

func TestPlanMissingKernel(t *testing.T) {
	s := fakeSystem(t, ext4Root, ".ko")
	if _, err := s.Plan("9.9.9-none"); err == nil || !strings.Contains(err.Error(), "depmod") {
		t.Fatalf("got %v", err)
	}
}

func TestBuild(t *testing.T) {
	s := fakeSystem(t, ext4Root, ".ko")
	img, err := s.Plan(release)
	if err != nil {
		t.Fatal(err)
	}
	img.Modules = img.Modules[3:4] // virtio_pci.ko: the files that exist
	img.Kmod = filepath.Join(img.ModDir, "updates/dkms/seamlessmem.ko.xz")
	os.MkdirAll(filepath.Dir(img.Kmod), 0o755)
	os.WriteFile(img.Kmod, []byte("module seamlessmem"), 0o644)
	exe := filepath.Join(t.TempDir(), "seamless")
	os.WriteFile(exe, []byte("\x7fELF seamless"), 0o755)
	out := filepath.Join(t.TempDir(), "restorer.img")
	if err := WriteFile(out, img, exe); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(out)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want root-only", st.Mode())
	}
	b, _ := os.ReadFile(out)
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		body := ""
		if r.ReaderAt != nil {
			c, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
			body = string(c)
		}
		got[r.Name] = body
	}
	for name, want := range map[string]string{
		"init":                            "\x7fELF seamless",
		"bin/seamless-restore":            "/init",
		"lib/modules/virtio_pci.ko":       "module kernel/drivers/virtio/virtio_pci.ko",
		"etc/seamless/modules":            "virtio_pci.ko virtio_pci_modern_dev.ko virtio_ring.ko virtio.ko\n",
		"dev/console":                     "",
		"newroot":                         "",
		"seamless/kmod/seamlessmem.ko.xz": "module seamlessmem",
	} {
		if g, ok := got[name]; !ok || g != want {
			t.Errorf("%s: %q (present %v), want %q", name, g, ok, want)
		}
	}
	weak := filepath.Join(img.ModDir, "kernel/fs/ext4/ext4.ko")
	os.Chmod(weak, 0o666)
	img.Modules = []string{"kernel/fs/ext4/ext4.ko"}
	if err := WriteFile(out, img, exe); err == nil || !strings.Contains(err.Error(), "not root's alone") {
		t.Fatalf("a world-writable module: %v", err)
	}
	img.Modules = []string{"kernel/fs/missing.ko"}
	if err := WriteFile(out, img, exe); err == nil {
		t.Fatal("an image with a missing module was written")
	}
	if b2, _ := os.ReadFile(out); !bytes.Equal(b, b2) {
		t.Fatal("a failed build replaced the image")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".restorer-*")); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}
