package files

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// Terminals. A pty whose master the tree holds (KindPtyMaster and
// KindPtySlave) is rebuilt as a new pty, with its settings and queued
// bytes (pty.go; the pty's own state is in image.Tree.Ptys); /dev/tty
// (KindCtty) is opened by the restored process itself, once its session
// has its controlling terminal back (Install); a hung-up terminal
// (KindHungUp) comes back hung up. A terminal outside the tree
// (KindTerminal) is a device, opened again by its path (device.go).

// The kinds of the tree's terminals.
const (
	KindPtyMaster = "pty-master"
	KindPtySlave  = "pty-slave"
	KindCtty      = "dev-tty" // /dev/tty, opened again inside the restored process
	// KindHungUp is a terminal that was hung up (its pty master closed,
	// or vhangup): reads return end of file, writes and ioctls EIO.
	KindHungUp = "hung-up-terminal"
)

var (
	// A hung-up terminal is one whatever its number was.
	hungUpKind = &kind{name: KindHungUp, record: func() image.FileRecord { return new(HungUpEnd) },
		is: func(_ *Scope, d *desc) bool {
			return d.charDevice() && CharDeviceKind(d.st.Rdev) == "terminal" && !isPtyMaster(d.st.Rdev) && hungUp(int(d.local.Fd()))
		},
		check: checkNothing, dump: dumpHungUp, open: openHungUp}
	ptyMasterKind = &kind{name: KindPtyMaster, record: func() image.FileRecord { return new(PtyEnd) },
		is:    func(_ *Scope, d *desc) bool { return d.charDevice() && isPtyMaster(d.st.Rdev) },
		check: checkNothing, dump: dumpPtyMaster, open: openPtyMaster}
	// A slave whose master is outside the tree is somebody else's
	// terminal, reopened by path (KindTerminal).
	ptySlaveKind = &kind{name: KindPtySlave, record: func() image.FileRecord { return new(PtyEnd) },
		is: func(s *Scope, d *desc) bool {
			n := ptySlaveIndex(d.st.Rdev)
			return d.charDevice() && n >= 0 && s.holdsMaster(n)
		},
		check: checkNothing, dump: dumpPtySlave, open: openPtySlave}
	cttyKind = &kind{name: KindCtty,
		is: func(_ *Scope, d *desc) bool {
			return d.charDevice() && unix.Major(d.st.Rdev) == 5 && unix.Minor(d.st.Rdev) == 0
		},
		check: checkNothing, dump: dumpDevice, open: openCtty}
)

// PtyEnd is the record of a pty master or slave: the /dev/pts index of
// the pty it is an end of.
type PtyEnd struct {
	Index int `json:"index"`
}

// Validate checks that the image has the pty.
func (p *PtyEnd) Validate(c *image.Checker) error {
	if !c.HasPty(p.Index) {
		return fmt.Errorf("pty %d is not in the image", p.Index)
	}
	return nil
}

// HungUpEnd is the record of a hung-up terminal: the /dev/pts index of
// the pty it was a slave of, -1 when it was not a pty's.
type HungUpEnd struct {
	Index int `json:"index"`
}

// Validate checks the index.
func (h *HungUpEnd) Validate(*image.Checker) error {
	if h.Index < -1 || h.Index >= image.MaxPtyIndex {
		return fmt.Errorf("bad pty index %d", h.Index)
	}
	return nil
}

// dumpPtyMaster records a pty master with its pty's index; the first
// description of each pty is kept, for Finish to capture the pty's state.
func dumpPtyMaster(d *Dumper, ds *desc, f *image.File) error {
	n, err := unix.IoctlGetInt(int(ds.local.Fd()), unix.TIOCGPTN)
	if err != nil {
		return fmt.Errorf("pty number: %w", err)
	}
	f.Record = &PtyEnd{Index: n}
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
	f.Record = &PtyEnd{Index: ptySlaveIndex(ds.st.Rdev)}
	return dumpDevice(d, ds, f)
}

// dumpHungUp records a terminal that was hung up: which pty it was, and its
// path, so that the descriptions of one such terminal come back as one.
func dumpHungUp(d *Dumper, ds *desc, f *image.File) error {
	f.Record = &HungUpEnd{Index: ptySlaveIndex(ds.st.Rdev)}
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
	p, err := o.Pty(recordOf[PtyEnd](f).Index)
	if err != nil {
		return nil, err
	}
	return dupFile(p.master)
}

// openPtySlave opens the rebuilt pty's slave with the description's flags.
func openPtySlave(o *Opener, f *image.File) (*os.File, error) {
	return o.PtySlave(recordOf[PtyEnd](f).Index, f.Flags)
}

// openHungUp gives a description of a hung-up terminal.
func openHungUp(o *Opener, f *image.File) (*os.File, error) { return o.HungUp(f) }
