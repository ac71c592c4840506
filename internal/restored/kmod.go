package restored

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

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

// onlineEvery is how often onlineGivenBack looks for memory to online.
const onlineEvery = 50 * time.Millisecond

// onlineGivenBack onlines, until the returned function is called, the
// memory blocks that the kmod store's image (if this boot has one) gives
// back: the restorer releases the image's memory as it fills the processes
// (mem.Restorer), and on kernels that leave hot-added memory offline
// (Debian's 6.1) it would not be usable until onlined, which the restorer
// cannot do from a unit whose sysfs is read-only.
func onlineGivenBack(log io.Writer) func() {
	// The mount itself: the trees' directories the restorer is given may
	// be links elsewhere.
	m, err := kmod.Open(kmodMount())
	if err != nil {
		return func() {} // another store
	}
	info, err := m.Info()
	m.Close()
	if err != nil {
		return func() {}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(onlineEvery)
		defer t.Stop()
		for {
			err := kmod.OnlineRanges(kmod.SysMemory, info.Ranges)
			select {
			case <-stop:
				if err != nil {
					fmt.Fprintf(log, "%v\n", err)
				}
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(stop)
		<-done
	}
}
