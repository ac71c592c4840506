// Package kernel finds the kernels installed on the machine, picks the
// target of an update, builds its command line, and loads module files.
package kernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Kernel is an installed kernel: its release and the files to boot it.
type Kernel struct {
	Release string `json:"release"`
	Image   string `json:"image"`
	Initrd  string `json:"initrd,omitempty"`
}

// Installed lists the kernels in boot (normally /boot) that have an image,
// sorted from the newest release to the oldest. Debian names them
// vmlinuz-R with initrd.img-R; Fedora and RHEL vmlinuz-R with
// initramfs-R.img, and describe them in Boot Loader Specification entries
// (boot/loader/entries/*.conf), which are read too: where an entry names
// a kernel's files, those are the ones its boot loader boots, and a
// kernel only an entry names (systemd-boot's MACHINEID/R/linux) is listed.
func Installed(boot string) ([]Kernel, error) {
	imgs, err := filepath.Glob(filepath.Join(boot, "vmlinuz-*"))
	if err != nil {
		return nil, err
	}
	bls, err := fromBLS(boot)
	if err != nil {
		return nil, err
	}
	var out []Kernel
	for _, img := range imgs {
		if fi, err := os.Stat(img); err != nil || !fi.Mode().IsRegular() {
			continue // a dangling or directory vmlinuz-*
		}
		rel := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
		if strings.Contains(rel, "rescue") {
			continue
		}
		k := Kernel{Release: rel, Image: img}
		for _, cand := range []string{"initrd.img-" + rel, "initramfs-" + rel + ".img"} {
			if _, err := os.Stat(filepath.Join(boot, cand)); err == nil {
				k.Initrd = filepath.Join(boot, cand)
				break
			}
		}
		if b, ok := bls[rel]; ok {
			if b.Initrd == "" {
				b.Initrd = k.Initrd
			}
			k = b
			delete(bls, rel)
		}
		out = append(out, k)
	}
	for _, k := range bls {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return CompareVersions(out[i].Release, out[j].Release) > 0 })
	return out, nil
}

// Running returns the release of the running kernel.
func Running() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// ErrNoNewer is returned by Pick when no installed kernel is newer than the
// running one.
var ErrNoNewer = errors.New("no installed kernel is newer than the running one")

// Pick chooses the target of an update: want may be empty (the newest
// installed kernel, which must be newer than running), a release, or a path
// to a kernel image. initrd, if set, overrides the kernel's own initrd.
func Pick(boot, want, initrd, running string) (Kernel, error) {
	var k Kernel
	switch {
	case strings.Contains(want, "/"):
		if _, err := os.Stat(want); err != nil {
			return k, fmt.Errorf("kernel image: %w", err)
		}
		k = Kernel{Release: strings.TrimPrefix(filepath.Base(want), "vmlinuz-"), Image: want}
	default:
		ks, err := Installed(boot)
		if err != nil {
			return k, err
		}
		if len(ks) == 0 {
			return k, fmt.Errorf("no kernel images (vmlinuz-*) in %s", boot)
		}
		if want == "" {
			if CompareVersions(ks[0].Release, running) <= 0 {
				return k, fmt.Errorf("%w (running %s, newest installed %s)", ErrNoNewer, running, ks[0].Release)
			}
			k = ks[0]
		} else {
			found := false
			for _, c := range ks {
				if c.Release == want {
					k, found = c, true
				}
			}
			if !found {
				var names []string
				for _, c := range ks {
					names = append(names, c.Release)
				}
				return k, fmt.Errorf("kernel %s is not installed in %s (installed: %s)", want, boot, strings.Join(names, ", "))
			}
		}
	}
	if initrd != "" {
		if _, err := os.Stat(initrd); err != nil {
			return k, fmt.Errorf("initrd: %w", err)
		}
		k.Initrd = initrd
	}
	if k.Initrd == "" {
		return k, fmt.Errorf("kernel %s has no initrd; give one with --initrd", k.Release)
	}
	if err := checkConfig(boot, k.Release); err != nil {
		return k, err
	}
	return k, nil
}

// modulesDir holds each kernel's modules, and on Fedora its configuration.
var modulesDir = "/lib/modules"

// required are the options of the new kernel without which a restore
// would not be faithful, with what goes wrong without each.
var required = []struct{ option, why string }{
	{"CONFIG_TIME_NS", "no time namespaces: restored programs would see their clocks go back by the old kernel's uptime"},
}

// checkConfig refuses a kernel whose build configuration (boot/config-R,
// or /lib/modules/R/config on Fedora) lacks an option seamless needs. A
// kernel without a configuration file is let through: its restore then
// fails before anything is created, and the units start cold.
func checkConfig(boot, release string) error {
	var conf []byte
	for _, p := range []string{filepath.Join(boot, "config-"+release), filepath.Join(modulesDir, release, "config")} {
		if b, err := os.ReadFile(p); err == nil {
			conf = b
			break
		}
	}
	if conf == nil {
		return nil
	}
	set := map[string]bool{}
	for _, l := range strings.Split(string(conf), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && (v == "y" || v == "m") {
			set[k] = true
		}
	}
	for _, r := range required {
		if !set[r.option] {
			return fmt.Errorf("kernel %s is built without %s (%s); boot it with a reboot", release, r.option, r.why)
		}
	}
	return nil
}

// Cmdline builds the target's command line from the running one: the boot
// loader's own parameters (BOOT_IMAGE=, initrd=) and any seamless.* of a
// previous update are dropped, extra is appended. The seamless.*
// parameters are seamless's alone to set: extra may not carry one.
func Cmdline(running, extra string) (string, error) {
	var keep []string
	for _, f := range strings.Fields(running) {
		if strings.HasPrefix(f, "BOOT_IMAGE=") || strings.HasPrefix(f, "initrd=") || isSeamless(f) {
			continue
		}
		keep = append(keep, f)
	}
	for _, f := range strings.Fields(extra) {
		if isSeamless(f) {
			return "", fmt.Errorf("%q: the seamless.* parameters are set by seamless alone, never appended", f)
		}
		keep = append(keep, f)
	}
	return strings.Join(keep, " "), nil
}

// isSeamless reports whether a command line word sets a seamless.*
// parameter, quoted or not (the kernel takes "a=b c" as one word).
func isSeamless(f string) bool {
	return strings.HasPrefix(strings.TrimLeft(f, `"`), "seamless.")
}
