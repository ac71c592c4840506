package contract

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/seamless-linux/seamless/internal/units"
)

// State is what the restore daemon tells the generator, the anchors and
// `seamless status` about the restore of this boot.
type State struct {
	Image   string      `json:"image"`
	Daemon  int         `json:"daemon_pid"`
	Started time.Time   `json:"started"`
	Units   []UnitState `json:"units"`
	// Error is why the whole image was refused, if it was.
	Error string `json:"error,omitempty"`
	// RestoreTimeoutMs bounds each unit's restore: the generator gives the
	// anchors a longer wait.
	RestoreTimeoutMs int64 `json:"restore_timeout_ms,omitempty"`
}

// UnitState is one carried unit.
type UnitState struct {
	Unit   string      `json:"unit"`
	State  string      `json:"state"` // Pending, Restoring, Restored, Cold
	Reason string      `json:"reason,omitempty"`
	Start  units.Start `json:"start"`
	Trees  []TreeState `json:"trees,omitempty"`
	// MainPID is the restored main process.
	MainPID   int   `json:"main_pid,omitempty"`
	RestoreMs int64 `json:"restore_ms,omitempty"`
	// Warnings are the restore's warnings (what came back different).
	Warnings []string `json:"warnings,omitempty"`
}

// Waiting reports whether the unit is still to be restored or started
// cold: pending, or being restored.
func (u *UnitState) Waiting() bool { return u.State == Pending || u.State == Restoring }

// TreeState is one process tree of a unit's image.
type TreeState struct {
	Root int `json:"root"`
	// Dir is the tree's image, as links to the files the daemon holds.
	Dir string `json:"dir"`
	// IDs are the PIDs and TIDs (and group and session IDs) it needs.
	IDs []int `json:"ids"`
	// Locks name its network locks (nftables chains), for a unit settled
	// after the daemon died, when the image cannot be read any more.
	Locks []string `json:"locks,omitempty"`
}

// Unit returns the state of unit, or nil.
func (s *State) Unit(unit string) *UnitState {
	for i := range s.Units {
		if s.Units[i].Unit == unit {
			return &s.Units[i]
		}
	}
	return nil
}

// ReadState reads the state of this boot's restore; an error wrapping
// fs.ErrNotExist if this boot restores nothing. Without the privileges to
// read the full state, it reads its public part: units, states and main
// PIDs, no reasons.
func ReadState() (*State, error) {
	var s State
	err := readJSON(StatePath(), &s)
	if errors.Is(err, fs.ErrPermission) {
		return readPublic()
	}
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// WriteState replaces the daemon's state and its public part, under the
// run directory's lock.
func WriteState(s *State) error {
	unlock, err := lock(RunDir)
	if err != nil {
		return err
	}
	defer unlock()
	return s.write()
}

// EditState runs edit on this boot's restore state under the run
// directory's lock, and writes the state back if edit says it changed it.
// Without a restore in this boot (no run directory, no state), it does
// nothing.
func EditState(edit func(*State) (bool, error)) error {
	unlock, err := lock(RunDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unlock()
	st, err := ReadState()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	changed, err := edit(st)
	if changed {
		err = errors.Join(err, st.write())
	}
	return err
}

// write replaces the state file (root's alone) and its public part; the
// caller holds the run directory's lock.
func (s *State) write() error {
	if err := writeJSON(StatePath(), s, 0o600); err != nil {
		return err
	}
	pub := public{Daemon: s.Daemon, Started: s.Started, Refused: s.Error != ""}
	for _, u := range s.Units {
		pub.Units = append(pub.Units, publicUnit{Unit: u.Unit, State: u.State, MainPID: u.MainPID, RestoreMs: u.RestoreMs})
	}
	return writeJSON(PublicStatePath(), &pub, 0o644)
}

// public is the part of State anyone may read.
type public struct {
	Daemon  int          `json:"daemon_pid"`
	Started time.Time    `json:"started"`
	Units   []publicUnit `json:"units"`
	Refused bool         `json:"image_refused,omitempty"`
}

type publicUnit struct {
	Unit      string `json:"unit"`
	State     string `json:"state"`
	MainPID   int    `json:"main_pid,omitempty"`
	RestoreMs int64  `json:"restore_ms,omitempty"`
}

func readPublic() (*State, error) {
	var p public
	if err := readJSON(PublicStatePath(), &p); err != nil {
		return nil, err
	}
	s := &State{Daemon: p.Daemon, Started: p.Started}
	if p.Refused {
		s.Error = fmt.Sprintf("the image was refused (root can read why in %s)", StatePath())
	}
	for _, u := range p.Units {
		s.Units = append(s.Units, UnitState{Unit: u.Unit, State: u.State, MainPID: u.MainPID, RestoreMs: u.RestoreMs})
	}
	return s, nil
}
