package restored

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/contract"
)

// ErrNoDaemon is DialDaemon's error when no restore daemon listens: the
// socket is missing, or nobody listens on it any more.
var ErrNoDaemon = errors.New("no restore daemon")

// DialDaemon connects to the restore daemon's socket. Its error wraps
// ErrNoDaemon when no daemon listens.
func DialDaemon() (*net.UnixConn, error) {
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: contract.SocketPath(), Net: "unixpacket"})
	if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("%w: %v", ErrNoDaemon, err)
	}
	return c, err
}

// PingWait bounds how long Settle waits for a listening daemon to answer a
// ping. The daemon answers each connection on a goroutine of its own, at
// once however long its restores take: one that says nothing for this
// long is stopped or hung, and would leave the units it holds waiting for
// ever (their anchors give up and are restarted, and find it listening
// again).
var PingWait = 20 * time.Second

// ProbeDaemon reports whether a restore daemon answers on the socket. A
// daemon that accepts the connection but does not answer a ping within
// PingWait is returned as hung, by its PID (the socket's peer
// credentials). When in doubt, it answers.
func ProbeDaemon() (answers bool, hung int) {
	c, err := DialDaemon()
	if errors.Is(err, ErrNoDaemon) {
		return false, 0
	}
	if err != nil {
		return true, 0
	}
	defer c.Close()
	pid := 0
	if raw, err := c.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
				pid = int(cred.Pid)
			}
		})
	}
	req, _ := json.Marshal(Request{Ping: true})
	c.SetDeadline(time.Now().Add(PingWait))
	_, err = c.Write(req)
	if err == nil {
		_, err = c.Read(make([]byte, 4096))
	}
	switch {
	case err == nil:
		return true, 0 // whatever it says (a daemon before pings answers an error)
	case errors.Is(err, io.EOF), errors.Is(err, unix.EPIPE), errors.Is(err, unix.ECONNRESET):
		return false, 0 // it went away
	case errors.Is(err, os.ErrDeadlineExceeded) && pid > 0 && pid != os.Getpid():
		return false, pid
	}
	return true, 0
}

// killHung kills the hung restore daemon pid and waits until it is gone.
// What it was restoring goes with it, as when anyone kills the daemon: its
// restorers die with it (PR_SET_PDEATHSIG) and trees not yet running with
// them (PTRACE_O_EXITKILL). Only root's process whose command line is the
// daemon's is killed.
func killHung(pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd of %d: %w", pid, err)
	}
	defer unix.Close(fd)
	// Read after the pidfd is taken: the PID cannot be another's since.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return fmt.Errorf("process %d: %w", pid, err)
	}
	if name, _, _ := bytes.Cut(cmdline, []byte{0}); string(name) != DaemonName {
		return fmt.Errorf("process %d listening on %s is %q, not %s", pid, contract.SocketPath(), name, DaemonName)
	}
	// Anyone may name a process so; only root's is the daemon.
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d", pid), &st); err != nil || st.Uid != 0 {
		return fmt.Errorf("process %d listening on %s is not root's (%v)", pid, contract.SocketPath(), err)
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	// The pidfd turns readable when the process has exited.
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if n, err := unix.Poll(fds, int(time.Until(deadline).Milliseconds())+1); n > 0 || (err != nil && err != unix.EINTR) {
			return err
		}
	}
	return fmt.Errorf("process %d still there 10 s after SIGKILL", pid)
}
