package inet

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/netlock"
	"github.com/seamless-linux/seamless/internal/proc"
	"github.com/seamless-linux/seamless/internal/sockdiag"
)

// A Door is closed on the TCP listeners of processes about to be
// checkpointed. Connections waiting in a listener's accept queue cannot be
// carried (no interface puts them back into a queue), and a busy server
// always has some: under a few thousand new connections a second, every
// checkpoint would find its queue non-empty. So, while the processes still
// run, the network lock first drops new connection requests (SYNs) to the
// listeners' ports (their clients retry, as they do across the gap of the
// checkpoint), Drain lets the service accept what is already queued or
// half-open, and only then are the processes frozen. The checkpoint then
// adds its own lock, which holds the same ports, and Open removes the
// door's chain once the checkpoint has succeeded or failed.
type Door struct {
	locks []*netlock.Lock
	ports []doorPort
}

// doorPort is a listener whose queue Drain waits on.
type doorPort struct {
	netns uint64 // network namespace inode
	nsfd  *os.File
	local netip.AddrPort
	name  string // for messages: "process P fd F (ADDR)"
}

// CloseDoor drops new connection requests to every TCP (and MPTCP)
// listener that the processes pids hold, in their network namespaces. It
// returns a Door whose Open the caller must call. Processes whose
// descriptors cannot be read (gone meanwhile) are skipped: their
// checkpoint fails on its own.
func CloseDoor(pids []int) (*Door, error) {
	d := &Door{}
	nsFiles := map[uint64]*os.File{}
	var flows = map[uint64][]netlock.Flow{}
	seen := map[uint64]bool{}
	for _, pid := range pids {
		ents, err := os.ReadDir(proc.Path(pid, "fd"))
		if err != nil {
			continue
		}
		pidfd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue
		}
		for _, e := range ents {
			l, _ := os.Readlink(proc.Path(pid, "fd", e.Name()))
			if !strings.HasPrefix(l, "socket:[") {
				continue
			}
			ino, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]"), 10, 64)
			if seen[ino] {
				continue
			}
			seen[ino] = true
			fd, _ := strconv.Atoi(e.Name())
			p, f, err := listenerOf(pidfd, fd)
			if err != nil || f == nil {
				continue
			}
			if nsFiles[p.netns] == nil {
				nsFiles[p.netns] = p.nsfd
			} else {
				p.nsfd.Close()
				p.nsfd = nsFiles[p.netns]
			}
			p.name = fmt.Sprintf("process %d fd %d (%s)", pid, fd, p.local)
			d.ports = append(d.ports, *p)
			flows[p.netns] = append(flows[p.netns], *f)
		}
		unix.Close(pidfd)
	}
	if netlock.Disabled() {
		return d, nil
	}
	name := doorName()
	for ns, fl := range flows {
		l, err := netlock.Open(nsFiles[ns], name)
		if err != nil {
			d.Open()
			return nil, fmt.Errorf("close the door of the listeners: %w", err)
		}
		d.locks = append(d.locks, l)
		if err := l.Replace(fl); err != nil {
			d.Open()
			return nil, fmt.Errorf("close the door of the listeners: %w", err)
		}
	}
	return d, nil
}

// doorName is a fresh chain name for a door (the checkpoint's own chains
// are "lock-...").
func doorName() string {
	var b [6]byte
	rand.Read(b[:])
	return "door-" + hex.EncodeToString(b[:])
}

// listenerOf describes descriptor fd of the process pidfd when it is a
// listening TCP or MPTCP socket: where it listens, and the flow that closes
// its door. It returns nil for any other descriptor.
func listenerOf(pidfd, fd int) (*doorPort, *netlock.Flow, error) {
	lfd, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(lfd)
	family, err := unix.GetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil || (family != unix.AF_INET && family != unix.AF_INET6) {
		return nil, nil, err
	}
	proto, _ := unix.GetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if proto != unix.IPPROTO_TCP && proto != unix.IPPROTO_MPTCP {
		return nil, nil, nil
	}
	if on, _ := unix.GetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); on == 0 {
		return nil, nil, nil
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		return nil, nil, err
	}
	local, _ := addrPort(sa)
	if !local.IsValid() {
		return nil, nil, nil
	}
	dual := false
	if family == unix.AF_INET6 {
		v6only, _ := unix.GetsockoptInt(lfd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
		dual = v6only == 0
	}
	nsfd, err := unix.IoctlRetInt(lfd, unix.SIOCGSKNS)
	if err != nil {
		return nil, nil, fmt.Errorf("network namespace of the socket: %w", err)
	}
	var st unix.Stat_t
	unix.Fstat(nsfd, &st)
	p := &doorPort{netns: st.Ino, nsfd: os.NewFile(uintptr(nsfd), "netns"), local: local}
	return p, &netlock.Flow{Proto: unix.IPPROTO_TCP, Local: local, SYNOnly: true, AnyFamily: dual}, nil
}

