package lab

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
)

// imageFormat changes whenever the Go side of the image build changes in a
// way that invalidates cached images (the embedded scripts are hashed anyway).
const imageFormat = "seamless-lab-image/4"

// Kernel versions of the lab, as they exist in Debian's archive (checked with
// apt-cache madison; see docs/lab.md).
const (
	// BootKernel is the kernel the bookworm guest runs after it is built: 6.1.170.
	BootKernel = "linux-image-6.1.0-47-amd64=6.1.170-3"
	// UpdateKernel is the newer 6.1 ABI installed by the baseline scenarios: 6.1.176.
	UpdateKernel = "linux-image-6.1.0-50-amd64=6.1.176-1"
)

// DefaultGuest is the guest of a scenario that names none.
const DefaultGuest = "bookworm"

// DefaultExtraKernels are kept as .deb files in the bookworm guest's /root/kernels.
var DefaultExtraKernels = []string{
	UpdateKernel,
	"linux-image-6.1.0-56-amd64=6.1.192-2",                // bookworm-security, newest 6.1 ABI
	"linux-image-6.12.117+deb12-amd64=6.12.117-1~deb12u1", // bookworm-security (linux-signed-6.12)
}

// DefaultPackages are installed in every guest (without Recommends), besides
// the kernel. firmware-linux-free and apparmor are the kernel's Recommends:
// present so that `apt-get install ./linux-image-….deb` needs no network.
// unattended-upgrades is what a server runs to take security updates;
// apt-utils builds the guest's local APT repositories; polkitd authorises
// the D-Bus API's calls.
var DefaultPackages = []string{
	"systemd", "systemd-sysv", "udev", "dbus", "initramfs-tools", "busybox", "zstd",
	"kmod", "iproute2", "procps", "e2fsprogs", "memcached", "criu", "kexec-tools",
	"qemu-guest-agent", "grub-pc", "firmware-linux-free", "apparmor",
	"netcat-openbsd", "socat", "nftables", "iptables", "less", "strace",
	"unattended-upgrades", "apt-utils", "polkitd",
}

// ServicePackages are the services of scenario seamless-update-services,
// installed in the bookworm-services guest besides DefaultPackages: Debian's own
// units, running from the first boot as on a server.
var ServicePackages = []string{"postgresql", "redis-server", "nginx", "openssh-server"}

// Repo is a local APT repository in the guest, /srv/lab-repo/NAME, listed
// by no source until a scenario adds it ("deb [trusted=yes]
// file:/srv/lab-repo/NAME ./"). It holds real Debian packages: the
// versions in Packages and whatever apt needs besides to install them on
// the guest (resolved when the image is built). Its Release file carries
// the fields of the archive the packages come from, so that apt's -t and
// unattended-upgrades' origin patterns treat it as that archive.
type Repo struct {
	Name         string   `json:"name"`
	Origin       string   `json:"origin"`
	Label        string   `json:"label"`
	Suite        string   `json:"suite"`
	NotAutomatic bool     `json:"not_automatic,omitempty"` // a backports archive
	Packages     []string `json:"packages"`                // "package=version"
}

// Config says where the lab keeps its cache and what goes into the image.
type Config struct {
	CacheDir string `json:"-"`
	// Suite is the Debian release of the guest (bookworm, trixie); it is
	// also the guest's name in scenarios.
	Suite          string   `json:"suite"`
	Mirror         string   `json:"mirror"`
	SecurityMirror string   `json:"security_mirror"`
	Packages       []string `json:"packages"`
	BootKernel     string   `json:"boot_kernel"`
	// KernelMeta is the linux-image-amd64 version installed with the boot
	// kernel ("linux-image-amd64=VERSION"), so that a newer one in a local
	// repository upgrades the kernel the way `apt upgrade` does on a
	// server. When the archive no longer has that version, the build makes
	// an equivalent one (same name, version and dependency).
	KernelMeta   string   `json:"kernel_meta"`
	ExtraKernels []string `json:"extra_kernels"`
	Repos        []Repo   `json:"repos"`
	DiskMB       int      `json:"disk_mb"`
	MemoryMB     int      `json:"-"`
	LowMemoryMB  int      `json:"-"` // RAM below 4 GiB; 0: QEMU's default
	CPUs         int      `json:"-"`
}

