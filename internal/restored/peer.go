package restored

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// peer is the process at the other end of an anchor's connection, pinned
// by a pidfd. SO_PEERCRED names the process that connected, by PID; that
// process may have exited since and its PID gone to another. The pidfd
// makes the PID safe to use: while it refers to a live process, no other
// process can have that PID, so what /proc and systemd say about the PID
// between pinning and the last alive() is said about the peer.
type peer struct {
	pid, uid int
	pidfd    int
	// pinned is how long pinning it took (for the daemon's log).
	pinned time.Duration
}

// usePeerPIDFD is false to test the way of kernels before 6.5.
var usePeerPIDFD = true

// peerOf pins the process that holds the other end of c. With
// SO_PEERPIDFD (Linux 6.5) the kernel hands the pidfd of the process that
// connected. Before that, the PID of SO_PEERCRED is opened as a pidfd and
// accepted only if that process holds the peer socket of c among its
// descriptors: a process that took the PID over after the one that
// connected exited does not.
func peerOf(c *net.UnixConn, proc *os.File) (*peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var credErr, pidfdErr error
	pidfd := -1
	var ino uint64
	raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		pidfd, pidfdErr = -1, unix.ENOPROTOOPT
		if usePeerPIDFD {
			pidfd, pidfdErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
		}
		var st unix.Stat_t
		if unix.Fstat(int(fd), &st) == nil {
			ino = st.Ino
		}
	})
	if credErr != nil {
		return nil, fmt.Errorf("peer credentials: %w", credErr)
	}
	p := &peer{pid: int(cred.Pid), uid: int(cred.Uid), pidfd: pidfd}
	if cred.Pid <= 0 {
		return nil, fmt.Errorf("the peer has no PID in this PID namespace")
	}
	if pidfdErr == nil {
		unix.CloseOnExec(pidfd)
		return p, nil
	}
	if !errors.Is(pidfdErr, unix.ENOPROTOOPT) {
		return nil, fmt.Errorf("pidfd of process %d: %w", p.pid, pidfdErr)
	}
	if p.pidfd, err = unix.PidfdOpen(p.pid, 0); err != nil {
		return nil, fmt.Errorf("process %d, which connected, is gone: %w", p.pid, err)
	}
	peerIno, err := unixPeerInode(ino)
	if err == nil {
		err = holdsSocket(proc, p.pid, peerIno)
	}
	if err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// alive reports whether the pinned process still runs (so its PID is
// still its own).
func (p *peer) alive() bool {
	return unix.PidfdSendSignal(p.pidfd, 0, nil, 0) == nil
}

func (p *peer) close() {
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
		p.pidfd = -1
	}
}

// holdsSocket checks that process pid has the unix socket of inode ino
// among its descriptors.
func holdsSocket(proc *os.File, pid int, ino uint64) error {
	fd, err := unix.Openat(int(proc.Fd()), strconv.Itoa(pid)+"/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("descriptors of process %d: %w", pid, err)
	}
	dir := os.NewFile(uintptr(fd), "fd")
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("descriptors of process %d: %w", pid, err)
	}
	want := "socket:[" + strconv.FormatUint(ino, 10) + "]"
	buf := make([]byte, 64)
	for _, n := range names {
		k, err := unix.Readlinkat(fd, n, buf)
		if err == nil && string(buf[:k]) == want {
			return nil
		}
	}
	return fmt.Errorf("process %d does not hold the connection it is named for (its PID went to another process?)", pid)
}

// unixPeerInode asks sock_diag for the inode of the peer of the unix
// socket of inode ino (of this network namespace).
func unixPeerInode(ino uint64) (uint64, error) {
	const (
		udiagShowPeer = 0x04
		unixDiagPeer  = 2
	)
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	defer unix.Close(fd)
	// struct unix_diag_req: family, protocol, pad, states, ino, show,
	// cookie (~0: any).
	req := make([]byte, unix.NLMSG_HDRLEN+24)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(req[8:], 1)
	r := req[unix.NLMSG_HDRLEN:]
	r[0] = unix.AF_UNIX
	binary.NativeEndian.PutUint32(r[4:], 0xffffffff)
	binary.NativeEndian.PutUint32(r[8:], uint32(ino))
	binary.NativeEndian.PutUint32(r[12:], udiagShowPeer)
	binary.NativeEndian.PutUint32(r[16:], 0xffffffff)
	binary.NativeEndian.PutUint32(r[20:], 0xffffffff)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	buf := make([]byte, 8192)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return 0, fmt.Errorf("sock_diag: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4 {
			if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
				return 0, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
			}
		}
		if m.Header.Type != unix.SOCK_DIAG_BY_FAMILY || len(m.Data) < 16 {
			continue
		}
		for a := m.Data[16:]; len(a) >= 4; {
			l := int(binary.NativeEndian.Uint16(a))
			if l < 4 || l > len(a) {
				break
			}
			if binary.NativeEndian.Uint16(a[2:])&0x3fff == unixDiagPeer && l >= 8 {
				return uint64(binary.NativeEndian.Uint32(a[4:])), nil
			}
			a = a[min((l+3)&^3, len(a)):]
		}
	}
	return 0, fmt.Errorf("sock_diag: no peer for socket %d", ino)
}

// peerPIDFDWorks reports whether this kernel has SO_PEERPIDFD (Linux 6.5),
// with which pinning a peer needs no sock_diag.
func peerPIDFDWorks() bool {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	pidfd, err := unix.GetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	if err != nil {
		return false
	}
	unix.Close(pidfd)
	return true
}
