package files

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// eventfds: the counter and the semaphore mode, read from fdinfo, are the
// whole state.

// KindEventfd is an eventfd (eventfd(2)).
const KindEventfd = "eventfd"

var eventfdKind = &kind{name: KindEventfd, record: func() image.FileRecord { return new(Eventfd) },
	is:    anonIs("anon_inode:[eventfd]"),
	check: checkNothing, dump: dumpEventfd, open: openEventfd}

// Eventfd is the record of an eventfd: its counter (its semaphore mode is
// in File.Flags).
type Eventfd struct {
	Counter uint64 `json:"counter"`
}

// Validate has nothing to check: any counter can be set again.
func (*Eventfd) Validate(*image.Checker) error { return nil }

// dumpEventfd records the counter and the semaphore mode.
func dumpEventfd(_ *Dumper, ds *desc, f *image.File) error {
	f.Record = &Eventfd{Counter: ds.info.eventfdCount}
	if ds.info.semaphore {
		f.Flags |= unix.EFD_SEMAPHORE
	}
	return nil
}

// openEventfd creates an eventfd with the counter it had.
func openEventfd(_ *Opener, f *image.File) (*os.File, error) {
	fd, err := unix.Eventfd(uint(recordOf[Eventfd](f).Counter), f.Flags&(unix.EFD_NONBLOCK|unix.EFD_SEMAPHORE)|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "eventfd"), nil
}
