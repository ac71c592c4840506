package mem

import (
	"encoding/binary"
	"fmt"
	"testing"
)

func TestGuardRuns(t *testing.T) {
	const present, swapped = pmPresent, pmSwapped
	tests := []struct {
		ents []uint64
		want string
	}{
		{[]uint64{present, 0, swapped}, "[]"},
		{[]uint64{pmGuard | swapped, pmGuard | swapped, present, pmGuard}, "[{4096 2} {16384 1}]"},
		{[]uint64{present, pmGuard, pmGuard, pmGuard}, "[{8192 3}]"},
	}
	for _, tc := range tests {
		b := make([]byte, 8*len(tc.ents))
		for i, e := range tc.ents {
			binary.LittleEndian.PutUint64(b[8*i:], e)
		}
		if got := fmt.Sprint(guardRuns(b, 4096)); got != tc.want {
			t.Errorf("guardRuns(%x) = %s, want %s", tc.ents, got, tc.want)
		}
	}
}
