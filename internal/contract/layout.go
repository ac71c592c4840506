package contract

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/seamless-linux/seamless/internal/units"
)

// The image the old kernel hands over is a directory with one directory
// per carried unit, named for the unit; in each, StartFile and one image
// directory (internal/image) per process tree of the unit, named for the
// tree's root PID:
//
//	IMAGE/UNIT/unit.json
//	IMAGE/UNIT/ROOTPID/MANIFEST, tree.json, ...

// StartFile is the name, in a unit's directory of the image, of how the
// unit is started (units.Start), for a cold start on the new kernel.
const StartFile = "unit.json"

// UnitDir is unit's directory in the image dir.
func UnitDir(dir, unit string) string { return filepath.Join(dir, unit) }

// TreeDir is the image, in a unit's directory, of the tree rooted at root.
func TreeDir(unitDir string, root int) string {
	return filepath.Join(unitDir, strconv.Itoa(root))
}

// WriteStart writes, beside a unit's trees, how the unit is started: a new
// file (root's alone), fsync'd.
func WriteStart(unitDir string, st units.Start) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(unitDir, StartFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadUnit reads a unit's directory of the image: how the unit is started
// and the directories of its trees. The unit's name is checked first: it
// becomes a drop-in directory and a unit to start.
func ReadUnit(unitDir string) (units.Start, []string, error) {
	var st units.Start
	if n := filepath.Base(unitDir); !ValidUnitName(n) {
		return st, nil, fmt.Errorf("%q is not the name of a service unit", n)
	}
	if err := readJSON(filepath.Join(unitDir, StartFile), &st); err != nil {
		return st, nil, err
	}
	ents, err := os.ReadDir(unitDir)
	if err != nil {
		return st, nil, err
	}
	var trees []string
	for _, e := range ents {
		if e.IsDir() {
			trees = append(trees, filepath.Join(unitDir, e.Name()))
		}
	}
	if len(trees) == 0 {
		return st, nil, fmt.Errorf("no process tree in %s", unitDir)
	}
	return st, trees, nil
}

// ValidUnitName accepts the name of a service unit (systemd.unit(5)).
func ValidUnitName(n string) bool {
	base, ok := strings.CutSuffix(n, ".service")
	if !ok || base == "" || len(n) > 255 {
		return false
	}
	for _, r := range base {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(":-_.\\@", r)) {
			return false
		}
	}
	return true
}
