package image

import (
	"hash/crc32"
	"sync"
	"time"
)

// The checksums of format versions 1 to 3 are CRC-32C (checksum.go says
// why version 4 moved to XXH64). hash/crc32 computes it with the CPU's
// CRC32 instruction where there is one: tens of GB/s on hardware. Where
// the instruction is emulated it can be the slowest way: QEMU's TCG, on
// which the lab runs, computes it bit by bit (25 MB/s for the restore
// daemon's verification of an image, against the boot for the CPUs).
// Tables (slicing by 8, what hash/crc32 does without the instruction) are
// plain loads and xors there. Which way is faster is measured once, on
// this machine, not guessed from what it claims to be.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// castagnoli8 are the slicing-by-8 tables of CRC-32C.
var castagnoli8 = makeSlicing8(crc32.Castagnoli)

func makeSlicing8(poly uint32) *[8][256]uint32 {
	t := new([8][256]uint32)
	for i := range 256 {
		crc := uint32(i)
		for range 8 {
			if crc&1 == 1 {
				crc = crc>>1 ^ poly
			} else {
				crc >>= 1
			}
		}
		t[0][i] = crc
	}
	for i := range 256 {
		crc := t[0][i]
		for j := 1; j < 8; j++ {
			crc = t[0][crc&0xff] ^ crc>>8
			t[j][i] = crc
		}
	}
	return t
}

// slicing8Update is crc32.Update(crc, castagnoli, p) with the tables only.
func slicing8Update(crc uint32, p []byte) uint32 {
	t := castagnoli8
	crc = ^crc
	for len(p) >= 8 {
		crc ^= uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16 | uint32(p[3])<<24
		crc = t[0][p[7]] ^ t[1][p[6]] ^ t[2][p[5]] ^ t[3][p[4]] ^
			t[4][crc>>24] ^ t[5][crc>>16&0xff] ^ t[6][crc>>8&0xff] ^ t[7][crc&0xff]
		p = p[8:]
	}
	for _, b := range p {
		crc = t[0][byte(crc)^b] ^ crc>>8
	}
	return ^crc
}

func stdUpdate(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoli, p) }

var (
	fasterOnce   sync.Once
	fasterUpdate func(uint32, []byte) uint32
)

// crcUpdate is crc32.Update(crc, castagnoli, p) the faster way on this
// machine.
func crcUpdate(crc uint32, p []byte) uint32 {
	fasterOnce.Do(func() { fasterUpdate = faster(stdUpdate, slicing8Update) })
	return fasterUpdate(crc, p)
}

// crcChecksum is crc32.Checksum(p, castagnoli) the faster way.
func crcChecksum(p []byte) uint32 { return crcUpdate(0, p) }

// faster times a and b on the same 256 KiB, the better of three runs each
// (a few hundred µs on hardware, some ms under emulation), and returns the
// faster.
func faster(a, b func(uint32, []byte) uint32) func(uint32, []byte) uint32 {
	buf := make([]byte, 256<<10)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	best := func(f func(uint32, []byte) uint32) time.Duration {
		d := time.Duration(1<<63 - 1)
		for range 3 {
			start := time.Now()
			f(0, buf)
			d = min(d, time.Since(start))
		}
		return d
	}
	if best(b) < best(a) {
		return b
	}
	return a
}
