package files

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// Terminals. A pty whose master the tree holds (image.FilePtyMaster and
// FilePtySlave) is rebuilt as a new pty, with its settings and queued
// bytes (pty.go); /dev/tty (FileCtty) is opened by the restored process
// itself, once its session has its controlling terminal back (Install); a
// hung-up terminal (FileHungUp) comes back hung up. A terminal outside the
// tree (FileTerminal) is a device, opened again by its path (regular.go).

// dumpPtyMaster records a pty master with its pty's index; the first
// description of each pty is kept, for Finish to capture the pty's state.
func dumpPtyMaster(d *Dumper, ds *desc, f *image.File) error {
	n, err := unix.IoctlGetInt(int(ds.local.Fd()), unix.TIOCGPTN)
	if err != nil {
		return fmt.Errorf("pty number: %w", err)
	}
	f.Pty = &image.PtyEnd{Index: n}
	if d.masters[n] == nil {
		d.masters[n], ds.kept = ds.local, true
	}
	return dumpDevice(d, ds, f)
}

// finishPtys captures the state of every pty whose master the tree
// holds, once every process has been dumped.
func (d *Dumper) finishPtys() error {
	for n, m := range d.masters {
		p, err := capturePty(m, n)
		if err != nil {
			return err
		}
		d.Ptys = append(d.Ptys, p)
	}
	return nil
}

// dumpPtySlave records a slave of a pty whose master the tree holds.
func dumpPtySlave(d *Dumper, ds *desc, f *image.File) error {
	f.Pty = &image.PtyEnd{Index: ptySlaveIndex(ds.st.Rdev)}
	return dumpDevice(d, ds, f)
}

// dumpHungUp records a terminal that was hung up: which pty it was, and its
// path, so that the descriptions of one such terminal come back as one.
func dumpHungUp(d *Dumper, ds *desc, f *image.File) error {
	f.Pty = &image.PtyEnd{Index: ptySlaveIndex(ds.st.Rdev)}
	f.Rdev = ds.st.Rdev
	f.Ref = &image.Ref{Path: ds.link, Mode: ds.st.Mode, Inode: ds.st.Ino}
	return nil
}

// openCtty: /dev/tty is opened by the restored process itself (Install).
func openCtty(_ *Opener, f *image.File) (*os.File, error) {
	return nil, fmt.Errorf("/dev/tty is opened inside the process")
}

// openPtyMaster gives a new description of the rebuilt pty's master.
func openPtyMaster(o *Opener, f *image.File) (*os.File, error) {
	p, err := o.Pty(f.Pty.Index)
	if err != nil {
		return nil, err
	}
	return dupFile(p.master)
}

// openPtySlave opens the rebuilt pty's slave with the description's flags.
func openPtySlave(o *Opener, f *image.File) (*os.File, error) {
	return o.PtySlave(f.Pty.Index, f.Flags)
}

// openHungUp gives a description of a hung-up terminal.
func openHungUp(o *Opener, f *image.File) (*os.File, error) { return o.HungUp(f) }
