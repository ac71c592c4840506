package restorer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckCmdline(t *testing.T) {
	for _, tc := range []struct {
		cmdline, refused string // refused: part of the error, "" when it can boot
	}{
		{"BOOT_IMAGE=/boot/vmlinuz root=UUID=0a1b ro quiet", ""},
		{"root=/dev/vda1 ro console=ttyS0 rootdelay=3 init=/lib/systemd/systemd", ""},
		{"root=LABEL=root rw resume=UUID=55 rootflags=noatime", ""},
		{"root=PARTUUID=1234-01 ro", "only /dev/NAME"},
		{"root=/dev/disk/by-uuid/0a1b ro", "no /dev/disk links"},
		{"ro quiet", "no root="},
		{"root=/dev/vda1 ip=dhcp", "ip=dhcp"},
		{"root=/dev/nfs nfsroot=10.0.0.1:/srv", "nfsroot="},
		{"root=UUID=0a1b rd.luks.uuid=77", "rd.luks.uuid=77"},
		{"root=UUID=0a1b break=premount", "break=premount"},
		{"root=UUID=0a1b break", "break"},
		{"root=UUID=0a1b boot=live", "boot=live"},
		{"root=UUID=0a1b rdinit=/sbin/init", ""}, // not rd.*: the kernel's own
	} {
		err := CheckCmdline(tc.cmdline)
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%q: %v", tc.cmdline, err)
		case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
			t.Errorf("%q: got %v, want an error naming %q", tc.cmdline, err, tc.refused)
		}
	}
}

func TestCustomized(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string // under /etc; a name ending in / is a directory
		want  string            // part of the answer, "" for none
	}{
		{"Debian's defaults", map[string]string{
			"initramfs-tools/scripts/init-top/": "", "initramfs-tools/scripts/local-top/": "", "initramfs-tools/hooks/": "",
			"initramfs-tools/modules":        "# List of modules\n#\n# raid1\n\n",
			"initramfs-tools/conf.d/resume":  "RESUME=UUID=55\n",
			"initramfs-tools/initramfs.conf": "MODULES=most\n",
		}, ""},
		{"Fedora's defaults", map[string]string{"dracut.conf": "# PUT YOUR CONFIG IN separate files\n", "dracut.conf.d/": ""}, ""},
		{"nothing at all", map[string]string{}, ""},
		{"a local script", map[string]string{"initramfs-tools/scripts/init-top/unlock": "#!/bin/sh\n"}, "initramfs-tools runs"},
		{"a local hook", map[string]string{"initramfs-tools/hooks/firmware": "#!/bin/sh\n"}, "hooks/firmware"},
		{"a module to load", map[string]string{"initramfs-tools/modules": "# comment\nvirtio_net\n"}, `"virtio_net"`},
		{"dracut settings", map[string]string{"dracut.conf.d/90-net.conf": "add_dracutmodules+=\" network \"\n"}, "90-net.conf"},
		{"dracut's other files", map[string]string{"dracut.conf.d/README": "add_drivers+=x\n"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			etc := t.TempDir()
			for p, text := range tc.files {
				full := filepath.Join(etc, p)
				if strings.HasSuffix(p, "/") {
					os.MkdirAll(full, 0o755)
					continue
				}
				os.MkdirAll(filepath.Dir(full), 0o755)
				os.WriteFile(full, []byte(text), 0o644)
			}
			got, err := System{Etc: etc}.Customized()
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
