package contract

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOnlyTheContractReadsTheCommandLine: the parameter that hands the
// image over is named and parsed here only. The initramfs scripts and
// dracut hooks run `seamless-restore stage1` on every boot and let it
// decide (they once grepped /proc/cmdline for it themselves), and no other
// Go code spells it. Comments and tests may name it.
func TestOnlyTheContractReadsTheCommandLine(t *testing.T) {
	root := filepath.Join("..", "..")
	var found []string
	for _, dir := range []string{"initramfs", "dracut", "packaging", "debian", "rpm", "units", "cmd", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if strings.HasPrefix(rel, filepath.Join("internal", "contract")+string(filepath.Separator)) ||
				strings.HasSuffix(p, "_test.go") || strings.Contains(rel, "testdata") {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for i, line := range strings.Split(string(b), "\n") {
				code := strings.TrimSpace(line)
				if strings.HasPrefix(code, "#") || strings.HasPrefix(code, "//") || strings.HasPrefix(code, ".") && strings.HasSuffix(p, ".8") {
					continue // a comment, or the manual page's text
				}
				// A Go string that starts with the parameter; in a script,
				// the parameter anywhere (a help text may name it).
				script := !strings.HasSuffix(p, ".go")
				if strings.Contains(code, `"`+ImageParam) || script && (strings.Contains(code, ImageParam+"=") || strings.Contains(code, `seamless\.image`)) {
					found = append(found, rel+":"+strconv.Itoa(i+1)+": "+code)
				}
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	for _, f := range found {
		t.Errorf("reads %s= itself: %s", ImageParam, f)
	}
}
