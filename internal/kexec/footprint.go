package kexec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// footprintSlack covers what kexec_file_load places besides the kernel and
// the initrd (purgatory, the boot parameters with the command line and the
// EFI map), and the kernel's alignment within its range (16 MiB in
// Debian's configuration, CONFIG_PHYSICAL_ALIGN).
const footprintSlack = 64 << 20

// Footprint bounds the memory that kexec_file_load's segments take for
// the bzImage at kernel and an initrd of initrdSize bytes. On x86-64 every
// segment is placed top-down in a "System RAM" range, whatever is in use
// there (docs/kmod.md, section 2): the segments of one load all lie within
// the top Footprint bytes of the ranges they land in. The kernel's share is
// its init_size, what it needs to decompress and run in place.
func Footprint(kernel string, initrdSize int64) (uint64, error) {
	f, err := os.Open(kernel)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	initSize, err := bzImageInitSize(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", kernel, err)
	}
	return uint64(initSize) + uint64(max(initrdSize, 0)) + footprintSlack, nil
}

// bzImageInitSize reads init_size from a bzImage's setup header (boot
// protocol 2.10 and later: every x86-64 kernel of the last decade).
func bzImageInitSize(r io.ReaderAt) (uint32, error) {
	var hdr [0x264]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return 0, fmt.Errorf("not a bzImage: %w", err)
	}
	if string(hdr[0x202:0x206]) != "HdrS" {
		return 0, errors.New("not a bzImage: no HdrS setup header")
	}
	if version := binary.LittleEndian.Uint16(hdr[0x206:]); version < 0x020a {
		return 0, fmt.Errorf("boot protocol %d.%02d has no init_size", version>>8, version&0xff)
	}
	return binary.LittleEndian.Uint32(hdr[0x260:]), nil
}
