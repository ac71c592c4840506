package mem

import (
	"os"
	"testing"

	// The kinds of open file description an image may hold: without them
	// no tree of the corpus validates.
	_ "github.com/seamless-linux/seamless/internal/files"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/image/imagetest"
)

// FuzzVDSOPlan runs the planning of the vDSO proxy (go test -fuzz
// FuzzVDSOPlan ./internal/mem/) on every tree that passes the validation,
// against the image's own entry points and this kernel's: whatever
// validates must plan, or be refused, without a panic.
func FuzzVDSOPlan(f *testing.F) {
	seeds, err := imagetest.Seeds()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		f.Add(s.Manifest, s.Tree)
	}
	ours, err := VDSOSymbols(os.Getpid())
	if err != nil {
		f.Skip(err)
	}
	f.Fuzz(func(t *testing.T, manifest, tree []byte) {
		tr, err := image.DecodeTree(tree, imagetest.Format(manifest))
		if err != nil || tr.Validate(imagetest.Sizes(manifest)) != nil {
			return
		}
		for _, p := range tr.Processes {
			want := imageBlock(p)
			old := want.code()
			if old == nil {
				continue
			}
			size := old.End - old.Start
			for _, cur := range []map[string]uint64{p.VDSO, ours} {
				jumps, err := planProxy(p.VDSO, cur, size)
				if err != nil {
					continue
				}
				if err := checkStranded(p, old, jumps); err != nil {
					continue
				}
				code := proxyCode(make([]byte, size), jumps, size, 1<<40)
				if uint64(len(code)) != size {
					t.Fatalf("a proxy of %d bytes for a vDSO of %d", len(code), size)
				}
			}
			at, err := vdsoHole(avoidSpans(p, 1<<32, 1<<32+1<<20), want.lo(), want.hi()-want.lo())
			if err == nil && (at < minUserAddr || at+want.hi()-want.lo() > maxUserAddr) {
				t.Fatalf("vDSO hole at %#x", at)
			}
		}
	})
}
