package files

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// signalfds: the signal mask, read from fdinfo, is the whole state; the
// signals it reads are the process's own, carried with the process.

// KindSignalfd is a signalfd (signalfd(2)).
const KindSignalfd = "signalfd"

var signalfdKind = &kind{name: KindSignalfd, record: func() image.FileRecord { return new(Signalfd) },
	is:    anonIs("anon_inode:[signalfd]"),
	check: checkNothing, dump: dumpSignalfd, open: openSignalfd}

// Signalfd is the record of a signalfd: the set of signals it reads.
type Signalfd struct {
	Sigmask uint64 `json:"sigmask"`
}

// Validate has nothing to check: any mask can be given again.
func (*Signalfd) Validate(*image.Checker) error { return nil }

// dumpSignalfd records the signal mask.
func dumpSignalfd(_ *Dumper, ds *desc, f *image.File) error {
	f.Record = &Signalfd{Sigmask: ds.info.sigmask}
	return nil
}

// openSignalfd creates a signalfd for the signals of mask. A signalfd
// reads the signals of whichever process reads it, so the restorer can
// create it and hand it over.
func openSignalfd(_ *Opener, f *image.File) (*os.File, error) {
	mask := recordOf[Signalfd](f).Sigmask
	fd, _, e := unix.Syscall6(unix.SYS_SIGNALFD4, ^uintptr(0), uintptr(unsafe.Pointer(&mask)), 8,
		uintptr(f.Flags&unix.O_NONBLOCK|unix.O_CLOEXEC), 0, 0)
	if e != 0 {
		return nil, fmt.Errorf("signalfd: %w", e)
	}
	return os.NewFile(fd, "signalfd"), nil
}
