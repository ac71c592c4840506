package files

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// signalfds (image.FileSignalfd): the signal mask, read from fdinfo, is
// the whole state; the signals it reads are the process's own, carried
// with the process.

// dumpSignalfd records the signal mask.
func dumpSignalfd(_ *Dumper, ds *desc, f *image.File) error {
	f.Signalfd = &image.Signalfd{Sigmask: ds.info.sigmask}
	return nil
}

// openSignalfd creates a signalfd for the signals of mask. A signalfd
// reads the signals of whichever process reads it, so the restorer can
// create it and hand it over.
func openSignalfd(_ *Opener, f *image.File) (*os.File, error) {
	mask := f.Signalfd.Sigmask
	fd, _, e := unix.Syscall6(unix.SYS_SIGNALFD4, ^uintptr(0), uintptr(unsafe.Pointer(&mask)), 8,
		uintptr(f.Flags&unix.O_NONBLOCK|unix.O_CLOEXEC), 0, 0)
	if e != 0 {
		return nil, fmt.Errorf("signalfd: %w", e)
	}
	return os.NewFile(fd, "signalfd"), nil
}
