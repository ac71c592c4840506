package inet

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/crash"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/netlock"
)

// Opener rebuilds the TCP and UDP sockets of an image in the restorer. It
// makes sure the image's network lock is in place before the first socket
// is rebuilt (after a kexec the lock is not there yet) and removes it in
// Close.
type Opener struct {
	tree *image.Tree
	// NetNS, if set, is the path of the network namespace (such as
	// /proc/PID/ns/net or /run/netns/NAME) in which sockets are created;
	// by default they are created in the restorer's own.
	NetNS string
	// Log receives warnings; nil means os.Stderr.
	Log *os.File

	early  map[*image.Socket]*os.File // listeners opened ahead of their connections
	opened map[*image.Socket]bool
	locks  map[string]*netlock.Lock
	locked bool
}

// NewOpener returns an Opener for the sockets of tree.
func NewOpener(tree *image.Tree) *Opener {
	return &Opener{tree: tree, early: map[*image.Socket]*os.File{}, opened: map[*image.Socket]bool{}, locks: map[string]*netlock.Lock{}}
}

// Open returns the restorer's descriptor for s, fully rebuilt.
func (o *Opener) Open(s *image.Socket) (*os.File, error) {
	if f := o.early[s]; f != nil {
		delete(o.early, s)
		return f, nil
	}
	if s.Inet == nil {
		return nil, fmt.Errorf("inet socket without state")
	}
	if !o.locked {
		o.locked = true
		if err := o.lock(); err != nil {
			return nil, err
		}
	}
	// A listener must be bound before the connections that share its port,
	// whose repair-mode binds do not conflict with it but would make its
	// own bind fail.
	if s.Inet.TCP != nil {
		for _, l := range o.listeners() {
			if !o.opened[l] && l.Inet.Local != nil && s.Inet.Local != nil && l.Inet.Local.Port == s.Inet.Local.Port {
				f, err := o.open(l)
				if err != nil {
					return nil, err
				}
				o.early[l] = f
			}
		}
	}
	return o.open(s)
}

