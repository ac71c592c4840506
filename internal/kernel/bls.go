package kernel

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// An entry of the Boot Loader Specification (Fedora, RHEL 8 and later:
// /boot/loader/entries/MACHINEID-RELEASE.conf, written by kernel-install
// and read by GRUB's blscfg, grubby and systemd-boot).
type blsEntry struct {
	file    string
	version string
	linux   string
	initrd  []string
}

// blsEntries reads the entries in boot/loader/entries. An entry that cannot
// be read is an error that names it: a boot loader would skip it, but a
// kernel seamless cannot see is one it would not switch to.
func blsEntries(boot string) ([]blsEntry, error) {
	files, err := filepath.Glob(filepath.Join(boot, "loader", "entries", "*.conf"))
	if err != nil {
		return nil, err
	}
	var out []blsEntry
	for _, f := range files {
		e, err := readBLS(f)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func readBLS(path string) (blsEntry, error) {
	e := blsEntry{file: path}
	f, err := os.Open(path)
	if err != nil {
		return e, fmt.Errorf("boot loader entry: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			key, val = line[:i], strings.TrimSpace(line[i+1:])
		}
		switch key {
		case "version":
			e.version = val
		case "linux":
			e.linux = val
		case "initrd":
			e.initrd = append(e.initrd, strings.Fields(val)...)
		}
	}
	if err := sc.Err(); err != nil {
		return e, fmt.Errorf("boot loader entry %s: %w", path, err)
	}
	return e, nil
}

// release is the kernel release of an entry: its version line, else the
// name of its image (vmlinuz-RELEASE, or RELEASE/linux in systemd-boot's
// layout).
func (e blsEntry) release() string {
	if e.version != "" {
		return e.version
	}
	base := filepath.Base(e.linux)
	if strings.HasPrefix(base, "vmlinuz-") {
		return strings.TrimPrefix(base, "vmlinuz-")
	}
	if base == "linux" {
		return filepath.Base(filepath.Dir(e.linux))
	}
	return ""
}

// resolve finds a path of an entry on this system. The paths are relative
// to the file system that holds loader/ (boot, when /boot is a partition
// of its own); GRUB's entries on a system without a separate /boot name
// /boot/vmlinuz-... from the root instead.
func resolve(boot, p string) string {
	if p == "" {
		return ""
	}
	for _, c := range []string{filepath.Join(boot, p), filepath.Join(filepath.Dir(boot), p)} {
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() {
			return c
		}
	}
	return ""
}

// fromBLS returns the kernels that boot's loader entries describe, keyed
// by release, with their files found on this system. An entry whose image
// is missing is left out (the boot loader could not boot it either). With
// several initrd lines (early microcode first) the last is the kernel's
// own initramfs, the one kexec gets.
func fromBLS(boot string) (map[string]Kernel, error) {
	es, err := blsEntries(boot)
	if err != nil {
		return nil, err
	}
	out := map[string]Kernel{}
	for _, e := range es {
		rel := e.release()
		if rel == "" || strings.Contains(rel, "rescue") {
			continue
		}
		img := resolve(boot, e.linux)
		if img == "" {
			continue
		}
		k := Kernel{Release: rel, Image: img}
		if n := len(e.initrd); n > 0 {
			k.Initrd = resolve(boot, e.initrd[n-1])
		}
		out[rel] = k
	}
	return out, nil
}
