package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPick(t *testing.T) {
	boot := t.TempDir()
	for _, n := range []string{"vmlinuz-6.1.0-47-amd64", "initrd.img-6.1.0-47-amd64", "vmlinuz-6.1.0-50-amd64",
		"initrd.img-6.1.0-50-amd64", "vmlinuz-6.1.0-9-amd64"} {
		os.WriteFile(filepath.Join(boot, n), nil, 0o644)
	}
	k, err := Pick(boot, "", "", "6.1.0-47-amd64")
	if err != nil || k.Release != "6.1.0-50-amd64" || k.Initrd != filepath.Join(boot, "initrd.img-6.1.0-50-amd64") {
		t.Fatalf("Pick newest = %+v, %v", k, err)
	}
	if _, err := Pick(boot, "", "", "6.1.0-50-amd64"); !errors.Is(err, ErrNoNewer) {
		t.Fatalf("Pick with nothing newer = %v, want ErrNoNewer", err)
	}
	if _, err := Pick(boot, "6.1.0-9-amd64", "", "6.1.0-47-amd64"); err == nil {
		t.Fatal("Pick accepted a kernel without initrd")
	}
	if _, err := Pick(boot, "7.0", "", "6.1.0-47-amd64"); err == nil {
		t.Fatal("Pick accepted a kernel that is not installed")
	}
}

func TestCmdline(t *testing.T) {
	for _, tc := range []struct {
		name, running, extra, want, err string
	}{
		{"drops the boot loader's and a previous update's", "BOOT_IMAGE=/boot/vmlinuz-6.1.0-47-amd64 root=UUID=abc ro quiet seamless.image=/x", "console=ttyS0",
			"root=UUID=abc ro quiet console=ttyS0", ""},
		{"append may not name an image", "root=/dev/vda1", "quiet seamless.image=disk:/home", "", "seamless.image=disk:/home"},
		{"nor any seamless parameter", "root=/dev/vda1", "seamless.debug=1", "", "seamless.debug=1"},
		{"quoted", "root=/dev/vda1", `"seamless.image=disk:/home x"`, "", "seamless.image"},
		{"a name that only contains seamless is fine", "root=/dev/vda1", "myseamless.x=1", "root=/dev/vda1 myseamless.x=1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Cmdline(tc.running, tc.extra)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Cmdline = %q, %v; want an error naming %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Cmdline = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestCheckConfig(t *testing.T) {
	boot, mods := t.TempDir(), t.TempDir()
	defer func(d string) { modulesDir = d }(modulesDir)
	modulesDir = mods
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(boot, "config-6.1.0-50-amd64"), "CONFIG_X=y\nCONFIG_TIME_NS=y\n")
	write(filepath.Join(boot, "config-6.1.0-51-amd64"), "CONFIG_X=y\n# CONFIG_TIME_NS is not set\n")
	write(filepath.Join(mods, "7.9.1-100.fc99.x86_64", "config"), "CONFIG_TIME_NS=y\n")
	write(filepath.Join(mods, "7.9.2-100.fc99.x86_64", "config"), "CONFIG_TIME_NS=n\n")
	tests := []struct {
		release string
		wantErr bool
	}{
		{"6.1.0-50-amd64", false},
		{"6.1.0-51-amd64", true},
		{"7.9.1-100.fc99.x86_64", false},
		{"7.9.2-100.fc99.x86_64", true},
		{"6.1.0-99-amd64", false}, // no configuration: let through
	}
	for _, tt := range tests {
		err := checkConfig(boot, tt.release)
		if (err != nil) != tt.wantErr {
			t.Errorf("checkConfig(%s) = %v, want error %v", tt.release, err, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "CONFIG_TIME_NS") {
			t.Errorf("checkConfig(%s) = %v, want it to name CONFIG_TIME_NS", tt.release, err)
		}
	}
}
