package contract

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

func TestRecordRestoreState(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outcomes []string
		want     string
	}{
		{"one still carried", []string{Restored, Carried}, UpdateRestoring},
		{"all restored", []string{Restored, Restored, Stopped}, UpdateRestored},
		{"all cold", []string{Cold, Stopped}, UpdateCold},
		{"mixed", []string{Restored, Cold}, UpdatePartly},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(SetDirs(t.TempDir(), t.TempDir()))
			var units []UnitOutcome
			for i, o := range tc.outcomes {
				units = append(units, UnitOutcome{Unit: fmt.Sprintf("u%d.service", i), Outcome: o})
			}
			if err := WriteStatus(&Status{State: UpdateHandedOver, From: "old", To: "new", Units: units}); err != nil {
				t.Fatal(err)
			}
			// A unit the record did not know is added; the others keep
			// what the checkpoint wrote.
			if err := RecordRestore("new", []UnitOutcome{{Unit: units[0].Unit, Outcome: units[0].Outcome, MainPID: 42}}); err != nil {
				t.Fatal(err)
			}
			st, err := ReadStatus()
			if err != nil {
				t.Fatal(err)
			}
			if st.State != tc.want || st.From != "old" || len(st.Units) != len(units) || st.Units[0].MainPID != 42 {
				t.Errorf("record %+v, want state %q", st, tc.want)
			}
			if fi, err := os.Stat(StatusPath()); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("the record is not root's alone: %v %v", fi.Mode(), err)
			}
		})
	}
}

// TestRecordRestoreConcurrently: the restore daemon and the anchors record
// outcomes at the same time; none may lose another's.
func TestRecordRestoreConcurrently(t *testing.T) {
	t.Cleanup(SetDirs(t.TempDir(), t.TempDir()))
	if err := WriteStatus(&Status{State: UpdateHandedOver}); err != nil {
		t.Fatal(err)
	}
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- RecordRestore("new", []UnitOutcome{{Unit: fmt.Sprintf("u%d.service", i), Outcome: Cold}})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st, err := ReadStatus()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Units) != n {
		t.Errorf("%d of %d outcomes recorded", len(st.Units), n)
	}
}

func TestIntent(t *testing.T) {
	t.Cleanup(SetDirs(t.TempDir()+"/run", t.TempDir()))
	if in, err := ReadIntent(); in != nil || err != nil {
		t.Fatalf("no intent reads as %v, %v", in, err)
	}
	if err := RemoveIntent(); err != nil {
		t.Fatalf("removing no intent: %v", err)
	}
	if err := WriteIntent(&Intent{From: "old", Units: []string{"a.service"}}); err != nil {
		t.Fatal(err)
	}
	in, err := ReadIntent()
	if err != nil || in.From != "old" || len(in.Units) != 1 {
		t.Fatalf("intent read back as %+v, %v", in, err)
	}
	if err := RemoveIntent(); err != nil {
		t.Fatal(err)
	}
	if in, _ := ReadIntent(); in != nil {
		t.Errorf("intent %+v left after its removal", in)
	}
}

// TestPeakUse: the peak is the first sample less the lowest.
func TestPeakUse(t *testing.T) {
	st := &Status{}
	if st.PeakUse() != 0 {
		t.Error("no samples: a peak")
	}
	st.Memory = []MemSample{{"start", 1000}, {"image written", 700}, {"lowest", 400}, {"kernel loaded", 900}}
	if got := st.PeakUse(); got != 600 {
		t.Errorf("PeakUse = %d, want 600", got)
	}
}
