package kernel

import (
	"errors"
	"os"
	"path/filepath"
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
	got := Cmdline("BOOT_IMAGE=/boot/vmlinuz-6.1.0-47-amd64 root=UUID=abc ro quiet seamless.image=/x", "console=ttyS0")
	if want := "root=UUID=abc ro quiet console=ttyS0"; got != want {
		t.Fatalf("Cmdline = %q, want %q", got, want)
	}
	// A kmod-store update's reservations go with its seamless.image=; the
	// user's own memmap= stays.
	got = Cmdline("root=/dev/vda1 memmap=64M$0x100000000 ro memmap=0x8000000$0x70000000 memmap=0x10000000$0x50000000 seamless.image=kmod:0x70000000", "")
	if want := "root=/dev/vda1 memmap=64M$0x100000000 ro"; got != want {
		t.Fatalf("Cmdline = %q, want %q", got, want)
	}
}
