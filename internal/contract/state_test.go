package contract

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestState(t *testing.T) {
	t.Cleanup(SetDirs(filepath.Join(t.TempDir(), "absent"), ""))
	if _, err := ReadState(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a boot without a restore reads %v, want fs.ErrNotExist", err)
	}
	called := false
	if err := EditState(func(*State) (bool, error) { called = true; return true, nil }); err != nil || called {
		t.Fatalf("EditState without a restore: %v, edit called: %v", err, called)
	}

	t.Cleanup(SetDirs(t.TempDir(), ""))
	st := &State{Daemon: 7, Error: "", Units: []UnitState{
		{Unit: "a.service", State: Pending, Reason: "secret"},
		{Unit: "b.service", State: Cold, Reason: "secret"},
	}}
	if err := WriteState(st); err != nil {
		t.Fatal(err)
	}
	err := EditState(func(s *State) (bool, error) {
		u := s.Unit("a.service")
		if !u.Waiting() || s.Unit("b.service").Waiting() || s.Unit("c.service") != nil {
			t.Errorf("state read back as %+v", s)
		}
		u.State, u.MainPID = Restored, 42
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadState()
	if err != nil || got.Unit("a.service").State != Restored || got.Unit("a.service").MainPID != 42 {
		t.Fatalf("state after the edit: %+v, %v", got, err)
	}
	// The public part names units, states and main PIDs, never reasons.
	for path, mode := range map[string]os.FileMode{StatePath(): 0o600, PublicStatePath(): 0o644} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, mode)
		}
	}
	b, _ := os.ReadFile(PublicStatePath())
	if strings.Contains(string(b), "secret") {
		t.Errorf("the public state holds a reason: %s", b)
	}
	pub, err := readPublic()
	if err != nil || pub.Daemon != 7 || pub.Unit("a.service").MainPID != 42 || pub.Unit("b.service").State != Cold {
		t.Errorf("public state read back as %+v, %v", pub, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil || raw["image_refused"] != nil {
		t.Errorf("public state %s: %v", b, err)
	}
}
