package lab

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// The points of a timeline, in the order they happen.
const (
	PointStop      = "freeze/stop"
	PointShutdown  = "shutdown done"
	PointKexec     = "kexec"
	PointKernel    = "new kernel"
	PointInitramfs = "initramfs unpacked"
	PointStage1    = "stage 1 done"
	PointSwitch    = "switch root"
	PointUnit      = "unit started"
	PointAsked     = "restore asked"
	PointRestored  = "restored/started"
	PointWoken     = "peers woken"
	PointHeld      = "held conn answers"
	PointFresh     = "new conn answers"
)

// PointNames lists the points in order.
var PointNames = []string{PointStop, PointShutdown, PointKexec, PointKernel, PointInitramfs,
	PointStage1, PointSwitch, PointUnit, PointAsked, PointRestored, PointWoken, PointHeld, PointFresh}

// Point is one moment of a timeline.
type Point struct {
	Name string `json:"name"`
	// MS counts from the timeline's origin; nil when the run did not show
	// this point (never guessed).
	MS     *int64 `json:"ms,omitempty"`
	Source string `json:"source"` // host, serial (old/new boot), journal
	Detail string `json:"detail,omitempty"`
}

// Timeline is one restart of a scenario, from the service stopping to it
// answering again, on the host's clock.
type Timeline struct {
	Scenario string    `json:"scenario"`
	Origin   time.Time `json:"origin"`    // host time of 0 ms
	OriginIs string    `json:"origin_is"` // what 0 ms is
	GapMS    int64     `json:"gap_ms"`    // the host client's gap (0: not measured)
	Points   []Point   `json:"points"`
	Notes    []string  `json:"notes,omitempty"` // why points are missing
}

// At returns the time of a point, and whether it is known.
func (t *Timeline) At(name string) (int64, bool) {
	for _, p := range t.Points {
		if p.Name == name && p.MS != nil {
			return *p.MS, true
		}
	}
	return 0, false
}

// Phases are the durations between consecutive known points, each named
// for the point it ends at (a phase whose start point is missing runs from
// the last known point before it). The waking of the peers (once the
// network is up) and the two answers all count from the restore (or
// start): they may come in any order.
func (t *Timeline) Phases() map[string]int64 {
	ph := map[string]int64{}
	var last, restored *int64
	for _, p := range t.Points {
		if p.MS == nil {
			continue
		}
		from := last
		afterRestore := p.Name == PointWoken || p.Name == PointHeld || p.Name == PointFresh
		if afterRestore {
			from = restored
		}
		if from != nil {
			ph[p.Name] = *p.MS - *from
		}
		if !afterRestore {
			last, restored = p.MS, p.MS
		}
	}
	return ph
}

// Summary is the points on one line: "name 1.2, ..., missing: a, b".
func (t *Timeline) Summary() string {
	var known, missing []string
	for _, p := range t.Points {
		if p.MS == nil {
			missing = append(missing, p.Name)
		} else {
			known = append(known, fmt.Sprintf("%s %s", p.Name, trimFloat(float64(*p.MS)/1000)))
		}
	}
	s := strings.Join(known, ", ")
	if len(missing) > 0 {
		s += "; missing: " + strings.Join(missing, ", ")
	}
	return s
}

// kernelLine splits a console line "[   12.345678] text" into its
// timestamp and text.
func kernelLine(line string) (float64, string, bool) {
	i := strings.IndexByte(line, '[')
	j := strings.IndexByte(line, ']')
	if i < 0 || j < i {
		return 0, "", false
	}
	ts, err := strconv.ParseFloat(strings.TrimSpace(line[i+1:j]), 64)
	if err != nil {
		return 0, "", false
	}
	return ts, strings.TrimSpace(line[j+1:]), true
}

// bootLog is the part of the serial console one boot printed.
type bootLog struct {
	release string
	lines   []string
}

// splitBoots cuts a serial console log into boots at each kernel banner.
func splitBoots(serial []byte) []bootLog {
	var boots []bootLog
	sc := bufio.NewScanner(bytes.NewReader(serial))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if _, text, ok := kernelLine(line); ok && strings.HasPrefix(text, "Linux version ") {
			rel := strings.Fields(text)[2]
			boots = append(boots, bootLog{release: rel})
		}
		if len(boots) > 0 {
			b := &boots[len(boots)-1]
			b.lines = append(b.lines, line)
		}
	}
	return boots
}

