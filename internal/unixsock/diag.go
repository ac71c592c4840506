package unixsock

import (
	"encoding/binary"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/sockdiag"
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
	req := make([]byte, 24)
	req[0] = unix.AF_UNIX
	binary.NativeEndian.PutUint32(req[4:], 0xffffffff) // every state
	binary.NativeEndian.PutUint32(req[12:], udiagShowName|udiagShowVFS|udiagShowPeer|udiagShowIcons|udiagShowRQLen)
	out := map[uint64]*diagInfo{}
	err := sockdiag.Dump(nsfd, req, func(b []byte) {
		if d := parseDiag(b); d != nil {
			out[d.ino] = d
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func parseDiag(b []byte) *diagInfo {
	if len(b) < 16 {
		return nil
	}
	d := &diagInfo{typ: int(b[1]), state: int(b[2]), ino: uint64(binary.NativeEndian.Uint32(b[4:]))}
	sockdiag.Attrs(b[16:], func(t uint16, v []byte) {
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
	})
	return d
}
