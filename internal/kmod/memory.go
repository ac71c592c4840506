package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SysMemory is where the kernel describes its memory blocks.
var SysMemory = "/sys/devices/system/memory"

// Block is a memory block of the running kernel.
type Block struct {
	Phys   uint64
	Online bool
	// Zones is what valid_zones says ("none" when the block spans zones
	// and cannot be offlined).
	Zones string
}

// BlockSize reads the memory block size; an error means this kernel has
// no memory hotplug.
func BlockSize(sys string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(sys, "block_size_bytes"))
	if err != nil {
		return 0, fmt.Errorf("no memory hotplug in this kernel: %w", err)
	}
	bs, err := strconv.ParseUint(strings.TrimSpace(string(b)), 16, 64)
	if err != nil || bs == 0 || bs&(bs-1) != 0 {
		return 0, fmt.Errorf("%s/block_size_bytes: %q is not a block size", sys, strings.TrimSpace(string(b)))
	}
	return bs, nil
}

// Blocks lists the memory blocks, by address.
func Blocks(sys string) (uint64, []Block, error) {
	bs, err := BlockSize(sys)
	if err != nil {
		return 0, nil, err
	}
	ents, err := os.ReadDir(sys)
	if err != nil {
		return 0, nil, err
	}
	var out []Block
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), "memory")
		if !ok {
			continue
		}
		idx, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			continue
		}
		state, _ := os.ReadFile(filepath.Join(sys, e.Name(), "state"))
		zones, _ := os.ReadFile(filepath.Join(sys, e.Name(), "valid_zones"))
		out = append(out, Block{Phys: idx * bs, Online: strings.TrimSpace(string(state)) == "online",
			Zones: strings.TrimSpace(string(zones))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Phys < out[j].Phys })
	return bs, out, nil
}

// statePath is the sysfs file of the state of the memory block at phys.
func statePath(sys string, bs, phys uint64) string {
	return filepath.Join(sys, fmt.Sprintf("memory%d", phys/bs), "state")
}

