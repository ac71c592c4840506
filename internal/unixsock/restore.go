package unixsock

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/sockopt"
)

// Opener rebuilds the unix sockets of a tree in the restorer. All of them
// are built together on the first Open, because a connection needs both of
// its ends, a listener must exist before the connections waiting in its
// accept queue, and queued data is written by the peer of the socket that
// will read it.
type Opener struct {
	// External maps the key of a peer outside the tree (UnixExternal.Key:
	// a path, "@name" for an abstract name, or "socket:[INODE]" for an
	// unnamed peer) to a replacement: a socket, already connected to the
	// new system's equivalent of that peer, that the restored processes
	// get instead. The Opener passes duplicates and never closes these.
	// Without an entry, a datagram connection is made again to the peer's
	// name and any other comes back closed by its peer (see ExternalFate).
	External map[string]*os.File
	// Warnings says what came back different: connections to peers outside
	// the tree that come back closed.
	Warnings []string

	tree    *image.Tree
	built   bool
	err     error
	order   []*rsock
	byIno   map[uint64]*rsock
	bySock  map[*image.Socket]*rsock
	cleanup []func()
	aside   int
	holder  map[uint64]string // "process P fd F" by socket inode
}

// rsock is one socket being rebuilt.
type rsock struct {
	img     *image.Socket
	u       *image.UnixSocket
	flags   int      // the open file description's flags (O_NONBLOCK)
	f       *os.File // the restorer's descriptor
	partner *os.File // the other end of a socketpair made for it, or its ghost
	what    string   // how errors name it
	ghost   bool     // partner is a stand-in for a closed peer, closed at the end
	closed  bool     // its peer outside the tree is given up: it comes back closed
	paired  bool     // connected by socketpair or accept: nothing left to connect
	replace bool     // f is a caller's replacement: leave its options alone
}

// NewOpener returns an Opener for the unix sockets of tree.
func NewOpener(tree *image.Tree) *Opener {
	return &Opener{tree: tree, External: map[string]*os.File{}}
}

// Open returns the restorer's descriptor for s, fully configured: bound,
// listening or connected, its receive queue refilled, its options and
// file status flags (O_NONBLOCK) set.
func (o *Opener) Open(s *image.Socket) (*os.File, error) {
	if !o.built {
		o.built = true
		o.err = o.build()
		for i := len(o.cleanup) - 1; i >= 0; i-- {
			o.cleanup[i]()
		}
		o.cleanup = nil
	}
	if o.err != nil {
		return nil, o.err
	}
	r := o.bySock[s]
	if r == nil || r.f == nil {
		return nil, fmt.Errorf("unix socket is not part of the image's tree")
	}
	fd, err := unix.FcntlInt(r.f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("unix socket socket:[%d]: dup: %w", r.u.Inode, err)
	}
	return os.NewFile(uintptr(fd), "unix"), nil
}

// Close releases the restorer's descriptors (the restored processes hold
// their own by now).
func (o *Opener) Close() {
	for _, r := range o.order {
		if r.f != nil {
			r.f.Close()
		}
		if r.partner != nil {
			r.partner.Close()
		}
	}
	o.order, o.byIno, o.bySock = nil, nil, nil
}

func (r *rsock) errorf(format string, a ...any) error {
	return fmt.Errorf("%s: %s", r.what, fmt.Sprintf(format, a...))
}

// describe names r for errors and warnings: its holder, its inode, and its
// name, said as the listener's for a connection a listener accepted (it
// bears the listener's name but is not the listener).
func (o *Opener) describe(r *rsock) string {
	what := fmt.Sprintf("unix socket socket:[%d]", r.u.Inode)
	if h := o.holder[r.u.Inode]; h != "" {
		what = h + ": " + what
	}
	switch {
	case len(r.u.Name) == 0:
	case r.u.State != image.UnixListening && o.isListenerName(r):
		what += fmt.Sprintf(" (accepted by the listener %s)", image.UnixName(r.u.Name))
	default:
		what += fmt.Sprintf(" (%s)", image.UnixName(r.u.Name))
	}
	return what
}

