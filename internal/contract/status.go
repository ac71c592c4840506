package contract

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// What became of a unit in an update (UnitOutcome.Outcome), and the states
// of a unit in the restore daemon (UnitState.State): Restored and Cold are
// both.
const (
	Carried   = "carried"      // checkpointed and handed to the new kernel
	Stopped   = "stopped"      // not carried: the shutdown stopped it as a reboot would
	Pending   = "pending"      // carried, waiting for its anchor
	Restoring = "restoring"    // its anchor asked, the restore runs
	Restored  = "restored"     // running again with its PIDs
	Cold      = "started cold" // started as its unit says, without its state
)

// The states of an update (Status.State).
const (
	UpdatePending    = "pending"         // `seamless update` started kexec.target
	UpdateFailed     = "failed"          // nothing was carried: a plain kexec follows
	UpdatePlainKexec = "plain kexec"     // there was nothing to carry
	UpdateHandedOver = "handed-over"     // the image is with the new kernel
	UpdateRestoring  = "restoring"       // some carried units wait for their restore
	UpdateRestored   = "restored"        // every carried unit was restored
	UpdateCold       = "started cold"    // every carried unit was started cold
	UpdatePartly     = "partly restored" // some were restored, some started cold
)

// UnitOutcome is what happened to one unit in an update.
type UnitOutcome struct {
	Unit      string `json:"unit"`
	Outcome   string `json:"outcome"` // Carried, Stopped, Restored, Cold
	Reason    string `json:"reason,omitempty"`
	Processes int    `json:"processes,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"`
	// Moved is the part of Bytes that moved out of the unit's processes
	// as it was written (the kmod store), rather than being copied.
	Moved  int64 `json:"moved_bytes,omitempty"`
	DumpMs int64 `json:"dump_ms,omitempty"`
	// RestoreMs and MainPID describe the restore under the new kernel.
	RestoreMs int64 `json:"restore_ms,omitempty"`
	MainPID   int   `json:"main_pid,omitempty"`
	// Warnings are what the restore brought back different (connections
	// to peers outside the unit that come back closed, ...).
	Warnings []string `json:"warnings,omitempty"`
}

// Status is the record of the last update, kept in StateDir.
type Status struct {
	State  string        `json:"state"` // one of the Update* states
	From   string        `json:"from"`
	To     string        `json:"to"`
	Store  string        `json:"store,omitempty"`
	Image  string        `json:"image,omitempty"`
	Units  []UnitOutcome `json:"units,omitempty"`
	Error  string        `json:"error,omitempty"`
	Bytes  int64         `json:"image_bytes,omitempty"`
	Phases []Phase       `json:"phases,omitempty"`
	// Memory is MemAvailable at the checkpoint's steps: the peak memory
	// an update takes is the first sample less the lowest.
	Memory  []MemSample `json:"memory,omitempty"`
	Updated time.Time   `json:"updated"`
}

// MemSample is the memory available at a step of the checkpoint.
type MemSample struct {
	At        string `json:"at"`
	Available int64  `json:"available"`
}

// PeakUse is how much of the memory available before the checkpoint the
// update took at most, by the samples.
func (st *Status) PeakUse() int64 {
	if len(st.Memory) == 0 {
		return 0
	}
	low := st.Memory[0].Available
	for _, m := range st.Memory {
		low = min(low, m.Available)
	}
	return st.Memory[0].Available - low
}

// Phase is a timed step of the checkpoint at shutdown, or of a restore.
type Phase struct {
	Name string `json:"name"`
	Ms   int64  `json:"ms"`
}

// ReadStatus returns the record of the last update, or nil.
func ReadStatus() (*Status, error) { return readRecord[Status](StatusPath()) }

// WriteStatus replaces the record of the last update with s (a new
// update), under the record's lock.
func WriteStatus(s *Status) error {
	return editStatus(func(*Status) *Status { return s })
}

// editStatus writes what edit makes of the record of the last update (nil
// if there is none), under the lock of StateDir: the restore daemon and
// the anchors complete the record at the same time.
func editStatus(edit func(*Status) *Status) error {
	if err := os.MkdirAll(StateDir, 0o700); err != nil {
		return fmt.Errorf("record the update: %w", err)
	}
	unlock, err := lock(StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := ReadStatus()
	if err != nil {
		return err
	}
	st = edit(st)
	st.Updated = time.Now()
	return writeJSON(StatusPath(), st, 0o600)
}

// RecordRestore completes the record of the last update with what the new
// kernel made of carried units: restored, or started cold and why. It may
// be called for some units at a time, by several processes at once.
func RecordRestore(kernel string, results []UnitOutcome) error {
	return editStatus(func(st *Status) *Status {
		if st == nil {
			st = &Status{To: kernel}
		}
		for _, r := range results {
			found := false
			for i := range st.Units {
				if u := &st.Units[i]; u.Unit == r.Unit {
					u.Outcome, u.Reason, u.RestoreMs, u.MainPID, u.Warnings = r.Outcome, r.Reason, r.RestoreMs, r.MainPID, r.Warnings
					found = true
				}
			}
			if !found {
				st.Units = append(st.Units, r)
			}
		}
		st.State = restoreState(st.Units)
		return st
	})
}

// restoreState is the state of an update whose units came to these
// outcomes on the new kernel.
func restoreState(units []UnitOutcome) string {
	restored, cold, open := 0, 0, 0
	for _, u := range units {
		switch u.Outcome {
		case Restored:
			restored++
		case Cold:
			cold++
		case Carried:
			open++
		}
	}
	switch {
	case open > 0:
		return UpdateRestoring
	case cold == 0:
		return UpdateRestored
	case restored == 0:
		return UpdateCold
	}
	return UpdatePartly
}

// Timer records phases as they end: each Mark closes the phase that began
// at the previous Mark (or at NewTimer).
type Timer struct {
	last time.Time
	done []Phase
}

// NewTimer starts the first phase now.
func NewTimer() *Timer { return &Timer{last: time.Now()} }

// Mark ends the current phase, named name, and starts the next.
func (t *Timer) Mark(name string) {
	now := time.Now()
	t.done = append(t.done, Phase{Name: name, Ms: now.Sub(t.last).Milliseconds()})
	t.last = now
}

// Phases are the phases ended so far, in order.
func (t *Timer) Phases() []Phase { return t.done }

// FormatPhases writes phases in one line: "open 12 ms, memory 40 ms".
func FormatPhases(phases []Phase) string {
	parts := make([]string, len(phases))
	for i, p := range phases {
		parts[i] = fmt.Sprintf("%s %d ms", p.Name, p.Ms)
	}
	return strings.Join(parts, ", ")
}
