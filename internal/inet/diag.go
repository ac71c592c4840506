package inet

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/sockdiag"
)

// inet_diag (linux/inet_diag.h): the request, and the offsets in struct
// inet_diag_msg of the inode and of the attributes, of which
// INET_DIAG_SHUTDOWN carries sk_shutdown.
const (
	inetDiagReqSize   = 56
	inetDiagMsgInode  = 68
	inetDiagMsgSize   = 72
	inetDiagShutdown  = 8
	shutdownReceive   = 1
	shutdownSend      = 2
	allInetDiagStates = 0xffffffff
)

// shutdownState reads the shutdown state of socket fd, a socket of family
// and protocol whose inode is ino, from inet_diag in its own network
// namespace: no socket option reports it.
func shutdownState(fd, family, proto int, ino uint64) (int, error) {
	nsfd, err := unix.IoctlRetInt(fd, unix.SIOCGSKNS)
	if err != nil {
		return 0, fmt.Errorf("network namespace of the socket: %w", err)
	}
	defer unix.Close(nsfd)
	req := make([]byte, inetDiagReqSize)
	req[0], req[1] = byte(family), byte(proto)
	binary.NativeEndian.PutUint32(req[4:], allInetDiagStates)
	found, shut := false, 0
	err = sockdiag.Dump(nsfd, req, func(b []byte) {
		if len(b) < inetDiagMsgSize || uint64(binary.NativeEndian.Uint32(b[inetDiagMsgInode:])) != ino {
			return
		}
		found = true
		sockdiag.Attrs(b[inetDiagMsgSize:], func(t uint16, v []byte) {
			if t == inetDiagShutdown && len(v) >= 1 {
				shut = int(v[0])
			}
		})
	})
	if err != nil {
		return 0, fmt.Errorf("shutdown state: %w", err)
	}
	if !found {
		return 0, fmt.Errorf("shutdown state: socket:[%d] not found by inet_diag", ino)
	}
	return shut, nil
}
