package contract

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seamless-linux/seamless/internal/units"
)

func TestLayout(t *testing.T) {
	img := t.TempDir()
	unit := UnitDir(img, "a@b.service")
	tree := TreeDir(unit, 123)
	if err := os.MkdirAll(tree, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteStart(unit, units.Start{Type: "notify", Path: "/bin/true", MainPID: 123}); err != nil {
		t.Fatal(err)
	}
	if err := WriteStart(unit, units.Start{}); err == nil {
		t.Error("WriteStart replaced the unit's start")
	}
	st, trees, err := ReadUnit(unit)
	if err != nil || st.Type != "notify" || st.MainPID != 123 || len(trees) != 1 || trees[0] != tree {
		t.Fatalf("ReadUnit = %+v, %v, %v", st, trees, err)
	}

	for _, tc := range []struct {
		name, unit string
		setup      func(dir string)
		want       string
	}{
		{"not a service", "a.socket", nil, "not the name of a service unit"},
		{"no name", ".service", nil, "not the name of a service unit"},
		{"odd characters", "a b.service", nil, "not the name of a service unit"},
		{"no unit.json", "c.service", func(dir string) { os.MkdirAll(TreeDir(dir, 1), 0o700) }, StartFile},
		{"no tree", "d.service", func(dir string) { WriteStart(dir, units.Start{}) }, "no process tree"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := UnitDir(img, tc.unit)
			os.MkdirAll(dir, 0o700)
			if tc.setup != nil {
				tc.setup(dir)
			}
			if _, _, err := ReadUnit(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadUnit(%s) = %v, want an error saying %q", filepath.Base(dir), err, tc.want)
			}
		})
	}
}
