package files

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// PtySlaveIndex returns the /dev/pts index of a pty slave device, or -1.
func PtySlaveIndex(rdev uint64) int { return ptySlaveIndex(rdev) }

func ptySlaveIndex(rdev uint64) int {
	major, minor := unix.Major(rdev), unix.Minor(rdev)
	if major >= 136 && major <= 143 {
		return int((major-136)*256 + minor)
	}
	return -1
}

// CharDeviceKind says how a character device is carried: "device" for the
// memory devices (/dev/null, zero, full, random, urandom, reopened by
// path), "terminal" for terminals, "" when it cannot be carried.
func CharDeviceKind(rdev uint64) string {
	major, minor := unix.Major(rdev), unix.Minor(rdev)
	switch {
	case major == 1 && (minor == 3 || minor == 5 || minor == 7 || minor == 8 || minor == 9):
		return "device"
	case major == 4 || major == 5 || (major >= 136 && major <= 143):
		return "terminal"
	}
	return ""
}

// isPtyMaster reports whether rdev is /dev/ptmx.
func isPtyMaster(rdev uint64) bool { return unix.Major(rdev) == 5 && unix.Minor(rdev) == 2 }

func termiosBytes(t *unix.Termios) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(t)), unsafe.Sizeof(*t))...)
}

func termiosFrom(b []byte) (*unix.Termios, error) {
	var t unix.Termios
	if len(b) != int(unsafe.Sizeof(t)) {
		return nil, fmt.Errorf("termios of %d bytes, want %d", len(b), unsafe.Sizeof(t))
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&t)), len(b)), b)
	return &t, nil
}

// rawMode turns off every transformation of the line discipline, so that
// bytes pass through unchanged while queues are drained and refilled.
func rawMode(t unix.Termios) *unix.Termios {
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	return &t
}

// capturePty records a pty whose master the tree holds: settings, window
// size, packet mode and the bytes queued each way. The queues can only be
// read by consuming them, so they are written back at once, with the line
// discipline in raw mode so that nothing is echoed or transformed twice.
func capturePty(master *os.File, index int) (*image.Pty, error) {
	m := int(master.Fd())
	// TIOCGPTPEER opens the slave; its argument is the open flags.
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(m), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC))
	if e != 0 {
		return nil, fmt.Errorf("pty %d: open the slave: %w", index, e)
	}
	sfd := int(r)
	defer unix.Close(sfd)
	p := &image.Pty{Index: index}
	var st unix.Stat_t
	if err := unix.Fstat(sfd, &st); err != nil {
		return nil, fmt.Errorf("pty %d: stat the slave: %w", index, err)
	}
	p.Owner = &image.PtyOwner{UID: st.Uid, GID: st.Gid, Mode: st.Mode & 0o7777}
	tio, err := unix.IoctlGetTermios(sfd, unix.TCGETS2)
	if err != nil {
		return nil, fmt.Errorf("pty %d: termios: %w", index, err)
	}
	p.Termios = termiosBytes(tio)
	ws, err := unix.IoctlGetWinsize(m, unix.TIOCGWINSZ)
	if err != nil {
		return nil, fmt.Errorf("pty %d: window size: %w", index, err)
	}
	p.Winsize = append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(ws)), unsafe.Sizeof(*ws))...)
	if pkt, err := unix.IoctlGetInt(m, unix.TIOCGPKT); err == nil {
		p.Packet = pkt != 0
	}
	if lck, err := unix.IoctlGetInt(m, unix.TIOCGPTLCK); err == nil {
		p.Locked = lck != 0
	}
	if err := unix.IoctlSetTermios(sfd, unix.TCSETS2, rawMode(*tio)); err != nil {
		return nil, fmt.Errorf("pty %d: raw mode: %w", index, err)
	}
	defer unix.IoctlSetTermios(sfd, unix.TCSETS2, tio)
	if p.Packet {
		unix.IoctlSetPointerInt(m, unix.TIOCPKT, 0)
		defer unix.IoctlSetPointerInt(m, unix.TIOCPKT, 1)
	}
	if p.Input, err = drain(sfd); err != nil {
		return nil, fmt.Errorf("pty %d: input queue: %w", index, err)
	}
	if p.Output, err = drainCounted(m); err != nil {
		return nil, fmt.Errorf("pty %d: output queue: %w", index, err)
	}
	if err := writeAll(m, p.Input); err != nil {
		return nil, fmt.Errorf("pty %d: put the input back: %w", index, err)
	}
	if err := writeAll(sfd, p.Output); err != nil {
		return nil, fmt.Errorf("pty %d: put the output back: %w", index, err)
	}
	return p, nil
}