// build rebuilds every unix socket of the tree, in this order: listeners;
// connections inside the tree (socketpair, or connect + accept when an end
// has a name); the other sockets, bound; datagram queues, then datagram
// connections; stream and seqpacket queues; connections waiting in accept
// queues; connections to peers outside the tree; shutdown; options.
func (o *Opener) build() error {
	o.byIno, o.bySock = map[uint64]*rsock{}, map[*image.Socket]*rsock{}
	o.holder = holders(o.tree)
	for _, f := range o.tree.Files {
		if f.Socket() == nil || f.Socket().Unix == nil {
			continue
		}
		r := &rsock{img: f.Socket(), u: f.Socket().Unix, flags: f.Flags}
		o.order = append(o.order, r)
		o.byIno[r.u.Inode] = r
		o.bySock[f.Socket()] = r
	}
	for _, r := range o.order {
		r.what = o.describe(r)
		if e := r.u.External; e != nil && ExternalFate(r.img.Type, e, o.External[e.Key] != nil) == Closed {
			r.closed = true
			o.Warnings = append(o.Warnings, r.what+": "+Closed.Describe(e.Key))
		}
	}
	steps := []func(*rsock) error{
		o.listen, o.connectPair, o.create, o.fillDgram, o.connectDgram,
		o.fillStream, o.connectPending, o.connectExternal, o.shutdown, o.finish,
	}
	for _, step := range steps {
		for _, r := range o.order {
			if err := step(r); err != nil {
				return err
			}
		}
	}
	for _, r := range o.order {
		if r.ghost {
			r.partner.Close()
			r.partner = nil
		}
	}
	return nil
}

func (o *Opener) listen(r *rsock) error {
	if r.u.State != image.UnixListening {
		return nil
	}
	var err error
	if r.f, err = newSock(r.img.Type); err != nil {
		return r.errorf("%v", err)
	}
	if err := o.bind(r.f, r.u.Name, r.u.Path); err != nil {
		return r.errorf("%v", err)
	}
	if err := unix.Listen(int(r.f.Fd()), r.u.Backlog); err != nil {
		return r.errorf("listen: %v", err)
	}
	return nil
}

// connectPair rebuilds a connection between two sockets of the tree, and
// a connected socket whose peer was closed or is given up (with a ghost
// peer).
func (o *Opener) connectPair(r *rsock) error {
	if r.f != nil || (r.u.State != image.UnixConnected && !r.closed) || (r.u.Peer == 0 && !r.u.PeerGone && !r.closed) {
		return nil
	}
	if r.u.Peer == r.u.Inode {
		return nil // a datagram socket connected to its own name: connectDgram
	}
	var p *rsock
	if r.u.Peer != 0 {
		if p = o.byIno[r.u.Peer]; p == nil {
			return r.errorf("its peer socket:[%d] is not in the image", r.u.Peer)
		}
		if p.u.Peer != r.u.Inode {
			if r.img.Type == unix.SOCK_DGRAM {
				return nil // one-way datagram connection: connectDgram
			}
			return r.errorf("its peer socket:[%d] is connected elsewhere", r.u.Peer)
		}
		if p.f != nil {
			return nil // built with its peer
		}
	}
	if r.img.Type == unix.SOCK_DGRAM {
		return o.dgramPair(r, p)
	}
	// Which end has a name that a listener gave it when it accepted?
	acc, cl := r, p
	if p != nil && (o.isListenerName(p) || (!o.isListenerName(r) && len(r.u.Name) == 0)) {
		acc, cl = p, r
	}
	var other *os.File
	var err error
	if len(acc.u.Name) == 0 {
		if acc.f, other, err = newPair(r.img.Type); err != nil {
			return r.errorf("%v", err)
		}
	} else {
		if other, err = newSock(r.img.Type); err != nil {
			return r.errorf("%v", err)
		}
		if cl != nil && len(cl.u.Name) > 0 {
			if err := o.bind(other, cl.u.Name, cl.u.Path); err != nil {
				other.Close()
				return cl.errorf("%v", err)
			}
		}
		l, err := o.listenerFor(r.img.Type, acc.u.Name, acc.u.Path)
		if err == nil {
			acc.f, err = connectAccept(other, l, reach(acc.u.Name, acc.u.Path))
		}
		if err != nil {
			other.Close()
			return acc.errorf("rebuild its connection: %v", err)
		}
	}
	acc.paired = true
	if cl != nil {
		cl.f, cl.paired = other, true
		return nil
	}
	acc.partner, acc.ghost = other, true
	return nil
}

