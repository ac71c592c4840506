package lab

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Report is the outcome of one scenario run (also written as report.json).
type Report struct {
	Scenario    string            `json:"scenario"`
	Description string            `json:"description"`
	Image       string            `json:"image"`
	RunDir      string            `json:"run_dir"`
	SerialLog   string            `json:"serial_log"`
	Started     time.Time         `json:"started"`
	Seconds     float64           `json:"seconds"`
	Boots       []BootInfo        `json:"boots"`
	Payload     []string          `json:"payload"`
	Steps       []StepResult      `json:"steps"`
	Saved       map[string]string `json:"saved"`
	KeysStored  int               `json:"keys_stored"` // -1: not measured
	KeysBefore  int               `json:"keys_before"` // -1: not measured
	KeysAfter   int               `json:"keys_after"`  // -1: not measured
	Probe       *ProbeResult      `json:"probe,omitempty"`
	Checks      []Check           `json:"checks"`
	// Timeline is the first restart on the host's clock (timeline.svg in
	// the run directory draws it).
	Timeline *Timeline `json:"timeline,omitempty"`
	OK       bool      `json:"ok"`
	Error    string    `json:"error,omitempty"`
}

// StepResult is what one step did.
type StepResult struct {
	Phase    string    `json:"phase"`
	What     string    `json:"what"`
	Started  time.Time `json:"started"`
	Reboots  bool      `json:"reboots,omitempty"`
	Seconds  float64   `json:"seconds"`
	ExitCode int       `json:"exit_code"`
	Output   string    `json:"output,omitempty"` // last lines of stdout+stderr
	Error    string    `json:"error,omitempty"`
}

// Check is one expectation and whether it held.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Before is the first boot, After the last one.
func (r *Report) Before() BootInfo { return r.boot(0) }

// After is the boot the scenario ended in.
func (r *Report) After() BootInfo { return r.boot(len(r.Boots) - 1) }

func (r *Report) boot(i int) BootInfo {
	if i < 0 || i >= len(r.Boots) {
		return BootInfo{}
	}
	return r.Boots[i]
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func keys(n int) string {
	if n < 0 {
		return "not measured"
	}
	return fmt.Sprint(n)
}

// Print writes the short human report.
func (r *Report) Print(w io.Writer) {
	status := "PASSED"
	if !r.OK {
		status = "FAILED"
	}
	fmt.Fprintf(w, "\n==== seamless lab: scenario %s %s (%.0f s) ====\n", r.Scenario, status, r.Seconds)
	b, a := r.Before(), r.After()
	fmt.Fprintf(w, "kernel before : %s  (%s)\n", b.Release, versionShort(b.Version))
	fmt.Fprintf(w, "kernel after  : %s  (%s)\n", a.Release, versionShort(a.Version))
	for i, bt := range r.Boots {
		label := "first boot"
		if i > 0 {
			label = fmt.Sprintf("boot %d    ", i+1)
		}
		fmt.Fprintf(w, "%s    : agent %.1f s, multi-user %.1f s (%s); %s\n", label, bt.AgentSecs, bt.ReadySecs, bt.SystemState, bt.Analyze)
	}
	if p := r.Probe; p != nil {
		fmt.Fprintf(w, "service gap   : %d ms (host client, first failed to first successful request)\n", p.GapMS)
		fmt.Fprintf(w, "connection    : same TCP connection survived: %s", yesNo(p.ConnectionSurvived))
		if p.HeldError != "" {
			fmt.Fprintf(w, " (%s)", p.HeldError)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "requests      : %d (%d failed), outages: %d\n", p.Requests, p.Failed, len(p.Outages))
	}
	if tl := r.Timeline; tl != nil {
		fmt.Fprintf(w, "timeline      : %s (s since %s; timeline.svg)\n", tl.Summary(), tl.OriginIs)
	}
	if r.KeysStored >= 0 || r.KeysAfter >= 0 {
		fmt.Fprintf(w, "keys          : %s stored, %s before, %s after", keys(r.KeysStored), keys(r.KeysBefore), keys(r.KeysAfter))
		if r.KeysBefore >= 0 && r.KeysAfter >= 0 {
			fmt.Fprintf(w, " (%d lost)", r.KeysBefore-r.KeysAfter)
		}
		fmt.Fprintln(w)
	}
	for _, s := range r.Steps {
		mark := "ok"
		if s.Error != "" {
			mark = "FAILED"
		}
		fmt.Fprintf(w, "  [%-8s] %6.1f s  %-6s %s\n", s.Phase, s.Seconds, mark, s.What)
	}
	names := make([]string, 0, len(r.Saved))
	for k := range r.Saved {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(w, "  saved %-24s %s\n", k, short(r.Saved[k]))
	}
	for _, p := range r.Payload {
		fmt.Fprintf(w, "  payload %s\n", short(p))
	}
	for _, c := range r.Checks {
		mark := "ok"
		if !c.OK {
			mark = "FAILED"
		}
		fmt.Fprintf(w, "  check %-24s %-6s %s\n", c.Name, mark, c.Detail)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "error: %s\n", r.Error)
	}
	fmt.Fprintf(w, "run dir: %s\n", r.RunDir)
}

// versionShort extracts "6.1.170-3" style package versions from /proc/version.
func versionShort(v string) string {
	if i := strings.LastIndex(v, "Debian "); i >= 0 {
		rest := strings.Fields(v[i+len("Debian "):])
		if len(rest) > 0 {
			return "Debian " + strings.TrimSuffix(rest[0], ")")
		}
	}
	return v
}

// PrintComparison writes one line per scenario, the way an operator would
// compare them: how long the host client saw the service gone, whether its
// connection lived, how many keys were left, and the gap as a multiple of
// the first scenario's.
func PrintComparison(w io.Writer, reps []*Report) {
	if len(reps) < 2 {
		return
	}
	fmt.Fprintf(w, "\n==== comparison (same host client, same guest, same run) ====\n")
	fmt.Fprintf(w, "%-26s %-7s %-33s %10s %7s %-11s %s\n", "scenario", "result", "kernel", "gap", "x gap", "connection", "keys after")
	base := int64(0)
	if p := reps[0].Probe; p != nil {
		base = p.GapMS
	}
	for _, r := range reps {
		res := "PASSED"
		if !r.OK {
			res = "FAILED"
		}
		gap, ratio, conn := "-", "-", "-"
		if p := r.Probe; p != nil {
			gap = fmt.Sprintf("%d ms", p.GapMS)
			if base > 0 {
				ratio = fmt.Sprintf("%.1f", float64(p.GapMS)/float64(base))
			}
			conn = "kept"
			if !p.ConnectionSurvived {
				conn = "lost"
			}
		}
		kernels := r.Before().Release + " -> " + r.After().Release
		fmt.Fprintf(w, "%-26s %-7s %-33s %10s %7s %-11s %s of %s\n", r.Scenario, res, kernels, gap, ratio, conn, keys(r.KeysAfter), keys(r.KeysBefore))
	}
}
