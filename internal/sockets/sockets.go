// Package sockets dispatches the checkpoint and restore of socket
// descriptors to the package of each address family: unixsock for
// AF_UNIX, inet for TCP and UDP over IPv4 and IPv6.
package sockets

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inet"
	"github.com/seamless-linux/seamless/internal/unixsock"
)

// Dumper checkpoints the sockets of one process tree.
type Dumper struct {
	Unix *unixsock.Dumper
	Inet *inet.Dumper
}

// NewDumper returns a Dumper for a tree; inTree reports its PIDs.
func NewDumper(inTree func(pid int) bool) *Dumper {
	return &Dumper{Unix: unixsock.NewDumper(inTree), Inet: inet.NewDumper(inTree)}
}

// Dump describes the socket that process pid holds as fd; local is the
// checkpointer's duplicate of it (pidfd_getfd), which Dump may keep.
func (d *Dumper) Dump(local *os.File, pid, fd int) (*image.Socket, error) {
	s, err := Check(local)
	if err != nil {
		return nil, err
	}
	switch s.Family {
	case unix.AF_UNIX:
		s.Unix, err = d.Unix.Dump(local, pid, fd, s)
	case unix.AF_INET, unix.AF_INET6:
		s.Inet, err = d.Inet.Dump(local, pid, fd, s)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Check reads what kind of socket local is (family, type, protocol) and
// refuses the kinds that are not carried: the decision that `seamless
// plan` and the checkpoint share, made before the socket's state is read.
func Check(local *os.File) (*image.Socket, error) {
	s := &image.Socket{}
	var err error
	if s.Family, err = unix.GetsockoptInt(int(local.Fd()), unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil {
		return nil, fmt.Errorf("socket family: %w", err)
	}
	if s.Type, err = unix.GetsockoptInt(int(local.Fd()), unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		return nil, fmt.Errorf("socket type: %w", err)
	}
	if s.Protocol, err = unix.GetsockoptInt(int(local.Fd()), unix.SOL_SOCKET, unix.SO_PROTOCOL); err != nil {
		return nil, fmt.Errorf("socket protocol: %w", err)
	}
	switch s.Family {
	case unix.AF_UNIX:
		return s, nil
	case unix.AF_INET, unix.AF_INET6:
		listening, _ := unix.GetsockoptInt(int(local.Fd()), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		return s, inet.CheckKind(s, listening != 0)
	}
	return nil, fmt.Errorf("%s socket: only unix, TCP and UDP sockets are carried", familyName(s))
}

// familyName names the address family of s, and for netlink its protocol.
func familyName(s *image.Socket) string {
	switch s.Family {
	case unix.AF_PACKET:
		return "packet (AF_PACKET)"
	case unix.AF_NETLINK:
		if name, ok := netlinkProtocols[s.Protocol]; ok {
			return "netlink (" + name + ")"
		}
		return fmt.Sprintf("netlink (protocol %d)", s.Protocol)
	case unix.AF_VSOCK:
		return "vsock (AF_VSOCK)"
	case unix.AF_ALG:
		return "kernel crypto (AF_ALG)"
	case unix.AF_BLUETOOTH:
		return "Bluetooth (AF_BLUETOOTH)"
	case unix.AF_XDP:
		return "XDP (AF_XDP)"
	}
	return fmt.Sprintf("address family %d", s.Family)
}

// netlinkProtocols names the common netlink protocols.
var netlinkProtocols = map[int]string{
	unix.NETLINK_ROUTE: "NETLINK_ROUTE", unix.NETLINK_SOCK_DIAG: "NETLINK_SOCK_DIAG",
	unix.NETLINK_AUDIT: "NETLINK_AUDIT", unix.NETLINK_KOBJECT_UEVENT: "NETLINK_KOBJECT_UEVENT",
	unix.NETLINK_GENERIC: "NETLINK_GENERIC", unix.NETLINK_NETFILTER: "NETLINK_NETFILTER",
	unix.NETLINK_XFRM: "NETLINK_XFRM", unix.NETLINK_CONNECTOR: "NETLINK_CONNECTOR",
	unix.NETLINK_SELINUX: "NETLINK_SELINUX",
}

// Finish completes what needs every socket of the tree to be known (peers
// of unix socket pairs), once all processes are dumped.
func (d *Dumper) Finish() error {
	if err := d.Unix.Finish(); err != nil {
		return err
	}
	return d.Inet.Finish()
}

// Close releases the checkpointer's duplicates. kill reports whether the
// tree is about to be killed (connections then must close silently).
func (d *Dumper) Close(kill bool) {
	d.Unix.Close(kill)
	d.Inet.Close(kill)
}

// Opener rebuilds sockets in the restorer, to be handed to the processes.
type Opener struct {
	Unix *unixsock.Opener
	Inet *inet.Opener
}

// NewOpener returns an Opener for the sockets of tree.
func NewOpener(tree *image.Tree) *Opener {
	return &Opener{Unix: unixsock.NewOpener(tree), Inet: inet.NewOpener(tree)}
}

// Open returns the restorer's descriptor for s.
func (o *Opener) Open(s *image.Socket) (*os.File, error) {
	switch {
	case s.Unix != nil:
		return o.Unix.Open(s)
	case s.Inet != nil:
		return o.Inet.Open(s)
	}
	return nil, fmt.Errorf("socket of family %d has no state in the image", s.Family)
}

// Close releases the restorer's copies.
func (o *Opener) Close() {
	o.Unix.Close()
	o.Inet.Close()
}