// OnlineRanges onlines every offline memory block inside ranges that no
// pool holds any more: memory the pool gave back, which seamless took
// offline (old kernel) or which 6.1 leaves offline once added (new kernel;
// 6.12 and 7.3 online it themselves).
func OnlineRanges(sys string, ranges []Range) error {
	bs, err := BlockSize(sys)
	if err != nil {
		return err
	}
	var errs []string
	for _, r := range ranges {
		for p := r.Phys; p < r.End(); p += bs {
			path := statePath(sys, bs, p)
			state, err := os.ReadFile(path)
			if err != nil || strings.TrimSpace(string(state)) != "offline" {
				continue // still in the pool, or online already
			}
			err = os.WriteFile(path, []byte("online"), 0)
			// EBUSY: a pool of this kernel still holds the block (the
			// module's memory notifier refuses); it is onlined when given
			// back.
			if err != nil && !errors.Is(err, unix.EBUSY) {
				errs = append(errs, fmt.Sprintf("memory block %#x: %v", p, err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("kmod store: could not online memory given back: %s", strings.Join(errs, "; "))
	}
	return nil
}

// SystemRAM reads the "System RAM" ranges of /proc/iomem (root sees the
// addresses), leaving out memory a driver manages ("System RAM (kmem)",
// virtio-mem's): what the kernel booted with, or was given by firmware.
func SystemRAM(iomem string) ([]Range, error) {
	f, err := os.Open(iomem)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Range
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, " ") { // a child resource
			continue
		}
		span, name, ok := strings.Cut(line, " : ")
		if !ok || strings.TrimSpace(name) != "System RAM" {
			continue
		}
		lo, hi, ok := strings.Cut(span, "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || b < a {
			return nil, fmt.Errorf("%s: cannot read %q", iomem, line)
		}
		if a == 0 && b == 0 {
			return nil, fmt.Errorf("%s: addresses are hidden (not root?)", iomem)
		}
		out = append(out, Range{Phys: a, Size: b - a + 1})
	}
	return out, sc.Err()
}

// KexecZones are where kexec_file_load may put the segments of a load
// whose footprint is at most footprint bytes (kexec.Footprint): the top of
// every System RAM range, as each segment goes top-down into a range
// whatever is in use there. A block the pool holds must stay out of them,
// or the kexec would copy the new kernel over the image.
func KexecZones(ram []Range, footprint uint64) []Range {
	var out []Range
	for _, r := range ram {
		n := min(footprint, r.Size)
		out = append(out, Range{Phys: r.End() - n, Size: n})
	}
	return out
}

// Candidates orders the pieces of size unit the pool may take next: those
// that extend a range it holds first (fewer ranges: fewer memmap= on the
// next kernel's command line, and physical KASLR stays on up to four),
// then the others, highest first. Never a piece that is held already or
// failed before, nor one in a memory block (of size bs) that is offline,
// spans zones, is not wholly System RAM, holds the end of boot memory (the
// next kernel computes its block size from it) or touches a range of
// avoid: the next kernel reserves the whole blocks around the pieces.
// Never one that would make the blocks reserved more than maxRanges
// ranges.
func Candidates(bs, unit uint64, blocks []Block, ram, held, avoid []Range, failed map[uint64]bool, maxRanges int) []uint64 {
	inRAM := func(p uint64) bool {
		for _, r := range ram {
			if p >= r.Phys && p+bs <= r.End() {
				return true
			}
		}
		return false
	}
	var top uint64
	for _, r := range ram {
		top = max(top, r.End())
	}
	adjacent := func(p uint64) bool {
		for _, h := range held {
			if p == h.End() || p+unit == h.Phys {
				return true
			}
		}
		return false
	}
	avoided := func(p uint64) bool {
		for _, a := range avoid {
			if p < a.End() && a.Phys < p+bs {
				return true
			}
		}
		return false
	}
	reserved := RoundOut(held, bs)
	// A block next to or inside the blocks reserved adds no range.
	joins := func(p uint64) bool {
		for _, r := range reserved {
			if p+bs >= r.Phys && p <= r.End() {
				return true
			}
		}
		return false
	}
	var ext, other []uint64
	for _, b := range blocks {
		switch {
		case !b.Online, b.Zones == "none", !inRAM(b.Phys), b.Phys+bs >= top, avoided(b.Phys):
			continue
		case len(reserved) >= maxRanges && !joins(b.Phys):
			continue
		}
		for p := b.Phys; p < b.Phys+bs; p += unit {
			switch {
			case failed[p], holds(held, p):
			case adjacent(p):
				ext = append(ext, p)
			default:
				other = append(other, p)
			}
		}
	}
	sort.Slice(ext, func(i, j int) bool { return ext[i] > ext[j] })
	sort.Slice(other, func(i, j int) bool { return other[i] > other[j] })
	return append(ext, other...)
}

// RoundOut is ranges (sorted by address) rounded out to multiples of unit,
// those that then touch merged: the memory blocks the next kernel reserves
// for a pool holding ranges.
func RoundOut(ranges []Range, unit uint64) []Range {
	var out []Range
	for _, r := range ranges {
		start := r.Phys / unit * unit
		end := (r.End() + unit - 1) / unit * unit
		if n := len(out); n > 0 && start <= out[n-1].End() {
			out[n-1].Size = max(out[n-1].End(), end) - out[n-1].Phys
			continue
		}
		out = append(out, Range{Phys: start, Size: end - start})
	}
	return out
}

// holds says whether one of ranges holds the address p.
func holds(ranges []Range, p uint64) bool {
	for _, r := range ranges {
		if p >= r.Phys && p < r.End() {
			return true
		}
	}
	return false
}

// MovableBytes is how much memory the pool can count on taking: the
// candidate blocks (see Candidates) whose only valid zone is Movable.
// Blocks of the kernel's own zones hold unmovable kernel allocations
// sooner or later and then refuse to go offline; ZONE_MOVABLE exists only
// when the kernel was booted with movablecore= or kernelcore=.
func MovableBytes(sys, iomem string) (uint64, error) {
	bs, blocks, err := Blocks(sys)
	if err != nil {
		return 0, err
	}
	ram, err := SystemRAM(iomem)
	if err != nil {
		return 0, err
	}
	var movable []Block
	for _, b := range blocks {
		if b.Zones == "Movable" {
			movable = append(movable, b)
		}
	}
	return uint64(len(Candidates(bs, bs, movable, ram, nil, nil, nil, MaxRanges))) * bs, nil
}
