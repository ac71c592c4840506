package kmod

import (
	"slices"
	"testing"
)

// TestLeftBehind: only the blocks a release took out of the pool are
// onlined.
func TestLeftBehind(t *testing.T) {
	const bs = 128 << 20
	tests := []struct {
		name          string
		before, after []Range
		want          []Range
	}{
		{"nothing released", []Range{{0x100000000, 2 * bs}}, []Range{{0x100000000, 2 * bs}}, nil},
		{"the first block", []Range{{0x100000000, 2 * bs}}, []Range{{0x100000000 + bs, bs}}, []Range{{0x100000000, bs}}},
		{"a whole range of two", []Range{{0x100000000, bs}, {0x200000000, bs}}, []Range{{0x200000000, bs}}, []Range{{0x100000000, bs}}},
		{"everything", []Range{{0x100000000, 2 * bs}}, nil, []Range{{0x100000000, bs}, {0x100000000 + bs, bs}}},
	}
	for _, tt := range tests {
		if got := leftBehind(tt.before, tt.after, bs); !slices.Equal(got, tt.want) {
			t.Errorf("%s: leftBehind = %v, want %v", tt.name, got, tt.want)
		}
	}
}
