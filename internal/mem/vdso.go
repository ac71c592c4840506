package mem

import (
	"bytes"
	"debug/elf"
	"fmt"
	"sort"
	"strings"

	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/proc"
)

// VDSOSymbols reads the vDSO of process pid and returns its function
// symbols with their offsets from the vDSO's start. A restored process
// keeps calling its vDSO at the old offsets, so the new kernel's vDSO may
// replace it only if they match.
func VDSOSymbols(pid int) (map[string]uint64, error) {
	maps, err := proc.ReadMappings(pid)
	if err != nil {
		return nil, err
	}
	for _, m := range maps {
		if m.Path != "[vdso]" {
			continue
		}
		buf := make([]byte, m.Len())
		if err := inject.ReadMem(pid, uintptr(m.Start), buf); err != nil {
			return nil, fmt.Errorf("read vDSO: %w", err)
		}
		return elfSymbols(buf)
	}
	return nil, nil // no vDSO (vdso=0)
}

func elfSymbols(b []byte) (map[string]uint64, error) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parse vDSO: %w", err)
	}
	base, _ := loadBase(f)
	syms, err := f.DynamicSymbols()
	if err != nil {
		return nil, fmt.Errorf("vDSO symbols: %w", err)
	}
	out := map[string]uint64{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
			out[s.Name] = s.Value - base
		}
	}
	return out, nil
}

// loadBase is the address the vDSO image f is linked at: that of its first
// PT_LOAD segment. Offsets in the mapping are addresses minus it.
func loadBase(f *elf.File) (uint64, bool) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			return p.Vaddr, true
		}
	}
	return 0, false
}

// CompareVDSO explains how the vDSO of the image (old) differs from this
// kernel's (cur), or returns "" when every old entry point is where it was.
func CompareVDSO(old, cur map[string]uint64) string {
	var diffs []string
	for name, off := range old {
		c, ok := cur[name]
		switch {
		case !ok:
			diffs = append(diffs, name+" is gone")
		case c != off:
			diffs = append(diffs, fmt.Sprintf("%s moved from %#x to %#x", name, off, c))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 4 {
		diffs = append(diffs[:4], fmt.Sprintf("and %d more", len(diffs)-4))
	}
	return strings.Join(diffs, ", ")
}
