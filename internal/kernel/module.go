package kernel

import (
	"errors"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// LoadModule loads a kernel module file into the running kernel with
// finit_module. A compressed file (any name not ending in .ko) is
// decompressed by the kernel itself (CONFIG_MODULE_DECOMPRESS). A module
// that is already loaded is not an error; the kernel's refusal is returned
// as its errno, for the caller to name.
func LoadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if !strings.HasSuffix(path, ".ko") {
		flags = unix.MODULE_INIT_COMPRESSED_FILE
	}
	if err := unix.FinitModule(int(f.Fd()), "", flags); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}
