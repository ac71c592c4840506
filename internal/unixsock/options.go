package unixsock

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/sockopt"
)

// moreOpts are the other options a unix socket may have set: those of
// SOL_SOCKET that exist for every socket family.
var moreOpts = []sockopt.Option{
	unixOpt("SO_PRIORITY", unix.SO_PRIORITY),
	unixOpt("SO_MARK", unix.SO_MARK),
	unixOpt("SO_KEEPALIVE", unix.SO_KEEPALIVE),
	unixOpt("SO_DEBUG", unix.SO_DEBUG),
	unixOpt("SO_OOBINLINE", unix.SO_OOBINLINE),
	unixOpt("SO_TIMESTAMP", unix.SO_TIMESTAMP),
	unixOpt("SO_TIMESTAMPNS", unix.SO_TIMESTAMPNS),
	unixOpt("SO_TIMESTAMPING", unix.SO_TIMESTAMPING),
	unixOpt("SO_RXQ_OVFL", unix.SO_RXQ_OVFL),
	unixOpt("SO_SELECT_ERR_QUEUE", unix.SO_SELECT_ERR_QUEUE),
	unixOpt("SO_RCVMARK", unix.SO_RCVMARK),
	unixOpt("SO_RCVPRIORITY", unix.SO_RCVPRIORITY),
	unixOpt("SO_PASSRIGHTS", unix.SO_PASSRIGHTS),
}

func unixOpt(name string, o int) sockopt.Option {
	return sockopt.Option{Name: name, Level: unix.SOL_SOCKET, Opt: o, Kind: sockopt.Int, Unix: true, Phase: sockopt.Final}
}

// readOptions reads the socket options that restore reproduces. Buffer
// sizes equal to a fresh socket's default are stored as 0 (default).
func readOptions(fd, typ int) (image.UnixOptions, error) {
	var o image.UnixOptions
	fresh, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return o, fmt.Errorf("reference socket: %w", err)
	}
	defer unix.Close(fresh)
	v, err := sockopt.Read(fd, fresh, unix.AF_UNIX, 0, moreOpts, false)
	if err != nil {
		return o, err
	}
	o.More = v.Ints
	if lock, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BUF_LOCK); err == nil {
		o.BufLock = &lock
	} else if !errors.Is(err, unix.ENOPROTOOPT) {
		return o, fmt.Errorf("SO_BUF_LOCK: %w", err)
	}
	b := func(opt int) bool {
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt)
		return err == nil && v != 0
	}
	o.PassCred = b(unix.SO_PASSCRED)
	o.PassSec = b(unix.SO_PASSSEC)
	o.PassPidfd = b(unix.SO_PASSPIDFD)
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
	if err := sockopt.Apply(fd, unix.AF_UNIX, 0, moreOpts, sockopt.Values{Ints: o.More}, sockopt.Final, false, nil); err != nil {
		return err
	}
	// The buffers were sized with SO_*BUFFORCE, which locks them.
	if o.BufLock != nil {
		if err := set("SO_BUF_LOCK", unix.SO_BUF_LOCK, *o.BufLock); err != nil {
			return err
		}
	}
	return nil
}
