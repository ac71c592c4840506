package kmod

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Info describes a mounted pool.
type Info struct {
	// BlockSize is the running kernel's memory block size.
	BlockSize uint64 `json:"block_size"`
	// PoolBytes is the memory held, UsedBytes what files (and the index)
	// take of it.
	PoolBytes uint64 `json:"pool_bytes"`
	UsedBytes uint64 `json:"used_bytes"`
	// Ranges are the memory held, merged: pieces on the old kernel, and
	// once sealed the memory blocks the next kernel reserves around them;
	// memory blocks on the new kernel.
	Ranges []Range `json:"ranges"`
	// Sealed: the index is written (at IndexPhys, IndexLen bytes) and the
	// mount no longer changes.
	Sealed    bool   `json:"sealed"`
	IndexPhys uint64 `json:"index_phys,omitempty"`
	IndexLen  uint64 `json:"index_len,omitempty"`
	// Handover: the memory came from the previous kernel.
	Handover bool `json:"handover"`
}

// Free is what the pool holds that no file uses.
func (i Info) Free() uint64 { return i.PoolBytes - i.UsedBytes }

// Mount is a mounted seamlessmem.
type Mount struct {
	// Dir is where it is mounted.
	Dir string
	d   *os.File
}

// MountNew mounts an empty, writable seamlessmem on dir (made 0700 if
// missing): the old kernel's stage. Its memory is taken with TakeRange
// (a Taker chooses the ranges).
func MountNew(dir string) (*Mount, error) {
	return mount(dir, "")
}

// MountHandover mounts, read-only, the image the previous kernel sealed,
// whose index is at the physical address index.
func MountHandover(dir string, index uint64) (*Mount, error) {
	return mount(dir, fmt.Sprintf("handover=%#x", index))
}

func mount(dir, data string) (*Mount, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("kmod store: %w", err)
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if data != "" {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(FSType, dir, FSType, flags, data); err != nil {
		return nil, fmt.Errorf("kmod store: mount %s on %s: %w%s", FSType, dir, err, mountHint(err))
	}
	m, err := Open(dir)
	if err != nil {
		unix.Unmount(dir, unix.MNT_DETACH)
		return nil, err
	}
	return m, nil
}

func mountHint(err error) string {
	switch {
	case errors.Is(err, unix.ENODEV):
		return " (the seamlessmem module is not loaded)"
	case errors.Is(err, unix.EBUSY):
		return " (another seamlessmem is mounted)"
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.EBADMSG):
		return " (the module refused it: see the kernel log)"
	}
	return ""
}

// Open opens the seamlessmem mounted on dir.
func Open(dir string) (*Mount, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("kmod store: %w", err)
	}
	if !IsKmod(d) {
		d.Close()
		return nil, fmt.Errorf("kmod store: %s is not a %s mount", dir, FSType)
	}
	return &Mount{Dir: dir, d: d}, nil
}

// IsKmod reports whether f is on a seamlessmem mount.
func IsKmod(f *os.File) bool {
	var st unix.Statfs_t
	return unix.Fstatfs(int(f.Fd()), &st) == nil && st.Type == SuperMagic
}

func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

// Info describes the pool.
func (m *Mount) Info() (Info, error) {
	var r rawInfo
	if err := ioctl(m.d, iocInfo, unsafe.Pointer(&r)); err != nil {
		return Info{}, fmt.Errorf("kmod store: info: %w", err)
	}
	runtime.KeepAlive(&r)
	i := Info{BlockSize: r.BlockSize, PoolBytes: r.PoolBytes, UsedBytes: r.UsedBytes,
		IndexPhys: r.IndexPhys, IndexLen: r.IndexLen,
		Sealed: r.Flags&infoSealed != 0, Handover: r.Flags&infoHandover != 0}
	i.Ranges = append(i.Ranges, r.Ranges[:min(int(r.NrRanges), MaxRanges)]...)
	return i, nil
}

// TakeRange takes the memory in [phys, phys+size) (whole pieces, inside
// one memory block) out of the page allocator into the pool. EBUSY means a
// page there cannot move (a kernel allocation).
func (m *Mount) TakeRange(phys, size uint64) error {
	r := Range{Phys: phys, Size: size}
	if err := ioctl(m.d, iocTake, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("kmod store: take %#x-%#x: %w", phys, phys+size-1, err)
	}
	return nil
}

