package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadModuleMissing(t *testing.T) {
	if err := LoadModule(filepath.Join(t.TempDir(), "nothing.ko")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}
