package image

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestHugeTmpfs(t *testing.T) {
	const mountinfo = `22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
26 28 0:24 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw,inode64
99 28 0:55 / /run/seamless/stage rw,nosuid,nodev,noexec,relatime - tmpfs seamless-stage rw,size=1048576k,mode=700,inode64,huge=within_size
100 28 0:56 / /mnt/always rw,relatime shared:50 master:3 - tmpfs x rw,huge=always
101 28 0:57 / /mnt/advise rw,relatime - tmpfs x rw,huge=advise
102 28 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,huge=always
103 28 0:58 / /broken rw,relatime`
	for _, c := range []struct {
		major, minor uint32
		want         bool
	}{
		{0, 24, false}, // a tmpfs of 4 KiB pages
		{0, 55, true},  // the RAM store's stage
		{0, 56, true},  // optional fields before the separator
		{0, 57, false}, // huge pages only where madvise asks
		{8, 1, false},  // not a tmpfs, whatever its options say
		{0, 58, false}, // no separator
		{0, 21, false}, // not a tmpfs
		{9, 9, false},  // not listed
	} {
		if got := hugeTmpfs(mountinfo, c.major, c.minor); got != c.want {
			t.Errorf("hugeTmpfs(%d:%d) = %v, want %v", c.major, c.minor, got, c.want)
		}
	}
}

// mountTmpfs mounts a tmpfs with opts on a new directory, for the test.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("seamless-test", dir, "tmpfs", 0, opts); err != nil {
		if strings.Contains(opts, "huge=") && err == unix.EINVAL {
			t.Skip("this kernel has no transparent huge pages")
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// TestFillInPlace: a memory file filled in place on a tmpfs of huge pages
// holds the same bytes and checksum as one written through buffers.
func TestFillInPlace(t *testing.T) {
	huge := mountTmpfs(t, "mode=0700,huge=within_size")
	pattern := func(i int) func([]byte) error {
		return func(p []byte) error {
			for k := range p {
				p[k] = byte(i*131 + k*7 + k>>12)
			}
			return nil
		}
	}
	const size = 2*BlockSize + 3*4096 + 17
	var sums []uint64
	var data [][]byte
	for _, parent := range []string{huge, t.TempDir()} {
		w, err := Create(filepath.Join(parent, "image"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := w.CreateSized("pages-1.img", size)
		if err != nil {
			t.Fatal(err)
		}
		if inPlace := parent == huge; (b.mapped != nil) != inPlace {
			t.Fatalf("%s: filled in place %v, want %v", parent, b.mapped != nil, inPlace)
		}
		for i := b.Blocks() - 1; i >= 0; i-- {
			if err := b.Fill(i, pattern(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(w.Dir, "pages-1.img"))
		if err != nil {
			t.Fatal(err)
		}
		var sum blockSum
		sum.Write(got)
		if e := w.entries[0]; e.Sum != sum.Sum() || e.Size != size {
			t.Errorf("%s: entry %+v, file's checksum %016x, size %d", parent, e, sum.Sum(), len(got))
		}
		sums, data = append(sums, w.entries[0].Sum), append(data, got)
		w.Discard()
	}
	if sums[0] != sums[1] || !bytes.Equal(data[0], data[1]) {
		t.Errorf("in place %016x, written %016x: the files differ", sums[0], sums[1])
	}
}

// TestFillInPlaceFull: a tmpfs with no room left is an error naming the
// file, not a fault of the process.
func TestFillInPlaceFull(t *testing.T) {
	dir := mountTmpfs(t, "mode=0700,huge=within_size,size=4m")
	w, err := Create(filepath.Join(dir, "image"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Discard()
	b, err := w.CreateSized("pages-1.img", 4*BlockSize)
	if err != nil {
		t.Fatal(err)
	}
	if b.mapped == nil {
		t.Fatal("not filled in place on a tmpfs of huge pages")
	}
	var ferr error
	for i := 0; i < b.Blocks() && ferr == nil; i++ {
		ferr = b.Fill(i, func(p []byte) error { clear(p); return nil })
	}
	if ferr == nil || !strings.Contains(ferr.Error(), "pages-1.img") {
		t.Fatalf("filling 16 MiB into a 4 MiB tmpfs: %v, want an error naming the file", ferr)
	}
	if err := b.Close(); err == nil {
		t.Error("Close of a file with a block never written succeeded")
	}
}
