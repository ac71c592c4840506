package update

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seamless-linux/seamless/internal/config"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/restorer"
)

// TestBuildRestorer builds the restorer for a made-up system whose root
// (XFS, built into the kernel) is on a disk with a built-in driver: no
// module to carry, only this binary; and refuses one with an NFS root.
// fakeRestorerSystem makes restorerSystem a made-up system whose root (XFS,
// built into the kernel) is on a disk with a built-in driver: no module to
// carry, only this binary. It returns the system's top directory.
func fakeRestorerSystem(t *testing.T) string {
	t.Helper()
	t.Cleanup(contract.SetDirs(filepath.Join(t.TempDir(), "run"), t.TempDir()))
	d := t.TempDir()
	sys := restorer.System{Proc: filepath.Join(d, "proc"), Sys: filepath.Join(d, "sys"), Modules: filepath.Join(d, "modules"), Boot: filepath.Join(d, "boot"), Etc: filepath.Join(d, "etc")}
	for p, text := range map[string]string{
		"proc/self/mountinfo":              "22 1 8:1 / / rw - xfs /dev/sda1 rw\n",
		"modules/6.1.0-50/modules.dep":     "",
		"modules/6.1.0-50/modules.builtin": "kernel/fs/xfs/xfs.ko\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(d, p)), 0o755)
		os.WriteFile(filepath.Join(d, p), []byte(text), 0o644)
	}
	os.MkdirAll(filepath.Join(d, "sys/devices/pci0000:00/0000:00:1f.2/ata1/block/sda/sda1"), 0o755)
	os.MkdirAll(filepath.Join(d, "sys/dev/block"), 0o755)
	os.Symlink("../../devices/pci0000:00/0000:00:1f.2/ata1/block/sda/sda1", filepath.Join(d, "sys/dev/block/8:1"))
	old := restorerSystem
	t.Cleanup(func() { restorerSystem = old })
	restorerSystem = sys
	return d
}

// TestBuildRestorer builds the restorer for the made-up system, and
// refuses one with an NFS root.
func TestBuildRestorer(t *testing.T) {
	d := fakeRestorerSystem(t)
	r, err := buildRestorer("6.1.0-50", "root=/dev/sda1 ro", false)
	if err != nil {
		t.Fatal(err)
	}
	if r.path != filepath.Join(contract.RunDir, "restorer-6.1.0-50.img") || !strings.Contains(r.what, "0 modules, root /dev/sda1 (xfs)") || r.kmod {
		t.Fatalf("got %+v", r)
	}
	st, err := os.Stat(r.path)
	if err != nil || st.Mode().Perm() != 0o600 || st.Size() < 1<<20 {
		t.Fatalf("image %v, %v: want a root-only archive holding this binary", st, err)
	}
	os.WriteFile(filepath.Join(d, "proc/self/mountinfo"), []byte("22 1 0:40 / / rw - nfs4 server:/export rw\n"), 0o644)
	if _, err := buildRestorer("6.1.0-50", "root=/dev/sda1 ro", false); err == nil || !strings.Contains(err.Error(), "nfs4") {
		t.Fatalf("an NFS root: %v", err)
	}
}

// TestRestorerFor checks which initramfs each initrd setting boots the
// made-up system with, and the reason given when it is not the restorer.
func TestRestorerFor(t *testing.T) {
	const good = "root=UUID=0a1b ro quiet"
	for _, tc := range []struct {
		name, initrd, store, cmdline, script string
		// module: a seamlessmem module is built for the kernel; kmod:
		// the restorer holds it.
		restorer, module, kmod bool
		why                    string
	}{
		{name: "auto", initrd: "auto", store: "auto", cmdline: good, restorer: true},
		{name: "distro", initrd: "distro", store: "auto", cmdline: good},
		{name: "restorer", initrd: "restorer", store: "ram", cmdline: good, restorer: true},
		{name: "auto, kmod store", initrd: "auto", store: "kmod", cmdline: good, restorer: true, module: true, kmod: true},
		{name: "auto, kmod store, no module", initrd: "auto", store: "kmod", cmdline: good, restorer: true},
		{name: "restorer, kmod store", initrd: "restorer", store: "kmod", cmdline: good, restorer: true, module: true, kmod: true},
		{name: "auto, another store, a module", initrd: "auto", store: "auto", cmdline: good, restorer: true, module: true},
		{name: "auto, local script", initrd: "auto", store: "auto", cmdline: good, script: "init-top/unlock", why: "initramfs is configured here"},
		{name: "restorer, local script", initrd: "restorer", store: "auto", cmdline: good, script: "init-top/unlock", restorer: true},
		{name: "auto, PARTUUID", initrd: "auto", store: "auto", cmdline: "root=PARTUUID=77 ro", why: "root=PARTUUID=77"},
		{name: "restorer, network config", initrd: "restorer", store: "auto", cmdline: good + " ip=dhcp", why: "ip=dhcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := fakeRestorerSystem(t)
			if tc.script != "" {
				p := filepath.Join(d, "etc/initramfs-tools/scripts", tc.script)
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755)
			}
			if tc.module {
				p := filepath.Join(d, "modules/6.1.0-50/updates/dkms/seamlessmem.ko")
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, []byte("module"), 0o644)
			}
			cfg := config.Default()
			cfg.Initrd, cfg.Store = tc.initrd, tc.store
			r, why := restorerFor(cfg, "6.1.0-50", tc.cmdline)
			if tc.restorer != (r.path != "") || tc.restorer && !strings.Contains(r.what, "root /dev/sda1") {
				t.Fatalf("got %+v, why %q; want the restorer: %v", r, why, tc.restorer)
			}
			if r.kmod != tc.kmod || r.kmod != strings.Contains(r.what, "seamlessmem.ko for the kmod store") {
				t.Fatalf("got %+v: want the module in it: %v", r, tc.kmod)
			}
			if tc.why == "" && why != "" || tc.why != "" && !strings.Contains(why, tc.why) {
				t.Fatalf("why %q, want %q", why, tc.why)
			}
		})
	}
}
