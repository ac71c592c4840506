// Package imagetest gives the fuzz tests of every package that reads
// images the same seed corpus: real images (MANIFEST and tree.json) of the
// test workloads, kept in internal/image/testdata/fuzz/FuzzTree.
package imagetest

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Seed is one image of the corpus.
type Seed struct {
	Name     string
	Manifest []byte
	Tree     []byte
}

// Seeds reads the corpus of FuzzTree.
func Seeds() ([]Seed, error) {
	_, here, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(here), "..", "testdata", "fuzz", "FuzzTree")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Seed
	for _, e := range ents {
		vals, err := readCorpusFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if len(vals) == 2 {
			out = append(out, Seed{Name: e.Name(), Manifest: vals[0], Tree: vals[1]})
		}
	}
	return out, nil
}

// readCorpusFile parses a corpus file of []byte values ("go test fuzz v1").
func readCorpusFile(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	var vals [][]byte
	for sc.Scan() {
		line := sc.Text()
		q, ok := strings.CutPrefix(line, "[]byte(")
		if !ok {
			continue
		}
		s, err := strconv.Unquote(strings.TrimSuffix(q, ")"))
		if err != nil {
			return nil, err
		}
		vals = append(vals, []byte(s))
	}
	return vals, sc.Err()
}

// Sizes reads the file sizes of a MANIFEST leniently (no checksum, no
// version check), so that a fuzzer that changes a size still reaches the
// validation of what the tree says about that file.
func Sizes(manifest []byte) map[string]int64 {
	sizes := map[string]int64{}
	for _, line := range strings.Split(string(manifest), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "file" {
			continue
		}
		if n, err := strconv.ParseInt(f[2], 10, 64); err == nil {
			sizes[f[3]] = n
		}
	}
	return sizes
}

// Format is the format version a MANIFEST's first line names
// ("seamless-image N"), or 0 when it names none: the seeds are images of
// the version that was current when they were made.
func Format(manifest []byte) int {
	first, _, _ := strings.Cut(string(manifest), "\n")
	f := strings.Fields(first)
	if len(f) != 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}
