package mem

import (
	"fmt"
	"slices"
	"sync"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/parallel"
)

// adviseHugePages gives p's mappings the huge page advice they had before
// their pages are filled: a mapping advised huge pages gets them as it is
// filled (where the kernel has them), one advised none gets small pages
// even where huge pages are "always". Advised after the fill, with the rest
// (finishOne), the first would have small pages and the second huge ones.
func adviseHugePages(t *inject.Target, p *image.Process) error {
	for _, m := range p.Mappings {
		if !advisable(m) {
			continue
		}
		if err := advise(t, m, hugeAdvice); err != nil {
			return fmt.Errorf("process %d mapping %#x-%#x: %w", p.PID, m.Start, m.End, err)
		}
	}
	return nil
}

// fill writes the stored pages of p's private mappings back, on every CPU:
// those of anonymous mappings through a userfaultfd where it can (see
// copier), the others, and pages a fork left there, with
// process_vm_writev. With release, each window of pieces written is
// released from data as soon as it is (see Restorer.releaser).
func fill(t *inject.Target, p *image.Process, data []byte, release func([][2]int64) error) (FillStats, error) {
	var st FillStats
	var runs []image.Run
	// viaCopier marks the runs of the mappings registered for UFFDIO_COPY.
	var viaCopier []bool
	always := thpAlways()
	copyable := func(m *image.Mapping) bool {
		return m.Kind == image.MapAnon && !m.Shared && len(m.Runs) > 0 && !faultsHuge(p, m, always)
	}
	// The userfaultfd costs injected calls: made only when a mapping can
	// use it.
	var c *copier
	if slices.ContainsFunc(p.Mappings, copyable) {
		if c = newCopier(t); c != nil {
			defer c.close()
		}
	}
	for _, m := range p.Mappings {
		if m.Kind != image.MapAnon && m.Kind != image.MapFile {
			continue
		}
		copied := c != nil && copyable(m) && c.register(m.Start, m.End)
		for _, run := range m.Runs {
			runs = append(runs, run)
			viaCopier = append(viaCopier, copied)
		}
	}
	for _, run := range runs {
		if run.Off+run.Pages*PageSize > uint64(len(data)) {
			return st, fmt.Errorf("process %d: page run at %#x lies beyond the end of %s", t.PID, run.Addr, p.Pages)
		}
	}
	// Split the work into pieces of at most 4 MiB so both CPUs stay busy
	// even for one big run.
	type piece struct {
		addr, off, n uint64
		copied       bool
	}
	var pieces []piece
	for i, run := range runs {
		for done := uint64(0); done < run.Pages*PageSize; {
			n := min(run.Pages*PageSize-done, 4<<20)
			pieces = append(pieces, piece{run.Addr + done, run.Off + done, n, viaCopier[i]})
			done += n
		}
	}
	write := func(pc piece) error {
		if err := inject.WriteMem(t.PID, uintptr(pc.addr), data[pc.off:pc.off+pc.n]); err != nil {
			return fmt.Errorf("process %d: fill pages at %#x: %w", t.PID, pc.addr, err)
		}
		return nil
	}
	var mu sync.Mutex
	var rest []piece // what UFFDIO_COPY left, written once unregistered
	var kept []piece // pieces of which rest still needs the data
	fileRanges := func(pcs []piece) [][2]int64 {
		out := make([][2]int64, len(pcs))
		for i, pc := range pcs {
			out[i] = [2]int64{int64(pc.off), int64(pc.n)}
		}
		return out
	}
	do := func(pc piece) error {
		if !pc.copied {
			return write(pc)
		}
		// Whatever UFFDIO_COPY did not fill, for any reason, is written:
		// the copy only saves time.
		done := c.copy(pc.addr, data[pc.off:pc.off+pc.n])
		mu.Lock()
		st.Copied += uint64(done)
		if uint64(done) < pc.n {
			rest = append(rest, piece{pc.addr + uint64(done), pc.off + uint64(done), pc.n - uint64(done), false})
			kept = append(kept, pc)
		}
		mu.Unlock()
		return nil
	}
	// Released window by window: the memory comes back while the
	// process's grows.
	window := len(pieces)
	if release != nil {
		window = releaseWindow
	}
	for w := 0; w < len(pieces); w += window {
		win := pieces[w:min(w+window, len(pieces))]
		if err := parallel.Each(len(win), func(i int) error { return do(win[i]) }); err != nil {
			return st, err
		}
		if release == nil {
			continue
		}
		done := slices.DeleteFunc(slices.Clone(win), func(pc piece) bool { return slices.Contains(kept, pc) })
		if err := release(fileRanges(done)); err != nil {
			return st, fmt.Errorf("process %d: %w", t.PID, err)
		}
	}
	if c != nil {
		if err := c.close(); err != nil {
			return st, fmt.Errorf("process %d: %w", t.PID, err)
		}
	}
	for _, pc := range pieces {
		if !pc.copied {
			st.Written += pc.n
		}
	}
	for _, pc := range rest {
		st.Written += pc.n
	}
	if err := parallel.Each(len(rest), func(i int) error { return write(rest[i]) }); err != nil {
		return st, err
	}
	if release != nil && len(kept) > 0 {
		if err := release(fileRanges(kept)); err != nil {
			return st, fmt.Errorf("process %d: %w", t.PID, err)
		}
	}
	return st, nil
}

// releaseWindow is how many pieces of at most 4 MiB are written before
// they are released (64 MiB, half a memory block): blocks come back as the
// process grows, for an ioctl per piece.
const releaseWindow = 16

// FillStats counts the bytes of private memory a restore filled: Copied
// through a userfaultfd (UFFDIO_COPY), Written with process_vm_writev.
type FillStats struct{ Copied, Written uint64 }
