package restored

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/kernel"
	"github.com/seamless-linux/seamless/internal/kmod"
)

// kmodMount is where stage 1 mounts the image of the kmod store: below
// the run directory, which the initramfs moves into the real root with its
// mounts.
func kmodMount() string { return filepath.Join(contract.RunDir, "kmod") }

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
	m, err := kmod.MountHandover(kmodMount(), addr)
	if err != nil {
		return "", err
	}
	m.Close()
	return filepath.Join(kmodMount(), "image"), nil
}

// releaseKmod releases every file of the kmod store's image in dir, if it
// is one, and unmounts it: every block goes back to the system. The
// release, not the unmount, is what frees the memory: units started since
// stage 1 mounted the image have copies of the mount in their mount
// namespaces, which keep it alive.
func releaseKmod(dir string, log io.Writer) {
	m, err := kmod.Open(filepath.Dir(dir))
	if err != nil {
		return // another store, or gone already
	}
	filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			fmt.Fprintf(log, "kmod store: %v\n", err)
			return nil
		}
		defer f.Close()
		if err := kmod.Release(f, 0, -1); err != nil {
			fmt.Fprintf(log, "%v\n", err)
		}
		return nil
	})
	if err := m.Unmount(); err != nil {
		fmt.Fprintf(log, "%v\n", err)
		return
	}
	fmt.Fprintf(log, "kmod store: the image's memory is back in the system\n")
}
