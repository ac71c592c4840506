package inet

import (
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TCP_REPAIR_QUEUE values (linux/tcp.h).
const (
	tcpNoQueue   = 0
	tcpRecvQueue = 1
	tcpSendQueue = 2
)

// TCP states (linux/tcp_states.h).
const (
	tcpEstablished = 1
	tcpSynSent     = 2
	tcpSynRecv     = 3
	tcpFinWait1    = 4
	tcpFinWait2    = 5
	tcpTimeWait    = 6
	tcpClose       = 7
	tcpCloseWait   = 8
	tcpLastAck     = 9
	tcpListen      = 10
	tcpClosing     = 11
	// tcpNewSynRecv is a request socket (a handshake under way).
	tcpNewSynRecv = 12
)

var tcpStateNames = map[int]string{
	tcpEstablished: "established", tcpSynSent: "syn-sent", tcpSynRecv: "syn-recv",
	tcpFinWait1: "fin-wait1", tcpFinWait2: "fin-wait2", tcpTimeWait: "time-wait",
	tcpClose: "close", tcpCloseWait: "close-wait", tcpLastAck: "last-ack",
	tcpListen: "listen", tcpClosing: "closing",
}

// tcpStateByName is the inverse of tcpStateNames.
func tcpStateByName(name string) (int, bool) {
	for k, v := range tcpStateNames {
		if v == name {
			return k, true
		}
	}
	return 0, false
}

// tcpInfo is the head of struct tcp_info that seamless reads.
type tcpInfo struct {
	state, options       uint8
	sndWscale, rcvWscale int
	unacked, sacked      uint32
	// segments is tcpi_segs_out + tcpi_segs_in (0 on kernels before 4.2):
	// a closed socket with segments was a connection.
	segments uint64
}

// getTCPInfo reads TCP_INFO; x/sys's TCPInfo lacks the window-scale byte.
func getTCPInfo(fd int) (*tcpInfo, error) {
	var b [144]byte
	n := uint32(len(b))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&n)), 0); e != 0 {
		return nil, fmt.Errorf("TCP_INFO: %w", e)
	}
	if n < 32 {
		return nil, fmt.Errorf("TCP_INFO: short answer (%d bytes)", n)
	}
	le := func(o int) uint32 { return *(*uint32)(unsafe.Pointer(&b[o])) }
	ti := &tcpInfo{state: b[0], options: b[5], sndWscale: int(b[6] & 0xf), rcvWscale: int(b[6] >> 4),
		unacked: le(24), sacked: le(28)}
	if n >= 144 {
		ti.segments = uint64(le(136)) + uint64(le(140))
	}
	return ti, nil
}

// tcpRepairWindow is struct tcp_repair_window.
type tcpRepairWindow struct {
	SndWl1, SndWnd, MaxWindow, RcvWnd, RcvWup uint32
}

func getRepairWindow(fd int) (*tcpRepairWindow, error) {
	var w tcpRepairWindow
	n := uint32(unsafe.Sizeof(w))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW,
		uintptr(unsafe.Pointer(&w)), uintptr(unsafe.Pointer(&n)), 0); e != 0 {
		return nil, e
	}
	return &w, nil
}

func setRepairWindow(fd int, w *tcpRepairWindow) error {
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW,
		uintptr(unsafe.Pointer(w)), unsafe.Sizeof(*w), 0); e != 0 {
		return e
	}
	return nil
}

// ioctlInt runs an ioctl that returns an int (SIOCINQ, SIOCOUTQ...).
func ioctlInt(fd int, req uint) (int, error) {
	return unix.IoctlGetInt(fd, req)
}

// addrPort converts a socket address; nil stays invalid.
func addrPort(sa unix.Sockaddr) (netip.AddrPort, string) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), ""
	case *unix.SockaddrInet6:
		zone := ""
		if a.ZoneId != 0 {
			if ifi, err := interfaceName(int(a.ZoneId)); err == nil {
				zone = ifi
			}
		}
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)), zone
	}
	return netip.AddrPort{}, ""
}

// sockaddr builds the socket address of ap for a socket of family.
func sockaddr(family int, ap netip.AddrPort, zone string) (unix.Sockaddr, error) {
	if family == unix.AF_INET {
		a := ap.Addr().Unmap()
		if !a.Is4() {
			return nil, fmt.Errorf("address %s is not IPv4", ap)
		}
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}, nil
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	if zone != "" {
		idx, err := interfaceIndex(zone)
		if err != nil {
			return nil, err
		}
		sa.ZoneId = uint32(idx)
	}
	return sa, nil
}

// netnsInode is the inode of the network namespace of pid.
func netnsInode(pid int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err != nil {
		return 0, fmt.Errorf("network namespace of %d: %w", pid, err)
	}
	return st.Ino, nil
}
