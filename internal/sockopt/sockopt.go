// Package sockopt reads and sets the socket options that a restore carries
// over, from tables of options: each option says where it exists (address
// family and protocol), how its value is passed (an int, a timeval, a
// 64-bit value, a name), and when a restore sets it. Values equal to a new
// socket's are not stored. It also carries classic BPF socket filters
// (SO_ATTACH_FILTER).
package sockopt

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kind is how an option's value is passed to getsockopt and setsockopt.
type Kind int

// Kinds of option values.
const (
	Int     Kind = iota // an int
	Timeval             // a struct timeval, stored in nanoseconds
	Uint64              // a 64-bit value
	Name                // a NUL-terminated name (an interface, an algorithm)
)

// Phase says when a restore sets an option.
type Phase int

// Phases of a restore, in order.
const (
	// Early options are set on a new socket, before it is bound or
	// connected (SO_BINDTODEVICE must come before bind, for one).
	Early Phase = iota
	// Late options are set on a TCP connection once it has left repair
	// mode (which resets SO_REUSEADDR); other sockets get them early.
	Late
	// Final options are set once a socket is complete: its queues
	// refilled, its buffers sized (SO_BUF_LOCK, SO_PEEK_OFF).
	Final
)

// Option is one socket option.
type Option struct {
	Name       string
	Level, Opt int
	Kind       Kind
	// Where it exists: protocols (Unix stands for every AF_UNIX socket)
	// and IP versions.
	TCP, UDP, Unix bool
	V4, V6         bool
	Phase          Phase
	// NotConnected options are only carried for sockets that are not TCP
	// connections: a connection's value is the kernel's, not the user's.
	NotConnected bool
}

// Applies reports whether o exists for a socket of family and protocol.
func (o Option) Applies(family, proto int) bool {
	switch family {
	case unix.AF_UNIX:
		return o.Unix
	case unix.AF_INET:
		if !o.V4 {
			return false
		}
	case unix.AF_INET6:
		if !o.V6 {
			return false
		}
	default:
		return false
	}
	// An MPTCP socket takes TCP's options (those it does not support,
	// getsockopt reports as such).
	return (proto == unix.IPPROTO_TCP || proto == unix.IPPROTO_MPTCP) && o.TCP || proto == unix.IPPROTO_UDP && o.UDP
}

// Values are the stored options of a socket: numbers (ints, 64-bit values
// and timevals in nanoseconds) and names.
type Values struct {
	Ints  map[string]int
	Names map[string]string
}

// unavailable reports an error that means the option does not exist for
// this socket or on this kernel.
func unavailable(err error) bool {
	return errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)
}

// get reads option o of fd; ok is false when the socket or kernel has no
// such option.
func get(fd int, o Option) (n int, name string, ok bool, err error) {
	switch o.Kind {
	case Int:
		n, err = unix.GetsockoptInt(fd, o.Level, o.Opt)
	case Timeval:
		var tv *unix.Timeval
		if tv, err = unix.GetsockoptTimeval(fd, o.Level, o.Opt); err == nil {
			n = int(tv.Nano())
		}
	case Uint64:
		var v uint64
		l := uint32(8)
		if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(o.Level), uintptr(o.Opt),
			uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
			err = e
		}
		n = int(v)
	case Name:
		name, err = unix.GetsockoptString(fd, o.Level, o.Opt)
	}
	if err != nil {
		if unavailable(err) {
			return 0, "", false, nil
		}
		return 0, "", false, fmt.Errorf("getsockopt %s: %w", o.Name, err)
	}
	return n, name, true, nil
}

// Read returns the options of table that apply to fd (a socket of family
// and protocol) and differ from those of fresh, a new socket of the same
// kind. connected says fd is a TCP connection.
func Read(fd, fresh, family, proto int, table []Option, connected bool) (Values, error) {
	v := Values{Ints: map[string]int{}, Names: map[string]string{}}
	for _, o := range table {
		if !o.Applies(family, proto) || connected && o.NotConnected {
			continue
		}
		n, name, ok, err := get(fd, o)
		if err != nil {
			return v, err
		}
		if !ok {
			continue
		}
		if dn, dname, dok, err := get(fresh, o); err == nil && dok && dn == n && dname == name {
			continue
		}
		if o.Kind == Name {
			v.Names[o.Name] = name
		} else {
			v.Ints[o.Name] = n
		}
	}
	if len(v.Ints) == 0 {
		v.Ints = nil
	}
	if len(v.Names) == 0 {
		v.Names = nil
	}
	return v, nil
}

// Set sets option o of fd to the number n or the name.
func Set(fd int, o Option, n int, name string) error {
	var err error
	switch o.Kind {
	case Int:
		err = unix.SetsockoptInt(fd, o.Level, o.Opt, n)
	case Timeval:
		tv := unix.NsecToTimeval(int64(n))
		err = unix.SetsockoptTimeval(fd, o.Level, o.Opt, &tv)
	case Uint64:
		v := uint64(n)
		if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(o.Level), uintptr(o.Opt),
			uintptr(unsafe.Pointer(&v)), 8, 0); e != 0 {
			err = e
		}
	case Name:
		err = unix.SetsockoptString(fd, o.Level, o.Opt, name)
	}
	if err == nil {
		return nil
	}
	switch o.Kind {
	case Name:
		return fmt.Errorf("setsockopt %s=%q: %w", o.Name, name, err)
	case Timeval:
		return fmt.Errorf("setsockopt %s=%v: %w", o.Name, time.Duration(n), err)
	}
	return fmt.Errorf("setsockopt %s=%d: %w", o.Name, n, err)
}

// Apply sets the stored options of table that a restore sets in phase on
// fd, a socket of family and protocol. For a socket that is not a TCP
// connection, Early also sets the Late options. set, when not nil, sets an
// option instead of Set (for options that need special handling).
func Apply(fd, family, proto int, table []Option, v Values, phase Phase, connected bool,
	set func(fd int, o Option, n int) error) error {
	for _, o := range table {
		n, isInt := v.Ints[o.Name]
		name, isName := v.Names[o.Name]
		if !isInt && !isName || !o.Applies(family, proto) {
			continue
		}
		want := o.Phase
		if want == Late && !connected {
			want = Early
		}
		if want != phase {
			continue
		}
		var err error
		if set != nil && isInt {
			err = set(fd, o, n)
		} else {
			err = Set(fd, o, n, name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
