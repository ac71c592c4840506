package restore

import (
	"testing"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/image/imagetest"
)

// FuzzPlan runs the restore's planning on every tree that passes the
// validation (go test -fuzz FuzzPlan ./internal/restore/): whatever
// validates must plan without a panic, and a plan keeps its promises.
func FuzzPlan(f *testing.F) {
	seeds, err := imagetest.Seeds()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		f.Add(s.Manifest, s.Tree)
	}
	f.Fuzz(func(t *testing.T, manifest, tree []byte) {
		tr, err := image.DecodeTree(tree, imagetest.Format(manifest))
		if err != nil || tr.Validate(imagetest.Sizes(manifest)) != nil {
			return
		}
		p, err := MakePlan(tr)
		if err != nil {
			return
		}
		if p.Channel <= 2 || p.Channel > image.MaxFD || p.Region%0x10000 != 0 || len(p.IDs) < len(tr.Processes) {
			t.Fatalf("plan %+v", p)
		}
		for _, pr := range tr.Processes {
			for _, m := range pr.Mappings {
				if m.Start < p.Region+RegionSize && p.Region < m.End {
					t.Fatalf("the restore region %#x overlaps mapping %#x-%#x", p.Region, m.Start, m.End)
				}
			}
		}
	})
}
