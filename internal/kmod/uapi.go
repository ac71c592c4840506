// Package kmod drives seamlessmem, the kernel module of the kmod store
// (kmod/ in the sources, docs/kmod.md): a filesystem whose files live in
// memory taken out of the running system's page allocator in pieces, found
// again by the next kernel in the memory blocks its command line reserves
// (memmap=SIZE$ADDR), and given back to the system as they are read.
package kmod

import (
	"unsafe"
)

// The module's interface, as kmod/seamlessmem_uapi.h defines it.
const (
	// FSType is the filesystem type (and the module's name).
	FSType = "seamlessmem"
	// SuperMagic is statfs(2)'s f_type of a seamlessmem mount.
	SuperMagic = 0x534d454d
	// MaxRanges is the most contiguous ranges a pool may hold.
	MaxRanges = 64
	// PieceSize is the unit the old kernel's pool takes memory in (or
	// the memory block, if smaller).
	PieceSize = 16 << 20

	infoSealed   = 1 << 0
	infoHandover = 1 << 1
)

// Range is a contiguous run of physical memory.
type Range struct {
	Phys uint64 `json:"phys"`
	Size uint64 `json:"size"`
}

// End is the first address after the range.
func (r Range) End() uint64 { return r.Phys + r.Size }

// rawInfo is struct smem_info.
type rawInfo struct {
	BlockSize uint64
	PoolBytes uint64
	UsedBytes uint64
	IndexPhys uint64
	IndexLen  uint64
	NrRanges  uint32
	Flags     uint32
	Ranges    [MaxRanges]Range
}

// rawRelease is struct smem_release.
type rawRelease struct {
	Offset, Length uint64
}

const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2
	iocBase  = 0xB5
)

func ioc(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | iocBase<<8 | nr }

var (
	iocInfo    = ioc(iocRead, 1, unsafe.Sizeof(rawInfo{}))
	iocSeal    = ioc(iocNone, 3, 0)
	iocUnseal  = ioc(iocNone, 4, 0)
	iocRelease = ioc(iocWrite, 5, unsafe.Sizeof(rawRelease{}))
	iocTake    = ioc(iocWrite, 6, unsafe.Sizeof(Range{}))
)
