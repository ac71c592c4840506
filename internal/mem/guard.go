package mem

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/proc"
)

// pmGuard is the pagemap bit of a guard page (MADV_GUARD_INSTALL), which
// Linux reports since 6.15.
const pmGuard = 1 << 58

// madvGuardInstall and madvGuardRemove are MADV_GUARD_INSTALL and
// MADV_GUARD_REMOVE (Linux 6.13).
const (
	madvGuardInstall = 102
	madvGuardRemove  = 103
)

// guardRuns lists the guard pages among the pagemap entries ents of the
// pages from start on.
func guardRuns(ents []byte, start uint64) []image.PageRange {
	var out []image.PageRange
	n := uint64(len(ents) / 8)
	guard := func(i uint64) bool { return binary.LittleEndian.Uint64(ents[i*8:])&pmGuard != 0 }
	for i := uint64(0); i < n; {
		if !guard(i) {
			i++
			continue
		}
		j := i + 1
		for j < n && guard(j) {
			j++
		}
		out = append(out, image.PageRange{Addr: start + i*PageSize, Pages: j - i})
		i = j
	}
	return out
}

// readGuards reads the pagemap of a mapping whose pages are not chosen
// one by one (shared memory, shared files) for its guard pages.
func readGuards(pm *os.File, m *proc.Mapping) ([]image.PageRange, error) {
	ents := make([]byte, m.Len()/PageSize*8)
	if _, err := pm.ReadAt(ents, int64(m.Start/PageSize*8)); err != nil && err != io.EOF {
		return nil, fmt.Errorf("read pagemap: %w", err)
	}
	return guardRuns(ents, m.Start), nil
}

// markGuarded gives a mapping whose smaps showed "gu" (it may hold guard
// pages) but that has none left that flag back, by installing and removing
// a guard page on its first page before it is filled. The flag changes
// nothing but what smaps shows, so a kernel without guard pages skips it.
func markGuarded(t *inject.Target, m *image.Mapping) error {
	if !hasFlag(m, "gu") || len(m.Guards) > 0 {
		return nil
	}
	if _, err := t.Call(unix.SYS_MADVISE, uintptr(m.Start), PageSize, madvGuardInstall); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return nil
		}
		return fmt.Errorf("madvise MADV_GUARD_INSTALL: %w", err)
	}
	if _, err := t.Call(unix.SYS_MADVISE, uintptr(m.Start), PageSize, madvGuardRemove); err != nil {
		return fmt.Errorf("madvise MADV_GUARD_REMOVE: %w", err)
	}
	return nil
}

// installGuards puts the mapping's guard pages back, after its pages are
// filled and before it is locked (the kernel refuses guards in locked
// memory).
func installGuards(t *inject.Target, m *image.Mapping) error {
	for _, g := range m.Guards {
		if _, err := t.Call(unix.SYS_MADVISE, uintptr(g.Addr), uintptr(g.Pages*PageSize), madvGuardInstall); err != nil {
			if errors.Is(err, unix.EINVAL) {
				err = fmt.Errorf("%w (guard pages need Linux 6.13)", err)
			}
			return fmt.Errorf("guard pages at %#x: madvise MADV_GUARD_INSTALL: %w", g.Addr, err)
		}
	}
	return nil
}
