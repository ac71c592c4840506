package trigger

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/seamless-linux/seamless/internal/contract"
)

// moveFiles points the package's files into a fresh directory.
func moveFiles(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	oldFlag := RebootRequired
	RebootRequired = filepath.Join(dir, "reboot-required")
	t.Cleanup(func() { RebootRequired = oldFlag })
	t.Cleanup(contract.SetDirs(filepath.Join(dir, "seamless"), ""))
	return dir
}

func TestNotes(t *testing.T) {
	moveFiles(t)
	if got, err := TakeNotes(); err != nil || got != nil {
		t.Fatalf("TakeNotes with no notes = %v, %v", got, err)
	}
	for _, r := range []string{"6.1.0-50-amd64", "6.12.117+deb12-amd64", "6.1.0-50-amd64"} {
		if err := Note(r, "", "6.1.0-47-amd64"); err != nil {
			t.Fatal(err)
		}
	}
	got, err := TakeNotes()
	if want := []string{"6.1.0-50-amd64", "6.12.117+deb12-amd64"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("TakeNotes = %v, %v; want %v", got, err, want)
	}
	if got, err := TakeNotes(); err != nil || got != nil {
		t.Fatalf("second TakeNotes = %v, %v; want nothing", got, err)
	}
	if fi, err := os.Stat(contract.RunDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("run dir: %v, %v; want 0700", fi, err)
	}
	for _, bad := range []string{"", "../x", "a\nb"} {
		if err := Note(bad, "", "6.1.0-47-amd64"); err == nil {
			t.Errorf("Note(%q) accepted", bad)
		}
	}
}

func TestRebootRequired(t *testing.T) {
	tests := []struct {
		name     string
		installs [][2]string // release, package
		running  string
		flag     bool
		pkgs     string
	}{
		{"newer kernel", [][2]string{{"6.1.0-50-amd64", "linux-image-6.1.0-50-amd64"}}, "6.1.0-47-amd64", true, "linux-image-6.1.0-50-amd64\n"},
		{"package name unknown", [][2]string{{"6.12.118+deb13-amd64", ""}}, "6.12.117+deb13-amd64", true, "linux-image-6.12.118+deb13-amd64\n"},
		{"listed once", [][2]string{{"6.1.0-50-amd64", "a"}, {"6.1.0-56-amd64", "b"}, {"6.1.0-50-amd64", "a"}}, "6.1.0-47-amd64", true, "a\nb\n"},
		{"older kernel", [][2]string{{"6.1.0-47-amd64", "linux-image-6.1.0-47-amd64"}}, "6.1.0-50-amd64", false, ""},
		{"same kernel again", [][2]string{{"6.1.0-50-amd64", "linux-image-6.1.0-50-amd64"}}, "6.1.0-50-amd64", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			moveFiles(t)
			for _, in := range tt.installs {
				if err := Note(in[0], in[1], tt.running); err != nil {
					t.Fatal(err)
				}
			}
			flag, err := os.ReadFile(RebootRequired)
			if tt.flag != (err == nil) {
				t.Fatalf("flag %q, %v; want present: %v", flag, err, tt.flag)
			}
			if tt.flag && string(flag) != "*** System restart required ***\n" {
				t.Errorf("flag says %q", flag)
			}
			pkgs, _ := os.ReadFile(RebootRequired + ".pkgs")
			if string(pkgs) != tt.pkgs {
				t.Errorf(".pkgs = %q, want %q", pkgs, tt.pkgs)
			}
		})
	}
}

func TestRebootRequiredKeepsOthers(t *testing.T) {
	moveFiles(t)
	// Another package (libc6, say) already asked for a reboot.
	os.WriteFile(RebootRequired, []byte("*** System restart required ***\n"), 0o644)
	os.WriteFile(RebootRequired+".pkgs", []byte("libc6\n"), 0o644)
	if err := Note("6.1.0-50-amd64", "linux-image-6.1.0-50-amd64", "6.1.0-47-amd64"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(RebootRequired + ".pkgs"); string(b) != "libc6\nlinux-image-6.1.0-50-amd64\n" {
		t.Fatalf(".pkgs = %q", b)
	}
}

func TestNextAt(t *testing.T) {
	loc := time.FixedZone("X", 3600)
	at := func(d, h, m int) time.Time { return time.Date(2026, 12, d, h, m, 0, 0, loc) }
	tests := []struct {
		now        time.Time
		hour, mins int
		want       time.Time
	}{
		{at(4, 1, 0), 3, 30, at(4, 3, 30)},
		{at(4, 3, 30), 3, 30, at(5, 3, 30)}, // exactly now: the next day
		{at(4, 23, 59), 0, 0, at(5, 0, 0)},
		{at(31, 12, 0), 3, 0, time.Date(2027, 1, 1, 3, 0, 0, 0, loc)},
	}
	for _, tt := range tests {
		if got := NextAt(tt.now, tt.hour, tt.mins); !got.Equal(tt.want) {
			t.Errorf("NextAt(%s, %02d:%02d) = %s, want %s", tt.now, tt.hour, tt.mins, got, tt.want)
		}
	}
}

func TestInChroot(t *testing.T) {
	if _, err := os.Stat("/proc/1/root/"); err != nil {
		t.Skipf("init's root cannot be read here (%v)", err)
	}
	// The tests run on the machine itself, not in a chroot.
	if InChroot() {
		t.Fatal("InChroot() = true outside a chroot")
	}
}

func TestPending(t *testing.T) {
	boot := t.TempDir()
	if _, err := Pending(boot); err == nil {
		t.Fatal("Pending with no kernel: no error")
	}
	// A kernel far newer than any the tests run on, with its initrd.
	os.WriteFile(filepath.Join(boot, "vmlinuz-99.0.0-1-amd64"), []byte("k"), 0o644)
	os.WriteFile(filepath.Join(boot, "initrd.img-99.0.0-1-amd64"), []byte("i"), 0o644)
	os.WriteFile(filepath.Join(boot, "vmlinuz-1.0.0-1-amd64"), []byte("k"), 0o644)
	k, err := Pending(boot)
	if err != nil || k.Release != "99.0.0-1-amd64" || k.Initrd != filepath.Join(boot, "initrd.img-99.0.0-1-amd64") {
		t.Fatalf("Pending = %+v, %v", k, err)
	}
}
