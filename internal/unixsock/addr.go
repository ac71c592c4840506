package unixsock

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// Addresses are handled as raw sun_path bytes: golang.org/x/sys rewrites an
// abstract name's leading NUL as '@', which a relative path may also start
// with.

// sockname returns the address of fd (peer: of its peer): empty when
// unbound, a leading NUL for an abstract name, the path otherwise (without
// its terminating NUL).
func sockname(fd int, peer bool) ([]byte, error) {
	var sa unix.RawSockaddrUnix
	l := uint32(unsafe.Sizeof(sa))
	nr := uintptr(unix.SYS_GETSOCKNAME)
	if peer {
		nr = unix.SYS_GETPEERNAME
	}
	if _, _, e := unix.Syscall(nr, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&l))); e != 0 {
		return nil, e
	}
	return rawName(&sa, int(l)), nil
}

// rawName extracts the name from a sockaddr_un of length l.
func rawName(sa *unix.RawSockaddrUnix, l int) []byte {
	n := l - 2 // sun_family
	if n <= 0 {
		return nil
	}
	if n > len(sa.Path) {
		n = len(sa.Path)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(sa.Path[i])
	}
	if b[0] != 0 {
		for i, c := range b {
			if c == 0 {
				return b[:i]
			}
		}
	}
	return b
}

// rawAddr builds a sockaddr_un for name; an empty name asks for autobind.
func rawAddr(name []byte) (*unix.RawSockaddrUnix, uintptr, error) {
	sa := &unix.RawSockaddrUnix{Family: unix.AF_UNIX}
	l := len(name)
	if len(name) > 0 && name[0] != 0 {
		l++ // the path's terminating NUL
	}
	if l > len(sa.Path) {
		return nil, 0, fmt.Errorf("address %q is too long", image.UnixName(name))
	}
	for i, c := range name {
		sa.Path[i] = int8(c)
	}
	return sa, uintptr(2 + l), nil
}

// bindRaw binds fd to name (empty: autobind to an abstract name).
func bindRaw(fd int, name []byte) error {
	sa, l, err := rawAddr(name)
	if err != nil {
		return err
	}
	if _, _, e := unix.Syscall(unix.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(sa)), l); e != 0 {
		return e
	}
	return nil
}

// connectRaw connects fd to name.
func connectRaw(fd int, name []byte) error {
	sa, l, err := rawAddr(name)
	if err != nil {
		return err
	}
	for {
		_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(sa)), l)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// sendRaw sends one message from fd, to name unless it is empty, with
// SCM_CREDENTIALS when creds is set, never blocking.
func sendRaw(fd int, data []byte, to []byte, creds *image.UnixCreds) error {
	var oob []byte
	if creds != nil {
		oob = unix.UnixCredentials(&unix.Ucred{Pid: creds.PID, Uid: creds.UID, Gid: creds.GID})
	}
	var msg unix.Msghdr
	var iov unix.Iovec
	if len(data) > 0 {
		iov.Base = &data[0]
		iov.SetLen(len(data))
		msg.Iov = &iov
		msg.Iovlen = 1
	}
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	if len(to) > 0 {
		sa, l, err := rawAddr(to)
		if err != nil {
			return err
		}
		msg.Name = (*byte)(unsafe.Pointer(sa))
		msg.Namelen = uint32(l)
	}
	for {
		n, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		if int(n) == len(data) {
			return nil
		}
		if int(n) == 0 || len(to) > 0 {
			return fmt.Errorf("short send: %d of %d bytes", n, len(data))
		}
		// A stream socket took part of it: send the rest.
		data = data[n:]
		iov.Base = &data[0]
		iov.SetLen(len(data))
	}
}

// isPath reports whether name is a filesystem path (not abstract, not empty).
func isPath(name []byte) bool { return len(name) > 0 && name[0] != 0 }
