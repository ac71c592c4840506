package update

import (
	"strings"
	"testing"
)

// TestGigaPagesProblem: a kernel that maps any memory with 1 GiB pages
// gives no memory block to the kmod store, and says how to have it.
func TestGigaPagesProblem(t *testing.T) {
	for _, tc := range []struct {
		directMap1G int64
		want        string // "" when the store may take blocks
	}{
		{0, ""},
		{-1, ""},
		{3 << 30, "maps 3.0 GiB of memory with 1 GiB pages"},
	} {
		got := gigaPagesProblem(tc.directMap1G)
		if tc.want == "" && got != "" || tc.want != "" && (!strings.Contains(got, tc.want) || !strings.Contains(got, "nogbpages")) {
			t.Errorf("gigaPagesProblem(%d) = %q, want %q", tc.directMap1G, got, tc.want)
		}
	}
}