// Seal writes the index; the mount no longer changes. ENOSPC means the
// pool has no contiguous room for it: take more, and Seal again.
func (m *Mount) Seal() error {
	if err := ioctl(m.d, iocSeal, nil); err != nil {
		return fmt.Errorf("kmod store: seal: %w", err)
	}
	return nil
}

// Unseal forgets the index: the mount may change again.
func (m *Mount) Unseal() error {
	if err := ioctl(m.d, iocUnseal, nil); err != nil {
		return fmt.Errorf("kmod store: unseal: %w", err)
	}
	return nil
}

// Close releases the Mount's descriptor; the mount stays.
func (m *Mount) Close() error {
	return m.d.Close()
}

// Unmount unmounts the pool (lazily: the memory goes back to the system
// once the last open file is closed) and, on the new kernel, onlines the
// memory blocks given back that the kernel left offline (6.1 does not
// online hot-added memory by itself).
// A sealed pool is unsealed first: sealed, the module keeps its memory
// out of the system for the next kernel.
func (m *Mount) Unmount() error {
	info, ierr := m.Info()
	if ierr == nil && info.Sealed && !info.Handover {
		if err := m.Unseal(); err != nil {
			m.d.Close()
			return err
		}
	}
	m.d.Close()
	if err := unix.Unmount(m.Dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("kmod store: unmount %s: %w", m.Dir, err)
	}
	if ierr == nil && info.Handover {
		return OnlineRanges(SysMemory, info.Ranges)
	}
	return nil
}

// Release says that the data of f in [off, off+n) will not be read again:
// the memory holding nothing else goes back to the system at once (the
// new kernel's memory blocks onlined). n < 0 means up to the end of the
// file. A file not on a seamlessmem mount is left alone.
func Release(f *os.File, off, n int64) error {
	return ReleaseRanges(f, [][2]int64{{off, n}})
}

// ReleaseRanges is Release of several ranges ({offset, length}) of f,
// with the memory given back onlined once.
func ReleaseRanges(f *os.File, ranges [][2]int64) error {
	if !IsKmod(f) || len(ranges) == 0 {
		return nil
	}
	m := &Mount{d: f}
	before, _ := m.Info() // on failure: no ranges, nothing to online
	if err := release(f, ranges); err != nil {
		return err
	}
	if !before.Handover {
		// The old kernel's pieces went straight back to the page
		// allocator: nothing is offline.
		return nil
	}
	after, err := m.Info()
	if err != nil {
		return OnlineRanges(SysMemory, before.Ranges)
	}
	// Only the blocks the pool let go: those it holds are not the
	// system's yet.
	return OnlineRanges(SysMemory, leftBehind(before.Ranges, after.Ranges, before.BlockSize))
}

// leftBehind are the blocks of size bs in ranges before that no range of
// after holds any more.
func leftBehind(before, after []Range, bs uint64) []Range {
	if bs == 0 {
		return before
	}
	var out []Range
	for _, r := range before {
		for p := r.Phys; p < r.End(); p += bs {
			if !holds(after, p) {
				out = append(out, Range{Phys: p, Size: bs})
			}
		}
	}
	return out
}

// ReleaseOnly is ReleaseRanges without the onlining: for a caller that
// cannot write sysfs (a sandboxed unit's mount namespace), whose memory a
// process that can onlines (see OnlineRanges).
func ReleaseOnly(f *os.File, ranges [][2]int64) error {
	if !IsKmod(f) {
		return nil
	}
	return release(f, ranges)
}

// release asks the module to release ranges of f, a seamlessmem file.
func release(f *os.File, ranges [][2]int64) error {
	for _, rg := range ranges {
		off, n := rg[0], rg[1]
		r := rawRelease{Offset: uint64(off), Length: uint64(n)}
		if n < 0 {
			r.Length = ^uint64(0) - uint64(off)
		}
		if err := ioctl(f, iocRelease, unsafe.Pointer(&r)); err != nil {
			return fmt.Errorf("kmod store: release %s [%d, +%d): %w", f.Name(), off, n, err)
		}
	}
	return nil
}
