package mem

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/proc"
)

// Copy-on-write sharing between a parent and the children it forked.
//
// After fork(2), parent and child map the same physical pages until one of
// them writes: a server that forks workers (apache prefork, gunicorn,
// php-fpm, PostgreSQL's backends) or a snapshot child (redis BGSAVE)
// shares most of its memory with them. Stored page by page, each process
// would get its own copy: twice the image and twice the memory after the
// restore. So a child's private anonymous mapping that its parent has too,
// at the same place and with the same protection, is compared page by page
// through both pagemaps (the page frame numbers, which need
// CAP_SYS_ADMIN): a page both map from the same frame (or the same swap
// slot) is stored once, with the parent's pages, and the child's mapping is
// marked Inherit. The restore then rebuilds the parent's memory before it
// forks the child, which keeps the mapping and only writes the pages that
// had become its own; pages that the child had not (never touched, or
// dropped) while the parent had are listed in Zero and dropped in the
// child again (MADV_DONTNEED), so that they read as zeros as they did.

// pfnMask keeps a pagemap entry's frame number (present page) or swap type
// and offset (swapped page).
const pfnMask = 1<<55 - 1

// inheritable reports whether a mapping of a child may be inherited from
// the parent's mapping pm: the same range, protection, name and flags, a
// private anonymous mapping of both, without guard pages, that fork(2)
// copies as it is (not MADV_DONTFORK, MADV_WIPEONFORK or MAP_DROPPABLE).
func inheritable(m, pm *image.Mapping) bool {
	if m.Kind != image.MapAnon || pm.Kind != image.MapAnon || m.Shared || pm.Shared ||
		m.Start != pm.Start || m.End != pm.End || m.Prot != pm.Prot || m.Name != pm.Name ||
		len(m.Guards) > 0 || len(pm.Guards) > 0 || len(m.Flags) != len(pm.Flags) {
		return false
	}
	for i, f := range m.Flags {
		if f != pm.Flags[i] || f == "dc" || f == "wf" || f == "dp" {
			return false
		}
	}
	return true
}

// CanParent reports whether process p's memory can be rebuilt before its
// children are forked (the restore order inheritance needs): System V
// segments are created only once every process exists.
func CanParent(p *image.Process) bool {
	if p.Zombie {
		return false
	}
	for _, m := range p.Mappings {
		if m.Kind == image.MapSysV {
			return false
		}
	}
	return true
}

// sameVDSO reports whether a child (its current mappings) has its vDSO
// and the vDSO's data pages where its parent (its image mappings) had
// them: a child that inherits memory is forked with its parent's vDSO as
// the parent's restore placed it.
func sameVDSO(child []proc.Mapping, parent []*image.Mapping) bool {
	var x, y [][2]uint64
	for _, m := range child {
		if m.Path == "[vdso]" || strings.HasPrefix(m.Path, "[vvar") {
			x = append(x, [2]uint64{m.Start, m.End})
		}
	}
	for _, m := range parent {
		if m.Kind == image.MapVDSO || m.Kind == image.MapVVAR {
			y = append(y, [2]uint64{m.Start, m.End})
		}
	}
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}

// pagemapOf reads the pagemap entries of mapping m from pagemap.
func pagemapOf(pagemap *os.File, m *image.Mapping) ([]byte, error) {
	ents := make([]byte, (m.End-m.Start)/PageSize*8)
	if _, err := pagemap.ReadAt(ents, int64(m.Start/PageSize*8)); err != nil && err != io.EOF {
		return nil, fmt.Errorf("read pagemap: %w", err)
	}
	return ents, nil
}

// shareable classifies the child's pages of an inheritable mapping against
// the parent's entries pents: shared[i] when both map the same frame or
// swap slot; zero[i] when the child has no page where the parent has one.
// ok is false when the frame numbers are hidden (no CAP_SYS_ADMIN: they
// read as 0) or no page is shared: the mapping is then stored as usual.
func shareable(ents, pents []byte) (shared, zero []bool, ok bool) {
	n := len(ents) / 8
	shared, zero = make([]bool, n), make([]bool, n)
	any := false
	for i := 0; i < n; i++ {
		c := binary.LittleEndian.Uint64(ents[i*8:])
		p := binary.LittleEndian.Uint64(pents[i*8:])
		cHas, pHas := c&(pmPresent|pmSwapped) != 0, p&(pmPresent|pmSwapped) != 0
		if c&pmPresent != 0 && c&pfnMask == 0 || p&pmPresent != 0 && p&pfnMask == 0 {
			return nil, nil, false
		}
		switch {
		case cHas && pHas && c&(pmPresent|pmSwapped) == p&(pmPresent|pmSwapped) && c&pfnMask == p&pfnMask:
			shared[i], any = true, true
		case !cHas && pHas:
			zero[i] = true
		}
	}
	return shared, zero, any
}

