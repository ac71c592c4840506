package anchor

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// send sends state to systemd's notification socket, without waiting.
func send(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return fmt.Errorf("NOTIFY_SOCKET is not set")
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Sendmsg(fd, []byte(state), nil, &unix.SockaddrUnix{Name: path}, 0)
}

// notify sends state to systemd's notification socket and waits until
// systemd has processed it (a barrier: systemd closes the pipe end it
// received once it has read every message before it). Without the wait,
// the anchor could exit before systemd checks that the sender belongs to
// the unit, and the message would be dropped.
func notify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return fmt.Errorf("NOTIFY_SOCKET is not set: the unit must be Type=notify")
	}
	// A leading '@' is an abstract address; unix.SockaddrUnix says so too.
	to := &unix.SockaddrUnix{Name: path}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Sendmsg(fd, []byte(state), nil, to, 0); err != nil {
		return fmt.Errorf("notify systemd at %s: %w", path, err)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	defer unix.Close(p[0])
	err = unix.Sendmsg(fd, []byte("BARRIER=1"), unix.UnixRights(p[1]), to, 0)
	unix.Close(p[1])
	if err != nil {
		return fmt.Errorf("notify systemd at %s: %w", path, err)
	}
	fds := []unix.PollFd{{Fd: int32(p[0]), Events: unix.POLLIN}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := unix.Poll(fds, int(time.Until(deadline)/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for systemd: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("systemd did not confirm the notification in 10 s")
		}
		return nil
	}
}
