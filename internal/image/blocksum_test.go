package image

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSumFileWays checks that the mapped and the buffered reading of a
// file give the same checksum, for sizes around the block size.
func TestSumFileWays(t *testing.T) {
	for _, size := range []int64{0, 1, 4095, BlockSize - 1, BlockSize, BlockSize + 4097, 3 * BlockSize} {
		p := make([]byte, size)
		for i := range p {
			p[i] = byte(i*7 + i>>13)
		}
		path := filepath.Join(t.TempDir(), "pages.img")
		if err := os.WriteFile(path, p, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var b blockSum
		b.Write(p)
		want := b.Sum()
		got, err := sumFile(f, size, written, serial)
		if err != nil || got != want {
			t.Errorf("size %d: sumFile = %016x, %v; want %016x", size, got, err, want)
		}
		read := readBlocks(f, size, written)
		var blocks []uint64
		for i := int64(0); i*BlockSize < size; i++ {
			s, err := read(int(i))
			if err != nil {
				t.Fatalf("size %d block %d: %v", size, i, err)
			}
			blocks = append(blocks, s)
		}
		if got := written.combine(blocks); got != want {
			t.Errorf("size %d: buffered = %016x, want %016x", size, got, want)
		}
		f.Close()
	}
}

// TestChecksumMappedShrunk: a file cut short under its mapping is an
// error that says so, not a crash of the process.
func TestChecksumMappedShrunk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pages.img")
	if err := os.WriteFile(path, make([]byte, 4*4096), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, 4*4096, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	if err := f.Truncate(4096); err != nil {
		t.Fatal(err)
	}
	if _, err := checksumMapped(m, written); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("checksum of a shrunk mapping: %v, want ErrCorrupt", err)
	}
	if _, err := readBlocks(f, 4*4096, written)(0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of a shrunk file: %v, want ErrCorrupt", err)
	}
}

func serial(n int, fn func(int) error) error {
	for i := 0; i < n; i++ {
		if err := fn(i); err != nil {
			return err
		}
	}
	return nil
}