// pageRanges turns flags per page into ranges of pages from start on.
func pageRanges(flags []bool, start uint64) []image.PageRange {
	var out []image.PageRange
	for i := 0; i < len(flags); {
		if !flags[i] {
			i++
			continue
		}
		j := i + 1
		for j < len(flags) && flags[j] {
			j++
		}
		out = append(out, image.PageRange{Addr: start + uint64(i)*PageSize, Pages: uint64(j - i)})
		i = j
	}
	return out
}

// Inherits reports whether p keeps mappings of its parent at restore.
func Inherits(p *image.Process) bool {
	for _, m := range p.Mappings {
		if m.Inherit {
			return true
		}
	}
	return false
}

// dropZero drops, in a child that inherited mapping m, the pages it had
// not at checkpoint: they read as zeros again.
func dropZero(t *inject.Target, m *image.Mapping) error {
	for _, z := range m.Zero {
		if _, err := t.Call(unix.SYS_MADVISE, uintptr(z.Addr), uintptr(z.Pages*PageSize), unix.MADV_DONTNEED); err != nil {
			return fmt.Errorf("drop the pages at %#x the parent has and the child had not: %w", z.Addr, err)
		}
	}
	return nil
}

// keepRanges are the ranges of t's current mappings that a restore of p
// keeps: the restore region and the mappings p inherits from its parent.
func keepRanges(t *inject.Target, p *image.Process) [][2]uint64 {
	keep := [][2]uint64{{uint64(t.Region[0]), uint64(t.Region[1])}}
	for _, m := range p.Mappings {
		if m.Inherit {
			keep = append(keep, [2]uint64{m.Start, m.End})
		}
	}
	return keep
}

// outside returns the parts of [lo, hi) that no range of keep covers.
func outside(lo, hi uint64, keep [][2]uint64) [][2]uint64 {
	parts := [][2]uint64{{lo, hi}}
	for _, k := range keep {
		var next [][2]uint64
		for _, p := range parts {
			if k[1] <= p[0] || k[0] >= p[1] {
				next = append(next, p)
				continue
			}
			if p[0] < k[0] {
				next = append(next, [2]uint64{p[0], k[0]})
			}
			if k[1] < p[1] {
				next = append(next, [2]uint64{k[1], p[1]})
			}
		}
		parts = next
	}
	return parts
}

// parentMem is the memory of a child's parent, as far as inheritance
// needs it: its mappings by address and its pagemap.
type parentMem struct {
	maps    map[uint64]*image.Mapping
	pagemap *os.File
}

// parentOf returns what the child whose mappings are child may inherit
// from parent (0: none), or nil when it may inherit nothing: the parent's
// memory is not rebuilt before its children are forked (CanParent), it was
// not dumped, or the two vDSOs are not at the same place.
func (d *Dumper) parentOf(parent int, child []proc.Mapping) (*parentMem, error) {
	maps, ok := d.dumped[parent]
	if parent == 0 || !ok || !CanParent(&image.Process{Mappings: maps}) || !sameVDSO(child, maps) {
		return nil, nil
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", parent))
	if err != nil {
		return nil, fmt.Errorf("open the pagemap of its parent %d: %w", parent, err)
	}
	pm := &parentMem{maps: map[uint64]*image.Mapping{}, pagemap: f}
	for _, m := range maps {
		pm.maps[m.Start] = m
	}
	return pm, nil
}

// inherit decides whether the child's mapping im is inherited from the
// parent (nil: no parent to inherit from), marking it so with the pages it
// must drop, and returns the pages left to the parent's (nil if none).
func (p *parentMem) inherit(pm *os.File, im *image.Mapping) ([]bool, error) {
	if p == nil {
		return nil, nil
	}
	pmap := p.maps[im.Start]
	if pmap == nil || !inheritable(im, pmap) {
		return nil, nil
	}
	ents, err := pagemapOf(pm, im)
	if err != nil {
		return nil, err
	}
	pents, err := pagemapOf(p.pagemap, pmap)
	if err != nil {
		return nil, err
	}
	shared, zero, ok := shareable(ents, pents)
	if !ok {
		return nil, nil
	}
	im.Inherit, im.Zero = true, pageRanges(zero, im.Start)
	return shared, nil
}
