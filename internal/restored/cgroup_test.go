package restored

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// fakeCgroup points leaveUnitCgroup at files in a temporary directory and
// returns the root cgroup's cgroup.procs.
func fakeCgroup(t *testing.T, initrd bool, self string) string {
	t.Helper()
	dir := t.TempDir()
	old := []string{initrdRelease, selfCgroup}
	oldRoot := cgroupRoot
	t.Cleanup(func() { initrdRelease, selfCgroup, cgroupRoot = old[0], old[1], oldRoot })
	initrdRelease = filepath.Join(dir, "initrd-release")
	if initrd {
		os.WriteFile(initrdRelease, []byte("NAME=test\n"), 0o644)
	}
	selfCgroup = filepath.Join(dir, "cgroup")
	os.WriteFile(selfCgroup, []byte(self), 0o644)
	root := filepath.Join(dir, "fs")
	os.Mkdir(root, 0o755)
	cgroupRoot = func() (string, error) { return root, nil }
	procs := filepath.Join(root, "cgroup.procs")
	os.WriteFile(procs, nil, 0o644)
	return procs
}

func TestLeaveUnitCgroup(t *testing.T) {
	tests := []struct {
		name   string
		initrd bool
		self   string
		left   string
	}{
		{"dracut with systemd", true, "0::/system.slice/dracut-cmdline.service\n", "/system.slice/dracut-cmdline.service"},
		{"hybrid hierarchy", true, "12:pids:/system.slice/dracut-cmdline.service\n0::/system.slice/dracut-cmdline.service\n", "/system.slice/dracut-cmdline.service"},
		{"no systemd in the initramfs", true, "0::/\n", ""},
		{"legacy hierarchy only", true, "1:name=systemd:/system.slice/x.service\n", ""},
		{"not in an initramfs", false, "0::/user.slice/session-1.scope\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			procs := fakeCgroup(t, tt.initrd, tt.self)
			left, err := leaveUnitCgroup()
			if err != nil {
				t.Fatal(err)
			}
			if left != tt.left {
				t.Fatalf("left %q, want %q", left, tt.left)
			}
			b, _ := os.ReadFile(procs)
			want := ""
			if tt.left != "" {
				want = strconv.Itoa(os.Getpid())
			}
			if string(b) != want {
				t.Fatalf("root cgroup.procs has %q, want %q", b, want)
			}
		})
	}
}

func TestLeaveUnitCgroupNoCgroup2(t *testing.T) {
	fakeCgroup(t, true, "0::/system.slice/dracut-cmdline.service\n")
	cgroupRoot = func() (string, error) { return "", os.ErrNotExist }
	if left, err := leaveUnitCgroup(); left != "" || err != nil {
		t.Fatalf("got %q, %v; want nothing done", left, err)
	}
}
