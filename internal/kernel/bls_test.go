package kernel

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeBoot makes a /boot tree: each name is a file, or "name=content".
// Returns the boot directory (root/boot).
func fakeBoot(t *testing.T, files []string) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		name, body, _ := strings.Cut(f, "=")
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(body, `\n`, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(root, "boot")
}

func TestInstalledLayouts(t *testing.T) {
	const fc = "6.11.4-301.fc41.x86_64"
	const fcNew = "6.12.5-200.fc41.x86_64"
	tests := []struct {
		name  string
		files []string
		// want: release -> image, initrd (relative to boot's parent)
		want [][3]string
	}{
		{"debian", []string{"boot/vmlinuz-6.1.0-47-amd64", "boot/initrd.img-6.1.0-47-amd64", "boot/vmlinuz-6.1.0-50-amd64", "boot/initrd.img-6.1.0-50-amd64"},
			[][3]string{{"6.1.0-50-amd64", "boot/vmlinuz-6.1.0-50-amd64", "boot/initrd.img-6.1.0-50-amd64"}, {"6.1.0-47-amd64", "boot/vmlinuz-6.1.0-47-amd64", "boot/initrd.img-6.1.0-47-amd64"}}},
		{"fedora without entries", []string{"boot/vmlinuz-" + fc, "boot/initramfs-" + fc + ".img", "boot/vmlinuz-0-rescue-abc", "boot/initramfs-0-rescue-abc.img"},
			[][3]string{{fc, "boot/vmlinuz-" + fc, "boot/initramfs-" + fc + ".img"}}},
		{"fedora, separate /boot: entry paths from /boot", []string{
			"boot/vmlinuz-" + fc, "boot/initramfs-" + fc + ".img", "boot/vmlinuz-" + fcNew, "boot/initramfs-" + fcNew + ".img",
			"boot/loader/entries/abc-" + fc + ".conf=title Fedora Linux (" + fc + ")\\nversion " + fc + "\\nlinux /vmlinuz-" + fc + "\\ninitrd /initramfs-" + fc + ".img\\noptions root=UUID=1 ro\\n",
			"boot/loader/entries/abc-" + fcNew + ".conf=title Fedora\\nversion\t" + fcNew + "\\nlinux\t/vmlinuz-" + fcNew + "\\ninitrd\t/initramfs-" + fcNew + ".img\\n",
			"boot/loader/entries/abc-0-rescue.conf=version 0-rescue-abc\\nlinux /vmlinuz-0-rescue-abc\\n",
		}, [][3]string{{fcNew, "boot/vmlinuz-" + fcNew, "boot/initramfs-" + fcNew + ".img"}, {fc, "boot/vmlinuz-" + fc, "boot/initramfs-" + fc + ".img"}}},
		{"fedora, /boot on the root: entry paths from /", []string{
			"boot/vmlinuz-" + fcNew, "boot/initramfs-" + fcNew + ".img",
			"boot/loader/entries/abc-" + fcNew + ".conf=version " + fcNew + "\\nlinux /boot/vmlinuz-" + fcNew + "\\ninitrd /boot/initramfs-" + fcNew + ".img\\n",
		}, [][3]string{{fcNew, "boot/vmlinuz-" + fcNew, "boot/initramfs-" + fcNew + ".img"}}},
		{"entry's initrd wins, microcode first", []string{
			"boot/vmlinuz-" + fcNew, "boot/initramfs-" + fcNew + ".img", "boot/ucode.img", "boot/custom-" + fcNew + ".img",
			"boot/loader/entries/abc-" + fcNew + ".conf=version " + fcNew + "\\nlinux /vmlinuz-" + fcNew + "\\ninitrd /ucode.img\\ninitrd /custom-" + fcNew + ".img\\n",
		}, [][3]string{{fcNew, "boot/vmlinuz-" + fcNew, "boot/custom-" + fcNew + ".img"}}},
		{"systemd-boot layout: only the entry names it", []string{
			"boot/abc/" + fcNew + "/linux", "boot/abc/" + fcNew + "/initrd",
			"boot/loader/entries/abc-" + fcNew + ".conf=title Fedora\\nlinux /abc/" + fcNew + "/linux\\ninitrd /abc/" + fcNew + "/initrd\\n",
		}, [][3]string{{fcNew, "boot/abc/" + fcNew + "/linux", "boot/abc/" + fcNew + "/initrd"}}},
		{"entry whose image is gone", []string{
			"boot/vmlinuz-" + fc, "boot/initramfs-" + fc + ".img",
			"boot/loader/entries/abc-" + fcNew + ".conf=version " + fcNew + "\\nlinux /vmlinuz-" + fcNew + "\\n",
		}, [][3]string{{fc, "boot/vmlinuz-" + fc, "boot/initramfs-" + fc + ".img"}}},
		{"no initrd anywhere", []string{"boot/vmlinuz-" + fc}, [][3]string{{fc, "boot/vmlinuz-" + fc, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			boot := fakeBoot(t, tt.files)
			ks, err := Installed(boot)
			if err != nil {
				t.Fatal(err)
			}
			var got [][3]string
			root := filepath.Dir(boot)
			rel := func(p string) string {
				if p == "" {
					return ""
				}
				r, _ := filepath.Rel(root, p)
				return r
			}
			for _, k := range ks {
				got = append(got, [3]string{k.Release, rel(k.Image), rel(k.Initrd)})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Installed =\n  %v\nwant\n  %v", got, tt.want)
			}
		})
	}
}

func TestPickFedora(t *testing.T) {
	boot := fakeBoot(t, []string{
		"boot/vmlinuz-6.11.4-301.fc41.x86_64", "boot/initramfs-6.11.4-301.fc41.x86_64.img",
		"boot/vmlinuz-6.12.5-200.fc41.x86_64", "boot/initramfs-6.12.5-200.fc41.x86_64.img",
	})
	k, err := Pick(boot, "", "", "6.11.4-301.fc41.x86_64")
	if err != nil || k.Release != "6.12.5-200.fc41.x86_64" || filepath.Base(k.Initrd) != "initramfs-6.12.5-200.fc41.x86_64.img" {
		t.Fatalf("Pick = %+v, %v", k, err)
	}
}