// drain reads a non-blocking descriptor until it is empty.
func drain(fd int) ([]byte, error) {
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if n > 0 {
			out = append(out, buf[:n]...)
		}
		if err == unix.EAGAIN || err == unix.EIO || (err == nil && n == 0) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// drainCounted reads what FIONREAD says is queued, without touching the
// descriptor's flags (it is the process's own open file description).
func drainCounted(fd int) ([]byte, error) {
	var out []byte
	for {
		n, err := unix.IoctlGetInt(fd, unix.TIOCINQ)
		if err != nil || n <= 0 {
			return out, err
		}
		buf := make([]byte, n)
		got, err := unix.Read(fd, buf)
		if err != nil {
			return out, err
		}
		out = append(out, buf[:got]...)
	}
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// ptyPair is a restored pseudo-terminal: the restorer's master and a
// slave it keeps open until the end.
type ptyPair struct {
	master, slave *os.File
	index         int
}

// Pty rebuilds pseudo-terminal index from the image (once): it asks for
// the same /dev/pts index by opening /dev/ptmx until the kernel hands it
// out, then restores settings and the queued bytes.
func (o *Opener) Pty(index int) (*ptyPair, error) {
	if p, ok := o.ptys[index]; ok {
		return p, nil
	}
	var img *image.Pty
	for _, p := range o.Image.Tree.Ptys {
		if p.Index == index {
			img = p
		}
	}
	if img == nil {
		return nil, fmt.Errorf("pty %d is not in the image", index)
	}
	p, err := o.allocPty(index, unix.O_RDWR)
	if err != nil {
		return nil, err
	}
	if ow := img.Owner; ow != nil {
		// Opening /dev/ptmx gave the slave to the restorer.
		if err := unix.Fchown(int(p.slave.Fd()), int(ow.UID), int(ow.GID)); err != nil {
			p.close()
			return nil, fmt.Errorf("pty %d: chown %d:%d: %w", index, ow.UID, ow.GID, err)
		}
		if err := unix.Fchmod(int(p.slave.Fd()), ow.Mode); err != nil {
			p.close()
			return nil, fmt.Errorf("pty %d: chmod %o: %w", index, ow.Mode, err)
		}
	}
	if err := p.fill(img); err != nil {
		p.close()
		return nil, fmt.Errorf("pty %d: %w", index, err)
	}
	o.ptys[index] = p
	return p, nil
}

func (p *ptyPair) fill(img *image.Pty) error {
	m, s := int(p.master.Fd()), int(p.slave.Fd())
	tio, err := termiosFrom(img.Termios)
	if err != nil {
		return err
	}
	if err := unix.IoctlSetTermios(s, unix.TCSETS2, rawMode(*tio)); err != nil {
		return fmt.Errorf("raw mode: %w", err)
	}
	if err := writeAll(m, img.Input); err != nil {
		return fmt.Errorf("queue input: %w", err)
	}
	if err := writeAll(s, img.Output); err != nil {
		return fmt.Errorf("queue output: %w", err)
	}
	if len(img.Winsize) == int(unsafe.Sizeof(unix.Winsize{})) {
		ws := (*unix.Winsize)(unsafe.Pointer(&img.Winsize[0]))
		if err := unix.IoctlSetWinsize(m, unix.TIOCSWINSZ, ws); err != nil {
			return fmt.Errorf("window size: %w", err)
		}
	}
	if err := unix.IoctlSetTermios(s, unix.TCSETS2, tio); err != nil {
		return fmt.Errorf("termios: %w", err)
	}
	if img.Packet {
		if err := unix.IoctlSetPointerInt(m, unix.TIOCPKT, 1); err != nil {
			return fmt.Errorf("packet mode: %w", err)
		}
	}
	if img.Locked {
		unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 1)
	}
	return nil
}

func (p *ptyPair) close() {
	p.master.Close()
	p.slave.Close()
}

// allocPty allocates a pseudo-terminal with the /dev/pts index index if
// it is free (a lower one is held until the kernel hands ours out), else
// the next one, with a warning, and opens its slave with flags.
func (o *Opener) allocPty(index, flags int) (*ptyPair, error) {
	var spare []*os.File
	defer func() {
		for _, f := range spare {
			f.Close()
		}
	}()
	var master *os.File
	got := -1
	for tries := 0; tries <= index+1; tries++ {
		f, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("pty %d: %w", index, err)
		}
		n, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPTN)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("pty %d: %w", index, err)
		}
		if n == index || n > index {
			master, got = f, n
			break
		}
		spare = append(spare, f) // a lower index: hold it until ours comes
	}
	if master == nil {
		return nil, fmt.Errorf("pty %d: could not allocate it", index)
	}
	if got != index {
		o.Warnings = append(o.Warnings, fmt.Sprintf("/dev/pts/%d is taken; the terminal comes back as /dev/pts/%d", index, got))
	}
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, fmt.Errorf("pty %d: unlock: %w", index, err)
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(got), openFlags(flags)|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("pty %d: %w", index, err)
	}
	return &ptyPair{master: master, slave: slave, index: got}, nil
}