// find returns the kernel timestamp of the first (or last) line whose text
// contains all of subs.
func (b *bootLog) find(last bool, subs ...string) (float64, string, bool) {
	var ts float64
	var text string
	found := false
	for _, line := range b.lines {
		t, s, ok := kernelLine(line)
		if !ok {
			continue
		}
		match := true
		for _, sub := range subs {
			if !strings.Contains(s, sub) {
				match = false
				break
			}
		}
		if match {
			ts, text, found = t, s, true
			if !last {
				break
			}
		}
	}
	return ts, text, found
}

// journalFind returns the monotonic timestamp of the first journal line
// (journalctl -o short-monotonic) that contains sub.
func journalFind(journal, sub string) (float64, string, bool) {
	for _, line := range strings.Split(journal, "\n") {
		if ts, text, ok := kernelLine(line); ok && strings.Contains(text, sub) {
			return ts, text, true
		}
	}
	return 0, "", false
}

// BuildTimeline puts the first restart of a run on the host's clock: the
// host client's own observations, and the guest's serial console and
// journal lines, whose kernel timestamps the boots' clock samples turn into
// host time. serial is the run's serial.log.
func BuildTimeline(rep *Report, serial []byte) *Timeline {
	tl := &Timeline{Scenario: rep.Scenario}
	p := rep.Probe
	if p != nil && (p.GapMS == 0 || p.Started.IsZero()) {
		if p.GapMS > 0 {
			tl.Notes = append(tl.Notes, "the host client's result has no start time (a report from before timelines): its points are missing")
		}
		p = nil
	}
	// The restart drawn is the one the host client's gap began in: the
	// last step that restarts the guest before the gap (a scenario may
	// reboot while it prepares), else the first such step. It is the k-th
	// restart: boots k and k+1 are the old and the new.
	var gapStart time.Time
	if p != nil {
		gapStart = p.Started.Add(time.Duration(p.GapStartMS) * time.Millisecond)
	}
	var step *StepResult
	k := 0
	for i, n := 0, 0; i < len(rep.Steps); i++ {
		s := &rep.Steps[i]
		if !s.Reboots {
			continue
		}
		if step == nil || (p != nil && !s.Started.After(gapStart)) {
			step, k = s, n
		}
		n++
	}
	switch {
	case p != nil:
		tl.Origin = gapStart
		tl.OriginIs = "the host client's last unanswered request before the gap"
		tl.GapMS = p.GapMS
	case step != nil:
		tl.Origin = step.Started
		tl.OriginIs = "the start of the step that restarts the guest"
	default:
		tl.Notes = append(tl.Notes, "no restart and no outage: nothing to draw")
		return tl
	}
	points := map[string]Point{}
	host := func(name string, t time.Time, src, detail string) {
		ms := t.Sub(tl.Origin).Milliseconds()
		points[name] = Point{Name: name, MS: &ms, Source: src, Detail: detail}
	}
	if p != nil {
		host(PointStop, tl.Origin, "host", "host client: first request without an answer")
		if p.FirstHeldAnswerMS != nil {
			host(PointHeld, p.Started.Add(time.Duration(*p.FirstHeldAnswerMS)*time.Millisecond), "host", "host client: held connection answers again")
		} else {
			tl.Notes = append(tl.Notes, "the held connection never answered after the gap")
		}
		if p.FirstFreshAnswerMS != nil {
			host(PointFresh, p.Started.Add(time.Duration(*p.FirstFreshAnswerMS)*time.Millisecond), "host", "host client: a new connection answers")
		}
	}
	boots := splitBoots(serial)
	if len(rep.Boots) < k+2 || len(boots) < k+2 {
		tl.Notes = append(tl.Notes, fmt.Sprintf("%d boots recorded, %d in the serial log: no restart to read", len(rep.Boots), len(boots)))
		tl.Points = ordered(points)
		return tl
	}
	oldB, newB := rep.Boots[k], rep.Boots[k+1]
	oldL, newL := boots[k], boots[k+1]
	if oldL.release != oldB.Release || newL.release != newB.Release {
		tl.Notes = append(tl.Notes, fmt.Sprintf("serial log boots %s, %s do not match the report's %s, %s", oldL.release, newL.release, oldB.Release, newB.Release))
		tl.Points = ordered(points)
		return tl
	}
	// from says where a guest point comes from: serial or journal, of the
	// old or the new boot.
	guestAt := func(name string, c *ClockSample, from string, ts float64, ok bool, text string) {
		if !ok {
			return
		}
		if c == nil {
			tl.Notes = append(tl.Notes, fmt.Sprintf("%s: no clock sample of the boot (%s)", name, from))
			return
		}
		host(name, c.HostAt(ts), from, text)
	}
	guest := func(name string, c *ClockSample, which string, ts float64, ok bool, text string) {
		guestAt(name, c, "serial ("+which+" boot)", ts, ok, text)
	}
	ts, text, ok := oldL.find(false, "systemd-shutdown[1]:")
	guest(PointShutdown, oldB.Clock, "old", ts, ok, text)
	ts, text, ok = oldL.find(true, "kexec_core: Starting new kernel")
	guest(PointKexec, oldB.Clock, "old", ts, ok, text)
	ts, text, ok = newL.find(false, "Linux version ")
	guest(PointKernel, newB.Clock, "new", ts, ok, short(text))
	ts, text, ok = newL.find(false, "Freeing initrd memory")
	guest(PointInitramfs, newB.Clock, "new", ts, ok, text)
	ts, text, ok = newL.find(false, "seamless: restore daemon", "pending")
	guest(PointStage1, newB.Clock, "new", ts, ok, text)
	ts, text, ok = newL.find(true, "systemd[1]: systemd ", "running in system mode")
	guest(PointSwitch, newB.Clock, "new", ts, ok, short(text))
	ts, text, ok = journalFind(newB.UnitJournal, "Starting memcached")
	if !ok { // a Type=simple unit is started at once: systemd logs only "Started"
		ts, text, ok = journalFind(newB.UnitJournal, "Started memcached")
	}
	guestAt(PointUnit, newB.Clock, "journal (new boot)", ts, ok, text)
	// The anchor's own line says when it asked; the daemon's is written
	// once its checks of the asker are done (older runs have only that).
	if ts, text, ok = journalFind(newB.UnitJournal, "asking the restore daemon"); ok {
		guestAt(PointAsked, newB.Clock, "journal (new boot)", ts, ok, text)
	} else {
		ts, text, ok = newL.find(false, "seamless-restored: memcached.service: asked by process")
		guest(PointAsked, newB.Clock, "new", ts, ok, text)
	}
	// The restore's phases line is written as the restore ends, the tree
	// running (its last phase "resume"); the unit's "restored" line comes
	// once the anchor has the main PID, tens of ms later under TCG. Older
	// runs have only that one.
	if ts, text, ok = newL.find(false, "seamless-restored: restore of pid", ", resume "); ok {
		guest(PointRestored, newB.Clock, "new", ts, ok, text)
	} else if ts, text, ok = newL.find(false, "seamless-restored: memcached.service: restored"); ok {
		guest(PointRestored, newB.Clock, "new", ts, ok, text)
	} else {
		ts, text, ok = journalFind(newB.UnitJournal, "Started memcached")
		guestAt(PointRestored, newB.Clock, "journal (new boot)", ts, ok, text)
	}
	ts, text, ok = newL.find(false, "seamless-restored: memcached.service: woke peer")
	guest(PointWoken, newB.Clock, "new", ts, ok, text)
	tl.Points = ordered(points)
	return tl
}

// ordered lists every point in PointNames order, missing ones without a time.
func ordered(points map[string]Point) []Point {
	out := make([]Point, 0, len(PointNames))
	for _, n := range PointNames {
		if p, ok := points[n]; ok {
			out = append(out, p)
		} else {
			out = append(out, Point{Name: n, Source: "missing"})
		}
	}
	return out
}

// WriteTimeline builds the timeline of a finished run from its serial log
// and writes timeline.svg beside its report.
func WriteTimeline(rep *Report) (*Timeline, error) {
	serial, err := os.ReadFile(rep.SerialLog)
	if err != nil {
		return nil, fmt.Errorf("timeline: %w", err)
	}
	tl := BuildTimeline(rep, serial)
	var buf bytes.Buffer
	if err := WriteTimelineSVG(&buf, []*Timeline{tl}); err != nil {
		return tl, err
	}
	return tl, os.WriteFile(rep.RunDir+"/timeline.svg", buf.Bytes(), 0o644)
}