// dgramPair connects a datagram socket with its peer (p, connected back
// to it) or with a ghost (p nil: its peer was closed) by socketpair, then
// binds the names (bind(2) works on a connected datagram socket).
func (o *Opener) dgramPair(r, p *rsock) error {
	a, b, err := newPair(r.img.Type)
	if err != nil {
		return r.errorf("%v", err)
	}
	r.f, r.paired = a, true
	if p != nil {
		p.f, p.paired = b, true
	} else {
		r.partner, r.ghost = b, true
	}
	for _, s := range []*rsock{r, p} {
		if s != nil && len(s.u.Name) > 0 {
			if err := o.bind(s.f, s.u.Name, s.u.Path); err != nil {
				return s.errorf("%v", err)
			}
		}
	}
	return nil
}

// isListenerName reports whether r's name is that of a listener of the
// tree with r's type (so r is the accepted end of its connection).
func (o *Opener) isListenerName(r *rsock) bool {
	if len(r.u.Name) == 0 {
		return false
	}
	for _, l := range o.order {
		if l.u.State == image.UnixListening && l.img.Type == r.img.Type && string(l.u.Name) == string(r.u.Name) {
			return true
		}
	}
	return false
}

// create makes the sockets not built yet, bound to their names; a
// replacement is taken for a peer outside the tree when there is one.
func (o *Opener) create(r *rsock) error {
	if r.f != nil {
		return nil
	}
	if e := r.u.External; e != nil {
		if h := o.External[e.Key]; h != nil {
			fd, err := unix.FcntlInt(h.Fd(), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				return r.errorf("replacement for %q: %v", e.Key, err)
			}
			r.f, r.paired, r.replace = os.NewFile(uintptr(fd), "unix"), true, true
			if len(r.u.Queue) > 0 {
				o.Warnings = append(o.Warnings, fmt.Sprintf("%s: %d messages queued from %q are lost: the socket given for it replaces the connection", r.what, len(r.u.Queue), e.Key))
			}
			return nil
		}
	}
	var err error
	if r.f, err = newSock(r.img.Type); err != nil {
		return r.errorf("%v", err)
	}
	if len(r.u.Name) > 0 {
		if err := o.bind(r.f, r.u.Name, r.u.Path); err != nil {
			return r.errorf("%v", err)
		}
	}
	return nil
}

// fillDgram refills the queue of a datagram socket, each message sent by
// the socket of the tree that bears its sender's name, or by its
// socketpair peer, or by a temporary socket (bound to the sender's name
// when it is free, so that recvfrom still reports it).
func (o *Opener) fillDgram(r *rsock) error {
	if r.img.Type != unix.SOCK_DGRAM {
		return nil
	}
	for i, m := range r.u.Queue {
		if err := o.sendDgram(r, m); err != nil {
			return r.errorf("queued datagram %d (%d bytes): %v", i+1, len(m.Data), err)
		}
	}
	return nil
}

func (o *Opener) sendDgram(r *rsock, m image.UnixMessage) error {
	if r.paired {
		// Connected by socketpair: only its peer can reach it; the sender
		// is shown as the peer even if another socket sent it before.
		w := r.partner
		if w == nil {
			w = o.byIno[r.u.Peer].f
		}
		return sendMessage(int(w.Fd()), nil, m)
	}
	if len(r.u.Name) == 0 {
		return fmt.Errorf("it came from %q, but nothing else can reach an unnamed socket", image.UnixName(m.From))
	}
	if len(m.From) > 0 {
		for _, s := range o.order {
			if s.img.Type == unix.SOCK_DGRAM && s.f != nil && !s.replace && string(s.u.Name) == string(m.From) {
				return sendMessage(int(s.f.Fd()), reach(r.u.Name, r.u.Path), m)
			}
		}
	}
	t, err := newSock(unix.SOCK_DGRAM)
	if err != nil {
		return err
	}
	defer t.Close()
	if len(m.From) > 0 && (!isPath(m.From) || m.From[0] == '/') {
		if isPath(m.From) {
			if _, err := os.Lstat(string(m.From)); err != nil && bindRaw(int(t.Fd()), m.From) == nil {
				defer unix.Unlink(string(m.From))
			}
		} else {
			bindRaw(int(t.Fd()), m.From) // best effort: the name may be taken
		}
	}
	return sendMessage(int(t.Fd()), reach(r.u.Name, r.u.Path), m)
}

