package update

import "testing"

// TestInhibitorsSkipped: only an explicit override or an armed update
// (APT's hook arms it while APT itself holds an inhibitor) skip logind's
// check; a dry run checks like the update it stands for.
func TestInhibitorsSkipped(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		skip bool
	}{
		{"update", Options{}, false},
		{"dry run", Options{DryRun: true}, false},
		{"ignored", Options{IgnoreInhibitors: true}, true},
		{"dry run ignored", Options{DryRun: true, IgnoreInhibitors: true}, true},
		{"armed from apt's hook", Options{Arm: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := inhibitorsSkipped(tt.o) != ""; got != tt.skip {
				t.Fatalf("inhibitorsSkipped(%+v) skips = %v, want %v", tt.o, got, tt.skip)
			}
		})
	}
}
