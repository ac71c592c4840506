package files

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// eventfds (image.FileEventfd): the counter and the semaphore mode, read
// from fdinfo, are the whole state.

// dumpEventfd records the counter and the semaphore mode.
func dumpEventfd(_ *Dumper, ds *desc, f *image.File) error {
	f.Eventfd = &image.Eventfd{Counter: ds.info.eventfdCount}
	if ds.info.semaphore {
		f.Flags |= unix.EFD_SEMAPHORE
	}
	return nil
}

// openEventfd creates an eventfd with the counter it had.
func openEventfd(_ *Opener, f *image.File) (*os.File, error) {
	fd, err := unix.Eventfd(uint(f.Eventfd.Counter), f.Flags&(unix.EFD_NONBLOCK|unix.EFD_SEMAPHORE)|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "eventfd"), nil
}
