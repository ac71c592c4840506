package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// checkExpect evaluates a scenario's expectations against its report.
func checkExpect(e Expect, r *Report) []Check {
	var cs []Check
	add := func(name string, ok bool, format string, args ...any) {
		cs = append(cs, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}
	before, after := r.Before(), r.After()
	if e.KernelBefore != "" {
		add("kernel_before", before.Release == e.KernelBefore, "booted %s, want %s", before.Release, e.KernelBefore)
	}
	if e.KernelAfter != "" {
		add("kernel_after", after.Release == e.KernelAfter, "running %s, want %s", after.Release, e.KernelAfter)
	}
	if e.VersionAfterContains != "" {
		add("version_after_contains", strings.Contains(after.Version, e.VersionAfterContains),
			"/proc/version %q, want %q in it", versionShort(after.Version), e.VersionAfterContains)
	}
	if e.MinKeysAfter != nil {
		add("min_keys_after", r.KeysAfter >= *e.MinKeysAfter, "%s keys after, want at least %d", keys(r.KeysAfter), *e.MinKeysAfter)
	}
	if e.ConnectionSurvived != nil {
		got := r.Probe != nil && r.Probe.ConnectionSurvived
		add("connection_survived", r.Probe != nil && got == *e.ConnectionSurvived, "survived %s, want %s", yesNo(got), yesNo(*e.ConnectionSurvived))
	}
	if e.MaxGapMS > 0 {
		ok := r.Probe != nil && r.Probe.GapMS <= e.MaxGapMS
		gap := int64(-1)
		if r.Probe != nil {
			gap = r.Probe.GapMS
		}
		add("max_gap_ms", ok, "gap %d ms, want at most %d ms", gap, e.MaxGapMS)
	}
	return cs
}

// pruneRuns keeps the newest n run directories.
func pruneRuns(dir string, n int) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type run struct {
		name string
		mod  time.Time
	}
	var runs []run
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && e.IsDir() {
			runs = append(runs, run{e.Name(), fi.ModTime()})
		}
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].mod.After(runs[j].mod) })
	for i, r := range runs {
		if i >= n {
			_ = os.RemoveAll(filepath.Join(dir, r.name))
		}
	}
}

func trimSpace(s string) string { return strings.TrimSpace(s) }