// ErrBusy is wrapped by Drain's error when a listener still had
// connections waiting when the time was up.
var ErrBusy = errors.New("connections still waiting to be accepted")

// Drain waits, for at most timeout, until no connection waits in the
// accept queue of a listener behind the door, nor is half-open on its
// port (a handshake under way before the door closed completes into the
// queue): the service accepts them meanwhile. The processes must run.
func (d *Door) Drain(timeout time.Duration) error {
	if len(d.ports) == 0 {
		return nil
	}
	end := time.Now().Add(timeout)
	calm := 0
	for {
		busy, err := d.busy()
		if err != nil {
			return err
		}
		if busy == "" {
			// Twice in a row: a handshake's last ACK may be on its way.
			if calm++; calm >= 2 {
				return nil
			}
		} else {
			calm = 0
		}
		if time.Now().After(end) {
			return fmt.Errorf("%s: %w after %v", busy, ErrBusy, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// busy names a listener that has connections waiting or half-open, or
// returns "".
func (d *Door) busy() (string, error) {
	byNS := map[uint64][]doorPort{}
	for _, p := range d.ports {
		byNS[p.netns] = append(byNS[p.netns], p)
	}
	for _, ports := range byNS {
		waiting := map[netip.AddrPort]int{}
		halfOpen := map[uint16]int{}
		for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
			err := diagTCP(int(ports[0].nsfd.Fd()), family, 1<<tcpListen|1<<tcpSynRecv, func(state int, local netip.AddrPort, rq, _ uint32) {
				switch state {
				case tcpSynRecv, tcpNewSynRecv:
					halfOpen[local.Port()]++
				case tcpListen:
					if rq > 0 {
						waiting[local] += int(rq)
					}
				}
			})
			if err != nil {
				return "", fmt.Errorf("accept queues: %w", err)
			}
		}
		for _, p := range ports {
			port := p.local.Port()
			if n := halfOpen[port]; n > 0 {
				return fmt.Sprintf("%s has %d connections half-open", p.name, n), nil
			}
			for a, n := range waiting {
				if a.Port() == port && (a.Addr() == p.local.Addr().Unmap() || p.local.Addr().IsUnspecified() || a.Addr().IsUnspecified()) {
					return fmt.Sprintf("%s has %d connections waiting in its accept queue", p.name, n), nil
				}
			}
		}
	}
	return "", nil
}

// diagTCP lists the TCP sockets of family in the states of the mask
// states (1<<state) in the network namespace nsfd, with their local
// address, receive and send queue fields (for a listener: the connections
// waiting to be accepted, and the backlog).
func diagTCP(nsfd, family int, states uint32, fn func(state int, local netip.AddrPort, rq, wq uint32)) error {
	req := make([]byte, inetDiagReqSize)
	req[0], req[1] = byte(family), unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(req[4:], states)
	return sockdiag.Dump(nsfd, req, func(b []byte) {
		if len(b) < inetDiagMsgSize {
			return
		}
		local := netip.AddrPortFrom(diagAddr(family, b[8:24]), binary.BigEndian.Uint16(b[4:]))
		fn(int(b[1]), local, binary.NativeEndian.Uint32(b[56:]), binary.NativeEndian.Uint32(b[60:]))
	})
}

// diagAddr is the address in an inet_diag_sockid's 16-byte field.
func diagAddr(family int, b []byte) netip.Addr {
	if family == unix.AF_INET {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16([16]byte(b[:16])).Unmap()
}

// Open removes the door: the checkpoint's own lock holds the ports of what
// it carried. It closes the Door's namespace descriptors.
func (d *Door) Open() {
	if d == nil {
		return
	}
	for _, l := range d.locks {
		if err := l.Remove(); err != nil {
			fmt.Fprintf(os.Stderr, "seamless: %v (remove it with: nft delete chain inet %s %s)\n", err, netlock.TableName, l.Name())
		}
	}
	d.locks = nil
	closed := map[*os.File]bool{}
	for _, p := range d.ports {
		if !closed[p.nsfd] {
			p.nsfd.Close()
			closed[p.nsfd] = true
		}
	}
	d.ports = nil
}
