package lab

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"time"
)

// ScaleSizes are the sizes (MiB of values in memcached) that `seamless-lab
// scale` runs by default.
var ScaleSizes = []int{64, 512, 1536}

// ScaleGuestMB is the guest's RAM in a scaling run: room for the largest
// size with the image of today's stores beside it.
const ScaleGuestMB = 4096

// scaleValueSize is the size of one value in a scaling run: large enough
// that 1.5 GiB is 98 304 keys, so that filling and counting them is
// dominated by the bytes, not by the requests.
const scaleValueSize = 16 << 10

// Scaled returns a copy of base in which memcached holds mib MiB of values
// in a guest of ScaleGuestMB: memcached's own limit (-m) is raised first,
// the keys kept afterwards are expected to be all of them where base
// expected it of its keys, and the timeouts grow with the size (the
// checkpoint, the image's store and its verification are per byte).
func Scaled(base *Scenario, mib int) (*Scenario, error) {
	if mib < 1 {
		return nil, fmt.Errorf("scale %s: %d MiB: the size must be positive", base.Name, mib)
	}
	sc := *base
	sc.Name = fmt.Sprintf("%s-%dmib", base.Name, mib)
	sc.Description = fmt.Sprintf("%s (scaled: memcached holds %d MiB of values in a %d MiB guest)", base.Description, mib, ScaleGuestMB)
	sc.MemoryMB = ScaleGuestMB
	sc.Memcached = Memcached{Keys: mib << 20 / scaleValueSize, ValueSize: scaleValueSize}
	// memcached stores a 16 KiB value in a slab chunk up to a quarter
	// larger, plus its hash table: its own limit must leave room.
	limit := max(1024, mib*3/2+64)
	grow := func(d Duration) Duration {
		return Duration{d.Duration + time.Duration(mib)*time.Duration(float64(d.Duration)/512)}
	}
	sc.Timeout = grow(sc.Timeout)
	sc.Steps = append([]Step{{
		Phase: "prepare",
		Guest: fmt.Sprintf("sed -i 's/^-m .*/-m %d/' /etc/memcached.conf && grep -qx -- '-m %d' /etc/memcached.conf && systemctl restart memcached", limit, limit),
	}}, slices.Clone(base.Steps)...)
	for i := range sc.Steps {
		sc.Steps[i].Timeout = grow(sc.Steps[i].Timeout) // validate gave each one
	}
	if base.Expect.MinKeysAfter != nil {
		n := sc.Memcached.Keys
		sc.Expect.MinKeysAfter = &n
	}
	sc.Expect.MaxGapMS = 0 // the bound of base's size
	if err := sc.validate(); err != nil {
		return nil, fmt.Errorf("scale %s: %w", base.Name, err)
	}
	return &sc, nil
}

// ScaleRun is one run of a scaling: a scenario at one size.
type ScaleRun struct {
	BenchRun
	Base    string `json:"base"`     // the scenario scaled
	SizeMiB int    `json:"size_mib"` // memcached's values
}

// ScaleResult is what `seamless-lab scale --json` writes.
type ScaleResult struct {
	Runs []ScaleRun `json:"runs"`
}

// WriteJSON writes the result, indented.
func (s *ScaleResult) WriteJSON(w io.Writer) error {
	if s.Runs == nil {
		s.Runs = []ScaleRun{}
	}
	return writeIndented(w, s)
}

// series returns, per base scenario, its successful runs' (size, gap)
// points, by size (the median where a size ran more than once).
func (s *ScaleResult) series() map[string][][2]float64 {
	gaps := map[string]map[int][]int64{}
	for _, r := range s.Runs {
		if !r.OK || r.GapMS <= 0 {
			continue
		}
		if gaps[r.Base] == nil {
			gaps[r.Base] = map[int][]int64{}
		}
		gaps[r.Base][r.SizeMiB] = append(gaps[r.Base][r.SizeMiB], r.GapMS)
	}
	out := map[string][][2]float64{}
	for base, bySize := range gaps {
		for size, g := range bySize {
			out[base] = append(out[base], [2]float64{float64(size), StatOf(g).Median})
		}
		sort.Slice(out[base], func(i, j int) bool { return out[base][i][0] < out[base][j][0] })
	}
	return out
}

// Print writes the gap of every run as a table, sizes down, scenarios
// across, with each scenario's growth from the smallest size.
func (s *ScaleResult) Print(w io.Writer) {
	ser := s.series()
	bases := make([]string, 0, len(ser))
	for b := range ser {
		bases = append(bases, b)
	}
	sort.Strings(bases)
	fmt.Fprintf(w, "\n==== scale: the host client's gap (s) against memcached's size ====\n%-10s", "MiB")
	for _, b := range bases {
		fmt.Fprintf(w, " %-20s", b)
	}
	fmt.Fprintln(w)
	var sizes []int
	for _, r := range s.Runs {
		if !slices.Contains(sizes, r.SizeMiB) {
			sizes = append(sizes, r.SizeMiB)
		}
	}
	sort.Ints(sizes)
	for _, size := range sizes {
		fmt.Fprintf(w, "%-10d", size)
		for _, b := range bases {
			cell := "-"
			for _, p := range ser[b] {
				if int(p[0]) == size {
					cell = trimFloat(p[1] / 1000)
				}
			}
			fmt.Fprintf(w, " %-20s", cell)
		}
		fmt.Fprintln(w)
	}
	for _, r := range s.Runs {
		if !r.OK {
			fmt.Fprintf(w, "failed: %s at %d MiB: %s\n", r.Base, r.SizeMiB, r.Error)
		}
	}
}
