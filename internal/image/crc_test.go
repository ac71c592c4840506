package image

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// TestCRCWays: the tables give hash/crc32's CRC-32C for every length and
// alignment, whole and in pieces, and so does the way chosen here.
func TestCRCWays(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<16+13)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 63, 4096, 1 << 16, len(buf)} {
		for _, off := range []int{0, 1, 3} {
			if off+n > len(buf) {
				continue
			}
			p := buf[off : off+n]
			want := crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli))
			if got := slicing8Update(0, p); got != want {
				t.Errorf("tables, %d bytes at %d: %08x, want %08x", n, off, got, want)
			}
			if got := crcChecksum(p); got != want {
				t.Errorf("chosen way, %d bytes at %d: %08x, want %08x", n, off, got, want)
			}
			if n > 5 {
				if got := slicing8Update(slicing8Update(0, p[:5]), p[5:]); got != want {
					t.Errorf("tables in two pieces, %d bytes: %08x, want %08x", n, got, want)
				}
			}
		}
	}
}

// TestFasterPicks: faster returns the quicker of two ways.
func TestFasterPicks(t *testing.T) {
	slow := func(crc uint32, p []byte) uint32 {
		for range 50 {
			crc = slicing8Update(crc, p)
		}
		return crc
	}
	if got := faster(slow, stdUpdate); got(0, []byte("x")) != stdUpdate(0, []byte("x")) {
		t.Error("the slow way was picked")
	}
	if got := faster(stdUpdate, slow); got(0, []byte("x")) != stdUpdate(0, []byte("x")) {
		t.Error("the slow way was picked")
	}
}

func BenchmarkCRC(b *testing.B) {
	buf := make([]byte, 4<<20)
	for name, f := range map[string]func(uint32, []byte) uint32{"instruction": stdUpdate, "tables": slicing8Update} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				f(0, buf)
			}
		})
	}
}
