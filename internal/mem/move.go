package mem

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/proc"
)

// MovePart is how much of a process's memory a moving checkpoint writes
// into the image before it drops what it wrote: the memory the checkpoint
// holds twice at any time, besides the store's own slack. Each part costs
// one injection session in the process.
const MovePart = 16 << 20

// Mover makes a checkpoint move the private anonymous memory of the
// processes into the image instead of copying it: each part, once in the
// image and checksummed, is dropped from the frozen process
// (MADV_DONTNEED), so that a service and its image do not hold its memory
// twice. That is what lets a service using most of the machine's memory be
// carried in memory (the kmod store, docs/kmod.md).
//
// Until the tree is killed it can be undone: PutBack writes every dropped
// part back from the image, checked against the checksums the checkpoint
// took. A process whose memory cannot be put back must be killed, never
// let run.
type Mover struct {
	// Reserve, if set, is called before each part is written, with its
	// size: the store makes room for it (the kmod store takes memory
	// blocks out of the system, which the parts dropped before freed).
	Reserve func(n int64) error
	// Drop frees the spans ([start, end)) of process pid's memory; the dump
	// package runs madvise in the process, which is stopped.
	Drop func(pid int, spans [][2]uint64) error
	// Release, if set, is called by PutBack once a part is back in its
	// process, with the image file and the ranges ({offset, length}) of it
	// that part was: the
	// store gives that memory back (the kmod store's pool shrinks as the
	// services grow back, so that the two never hold the memory twice on
	// the way back either).
	Release func(path string, ranges [][2]int64) error
	// Moved counts the bytes dropped.
	Moved int64
	parts []movedPart
}

// movedPart is a part of a process's memory that was dropped, and where its
// contents are in the image: the pages file, whose blocks' lengths and
// checksums it keeps once closed (its blocks are written once).
type movedPart struct {
	pid   int
	file  *image.BlockFile
	spans []image.Run
}

// droppable says whether the pages stored for mapping m (described as im)
// may be dropped from the process: private anonymous memory that the
// kernel lets go of (not locked, not sealed) and that nothing else serves
// (no userfaultfd, whose handler, frozen, would never answer the fault of
// the write-back).
func droppable(m *proc.Mapping, im *image.Mapping) bool {
	if im.Kind != image.MapAnon || m.Shared {
		return false
	}
	return !slices.ContainsFunc(m.VMFlags, func(f string) bool {
		switch f {
		case "lo", "sl", "um", "uw", "ui", "io", "pf":
			return true
		}
		return false
	})
}

// copy writes the runs of pid into out part by part, dropping from the
// process the parts of drop (the runs that may go, see droppable) once
// they are written.
func (mv *Mover) copy(pid int, runs, drop []image.Run, out *image.BlockFile, cow bool) error {
	per := MovePart / image.BlockSize
	for g := 0; g < out.Blocks(); g += per {
		n := min(per, out.Blocks()-g)
		var size int64
		for i := g; i < g+n; i++ {
			size += int64(out.BlockLen(i))
		}
		if mv.Reserve != nil {
			if err := mv.Reserve(size); err != nil {
				return err
			}
		}
		if err := copyBlocks(pid, runs, out, cow, g, n); err != nil {
			return err
		}
		lo := uint64(g) * image.BlockSize
		spans := clip(drop, lo, lo+uint64(size))
		if len(spans) == 0 {
			continue
		}
		// Recorded before the drop: a drop that fails half-way has
		// dropped some of them, and PutBack must cover those.
		mv.parts = append(mv.parts, movedPart{pid: pid, file: out, spans: spans})
		addrs := make([][2]uint64, len(spans))
		for i, s := range spans {
			addrs[i] = [2]uint64{s.Addr, s.Addr + s.Pages*PageSize}
			mv.Moved += int64(s.Pages * PageSize)
		}
		if err := mv.Drop(pid, addrs); err != nil {
			return err
		}
	}
	return nil
}

// clip returns the parts of runs (sorted by Off) whose file offsets lie in
// [lo, hi).
func clip(runs []image.Run, lo, hi uint64) []image.Run {
	var out []image.Run
	for _, r := range runs {
		a, b := max(r.Off, lo), min(r.Off+r.Pages*PageSize, hi)
		if a >= b {
			continue
		}
		out = append(out, image.Run{Addr: r.Addr + a - r.Off, Pages: (b - a) / PageSize, Off: a})
	}
	return out
}

// PutBack writes every dropped part back into its process from the image,
// each block checked against its checksum first, and releases each part
// of the image once it is back (Release). It returns the PIDs whose memory
// it could not put back completely: those must not run again.
func (mv *Mover) PutBack() ([]int, error) {
	buf := make([]byte, image.BlockSize)
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var failed []int
	var errs []error
	for _, part := range mv.parts {
		if slices.Contains(failed, part.pid) {
			continue
		}
		if err := mv.putBack(part, files, buf); err != nil {
			failed = append(failed, part.pid)
			errs = append(errs, fmt.Errorf("put back memory of process %d: %w", part.pid, err))
			continue
		}
		if mv.Release == nil {
			continue
		}
		ranges := make([][2]int64, len(part.spans))
		for i, s := range part.spans {
			ranges[i] = [2]int64{int64(s.Off), int64(s.Pages * PageSize)}
		}
		// Not the process's loss: its memory is back; the store's memory
		// is freed when the image goes, at the latest.
		if err := mv.Release(part.file.Path(), ranges); err != nil {
			errs = append(errs, err)
		}
	}
	mv.parts, mv.Moved = nil, 0
	return failed, errors.Join(errs...)
}

func (mv *Mover) putBack(part movedPart, files map[string]*os.File, buf []byte) error {
	path := part.file.Path()
	f := files[path]
	if f == nil {
		var err error
		if f, err = os.Open(path); err != nil {
			return err
		}
		files[path] = f
	}
	sums := part.file.BlockSums()
	block := -1
	for _, s := range part.spans {
		for done := uint64(0); done < s.Pages*PageSize; {
			off := s.Off + done
			i := int(off / image.BlockSize)
			if i != block {
				if i >= part.file.Blocks() {
					return fmt.Errorf("%s has no block %d", path, i)
				}
				if err := image.ReadBlock(f, i, buf[:part.file.BlockLen(i)], sums[i]); err != nil {
					return err
				}
				block = i
			}
			in := off - uint64(i)*image.BlockSize
			n := min(s.Pages*PageSize-done, image.BlockSize-in)
			if err := inject.WriteMem(part.pid, uintptr(s.Addr+done), buf[in:in+n]); err != nil {
				return fmt.Errorf("write %#x: %w", s.Addr+done, err)
			}
			done += n
		}
	}
	return nil
}
