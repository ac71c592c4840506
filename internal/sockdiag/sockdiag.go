// Package sockdiag queries NETLINK_SOCK_DIAG, the kernel's interface that
// describes the sockets of a network namespace (peers, queues, shutdown
// state) beyond what a socket tells about itself.
package sockdiag

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Open opens a NETLINK_SOCK_DIAG socket in the network namespace nsfd (-1:
// the current one). sock_diag only sees sockets of the namespace its own
// socket lives in, so for another namespace one locked thread enters it
// just long enough to create the socket.
func Open(nsfd int) (int, error) {
	open := func() (int, error) {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
		if err != nil {
			return -1, fmt.Errorf("netlink sock_diag socket: %w", err)
		}
		return fd, nil
	}
	if nsfd < 0 {
		return open()
	}
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return -1, fmt.Errorf("own network namespace: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return -1, fmt.Errorf("enter the socket's network namespace: %w", err)
	}
	fd, err := open()
	if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
		runtime.UnlockOSThread() // else the thread dies with its goroutine
	}
	return fd, err
}

// Dump sends a SOCK_DIAG_BY_FAMILY dump request whose body is req (the
// family's request structure) from a socket in the network namespace nsfd
// (-1: the current one) and calls fn with the payload of every answer.
func Dump(nsfd int, req []byte, fn func(msg []byte)) error {
	fd, err := Open(nsfd)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	m := make([]byte, unix.NLMSG_HDRLEN+len(req))
	binary.NativeEndian.PutUint32(m[0:], uint32(len(m)))
	binary.NativeEndian.PutUint16(m[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(m[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(m[8:], 1)
	copy(m[unix.NLMSG_HDRLEN:], req)
	if err := unix.Sendto(fd, m, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag request: %w", err)
	}
	buf := make([]byte, 1<<20)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("sock_diag reply: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("sock_diag reply: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
						return fmt.Errorf("sock_diag: %w", unix.Errno(-e))
					}
				}
				return nil
			case unix.SOCK_DIAG_BY_FAMILY:
				fn(m.Data)
			}
		}
	}
}

// Attrs calls fn with the type and value of each netlink attribute in b.
func Attrs(b []byte, fn func(typ uint16, v []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		t := binary.NativeEndian.Uint16(b[2:]) & 0x3fff
		if l < 4 || l > len(b) {
			return
		}
		fn(t, b[4:l])
		step := (l + 3) &^ 3
		if step > len(b) {
			return
		}
		b = b[step:]
	}
}
