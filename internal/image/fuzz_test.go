package image

import (
	"encoding/json"
	"testing"

	"github.com/seamless-linux/seamless/internal/image/imagetest"
)

// The fuzz targets of image decoding (go test -fuzz FuzzTree ./internal/image/).
// `go test` runs their seed corpus, testdata/fuzz/: real images of the test
// workloads and every input a fuzzer found to fail once.

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte("seamless-image 1\nkernel x\nfile 00000000 0 tree.json\nend 00000000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := ParseManifest(b)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range im.Entries {
			if !validName(e.Name) || e.Size < 0 || seen[e.Name] || e.Name == ManifestName {
				t.Fatalf("ParseManifest accepted entry %+v", e)
			}
			seen[e.Name] = true
		}
		if !seen[TreeName] {
			t.Fatal("ParseManifest accepted a manifest without tree.json")
		}
	})
}

// FuzzTree decodes and validates tree.json against the files of a MANIFEST,
// as every format version this build reads. A tree that passes is encoded
// (as this version) and decoded again: it must still pass.
func FuzzTree(f *testing.F) {
	f.Add([]byte("file 0 8192 pages-10.img\n"), []byte(`{"root":10,"processes":[{"pid":10,"pgid":10,"sid":10,"ctty":-1,"threads":[{"tid":10}],"pages":"pages-10.img","mappings":[{"start":65536,"end":73728,"kind":"anon","runs":[{"addr":65536,"pages":2,"off":0}]}]}]}`))
	f.Fuzz(func(t *testing.T, manifest, tree []byte) {
		sizes := imagetest.Sizes(manifest)
		for format := 1; format <= Version; format++ {
			tr, err := DecodeTree(tree, format)
			if err != nil {
				continue
			}
			if err := tr.Validate(sizes); err != nil {
				continue
			}
			b, err := json.Marshal(tr)
			if err != nil {
				t.Fatalf("a valid tree (format %d) does not encode: %v", format, err)
			}
			again, err := DecodeTree(b, Version)
			if err != nil {
				t.Fatalf("a valid tree (format %d) does not decode again: %v", format, err)
			}
			if err := again.Validate(sizes); err != nil {
				t.Fatalf("a valid tree (format %d) is invalid once encoded again: %v", format, err)
			}
		}
	})
}

// TestSeedsAreValid: the real images of the corpus pass the validation
// (a rule that refuses what a checkpoint writes would refuse every restore).
func TestSeedsAreValid(t *testing.T) {
	seeds, err := imagetest.Seeds()
	if err != nil || len(seeds) == 0 {
		t.Fatalf("seed corpus: %d seeds, %v", len(seeds), err)
	}
	for _, s := range seeds {
		im, err := ParseManifest(s.Manifest)
		if err != nil {
			t.Errorf("%s: %v", s.Name, err)
			continue
		}
		tr, err := DecodeTree(s.Tree, im.Format)
		if err == nil {
			err = tr.Validate(im.sizes())
		}
		if err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
	}
}