// bookworm is the default guest: Debian 12 with its 6.1 kernels.
func bookworm() Config {
	return Config{
		Suite:        "bookworm",
		Packages:     DefaultPackages,
		BootKernel:   BootKernel,
		KernelMeta:   "linux-image-amd64=6.1.170-3",
		ExtraKernels: DefaultExtraKernels,
		Repos: []Repo{{
			// 6.1.176 is in bookworm and bookworm-security: the
			// security archive is where a server takes it from.
			Name: "security", Origin: "Debian", Label: "Debian-Security", Suite: "bookworm-security",
			Packages: []string{"linux-image-amd64=6.1.176-1"},
		}},
	}
}

// guests are the lab's guest distributions.
var guests = map[string]func() Config{
	"bookworm": bookworm,
	// bookworm with Debian's own server units running from the first
	// boot, for seamless-update-services: a guest of its own, so that the
	// other scenarios (and CI) boot the plain guest.
	"bookworm-services": func() Config {
		c := bookworm()
		c.Packages = append(slices.Clone(DefaultPackages), ServicePackages...)
		return c
	},
	"trixie": func() Config {
		return Config{
			Suite:      "trixie",
			Packages:   DefaultPackages,
			BootKernel: "linux-image-6.12.117+deb13-amd64=6.12.117-1", // trixie (13.x point release)
			KernelMeta: "linux-image-amd64=6.12.117-1",
			ExtraKernels: []string{
				"linux-image-6.12.118+deb13-amd64=6.12.118-1", // trixie-security
			},
			Repos: []Repo{{
				Name: "security", Origin: "Debian", Label: "Debian-Security", Suite: "trixie-security",
				Packages: []string{"linux-image-amd64=6.12.118-1"},
			}, {
				Name: "backports", Origin: "Debian Backports", Label: "Debian Backports", Suite: "trixie-backports",
				NotAutomatic: true, Packages: []string{"linux-image-amd64=7.3.4-1~bpo13+1"},
			}, {
				// trixie's own dracut: installing it replaces initramfs-tools
				// (it conflicts), as on a Debian system switched to dracut;
				// seamless-update-dracut restores through its module.
				Name: "dracut", Origin: "Debian", Label: "Debian", Suite: "trixie",
				Packages: []string{"dracut=106-6"},
			}},
		}
	},
}

// Guests lists the lab's guest distributions.
func Guests() []string {
	var names []string
	for n := range guests {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ConfigFor returns the lab configuration of a guest ("" for the default
// one), with the environment overrides SEAMLESS_LAB_CACHE,
// SEAMLESS_LAB_MIRROR and SEAMLESS_LAB_SECURITY_MIRROR.
func ConfigFor(guest string) (Config, error) {
	if guest == "" {
		guest = DefaultGuest
	}
	mk, ok := guests[guest]
	if !ok {
		return Config{}, fmt.Errorf("no lab guest %q (guests: %s)", guest, strings.Join(Guests(), ", "))
	}
	c := mk()
	c.CacheDir = envOr("SEAMLESS_LAB_CACHE", "/var/cache/seamless-lab")
	c.Mirror = envOr("SEAMLESS_LAB_MIRROR", "http://deb.debian.org/debian")
	c.SecurityMirror = envOr("SEAMLESS_LAB_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
	c.DiskMB, c.MemoryMB, c.CPUs = 6144, 2048, 2
	return c, nil
}

// DefaultConfig returns the configuration of the default guest.
func DefaultConfig() Config {
	c, _ := ConfigFor(DefaultGuest) // the default guest exists
	return c
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
