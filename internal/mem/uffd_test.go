package mem

import (
	"testing"

	"github.com/seamless-linux/seamless/internal/image"
)

// TestFaultsHuge: which mappings are written (faulting in huge pages as
// the process had them) rather than filled through the userfaultfd.
func TestFaultsHuge(t *testing.T) {
	tests := []struct {
		name    string
		flags   []string
		disable int // prctl(PR_GET_THP_DISABLE) of the process
		always  bool
		want    bool
	}{
		{"madvise, not advised", nil, 0, false, false},
		{"madvise, advised", []string{"hg"}, 0, false, true},
		{"always, not advised", nil, 0, true, true},
		{"always, advised none", []string{"nh"}, 0, true, false},
		{"always, process disabled", nil, 1, true, false},
		{"advised, process disabled", []string{"hg"}, 1, false, false},
		{"advised, process disabled except advised", []string{"hg"}, 3, true, true},
		{"always, process disabled except advised", nil, 3, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &image.Process{Attrs: &image.ProcessAttrs{THPDisable: tc.disable}}
			m := &image.Mapping{Kind: image.MapAnon, Flags: tc.flags}
			if got := faultsHuge(p, m, tc.always); got != tc.want {
				t.Errorf("faultsHuge = %v, want %v", got, tc.want)
			}
		})
	}
}
