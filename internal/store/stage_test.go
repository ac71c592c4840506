package store

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStageHugePages: a file sized before it is written, as the checkpoint
// writes its memory files, lies in 2 MiB pages on the stage where the
// kernel has transparent huge pages.
func TestStageHugePages(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	sg, err := NewStage(filepath.Join(t.TempDir(), "stage"), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sg.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(sg.Dir); !os.IsNotExist(err) {
			t.Errorf("stage %s left behind: %v", sg.Dir, err)
		}
	}()
	opts := mountOptions(t, sg.Dir)
	if !strings.Contains(opts, "mode=700") {
		t.Errorf("stage mounted with %q, want mode=700", opts)
	}
	if !sg.Huge {
		if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage"); err == nil {
			t.Fatalf("stage without huge pages on a kernel that has them (options %q)", opts)
		}
		t.Skip("this kernel has no transparent huge pages")
	}
	if !strings.Contains(opts, HugeOption) {
		t.Fatalf("stage mounted with %q, want %s", opts, HugeOption)
	}
	const size = 8 << 20
	f, err := os.OpenFile(filepath.Join(sg.Dir, "pages"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(block)) {
		if _, err := f.WriteAt(block, off); err != nil {
			t.Fatal(err)
		}
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	var sum byte
	for i := 0; i < size; i += 4096 {
		sum += m[i]
	}
	// The mapping can only be made of PMDs if the file's pages are huge.
	if kb := smapsField(t, f.Name(), "ShmemPmdMapped:"); kb < 2048 {
		t.Errorf("%s: ShmemPmdMapped %d kB: its pages are not huge (sum %d)", f.Name(), kb, sum)
	}
}

// mountOptions returns the options dir is mounted with.
func mountOptions(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 3 && f[1] == dir {
			return f[3]
		}
	}
	t.Fatalf("%s is not mounted", dir)
	return ""
}

// smapsField returns field (in kB) of this process's mapping of path.
func smapsField(t *testing.T, path, field string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		switch {
		case len(w) >= 6 && strings.Contains(w[0], "-"):
			in = w[5] == path
		case in && len(w) >= 2 && w[0] == field:
			kb, err := strconv.Atoi(w[1])
			if err != nil {
				t.Fatalf("smaps: %q: %v", sc.Text(), err)
			}
			return kb
		}
	}
	t.Fatalf("no mapping of %s in /proc/self/smaps", path)
	return 0
}