// connectDgram connects datagram sockets that socketpair did not.
func (o *Opener) connectDgram(r *rsock) error {
	if r.img.Type != unix.SOCK_DGRAM || r.paired || r.u.State != image.UnixConnected || r.u.External != nil {
		return nil
	}
	p := o.byIno[r.u.Peer]
	if p == nil {
		return r.errorf("its peer socket:[%d] is not in the image", r.u.Peer)
	}
	if len(p.u.Name) == 0 {
		return r.errorf("its peer socket:[%d] has no name to connect to", r.u.Peer)
	}
	if err := connectRaw(int(r.f.Fd()), reach(p.u.Name, p.u.Path)); err != nil {
		return r.errorf("connect to %q: %v", image.UnixName(p.u.Name), err)
	}
	return nil
}

// fillStream refills the queue of a stream or seqpacket socket through
// its peer (or the ghost of its closed peer).
func (o *Opener) fillStream(r *rsock) error {
	if r.img.Type == unix.SOCK_DGRAM || len(r.u.Queue) == 0 {
		return nil
	}
	w := r.partner
	if w == nil && r.u.Peer != 0 {
		w = o.byIno[r.u.Peer].f
	}
	if w == nil {
		return r.errorf("%d queued messages and no peer to write them", len(r.u.Queue))
	}
	if err := fillQueue(int(w.Fd()), nil, r.u.Queue); err != nil {
		return r.errorf("%v", err)
	}
	return nil
}

// connectPending connects the tree's clients waiting in a listener's
// accept queue, in queue order.
func (o *Opener) connectPending(r *rsock) error {
	if r.u.State != image.UnixListening {
		return nil
	}
	for _, ino := range r.u.Pending {
		c := o.byIno[ino]
		if c == nil || c.f == nil {
			return r.errorf("client socket:[%d] of its accept queue is not in the image", ino)
		}
		if err := connectRaw(int(c.f.Fd()), reach(r.u.Name, r.u.Path)); err != nil {
			return c.errorf("connect to %q (waiting to be accepted): %v", image.UnixName(r.u.Name), err)
		}
		c.paired = true
	}
	return nil
}

// connectExternal reconnects a datagram socket whose peer was outside the
// tree by the peer's name (ExternalFate). When nothing answers at that name
// any more, the socket is left connected to a peer that is gone, as it
// would be had its peer closed: sends fail with ECONNREFUSED.
func (o *Opener) connectExternal(r *rsock) error {
	e := r.u.External
	if e == nil || r.replace || r.closed {
		return nil
	}
	if err := connectRaw(int(r.f.Fd()), e.Name); err != nil {
		if gerr := closeDgram(int(r.f.Fd())); gerr != nil {
			return r.errorf("reconnect to %q outside the tree: %v; %v", e.Key, err, gerr)
		}
		o.Warnings = append(o.Warnings, fmt.Sprintf("%s: datagram connection to %q outside the tree: %v; it comes back connected to a peer that is gone", r.what, e.Key, err))
	}
	r.paired = true
	return nil
}

func (o *Opener) shutdown(r *rsock) error {
	if r.u.Shutdown == 0 || r.u.PeerGone || r.closed || r.replace {
		return nil
	}
	if err := unix.Shutdown(int(r.f.Fd()), r.u.Shutdown-1); err != nil && err != unix.ENOTCONN {
		return r.errorf("shutdown: %v", err)
	}
	return nil
}

// finish sets the options, the peek offset and the blocking mode.
func (o *Opener) finish(r *rsock) error {
	if r.replace {
		return nil
	}
	fd := int(r.f.Fd())
	if err := applyOptions(fd, r.img.Type, r.u.Options); err != nil {
		return r.errorf("%v", err)
	}
	if r.u.Options.PeekOff >= 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, r.u.Options.PeekOff); err != nil {
			return r.errorf("set SO_PEEK_OFF: %v", err)
		}
	}
	if err := unix.SetNonblock(fd, r.flags&unix.O_NONBLOCK != 0); err != nil {
		return r.errorf("set O_NONBLOCK: %v", err)
	}
	// The filter last: it would also judge the data put back into the
	// queues.
	if f := r.img.Filter; f != nil {
		if err := sockopt.AttachFilter(fd, f.Prog, f.Locked); err != nil {
			return r.errorf("%v", err)
		}
	}
	return nil
}
