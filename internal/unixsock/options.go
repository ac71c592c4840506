package unixsock

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// readOptions reads the socket options that restore reproduces. Buffer
// sizes equal to a fresh socket's default are stored as 0 (default).
func readOptions(fd, typ int) (image.UnixOptions, error) {
	var o image.UnixOptions
	b := func(opt int) bool {
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt)
		return err == nil && v != 0
	}
	o.PassCred = b(unix.SO_PASSCRED)
	o.PassSec = b(unix.SO_PASSSEC)
	o.PassPidfd = b(unix.SO_PASSPIDFD)
	var err error
	if o.SndBuf, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF); err != nil {
		return o, fmt.Errorf("SO_SNDBUF: %w", err)
	}
	if o.RcvBuf, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF); err != nil {
		return o, fmt.Errorf("SO_RCVBUF: %w", err)
	}
	if def := defaults(typ); def.ok {
		if o.SndBuf == def.snd {
			o.SndBuf = 0
		}
		if o.RcvBuf == def.rcv {
			o.RcvBuf = 0
		}
	}
	if o.RcvLowat, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVLOWAT); err != nil {
		return o, fmt.Errorf("SO_RCVLOWAT: %w", err)
	}
	if o.RcvLowat == 1 {
		o.RcvLowat = 0 // the default
	}
	if o.PeekOff, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF); err != nil {
		return o, fmt.Errorf("SO_PEEK_OFF: %w", err)
	}
	if tv, err := unix.GetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO); err == nil {
		o.SndTimeo = tv.Nano()
	}
	if tv, err := unix.GetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO); err == nil {
		o.RcvTimeo = tv.Nano()
	}
	return o, nil
}

type bufDefaults struct {
	snd, rcv int
	ok       bool
}

var (
	defaultsMu  sync.Mutex
	defaultsFor = map[int]bufDefaults{}
)

// defaults are the buffer sizes of a fresh unix socket of type typ.
func defaults(typ int) bufDefaults {
	defaultsMu.Lock()
	defer defaultsMu.Unlock()
	if d, ok := defaultsFor[typ]; ok {
		return d
	}
	var d bufDefaults
	if fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0); err == nil {
		s, e1 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF)
		r, e2 := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
		unix.Close(fd)
		d = bufDefaults{snd: s, rcv: r, ok: e1 == nil && e2 == nil}
	}
	defaultsFor[typ] = d
	return d
}

// fillSndBuf is the send buffer the restorer gives a socket while it
// writes queued data through it: large enough for any queue that existed.
const fillSndBuf = 64 << 20

// applyOptions sets o on fd. The peek offset is set separately, last.
func applyOptions(fd, typ int, o image.UnixOptions) error {
	set := func(name string, opt, v int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
		return nil
	}
	bool2int := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	def := defaults(typ)
	snd, rcv := o.SndBuf, o.RcvBuf
	if snd == 0 {
		snd = def.snd
	}
	if rcv == 0 {
		rcv = def.rcv
	}
	// The kernel doubles what is set (and getsockopt reports the doubled
	// value); the FORCE variants ignore net.core.[wr]mem_max.
	if err := set("SO_SNDBUFFORCE", unix.SO_SNDBUFFORCE, snd/2); err != nil {
		return err
	}
	if err := set("SO_RCVBUFFORCE", unix.SO_RCVBUFFORCE, rcv/2); err != nil {
		return err
	}
	if err := set("SO_PASSCRED", unix.SO_PASSCRED, bool2int(o.PassCred)); err != nil {
		return err
	}
	if o.PassSec {
		if err := set("SO_PASSSEC", unix.SO_PASSSEC, 1); err != nil {
			return err
		}
	}
	if o.PassPidfd {
		if err := set("SO_PASSPIDFD", unix.SO_PASSPIDFD, 1); err != nil {
			return err
		}
	}
	if o.RcvLowat > 1 {
		if err := set("SO_RCVLOWAT", unix.SO_RCVLOWAT, o.RcvLowat); err != nil {
			return err
		}
	}
	for _, t := range []struct {
		name string
		opt  int
		ns   int64
	}{{"SO_SNDTIMEO", unix.SO_SNDTIMEO, o.SndTimeo}, {"SO_RCVTIMEO", unix.SO_RCVTIMEO, o.RcvTimeo}} {
		if t.ns == 0 {
			continue
		}
		tv := unix.NsecToTimeval(t.ns)
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, t.opt, &tv); err != nil {
			return fmt.Errorf("set %s %v: %w", t.name, time.Duration(t.ns), err)
		}
	}
	return nil
}