// hungUp reports whether the terminal open as fd has been hung up (its pty
// master closed, or vhangup): every ioctl then fails with EIO.
func hungUp(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return errors.Is(err, unix.EIO)
}

// HungUp returns a terminal descriptor in the state of one that was hung
// up: the slave of a new pseudo-terminal (index index when it is free)
// opened with flags, whose master is then closed, which hangs it up.
// Descriptions of one hung-up pty are opened together, before that.
func (o *Opener) HungUp(f *image.File) (*os.File, error) {
	if h, ok := o.hungUp[f.ID]; ok {
		delete(o.hungUp, f.ID)
		return h, nil
	}
	index := recordOf[HungUpEnd](f).Index
	p, err := o.allocPty(max(index, 0), unix.O_RDWR)
	if err != nil {
		return nil, fmt.Errorf("hung-up terminal: %w", err)
	}
	p.slave.Close()
	defer p.master.Close()
	var mine *os.File
	for _, g := range o.Image.Tree.Files {
		if h := recordOf[HungUpEnd](g); h == nil || h.Index != index || g.Ref == nil || f.Ref == nil || g.Ref.Path != f.Ref.Path {
			continue
		}
		h, err := os.OpenFile("/dev/pts/"+strconv.Itoa(p.index), openFlags(g.Flags)|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("hung-up terminal: %w", err)
		}
		if g.ID == f.ID {
			mine = h
		} else {
			o.hungUp[g.ID] = h
		}
	}
	if mine == nil {
		return nil, fmt.Errorf("hung-up terminal %d is not in the image", f.ID)
	}
	return mine, nil
}

// PtySlave opens a new descriptor of the slave of restored pty index.
func (o *Opener) PtySlave(index int, flags int) (*os.File, error) {
	p, err := o.Pty(index)
	if err != nil {
		return nil, err
	}
	return os.OpenFile("/dev/pts/"+strconv.Itoa(p.index), openFlags(flags)|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
}
