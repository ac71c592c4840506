package unixsock

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// errRights is returned when descriptors are in flight in a queue.
var errRights = errors.New("file descriptors are in flight in its receive queue (SCM_RIGHTS sent and not received yet); seamless cannot checkpoint them")

// peekQueue returns the receive queue of fd without consuming it: with
// SO_PEEK_OFF set, each MSG_PEEK read moves the peek offset past what it
// returned, so successive reads walk the queue. The socket's own peek
// offset is put back afterwards. For datagram and seqpacket sockets each
// message is one entry (boundaries kept); for a stream socket, runs of
// bytes from the same sender (the kernel never merges writes with
// different credentials into one read when SO_PASSCRED is on).
//
// creds asks for SCM_CREDENTIALS (the receiver reads them).
func peekQueue(fd, typ int, creds bool) ([]image.UnixMessage, error) {
	orig, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
	if err != nil {
		return nil, fmt.Errorf("SO_PEEK_OFF: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0); err != nil {
		return nil, fmt.Errorf("set SO_PEEK_OFF: %w", err)
	}
	defer unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, orig)
	if creds {
		if on, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED); on == 0 {
			// SO_PASSPIDFD alone: ask for the credentials too, meanwhile.
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
			defer unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 0)
		}
	}
	stream := typ == unix.SOCK_STREAM
	flags := unix.MSG_PEEK | unix.MSG_DONTWAIT
	if !stream {
		flags |= unix.MSG_TRUNC // return the whole message's length
	}
	buf := make([]byte, 64<<10)
	oob := make([]byte, 16<<10)
	var out []image.UnixMessage
	off := 0
	for {
		n, oobn, rflags, from, err := recvRaw(fd, buf, oob, flags)
		if err == unix.EAGAIN || err == unix.EINVAL { // empty, or not connected
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("peek at the receive queue: %w", err)
		}
		c, rights, cerr := parseControl(oob[:oobn])
		if rights {
			return nil, errRights
		}
		if cerr != nil {
			return nil, cerr
		}
		if rflags&unix.MSG_CTRUNC != 0 {
			return nil, fmt.Errorf("control data of a queued message does not fit in %d bytes", len(oob))
		}
		if !stream && n > len(buf) {
			// Truncated: read this message again with room for all of it.
			buf = make([]byte, n)
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, off); err != nil {
				return nil, fmt.Errorf("set SO_PEEK_OFF: %w", err)
			}
			continue
		}
		if n == 0 {
			// End of stream (peer gone or shut down), or a zero-length
			// datagram, which peeking cannot tell apart (see doc.go).
			return out, nil
		}
		off += n
		if !creds {
			c = nil
		}
		m := image.UnixMessage{Data: append([]byte(nil), buf[:n]...), Creds: c}
		if !stream {
			m.From = from
		}
		if last := len(out) - 1; stream && last >= 0 && sameCreds(out[last].Creds, c) {
			out[last].Data = append(out[last].Data, m.Data...)
			continue
		}
		out = append(out, m)
	}
}

func sameCreds(a, b *image.UnixCreds) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// parseControl reads the control messages of a peek. Descriptors that the
// peek installed in this process (SCM_RIGHTS, SCM_PIDFD) are closed again.
func parseControl(oob []byte) (creds *image.UnixCreds, rights bool, err error) {
	if len(oob) == 0 {
		return nil, false, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, false, fmt.Errorf("control data of a queued message: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch m.Header.Type {
		case unix.SCM_RIGHTS:
			rights = true
			fds, _ := unix.ParseUnixRights(&m)
			for _, fd := range fds {
				unix.Close(fd)
			}
		case unix.SCM_PIDFD:
			if len(m.Data) >= 4 {
				unix.Close(int(int32(m.Data[0]) | int32(m.Data[1])<<8 | int32(m.Data[2])<<16 | int32(m.Data[3])<<24))
			}
		case unix.SCM_CREDENTIALS:
			if u, err := unix.ParseUnixCredentials(&m); err == nil {
				creds = &image.UnixCreds{PID: u.Pid, UID: u.Uid, GID: u.Gid}
			}
		}
	}
	return creds, rights, nil
}

// recvRaw is recvmsg(2) returning the sender's raw address.
func recvRaw(fd int, buf, oob []byte, flags int) (n, oobn, rflags int, from []byte, err error) {
	var msg unix.Msghdr
	var sa unix.RawSockaddrUnix
	msg.Name = (*byte)(unsafe.Pointer(&sa))
	msg.Namelen = uint32(unsafe.Sizeof(sa))
	var iov unix.Iovec
	iov.Base = &buf[0]
	iov.SetLen(len(buf))
	msg.Iov = &iov
	msg.Iovlen = 1
	msg.Control = &oob[0]
	msg.SetControllen(len(oob))
	for {
		r, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags|unix.MSG_CMSG_CLOEXEC))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, 0, 0, nil, e
		}
		return int(r), int(msg.Controllen), int(msg.Flags), rawName(&sa, int(msg.Namelen)), nil
	}
}

// fillQueue writes the messages of a receive queue into the socket that
// w is connected to (to: to the socket with that name instead).
func fillQueue(w int, to []byte, q []image.UnixMessage) error {
	for i, m := range q {
		if err := sendMessage(w, to, m); err != nil {
			return fmt.Errorf("queued message %d (%d bytes): %w", i+1, len(m.Data), err)
		}
	}
	return nil
}

// sendMessage sends one queued message with its sender's credentials when
// they were recorded; if that PID does not exist (any more), without them.
func sendMessage(w int, to []byte, m image.UnixMessage) error {
	if m.Creds != nil && m.Creds.PID > 0 {
		err := sendRaw(w, m.Data, to, m.Creds)
		if err != unix.ESRCH && err != unix.EPERM {
			return err
		}
	}
	return sendRaw(w, m.Data, to, nil)
}
