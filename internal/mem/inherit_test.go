package mem

import (
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/seamless-linux/seamless/internal/image"
)

func entries(e ...uint64) []byte {
	b := make([]byte, 8*len(e))
	for i, v := range e {
		binary.LittleEndian.PutUint64(b[i*8:], v)
	}
	return b
}

// TestShareable checks the page-by-page decision between a child's and
// its parent's pagemap entries.
func TestShareable(t *testing.T) {
	const p, s = pmPresent, pmSwapped
	tests := []struct {
		name          string
		child, parent []byte
		shared, zero  []bool
		ok            bool
	}{
		{"same frames, own frame, none, parent only",
			entries(p|7, p|8, 0, 0), entries(p|7, p|9, 0, p|10),
			[]bool{true, false, false, false}, []bool{false, false, false, true}, true},
		{"same swap slot", entries(s|5, p|6), entries(s|5, s|6),
			[]bool{true, false}, []bool{false, false}, true},
		{"nothing shared", entries(p|1, p|2), entries(p|3, p|4), nil, nil, false},
		{"frame numbers hidden", entries(p, p), entries(p, p), nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shared, zero, ok := shareable(tt.child, tt.parent)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && (!reflect.DeepEqual(shared, tt.shared) || !reflect.DeepEqual(zero, tt.zero)) {
				t.Fatalf("shared %v zero %v, want %v %v", shared, zero, tt.shared, tt.zero)
			}
		})
	}
}

// TestInheritable checks which mappings a child may keep from its parent.
func TestInheritable(t *testing.T) {
	base := image.Mapping{Start: 0x10000, End: 0x20000, Kind: image.MapAnon, Prot: 3, Flags: []string{"mw"}}
	with := func(f func(m *image.Mapping)) *image.Mapping { m := base; f(&m); return &m }
	tests := []struct {
		name string
		m    *image.Mapping
		want bool
	}{
		{"same", with(func(*image.Mapping) {}), true},
		{"other end", with(func(m *image.Mapping) { m.End = 0x30000 }), false},
		{"other protection", with(func(m *image.Mapping) { m.Prot = 1 }), false},
		{"file", with(func(m *image.Mapping) { m.Kind = image.MapFile }), false},
		{"shared", with(func(m *image.Mapping) { m.Shared = true }), false},
		{"other flags", with(func(m *image.Mapping) { m.Flags = []string{"mw", "hg"} }), false},
		{"guard pages", with(func(m *image.Mapping) { m.Guards = []image.PageRange{{Addr: 0x10000, Pages: 1}} }), false},
	}
	for _, tt := range tests {
		if got := inheritable(tt.m, &base); got != tt.want {
			t.Errorf("%s: inheritable = %v, want %v", tt.name, got, tt.want)
		}
	}
	dontfork := base
	dontfork.Flags = []string{"dc"}
	if inheritable(&dontfork, &dontfork) {
		t.Error("a MADV_DONTFORK mapping is inheritable")
	}
}

// TestOutside checks the parts of a mapping that a restore unmaps.
func TestOutside(t *testing.T) {
	got := outside(0, 100, [][2]uint64{{10, 20}, {50, 60}, {90, 120}})
	want := [][2]uint64{{0, 10}, {20, 50}, {60, 90}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("outside = %v, want %v", got, want)
	}
	if got := outside(10, 20, [][2]uint64{{0, 100}}); len(got) != 0 {
		t.Fatalf("outside of a kept range = %v", got)
	}
	if got := pageRanges([]bool{true, true, false, true}, 0x1000); !reflect.DeepEqual(got, []image.PageRange{{Addr: 0x1000, Pages: 2}, {Addr: 0x4000, Pages: 1}}) {
		t.Fatalf("pageRanges = %v", got)
	}
}
