package files

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// Character devices opened again by their path: the memory devices
// (KindDevice: /dev/null, zero, full, random, urandom) and terminals
// outside the tree (KindTerminal); the restore checks that the path still
// names the same device (File.Rdev). The terminal kinds of the tree
// (terminal.go) record their device the same way.

// The kinds of character devices opened again by their path.
const (
	KindDevice   = "device"
	KindTerminal = "terminal" // a terminal outside the tree
)

var (
	deviceKind = &kind{name: KindDevice, ref: true, setfl: true,
		is:    func(_ *Scope, d *desc) bool { return d.charDevice() && CharDeviceKind(d.st.Rdev) == "device" },
		check: checkPathFile, dump: dumpDevice, open: openDevice}
	// A terminal of the tree's own ptys is asked first (terminal.go).
	terminalKind = &kind{name: KindTerminal, ref: true,
		is:    func(_ *Scope, d *desc) bool { return d.charDevice() && CharDeviceKind(d.st.Rdev) == "terminal" },
		check: checkPathFile, dump: dumpDevice, open: openDevice}
)

// dumpDevice records a character device by its number and path; a device
// node that was deleted is recreated with mknod.
func dumpDevice(d *Dumper, ds *desc, f *image.File) error {
	f.Rdev = ds.st.Rdev
	name, deleted := ds.name()
	if f.Kind == KindDevice || f.Kind == KindTerminal {
		var err error
		f.Ref, err = d.Refs.RefFile(ds.local, name, deleted)
		return err
	}
	f.Ref = &image.Ref{Path: ds.link, Mode: ds.st.Mode, Inode: ds.st.Ino}
	return nil
}

// openDevice opens the device at its path and checks its number.
func openDevice(o *Opener, f *image.File) (*os.File, error) {
	if f.Ref == nil {
		return nil, fmt.Errorf("device without a path")
	}
	h, err := o.openFile(f, reopenFlags(f)|unix.O_NOCTTY)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil || st.Rdev != f.Rdev {
		h.Close()
		return nil, fmt.Errorf("%s is no longer device %d:%d", f.Ref.Path, unix.Major(f.Rdev), unix.Minor(f.Rdev))
	}
	return h, nil
}
