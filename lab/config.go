package lab

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
)

// imageFormat changes whenever the Go side of the image build changes in a
// way that invalidates cached images (the embedded scripts are hashed anyway).
const imageFormat = "seamless-lab-image/3"

// Kernel versions of the lab, as they exist in Debian's archive (checked with
// apt-cache madison; see docs/lab.md).
const (
	// BootKernel is the kernel the guest runs after it is built: 6.1.170.
	BootKernel = "linux-image-6.1.0-47-amd64=6.1.170-3"
	// UpdateKernel is the newer 6.1 ABI installed by the baseline scenarios: 6.1.176.
	UpdateKernel = "linux-image-6.1.0-50-amd64=6.1.176-1"
)

// DefaultExtraKernels are kept as .deb files in the guest's /root/kernels.
var DefaultExtraKernels = []string{
	UpdateKernel,
	"linux-image-6.1.0-56-amd64=6.1.192-2",                // bookworm-security, newest 6.1 ABI
	"linux-image-6.12.117+deb12-amd64=6.12.117-1~deb12u1", // bookworm-security (linux-signed-6.12)
}

// DefaultPackages are installed in the guest (without Recommends), besides
// the kernel. firmware-linux-free and apparmor are the kernel's Recommends:
// present so that `apt-get install ./linux-image-….deb` needs no network.
var DefaultPackages = []string{
	"systemd", "systemd-sysv", "udev", "dbus", "initramfs-tools", "busybox", "zstd",
	"kmod", "iproute2", "procps", "e2fsprogs", "memcached", "criu", "kexec-tools",
	"qemu-guest-agent", "grub-pc", "firmware-linux-free", "apparmor",
	"netcat-openbsd", "socat", "nftables", "iptables", "less", "strace",
}

// Config says where the lab keeps its cache and what goes into the image.
type Config struct {
	CacheDir       string   `json:"-"`
	Mirror         string   `json:"mirror"`
	SecurityMirror string   `json:"security_mirror"`
	Packages       []string `json:"packages"`
	BootKernel     string   `json:"boot_kernel"`
	ExtraKernels   []string `json:"extra_kernels"`
	DiskMB         int      `json:"disk_mb"`
	MemoryMB       int      `json:"-"`
	CPUs           int      `json:"-"`
}

// DefaultConfig returns the lab configuration, with the environment
// overrides SEAMLESS_LAB_CACHE, SEAMLESS_LAB_MIRROR and
// SEAMLESS_LAB_SECURITY_MIRROR.
func DefaultConfig() Config {
	return Config{
		CacheDir:       envOr("SEAMLESS_LAB_CACHE", "/var/cache/seamless-lab"),
		Mirror:         envOr("SEAMLESS_LAB_MIRROR", "http://deb.debian.org/debian"),
		SecurityMirror: envOr("SEAMLESS_LAB_SECURITY_MIRROR", "http://deb.debian.org/debian-security"),
		Packages:       DefaultPackages,
		BootKernel:     BootKernel,
		ExtraKernels:   DefaultExtraKernels,
		DiskMB:         6144,
		MemoryMB:       2048,
		CPUs:           2,
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// ImageHash identifies an image by everything that goes into it: the
// configuration, the embedded build scripts and the image format.
func (c Config) ImageHash() string {
	h := sha256.New()
	cfg, _ := json.Marshal(c) // plain strings and ints: cannot fail
	for _, part := range [][]byte{[]byte(imageFormat), cfg, buildRootScript, firstBootScript} {
		h.Write([]byte{0})
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// KernelRelease turns "linux-image-6.1.0-47-amd64=6.1.170-3" into "6.1.0-47-amd64".
func KernelRelease(spec string) string {
	pkg, _, _ := strings.Cut(spec, "=")
	return strings.TrimPrefix(pkg, "linux-image-")
}
