package restored

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/seamless-linux/seamless/internal/kernel"
	"github.com/seamless-linux/seamless/internal/kmod"
)

// KmodMount is where stage 1 mounts the image of the kmod store: below
// /run, which the initramfs moves into the real root with its mounts.
var KmodMount = "/run/seamless/kmod"

// mountKmod loads the seamlessmem module the old kernel appended to the
// initrd (or, without it, the one installed for this kernel) and mounts,
// read-only, the image whose index is at addr. It returns the image's
// directory.
func mountKmod(addr uint64) (string, error) {
	ko, err := kmod.InitramfsModule("/")
	if err != nil {
		p, err2 := kmod.ModulePath(kernel.Running())
		if err2 != nil {
			return "", fmt.Errorf("kmod store: %v, and %w", err, err2)
		}
		ko = p
	}
	if err := kmod.LoadModule(ko); err != nil {
		return "", fmt.Errorf("kmod store: %w", err)
	}
	m, err := kmod.MountHandover(KmodMount, addr)
	if err != nil {
		return "", err
	}
	m.Close()
	return filepath.Join(KmodMount, "image"), nil
}

// releaseKmod unmounts the kmod store's mount that holds the image
// directory dir, if it is one: every block still held goes back to the
// system.
func releaseKmod(dir string, log io.Writer) {
	m, err := kmod.Open(filepath.Dir(dir))
	if err != nil {
		return // another store, or gone already
	}
	if err := m.Unmount(); err != nil {
		fmt.Fprintf(log, "%v\n", err)
		return
	}
	fmt.Fprintf(log, "kmod store: the image's memory is back in the system\n")
}
