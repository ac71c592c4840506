// Package update is the old-kernel side of a seamless update: the plan,
// the preflight, the intent recorded for shutdown, the start of
// kexec.target, and the checkpoint that runs while the system shuts down
// and hands the image to the new kernel.
package update

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/seamless-linux/seamless/internal/kernel"
	"github.com/seamless-linux/seamless/internal/units"
)

// Where state lives. RunDir is lost at the kexec; StateDir is on disk.
var (
	RunDir   = "/run/seamless"
	StateDir = "/var/lib/seamless"
)

// Intent is what `seamless update` leaves for the checkpoint at shutdown.
type Intent struct {
	From    string        `json:"from"`
	Kernel  kernel.Kernel `json:"kernel"`
	Cmdline string        `json:"cmdline"`
	Units   []string      `json:"units"`
	// Cgroups are the carried units' cgroups (paths below the cgroup v2
	// root): the checkpoint at shutdown must not depend on D-Bus.
	Cgroups map[string]string `json:"cgroups"`
	// Start says how each carried unit is started, for a cold start on the
	// new kernel if its restore fails.
	Start map[string]units.Start `json:"start,omitempty"`
	// Stopped are the preserved units that cannot be carried, with why:
	// the shutdown stops them as a reboot would.
	Stopped   map[string]string `json:"stopped,omitempty"`
	Store     string            `json:"store"`
	DiskDir   string            `json:"disk_dir,omitempty"`
	Requested time.Time         `json:"requested"`
	// Armed says that `seamless update` did not start the shutdown: the
	// checkpoint runs only if the shutdown turns out to be a kexec.
	Armed bool `json:"armed,omitempty"`
}

// UnitOutcome is what happened to one unit in an update.
type UnitOutcome struct {
	Unit      string `json:"unit"`
	Outcome   string `json:"outcome"` // carried, stopped, restored, started cold
	Reason    string `json:"reason,omitempty"`
	Processes int    `json:"processes,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"`
	DumpMs    int64  `json:"dump_ms,omitempty"`
	// RestoreMs and MainPID describe the restore under the new kernel.
	RestoreMs int64 `json:"restore_ms,omitempty"`
	MainPID   int   `json:"main_pid,omitempty"`
	// Warnings are what the restore brought back different (connections
	// to peers outside the unit that come back closed, ...).
	Warnings []string `json:"warnings,omitempty"`
}

// Status is the record of the last update, kept in StateDir.
type Status struct {
	State   string        `json:"state"` // pending, handed-over, failed
	From    string        `json:"from"`
	To      string        `json:"to"`
	Store   string        `json:"store,omitempty"`
	Image   string        `json:"image,omitempty"`
	Units   []UnitOutcome `json:"units,omitempty"`
	Error   string        `json:"error,omitempty"`
	Bytes   int64         `json:"image_bytes,omitempty"`
	Phases  []Phase       `json:"phases,omitempty"`
	Updated time.Time     `json:"updated"`
}

// Phase is a timed step of the checkpoint at shutdown.
type Phase struct {
	Name string `json:"name"`
	Ms   int64  `json:"ms"`
}

func intentPath() string { return filepath.Join(RunDir, "intent.json") }
func statusPath() string { return filepath.Join(StateDir, "last-update.json") }

// writeJSON writes v to path (root-only, fsync'd), creating its directory.
func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ReadIntent returns the pending intent, or nil when there is none.
func ReadIntent() (*Intent, error) {
	var in Intent
	if err := readJSON(intentPath(), &in); err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	return &in, nil
}

// ReadStatus returns the record of the last update, or nil.
func ReadStatus() (*Status, error) {
	var s Status
	if err := readJSON(statusPath(), &s); err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	return &s, nil
}

func saveStatus(s *Status) error {
	s.Updated = time.Now()
	return writeJSON(statusPath(), s)
}

// RecordRestore completes the record of the last update with what the new
// kernel made of carried units: restored, or started cold and why. It may
// be called for some units at a time.
func RecordRestore(kernel string, results []UnitOutcome) error {
	st, err := ReadStatus()
	if err != nil {
		return err
	}
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
	restored, cold, open := 0, 0, 0
	for _, u := range st.Units {
		switch u.Outcome {
		case "restored":
			restored++
		case "started cold":
			cold++
		case "carried":
			open++
		}
	}
	switch {
	case open > 0:
		st.State = "restoring"
	case cold == 0:
		st.State = "restored"
	case restored == 0:
		st.State = "started cold"
	default:
		st.State = "partly restored"
	}
	return saveStatus(st)
}
