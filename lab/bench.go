package lab

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// BenchScenarios are what `seamless-lab bench` compares by default.
var BenchScenarios = []string{"seamless-update", "kexec-plain"}

// BenchOrder interleaves n rounds of the scenarios, reversing the order
// every other round so that neither always runs first on a machine that
// warms up or gets busier.
func BenchOrder(scenarios []string, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		round := slices.Clone(scenarios)
		if i%2 == 1 {
			slices.Reverse(round)
		}
		out = append(out, round...)
	}
	return out
}

// BenchRun is one run of a bench: its gap and its timeline's phases (in
// ms, each named for the point it ends at) and points (ms since the origin).
type BenchRun struct {
	Scenario string           `json:"scenario"`
	OK       bool             `json:"ok"`
	Error    string           `json:"error,omitempty"`
	RunDir   string           `json:"run_dir,omitempty"`
	GapMS    int64            `json:"gap_ms"`
	Phases   map[string]int64 `json:"phases"`
	Points   map[string]int64 `json:"points"`
}

// BenchRunOf summarises a run's report.
func BenchRunOf(rep *Report) BenchRun {
	br := BenchRun{Scenario: rep.Scenario, OK: rep.OK, Error: firstLine(rep.Error), RunDir: rep.RunDir,
		Phases: map[string]int64{}, Points: map[string]int64{}}
	if rep.Probe != nil {
		br.GapMS = rep.Probe.GapMS
	}
	if tl := rep.Timeline; tl != nil {
		br.Phases = tl.Phases()
		for _, p := range tl.Points {
			if p.MS != nil {
				br.Points[p.Name] = *p.MS
			}
		}
	}
	return br
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// Stat is the median and spread of one measure over a bench's runs.
type Stat struct {
	N      int     `json:"n"`
	Median float64 `json:"median_ms"`
	Min    int64   `json:"min_ms"`
	Max    int64   `json:"max_ms"`
	Spread int64   `json:"spread_ms"` // max - min
}

// StatOf computes a Stat (the zero Stat for no values).
func StatOf(xs []int64) Stat {
	if len(xs) == 0 {
		return Stat{}
	}
	s := append([]int64(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	st := Stat{N: len(s), Min: s[0], Max: s[len(s)-1]}
	st.Spread = st.Max - st.Min
	if m := len(s) / 2; len(s)%2 == 1 {
		st.Median = float64(s[m])
	} else {
		st.Median = float64(s[m-1]+s[m]) / 2
	}
	return st
}

// ScenarioSummary is the statistics of one scenario's successful runs.
type ScenarioSummary struct {
	Runs   int             `json:"runs"`   // all runs
	Failed int             `json:"failed"` // not counted below
	Gap    Stat            `json:"gap"`
	Phases map[string]Stat `json:"phases"`
}

// Summarize computes, per scenario, the median and spread of the gap and
// of every phase over its successful runs (a failed run's numbers are not
// those of an update).
func Summarize(runs []BenchRun) map[string]ScenarioSummary {
	gaps := map[string][]int64{}
	phases := map[string]map[string][]int64{}
	out := map[string]ScenarioSummary{}
	for _, r := range runs {
		s := out[r.Scenario]
		s.Runs++
		if !r.OK {
			s.Failed++
			out[r.Scenario] = s
			continue
		}
		out[r.Scenario] = s
		gaps[r.Scenario] = append(gaps[r.Scenario], r.GapMS)
		if phases[r.Scenario] == nil {
			phases[r.Scenario] = map[string][]int64{}
		}
		for k, v := range r.Phases {
			phases[r.Scenario][k] = append(phases[r.Scenario][k], v)
		}
	}
	for name, s := range out {
		s.Gap = StatOf(gaps[name])
		s.Phases = map[string]Stat{}
		for k, v := range phases[name] {
			s.Phases[k] = StatOf(v)
		}
		out[name] = s
	}
	return out
}

// BenchResult is what `seamless-lab bench --json` writes.
type BenchResult struct {
	Runs    []BenchRun                 `json:"runs"`
	Summary map[string]ScenarioSummary `json:"summary"`
}

// WriteJSON writes the result, indented.
func (b *BenchResult) WriteJSON(w io.Writer) error {
	if b.Runs == nil {
		b.Runs = []BenchRun{}
	}
	return writeIndented(w, b)
}

// writeIndented writes v as indented JSON.
func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Print writes the summary as a table: per scenario the gap and each phase,
// median with min–max.
func (b *BenchResult) Print(w io.Writer) {
	names := make([]string, 0, len(b.Summary))
	for n := range b.Summary {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "\n==== bench: median (min-max) in seconds over successful runs ====\n")
	fmt.Fprintf(w, "%-20s", "")
	for _, n := range names {
		fmt.Fprintf(w, " %-24s", n)
	}
	fmt.Fprintln(w)
	row := func(label string, get func(ScenarioSummary) (Stat, bool)) {
		fmt.Fprintf(w, "%-20s", label)
		for _, n := range names {
			st, ok := get(b.Summary[n])
			cell := "-"
			if ok && st.N > 0 {
				cell = fmt.Sprintf("%s (%s-%s) n=%d", trimFloat(st.Median/1000), trimFloat(float64(st.Min)/1000), trimFloat(float64(st.Max)/1000), st.N)
			}
			fmt.Fprintf(w, " %-24s", cell)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%-20s", "runs (failed)")
	for _, n := range names {
		fmt.Fprintf(w, " %-24s", fmt.Sprintf("%d (%d)", b.Summary[n].Runs, b.Summary[n].Failed))
	}
	fmt.Fprintln(w)
	row("gap", func(s ScenarioSummary) (Stat, bool) { return s.Gap, true })
	for _, p := range PointNames[1:] {
		row(p, func(s ScenarioSummary) (Stat, bool) { st, ok := s.Phases[p]; return st, ok })
	}
}
