package dump

import (
	"slices"
	"testing"
)

// TestSortLeaderFirst: the threads of a process are kept in the order of
// the last listing (proc.Threads: the leader first, then by TID, whatever
// the order they were seized in), and a thread seized but gone from the
// last listing (it exited) is dropped.
func TestSortLeaderFirst(t *testing.T) {
	tests := []struct {
		name           string
		seized, listed []int
		want           []int
	}{
		{"one thread", []int{100}, []int{100}, []int{100}},
		{"seized in another order", []int{101, 100, 99}, []int{100, 99, 101}, []int{100, 99, 101}},
		{"a thread exited after it was seized", []int{100, 101, 102}, []int{100, 102}, []int{100, 102}},
		{"a thread listed but not seized", []int{100}, []int{100, 103}, []int{100}},
		{"nothing seized", nil, []int{100}, []int{}},
	}
	for _, tt := range tests {
		if got := sortLeaderFirst(100, tt.seized, tt.listed); !slices.Equal(got, tt.want) {
			t.Errorf("%s: sortLeaderFirst(%v, %v) = %v, want %v", tt.name, tt.seized, tt.listed, got, tt.want)
		}
	}
}
