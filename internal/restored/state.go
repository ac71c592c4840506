// Package restored is the new-kernel side of a seamless update: the restore
// daemon. It starts in the initramfs (stage 1), before anything else can
// take the PIDs the preserved services had: it verifies the image the old
// kernel handed over, keeps its files open (the initramfs is emptied at the
// switch to the real root, and the image is not copied), reserves every
// PID and TID, and lives on across the switch as "@seamless-restored".
// Each preserved unit then starts, through a generated drop-in, with an
// anchor as its ExecStart, which asks the daemon over a unix socket to
// rebuild the unit's processes inside the unit's cgroup and mount
// namespace. The daemon exits when every unit is restored or started cold.
package restored

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/units"
	"github.com/seamless-linux/seamless/internal/update"
)

// Where the daemon keeps its state. /run/seamless is created in the
// initramfs's /run, which becomes the real root's /run.
var (
	RunDir = "/run/seamless"
	// StatePath is the daemon's state, root's alone (0600): reasons may
	// quote the image, which holds process memory.
	StatePath = "/run/seamless/restore.json"
	// PublicPath is the part of the state anyone may read (0644), for an
	// unprivileged `seamless status`: units, their states and main PIDs.
	PublicPath = "/run/seamless/restore-public.json"
	SocketPath = "/run/seamless/restore.sock"
	// IncomingDir holds, for each tree of the image, a directory of
	// symbolic links to the image files the daemon keeps open.
	IncomingDir = "/run/seamless/incoming"
)

// SetRunDir moves the daemon's state, socket and image links under dir
// (tests use a private directory).
func SetRunDir(dir string) {
	RunDir = dir
	StatePath = filepath.Join(dir, "restore.json")
	PublicPath = filepath.Join(dir, "restore-public.json")
	SocketPath = filepath.Join(dir, "restore.sock")
	IncomingDir = filepath.Join(dir, "incoming")
}

// Unit states.
const (
	Pending   = "pending"   // waiting for its anchor
	Restoring = "restoring" // the anchor asked, the restore runs
	Restored  = "restored"  // running again with its PIDs
	Cold      = "started cold"
)

// State is what the daemon tells the generator, the anchors and `seamless
// status` about the restore of this boot.
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

// DefaultRestoreTimeout bounds a unit's restore unless the daemon is told
// otherwise.
const DefaultRestoreTimeout = 5 * time.Minute

// UnitState is one carried unit.
type UnitState struct {
	Unit   string      `json:"unit"`
	State  string      `json:"state"`
	Reason string      `json:"reason,omitempty"`
	Start  units.Start `json:"start"`
	Trees  []TreeState `json:"trees,omitempty"`
	// MainPID is the restored main process.
	MainPID   int   `json:"main_pid,omitempty"`
	RestoreMs int64 `json:"restore_ms,omitempty"`
	// Warnings are the restore's warnings (what came back different).
	Warnings []string `json:"warnings,omitempty"`
}

// TreeState is one process tree of a unit's image.
type TreeState struct {
	Root int `json:"root"`
	// Dir is the tree's image, as links to the files the daemon holds.
	Dir string `json:"dir"`
	// IDs are the PIDs and TIDs (and group and session IDs) it needs.
	IDs []int `json:"ids"`
	// Locks name its network locks (nftables chains), for Settle, which
	// cannot read the image once the daemon is gone.
	Locks []string `json:"locks,omitempty"`
}

// ReadState reads the state of this boot's restore; os.ErrNotExist if this
// boot restores nothing. Without the privileges to read the full state, it
// reads its public part: units, states and main PIDs, no reasons.
func ReadState() (*State, error) {
	b, err := os.ReadFile(StatePath)
	if errors.Is(err, fs.ErrPermission) {
		return readPublic()
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", StatePath, err)
	}
	return &s, nil
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
	b, err := os.ReadFile(PublicPath)
	if err != nil {
		return nil, err
	}
	var p public
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", PublicPath, err)
	}
	s := &State{Daemon: p.Daemon, Started: p.Started}
	if p.Refused {
		s.Error = "the image was refused (root can read why in " + StatePath + ")"
	}
	for _, u := range p.Units {
		s.Units = append(s.Units, UnitState{Unit: u.Unit, State: u.State, MainPID: u.MainPID, RestoreMs: u.RestoreMs})
	}
	return s, nil
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

// write replaces the state file (root's alone) and its public part
// atomically.
func (s *State) write() error {
	if err := writeJSON(StatePath, s, 0o600); err != nil {
		return err
	}
	pub := public{Daemon: s.Daemon, Started: s.Started, Refused: s.Error != ""}
	for _, u := range s.Units {
		pub.Units = append(pub.Units, publicUnit{Unit: u.Unit, State: u.State, MainPID: u.MainPID, RestoreMs: u.RestoreMs})
	}
	return writeJSON(PublicPath, &pub, 0o644)
}

// writeJSON replaces path with v, created with mode (a file left by an
// earlier run keeps no other mode: the new one is renamed over it).
func writeJSON(path string, v any, mode os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".new"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Chmod(mode) // whatever the umask took away
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// Request is what an anchor asks the daemon, with its standard output and
// error (the unit's journal stream) passed along as SCM_RIGHTS.
type Request struct {
	Unit string `json:"unit"`
}

// Reply is the daemon's answer: the main PID of the restored unit, or why
// it could not be restored (the anchor then starts the unit cold).
type Reply struct {
	MainPID int    `json:"main_pid,omitempty"`
	Error   string `json:"error,omitempty"`
}

// mkdirs creates the daemon's directories: RunDir can be traversed by the
// anchors of units that run as other users (to reach the socket), but not
// listed; the image links are root's alone.
func mkdirs() error {
	if err := os.MkdirAll(RunDir, 0o711); err != nil {
		return err
	}
	if err := os.Chmod(RunDir, 0o711); err != nil {
		return err
	}
	return os.MkdirAll(filepath.Clean(IncomingDir), 0o700)
}

// recordOutcomes puts the outcome of the units that have one into the
// record of the last update (on disk), for `seamless status`. When final,
// the units still waiting are recorded as started cold.
func recordOutcomes(s *State, final bool, log io.Writer) {
	var out []update.UnitOutcome
	for _, u := range s.Units {
		o := update.UnitOutcome{Unit: u.Unit, Outcome: u.State, Reason: u.Reason, RestoreMs: u.RestoreMs, MainPID: u.MainPID, Warnings: u.Warnings}
		if u.State == Pending || u.State == Restoring {
			if !final {
				continue
			}
			o.Outcome, o.Reason = Cold, "the restore daemon ended before the unit asked"
		}
		out = append(out, o)
	}
	if s.Error != "" && len(out) == 0 {
		out = append(out, update.UnitOutcome{Unit: "(image)", Outcome: Cold, Reason: s.Error})
	}
	// Right after the switch to the real root, the root file system may
	// still be read-only: systemd remounts it early in the boot.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := update.RecordRestore(Release(), out)
		if err == nil {
			return
		}
		if !errors.Is(err, syscall.EROFS) || time.Now().After(deadline) {
			fmt.Fprintf(log, "record the outcome: %v\n", err)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// Release is the running kernel's release (uname -r).
func Release() string {
	var uts unix.Utsname
	unix.Uname(&uts)
	return unix.ByteSliceToString(uts.Release[:])
}