func (o *Opener) open(s *image.Socket) (*os.File, error) {
	o.opened[s] = true
	var fd int
	err := o.inNetNS(func() error {
		var err error
		fd, err = build(s)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", describe(s), err)
	}
	f := os.NewFile(uintptr(fd), "socket")
	// The restorer's descriptor is made non-blocking only now, so that Go's
	// os.File never treats it as its own poller's.
	if fl := o.flags(s); fl&unix.O_NONBLOCK != 0 {
		unix.SetNonblock(fd, true)
	}
	return f, nil
}

// build creates and rebuilds one socket in the current network namespace.
func build(s *image.Socket) (int, error) {
	if s.Family != unix.AF_INET && s.Family != unix.AF_INET6 {
		return -1, fmt.Errorf("address family %d is not inet", s.Family)
	}
	isTCP := s.Type == unix.SOCK_STREAM && (s.Protocol == unix.IPPROTO_TCP || s.Protocol == unix.IPPROTO_MPTCP && s.Inet.State == "listen")
	isUDP := s.Type == unix.SOCK_DGRAM && s.Protocol == unix.IPPROTO_UDP
	if !isTCP && !isUDP {
		return -1, fmt.Errorf("socket type %d protocol %d is not supported", s.Type, s.Protocol)
	}
	fd, err := socketOf(s)
	if err != nil {
		return -1, err
	}
	if isTCP {
		err = restoreTCP(fd, s)
	} else {
		err = restoreUDP(fd, s)
	}
	if err != nil {
		// A half-built connection must vanish without a word.
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON)
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// socketOf creates the socket for s, belonging to the uid and gid that
// owned it (a socket belongs to the file system uid and gid that make it):
// the calling thread takes them for the call and is given its own back.
func socketOf(s *image.Socket) (int, error) {
	ow := s.Inet.Owner
	if ow != nil {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		// setfsuid and setfsgid return the previous id, never an error;
		// an invalid id (-1) changes nothing.
		oldGID, _, _ := unix.Syscall(unix.SYS_SETFSGID, uintptr(ow[1]), 0, 0)
		oldUID, _, _ := unix.Syscall(unix.SYS_SETFSUID, uintptr(ow[0]), 0, 0)
		defer func() {
			unix.Syscall(unix.SYS_SETFSUID, oldUID, 0, 0)
			unix.Syscall(unix.SYS_SETFSGID, oldGID, 0, 0)
		}()
		if now, _, _ := unix.Syscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0); uint32(now) != ow[0] {
			return -1, fmt.Errorf("socket of uid %d: setfsuid refused (it needs CAP_SETUID)", ow[0])
		}
	}
	fd, err := unix.Socket(s.Family, s.Type|unix.SOCK_CLOEXEC, s.Protocol)
	if err != nil && s.Protocol == unix.IPPROTO_MPTCP {
		// A kernel without MPTCP, or with net.mptcp.enabled=0: the
		// listener comes back as TCP, as Go's net.Listen itself falls
		// back when it cannot make an MPTCP socket.
		fd, err = unix.Socket(s.Family, s.Type|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	}
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	return fd, nil
}

// describe names a socket in errors.
func describe(s *image.Socket) string {
	p := "udp"
	switch s.Protocol {
	case unix.IPPROTO_TCP:
		p = "tcp"
	case unix.IPPROTO_MPTCP:
		p = "mptcp"
	}
	d := p + " " + s.Inet.State
	if a := s.Inet.Local; a != nil {
		d += fmt.Sprintf(" [%s]:%d", a.IP, a.Port)
	}
	if a := s.Inet.Peer; a != nil {
		d += fmt.Sprintf(" -> [%s]:%d", a.IP, a.Port)
	}
	return d
}

// listeners are the image's listening TCP sockets.
func (o *Opener) listeners() []*image.Socket {
	var ls []*image.Socket
	if o.tree == nil {
		return nil
	}
	for _, f := range o.tree.Files {
		if s := f.Socket(); s != nil && s.Inet != nil && s.Inet.State == "listen" {
			ls = append(ls, s)
		}
	}
	return ls
}

// flags are the file status flags the image records for s.
func (o *Opener) flags(s *image.Socket) int {
	if o.tree == nil {
		return 0
	}
	for _, f := range o.tree.Files {
		if f.Socket() == s {
			return f.Flags
		}
	}
	return 0
}

// inNetNS runs fn on a thread in the Opener's network namespace.
func (o *Opener) inNetNS(fn func() error) error {
	if o.NetNS == "" {
		return fn()
	}
	target, err := os.Open(o.NetNS)
	if err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	defer target.Close()
	return InNetNS(target, fn)
}

// InNetNS runs fn on a thread in the network namespace ns: the sockets fn
// makes live there.
func InNetNS(ns *os.File, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		// The thread is never unlocked: it dies with the goroutine, so no
		// other goroutine runs in the wrong namespace.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			done <- fmt.Errorf("unshare: %w", err)
			return
		}
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("enter network namespace %s: %w", ns.Name(), err)
			return
		}
		done <- crash.Call(fn)
	}()
	return <-done
}

// Close removes the network lock of the image: the restored sockets now
// receive their packets. It runs after success and after failure.
func (o *Opener) Close() {
	for _, f := range o.early {
		unix.SetsockoptInt(int(f.Fd()), unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON)
		f.Close()
	}
	o.early = map[*image.Socket]*os.File{}
	for _, l := range o.locks {
		if err := l.Remove(); err != nil {
			o.warn("%v (remove it with: nft delete chain inet %s %s)", err, netlock.TableName, l.Name())
		}
	}
	o.locks = map[string]*netlock.Lock{}
}

func (o *Opener) warn(format string, args ...any) {
	w := o.Log
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, "seamless: "+format+"\n", args...)
}
