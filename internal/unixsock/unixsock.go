package unixsock

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/sockopt"
)

// Dumper checkpoints the unix sockets of one process tree. Dump records
// what the socket itself tells (address, options, receive queue); Finish
// resolves peers, accept queues and outside peers with sock_diag once
// every socket of the tree is known.
type Dumper struct {
	inTree func(int) bool
	socks  []*dumped
	byIno  map[uint64]*dumped
	netns  map[uint64]int // network namespace inode -> a descriptor for it
}

// dumped is one socket description of the tree.
type dumped struct {
	local   *os.File
	pid, fd int
	typ     int
	ns      uint64
	hasPeer bool // getpeername succeeds: connected (the peer may be dead)
	u       *image.UnixSocket
}

func (d *dumped) errorf(format string, a ...any) error {
	return fmt.Errorf("process %d fd %d: unix socket socket:[%d]: %s", d.pid, d.fd, d.u.Inode, fmt.Sprintf(format, a...))
}

// NewDumper returns a Dumper; inTree reports the PIDs of the tree.
func NewDumper(inTree func(int) bool) *Dumper {
	return &Dumper{inTree: inTree, byIno: map[uint64]*dumped{}, netns: map[uint64]int{}}
}

// Dump describes the socket that process pid holds as fd. local is the
// checkpointer's duplicate of it; the Dumper keeps it until Close. The
// process must be stopped: its receive queue is read (without consuming
// it) here.
func (d *Dumper) Dump(local *os.File, pid, fd int, s *image.Socket) (*image.UnixSocket, error) {
	lfd := int(local.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(lfd, &st); err != nil {
		local.Close()
		return nil, fmt.Errorf("stat: %w", err)
	}
	x := &dumped{local: local, pid: pid, fd: fd, typ: s.Type, u: &image.UnixSocket{Inode: st.Ino}}
	d.socks = append(d.socks, x)
	d.byIno[st.Ino] = x
	switch s.Type {
	case unix.SOCK_STREAM, unix.SOCK_DGRAM, unix.SOCK_SEQPACKET:
	default:
		return nil, fmt.Errorf("unix socket type %d is not supported", s.Type)
	}
	if nsfd, err := unix.IoctlRetInt(lfd, unix.SIOCGSKNS); err == nil {
		var ns unix.Stat_t
		if unix.Fstat(nsfd, &ns) == nil {
			x.ns = ns.Ino
		}
		if _, ok := d.netns[x.ns]; ok || x.ns == 0 {
			unix.Close(nsfd)
		} else {
			d.netns[x.ns] = nsfd
		}
	}
	var err error
	if x.u.Name, err = sockname(lfd, false); err != nil {
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	if x.u.Options, err = readOptions(lfd, s.Type); err != nil {
		return nil, err
	}
	if prog, locked, err := sockopt.ReadFilter(lfd); err != nil {
		return nil, err
	} else if prog != nil {
		s.Filter = &image.SocketFilter{Prog: prog, Locked: locked}
	}
	listening, _ := unix.GetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if listening != 0 {
		return x.u, nil // its queue holds connections, not data
	}
	_, err = sockname(lfd, true)
	x.hasPeer = err == nil
	if s.Type != unix.SOCK_DGRAM && !x.hasPeer {
		return x.u, nil // not connected: nothing can be queued
	}
	o := x.u.Options
	if x.u.Queue, err = peekQueue(lfd, s.Type, o.PassCred || o.PassPidfd); err != nil {
		return nil, err
	}
	return x.u, nil
}

// Finish resolves, for every socket dumped, its state, its peer (in the
// tree, gone, or outside the tree), the accept queue of listeners and the
// socket file of path names.
func (d *Dumper) Finish() error {
	if len(d.socks) == 0 {
		return nil
	}
	info, err := d.diagAll()
	if err != nil {
		return err
	}
	// Which listener (anywhere in the namespace) holds which connection.
	waiting := map[uint64]uint64{}
	for _, in := range info {
		for _, c := range in.icons {
			waiting[c] = in.ino
		}
	}
	for _, x := range d.socks {
		in := info[x.u.Inode]
		if in == nil {
			return x.errorf("not found by sock_diag")
		}
		if err := d.resolve(x, in, info, waiting); err != nil {
			return err
		}
	}
	return nil
}

// diagAll reads sock_diag in every network namespace the tree's sockets
// live in.
func (d *Dumper) diagAll() (map[uint64]*diagInfo, error) {
	var self unix.Stat_t
	unix.Stat("/proc/self/ns/net", &self)
	need := map[uint64]bool{}
	for _, x := range d.socks {
		need[x.ns] = true
	}
	all := map[uint64]*diagInfo{}
	for ns := range need {
		nsfd := -1
		if fd, ok := d.netns[ns]; ok && ns != self.Ino {
			nsfd = fd
		}
		m, err := diagDump(nsfd)
		if err != nil {
			return nil, fmt.Errorf("unix sockets: %w", err)
		}
		for k, v := range m {
			all[k] = v
		}
	}
	return all, nil
}

func (d *Dumper) resolve(x *dumped, in *diagInfo, info map[uint64]*diagInfo, waiting map[uint64]uint64) error {
	u := x.u
	u.Shutdown = in.shutdown
	state := in.state
	if x.typ == unix.SOCK_DGRAM {
		// connect(2) marks both datagram sockets established, even the
		// one that is not connected back: only getpeername tells.
		state = tcpEstablished
		if !x.hasPeer {
			state = 0
		}
	}
	switch state {
	case tcpListen:
		u.State = image.UnixListening
		u.Backlog = int(in.wqueue)
		for _, c := range in.icons {
			if d.byIno[c] != nil {
				u.Pending = append(u.Pending, c)
			} else {
				u.DroppedPending++
			}
		}
	case tcpEstablished:
		u.State = image.UnixConnected
		switch {
		case in.peer != 0 && d.byIno[in.peer] != nil:
			u.Peer = in.peer
		case in.peer != 0:
			u.External = d.external(x, in.peer)
		case x.typ == unix.SOCK_DGRAM || in.shutdown == 3:
			// Stream and seqpacket: a closed peer shuts both directions.
			u.PeerGone = true
		case d.byIno[waiting[u.Inode]] != nil:
			u.State = image.UnixPending
			u.Listener = waiting[u.Inode]
			if in.wqueue > 0 {
				return x.errorf("its connection waits in the accept queue of %q with %d bytes of data that no process has read; they cannot be read without accepting it",
					image.UnixName(d.byIno[u.Listener].u.Name), in.wqueue)
			}
		default:
			// Waiting in the accept queue of a listener outside the tree.
			u.State = image.UnixPending
			u.External = d.external(x, waiting[u.Inode])
		}
	default:
		u.State = image.UnixUnconnected
	}
	// A connection that comes back closed by its peer gets its queue back
	// from a stand-in peer; a datagram socket connected again by name
	// would get it from a stranger, or not at all.
	if u.External != nil && len(u.Queue) > 0 && ExternalFate(x.typ, u.External, false) != Closed {
		return x.errorf("%d unread messages from the peer %q outside the tree are queued; they cannot be replayed into a new connection",
			len(u.Queue), u.External.Key)
	}
	if isPath(u.Name) {
		return d.resolvePath(x, in)
	}
	return nil
}

// resolvePath describes the socket file of x, bound to a path: its owner
// and mode, or that it was unlinked. A relative path was resolved in the
// working directory of the process that bound it: the socket file must be
// there still, so that the restore knows the directory.
func (d *Dumper) resolvePath(x *dumped, in *diagInfo) error {
	u := x.u
	name := string(u.Name)
	base := filepath.Join("/proc", strconv.Itoa(x.pid), "root")
	relative := name[0] != '/'
	if relative {
		base = filepath.Join("/proc", strconv.Itoa(x.pid), "cwd")
	}
	var st unix.Stat_t
	if unix.Lstat(filepath.Join(base, name), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK || !in.hasVFS || st.Ino != in.vfsIno {
		if relative {
			return x.errorf("bound to the relative path %q, whose socket file is not in the working directory of process %d (it was removed, or the process changed directory): the directory it was bound in is unknown", name, x.pid)
		}
		u.Path = &image.UnixPath{Unlinked: true}
		return nil
	}
	u.Path = &image.UnixPath{Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid}
	if relative {
		cwd, err := os.Readlink(base)
		if err != nil {
			return x.errorf("working directory of process %d: %v", x.pid, err)
		}
		u.Path.Dir = cwd
	}
	return nil
}

// external describes the peer of x, which is outside the tree.
func (d *Dumper) external(x *dumped, peerIno uint64) *image.UnixExternal {
	name, _ := sockname(int(x.local.Fd()), true)
	e := &image.UnixExternal{Name: name, Key: image.UnixName(name)}
	if e.Key == "" {
		e.Key = fmt.Sprintf("socket:[%d]", peerIno)
	}
	return e
}

// Close releases the Dumper's duplicates. The tree's sockets live on in
// the tree (kill=false) or close with it (kill=true); nothing else is
// needed either way.
func (d *Dumper) Close(kill bool) {
	for _, x := range d.socks {
		x.local.Close()
	}
	for _, fd := range d.netns {
		unix.Close(fd)
	}
	d.socks, d.byIno, d.netns = nil, map[uint64]*dumped{}, map[uint64]int{}
}
