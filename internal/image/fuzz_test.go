package image

import (
	"testing"
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
