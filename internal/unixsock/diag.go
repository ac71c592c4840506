package unixsock

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// sock_diag for AF_UNIX (linux/unix_diag.h); golang.org/x/sys does not
// define these.
const (
	udiagShowName  = 0x01
	udiagShowVFS   = 0x02
	udiagShowPeer  = 0x04
	udiagShowIcons = 0x08
	udiagShowRQLen = 0x10

	unixDiagName     = 0
	unixDiagVFS      = 1
	unixDiagPeer     = 2
	unixDiagIcons    = 3
	unixDiagRQLen    = 4
	unixDiagShutdown = 6

	tcpEstablished = 1
	tcpListen      = 10
)

// diagInfo is what sock_diag reports about one unix socket.
type diagInfo struct {
	ino      uint64
	typ      int
	state    int
	name     []byte
	vfsIno   uint64
	vfsDev   uint32
	hasVFS   bool
	peer     uint64
	icons    []uint64
	rqueue   uint32 // bytes queued to it; for a listener, connections waiting
	wqueue   uint32 // bytes it sent not yet read; for a listener, the backlog
	shutdown int
}

// diagDump lists every unix socket of the network namespace that nsfd
// refers to (-1: the caller's own), indexed by inode.
func diagDump(nsfd int) (map[uint64]*diagInfo, error) {
	fd, err := diagSocket(nsfd)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	req := make([]byte, unix.NLMSG_HDRLEN+24)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], 1)
	r := req[unix.NLMSG_HDRLEN:]
	r[0] = unix.AF_UNIX
	binary.NativeEndian.PutUint32(r[4:], 0xffffffff) // every state
	binary.NativeEndian.PutUint32(r[12:], udiagShowName|udiagShowVFS|udiagShowPeer|udiagShowIcons|udiagShowRQLen)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag request: %w", err)
	}
	out := map[uint64]*diagInfo{}
	buf := make([]byte, 1<<20)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sock_diag reply: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("sock_diag reply: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
						return nil, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
					}
				}
				return out, nil
			case unix.SOCK_DIAG_BY_FAMILY:
				if d := parseDiag(m.Data); d != nil {
					out[d.ino] = d
				}
			}
		}
	}
}

func parseDiag(b []byte) *diagInfo {
	if len(b) < 16 {
		return nil
	}
	d := &diagInfo{typ: int(b[1]), state: int(b[2]), ino: uint64(binary.NativeEndian.Uint32(b[4:]))}
	for a := b[16:]; len(a) >= 4; {
		l := int(binary.NativeEndian.Uint16(a))
		t := binary.NativeEndian.Uint16(a[2:]) & 0x3fff
		if l < 4 || l > len(a) {
			break
		}
		v := a[4:l]
		switch t {
		case unixDiagName:
			d.name = append([]byte(nil), v...)
		case unixDiagVFS:
			if len(v) >= 8 {
				d.vfsIno = uint64(binary.NativeEndian.Uint32(v))
				d.vfsDev = binary.NativeEndian.Uint32(v[4:])
				d.hasVFS = true
			}
		case unixDiagPeer:
			if len(v) >= 4 {
				d.peer = uint64(binary.NativeEndian.Uint32(v))
			}
		case unixDiagIcons:
			for i := 0; i+4 <= len(v); i += 4 {
				d.icons = append(d.icons, uint64(binary.NativeEndian.Uint32(v[i:])))
			}
		case unixDiagRQLen:
			if len(v) >= 8 {
				d.rqueue = binary.NativeEndian.Uint32(v)
				d.wqueue = binary.NativeEndian.Uint32(v[4:])
			}
		case unixDiagShutdown:
			if len(v) >= 1 {
				d.shutdown = int(v[0])
			}
		}
		step := (l + 3) &^ 3
		if step > len(a) {
			break
		}
		a = a[step:]
	}
	return d
}

// diagSocket opens a NETLINK_SOCK_DIAG socket in the network namespace
// nsfd (-1: the current one). sock_diag only sees sockets of the namespace
// its own socket lives in, so for another namespace one locked thread
// enters it just long enough to create the socket.
func diagSocket(nsfd int) (int, error) {
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
