package sockdiag

import (
	"fmt"
	"testing"
)

func TestAttrs(t *testing.T) {
	// Two attributes: type 8, one byte (padded to 8), then type 1, four bytes.
	b := []byte{5, 0, 8, 0, 3, 0, 0, 0, 8, 0, 1, 0, 1, 2, 3, 4}
	var got []string
	Attrs(b, func(typ uint16, v []byte) { got = append(got, fmt.Sprintf("%d:%v", typ, v)) })
	if fmt.Sprint(got) != "[8:[3] 1:[1 2 3 4]]" {
		t.Errorf("attributes %v", got)
	}
	// A truncated attribute ends the walk without a panic.
	got = nil
	Attrs([]byte{20, 0, 1, 0, 1}, func(typ uint16, v []byte) { got = append(got, "x") })
	if len(got) != 0 {
		t.Errorf("a truncated attribute was reported: %v", got)
	}
}
