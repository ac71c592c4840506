// Package config reads /etc/seamless/seamless.conf and the drop-ins in
// /etc/seamless/seamless.conf.d/*.conf (read in name order, later files
// override earlier ones; "preserve" accumulates).
//
// The format is "key = value" lines; '#' starts a comment.
//
//	preserve = memcached.service redis-server.service
//	store = auto          # auto, ram, disk or kmod
//	disk-dir = /var/lib/seamless/images
//	timeout = 120s        # longest a checkpoint at shutdown may take
//	apply = manual        # manual, now, or HH:MM: what follows a kernel install
//	wake-peers = all      # all, acks or off: prompt the peers of restored connections
//	hold-for-network = 10s # longest a restored service waits, stopped, for its network
//	initrd = auto         # auto, restorer or distro: the initramfs that boots an update
package config

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Path is the configuration file; its drop-ins are in Path + ".d".
const Path = "/etc/seamless/seamless.conf"

// Config is the merged configuration.
type Config struct {
	// Preserve lists units to carry across updates, in addition to those
	// with X-SeamlessPreserve=yes.
	Preserve []string `json:"preserve"`
	// Store is where the image waits for the new kernel: "ram", "disk",
	// "auto" (the disk directory when it is on the root file system and
	// has room, else RAM when it fits with room to spare), or "kmod" (the
	// seamlessmem module's memory, docs/kmod.md; when the module is missing
	// or refused, as auto). Auto never picks kmod: it is opt-in.
	Store string `json:"store"`
	// DiskDir is the root-only directory of the disk store.
	DiskDir string `json:"disk_dir"`
	// Timeout bounds the checkpoint at shutdown.
	Timeout time.Duration `json:"timeout"`
	// Apply says what follows the install of a newer kernel by apt:
	// "manual" (a message; the operator runs the update), "now" (the
	// update starts once apt and dpkg are done), or a time of day "HH:MM"
	// (a timer applies it then).
	Apply string `json:"apply"`
	// WakePeers says how the peers of restored TCP connections are prompted
	// to retransmit once the network is up (see inet.Wake): "all"
	// (duplicate acknowledgements and ICMP errors), "acks" (the
	// acknowledgements alone: no peer sees an error, Linux peers wait
	// for their own timer) or "off".
	WakePeers string `json:"wake_peers"`
	// HoldForNetwork is how long a restored process tree with TCP
	// connections to other hosts stays stopped, complete, waiting for the
	// new kernel's network to reach their peers (0: it runs at once). Run
	// earlier, it could do nothing with those connections and would see
	// its connects to other hosts refused, which it never saw before the
	// update.
	HoldForNetwork time.Duration `json:"hold_for_network"`
	// Initrd says which initramfs boots the new kernel of an update:
	// "distro" (the kernel's own, made by initramfs-tools or dracut),
	// "restorer" (seamless's own, built for the update by package
	// restorer when it can boot this system, else the kernel's own), or
	// "auto" (the restorer where it can boot this system and the
	// administrator has not configured the distribution's initramfs
	// beyond its defaults; else the kernel's own).
	Initrd string `json:"initrd"`
}

// Initramfs choices.
const (
	InitrdAuto     = "auto"
	InitrdDistro   = "distro"
	InitrdRestorer = "restorer"
)

// Ways to wake the peers.
const (
	WakeAll  = "all"
	WakeAcks = "acks"
	WakeOff  = "off"
)

// DefaultHoldForNetwork bounds the hold of a restored tree for its network:
// long enough for a DHCP lease, short enough that a network that never
// comes back does not keep the service from its local clients for long.
const DefaultHoldForNetwork = 10 * time.Second

// Apply policies; any other valid value is a time of day, HH:MM.
const (
	ApplyManual = "manual"
	ApplyNow    = "now"
)

// ApplyAt returns the hour and minute of an "HH:MM" apply policy, and false
// for "manual", "now" or anything that is not a time of day.
func ApplyAt(apply string) (hour, minute int, ok bool) {
	h, m, found := strings.Cut(apply, ":")
	if !found || len(h) != 2 || len(m) != 2 {
		return 0, 0, false
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, 0, false
	}
	return hh, mm, true
}

// Default is the configuration without any file.
func Default() Config {
	return Config{Store: "auto", DiskDir: "/var/lib/seamless/images", Timeout: 120 * time.Second, Apply: ApplyManual, WakePeers: WakeAll, HoldForNetwork: DefaultHoldForNetwork, Initrd: InitrdAuto}
}

// Load reads path and path.d/*.conf. Missing files are not an error.
func Load(path string) (Config, error) {
	c := Default()
	files := []string{path}
	more, _ := filepath.Glob(path + ".d/*.conf")
	sort.Strings(more)
	files = append(files, more...)
	for _, f := range files {
		if err := c.read(f); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (c *Config) read(path string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("%s:%d: want key = value", path, n)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "preserve":
			c.Preserve = append(c.Preserve, strings.Fields(v)...)
		case "store":
			if v != "auto" && v != "ram" && v != "disk" && v != "kmod" {
				return fmt.Errorf("%s:%d: store must be auto, ram, disk or kmod, not %q", path, n, v)
			}
			c.Store = v
		case "disk-dir":
			if !filepath.IsAbs(v) {
				return fmt.Errorf("%s:%d: disk-dir must be an absolute path", path, n)
			}
			c.DiskDir = v
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("%s:%d: timeout %q is not a duration such as 120s", path, n, v)
			}
			c.Timeout = d
		case "apply":
			if _, _, at := ApplyAt(v); v != ApplyManual && v != ApplyNow && !at {
				return fmt.Errorf("%s:%d: apply must be manual, now or a time of day HH:MM (24-hour), not %q", path, n, v)
			}
			c.Apply = v
		case "wake-peers":
			if v != WakeAll && v != WakeAcks && v != WakeOff {
				return fmt.Errorf("%s:%d: wake-peers must be all, acks or off, not %q", path, n, v)
			}
			c.WakePeers = v
		case "hold-for-network":
			d, err := time.ParseDuration(v)
			if v == "0" {
				d, err = 0, nil
			}
			if err != nil || d < 0 || d > 2*time.Minute {
				return fmt.Errorf("%s:%d: hold-for-network %q is not a duration from 0 to 2m such as 10s", path, n, v)
			}
			c.HoldForNetwork = d
		case "initrd":
			if v != InitrdAuto && v != InitrdDistro && v != InitrdRestorer {
				return fmt.Errorf("%s:%d: initrd must be auto, restorer or distro, not %q", path, n, v)
			}
			c.Initrd = v
		default:
			return fmt.Errorf("%s:%d: unknown key %q", path, n, k)
		}
	}
	return sc.Err()
}
