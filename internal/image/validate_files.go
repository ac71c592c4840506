package image

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Validation of open file descriptions, sockets, ptys and System V
// objects (see validate.go).

// fileNeeds lists, per kind, the objects a description of that kind must
// carry.
var fileNeeds = map[string]struct{ ref, pipe bool }{
	FileRegular:   {ref: true},
	FileDirectory: {ref: true},
	FileMemfd:     {ref: true},
	FileDevice:    {ref: true},
	FileTerminal:  {ref: true},
	FileFIFO:      {ref: true, pipe: true},
	FilePipe:      {pipe: true},
	FileCtty:      {},
	FilePtyMaster: {},
	FilePtySlave:  {},
	FileEventfd:   {},
	FileEpoll:     {},
	FileSocket:    {},
	FileSignalfd:  {},
	FileTimerfd:   {},
	FileInotify:   {},
	FilePath:      {ref: true},
	FileNamespace: {},
	FilePidfd:     {},
	FileHungUp:    {},
}

func (f *File) validate(c *checker) error {
	needs, ok := fileNeeds[f.Kind]
	if !ok {
		return fmt.Errorf("unknown kind %q", f.Kind)
	}
	if needs.ref && f.Ref == nil {
		return errors.New("no file reference (ref)")
	}
	if f.Ref != nil {
		if err := f.Ref.validate(c); err != nil {
			return err
		}
	}
	if needs.pipe && f.Pipe == nil {
		return errors.New("no pipe state (pipe)")
	}
	switch f.Kind {
	case FilePtyMaster, FilePtySlave:
		if !c.ptys[f.PtyIndex] {
			return fmt.Errorf("pty %d is not in the image", f.PtyIndex)
		}
	case FileSocket:
		if f.Socket == nil {
			return errors.New("no socket state (socket)")
		}
		if err := f.Socket.validate(c); err != nil {
			return err
		}
	case FileTimerfd:
		if f.Timer == nil {
			return errors.New("no timer state (timer)")
		}
		if f.Timer.ValueNs < 0 || f.Timer.IntervalNs < 0 {
			return errors.New("a timer with a negative time")
		}
	case FileInotify:
		for _, w := range f.Inotify {
			if w.WD < 1 || w.Path == "" {
				return fmt.Errorf("inotify watch %d: bad descriptor or no path", w.WD)
			}
		}
	case FileEpoll:
		for _, w := range f.Watches {
			if w.FD < 0 || w.FD >= MaxFD {
				return fmt.Errorf("epoll watch of bad fd %d", w.FD)
			}
		}
	}
	for _, l := range f.Locks {
		if err := l.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lock) validate() error {
	switch l.Kind {
	case "FLOCK", "POSIX", "OFDLCK", "LEASE":
	default:
		return fmt.Errorf("unknown lock kind %q", l.Kind)
	}
	if l.Start < 0 || l.End < -1 || (l.End >= 0 && l.End < l.Start) {
		return fmt.Errorf("%s lock over a bad range %d-%d", l.Kind, l.Start, l.End)
	}
	return nil
}

// Socket families the image knows (AF_UNIX, AF_INET, AF_INET6).
const (
	afUnix  = 1
	afInet  = 2
	afInet6 = 10
)

func (s *Socket) validate(c *checker) error {
	switch s.Family {
	case afUnix:
		if s.Unix == nil || s.Inet != nil {
			return errors.New("a unix socket without its unix state")
		}
		return s.Unix.validate(c)
	case afInet, afInet6:
		if s.Inet == nil || s.Unix != nil {
			return errors.New("an inet socket without its inet state")
		}
		return s.Inet.validate()
	}
	return fmt.Errorf("address family %d is not supported", s.Family)
}

// maxUnixName is the size of sun_path.
const maxUnixName = 108

func (u *UnixSocket) validate(c *checker) error {
	switch u.State {
	case UnixListening, UnixConnected, UnixPending, UnixUnconnected:
	default:
		return fmt.Errorf("unix socket in unknown state %q", u.State)
	}
	if u.Inode == 0 || c.unix[u.Inode] != nil {
		return fmt.Errorf("unix socket inode %d is zero or appears twice", u.Inode)
	}
	c.unix[u.Inode] = u
	if len(u.Name) > maxUnixName {
		return fmt.Errorf("unix socket name of %d bytes", len(u.Name))
	}
	if u.External != nil && len(u.External.Name) > maxUnixName {
		return fmt.Errorf("unix socket peer name of %d bytes", len(u.External.Name))
	}
	for _, m := range u.Queue {
		if len(m.From) > maxUnixName {
			return fmt.Errorf("queued message from a name of %d bytes", len(m.From))
		}
	}
	return nil
}

// validatePeers checks, once every unix socket is known, that the sockets
// u names (peer, listener, accept queue) are unix sockets of the image.
func (u *UnixSocket) validatePeers(c *checker) error {
	if u.Peer != 0 && c.unix[u.Peer] == nil {
		return fmt.Errorf("its peer socket:[%d] is not in the image", u.Peer)
	}
	if u.Listener != 0 && c.unix[u.Listener] == nil {
		return fmt.Errorf("its listener socket:[%d] is not in the image", u.Listener)
	}
	for _, p := range u.Pending {
		if c.unix[p] == nil {
			return fmt.Errorf("socket:[%d] of its accept queue is not in the image", p)
		}
	}
	return nil
}

func (s *InetSocket) validate() error {
	for _, a := range []*InetAddr{s.Local, s.Peer} {
		if a != nil {
			if err := a.validate(); err != nil {
				return err
			}
		}
	}
	for i := range s.Datagrams {
		if err := s.Datagrams[i].From.validate(); err != nil {
			return fmt.Errorf("queued datagram %d: %w", i, err)
		}
	}
	if t := s.TCP; t != nil {
		if t.Unsent < 0 || t.Unsent > len(t.SendQueue) {
			return fmt.Errorf("%d unsent bytes of a send queue of %d", t.Unsent, len(t.SendQueue))
		}
		if t.MSS <= 0 || t.MSS > 65535 {
			return fmt.Errorf("bad MSS %d", t.MSS)
		}
		if t.SndWscale < 0 || t.SndWscale > 14 || t.RcvWscale < 0 || t.RcvWscale > 14 {
			return fmt.Errorf("bad window scale %d/%d", t.SndWscale, t.RcvWscale)
		}
	}
	if s.Backlog < 0 {
		return fmt.Errorf("bad backlog %d", s.Backlog)
	}
	return nil
}

func (a *InetAddr) validate() error {
	if _, err := netip.ParseAddr(a.IP); err != nil {
		return fmt.Errorf("address %q: %v", a.IP, err)
	}
	if a.Port < 0 || a.Port > 65535 {
		return fmt.Errorf("port %d out of range", a.Port)
	}
	return nil
}

func (p *Pty) validate(c *checker) error {
	if p == nil {
		return errors.New("null")
	}
	if p.Index < 0 || p.Index >= MaxPtyIndex || c.ptys[p.Index] {
		return fmt.Errorf("bad or duplicate index %d", p.Index)
	}
	c.ptys[p.Index] = true
	return nil
}

func (s *SysV) validate(c *checker) error {
	for _, m := range s.Shm {
		if m.ID < 0 || c.sysvShm[m.ID] {
			return fmt.Errorf("bad or duplicate segment id %d", m.ID)
		}
		c.sysvShm[m.ID] = true
		size, err := c.imageFile(m.Data, fmt.Sprintf("segment %d data", m.ID))
		if err != nil {
			return err
		}
		if uint64(size) > m.Size || m.Size > MaxAddress {
			return fmt.Errorf("segment %d of %d bytes with %d bytes of data", m.ID, m.Size, size)
		}
	}
	seen := map[int]bool{}
	for _, m := range s.Sem {
		if m.ID < 0 || seen[m.ID] {
			return fmt.Errorf("bad or duplicate semaphore set id %d", m.ID)
		}
		seen[m.ID] = true
	}
	seen = map[int]bool{}
	for _, m := range s.Msg {
		if m.ID < 0 || seen[m.ID] {
			return fmt.Errorf("bad or duplicate message queue id %d", m.ID)
		}
		seen[m.ID] = true
	}
	return nil
}

// nsEntries are the /proc/PID/ns entries a namespace file may be.
var nsEntries = map[string]bool{"cgroup": true, "ipc": true, "mnt": true, "net": true, "pid": true,
	"pid_for_children": true, "time": true, "time_for_children": true, "user": true, "uts": true}

// validateFiles checks the references of descriptors, working directories
// and file objects: descriptor tables shared with a parent, epoll watches,
// namespace files and pidfds of processes of the tree, recreated objects
// that agree on what they are.
func (t *Tree) validateFiles(c *checker) error {
	procs := map[int]*Process{}
	tids := map[int]bool{}
	// process -> the first process of its descriptor table, of its fs
	table, fsTable := map[int]int{}, map[int]int{}
	shares := func(p *Process, owner int, tables map[int]int, what string) error {
		tables[p.PID] = p.PID
		if owner == 0 {
			return nil
		}
		if p.Zombie || p.PID == t.Root || procs[p.PPID] == nil || tables[p.PPID] != owner {
			return fmt.Errorf("process %d: shares the %s of %d, which is not its parent's", p.PID, what, owner)
		}
		tables[p.PID] = owner
		return nil
	}
	pgids := map[int]bool{}
	for _, p := range t.Processes {
		procs[p.PID] = p
		pgids[p.PGID] = true
		for _, th := range p.Threads {
			tids[th.TID] = true
		}
		if err := shares(p, p.FDTable, table, "descriptor table"); err != nil {
			return err
		}
		if err := shares(p, p.FSTable, fsTable, "root and working directory"); err != nil {
			return err
		}
	}
	files := map[int]bool{}
	for _, f := range t.Files {
		files[f.ID] = true
	}
	objects := map[int]*Ref{}
	checkRef := func(what string, r *Ref) error {
		if r == nil {
			return nil
		}
		if err := r.validate(c); err != nil {
			return fmt.Errorf("%s: %v", what, err)
		}
		if r.ID == 0 {
			return nil
		}
		if o, ok := objects[r.ID]; ok && (o.Mode != r.Mode || o.Memfd != r.Memfd || o.Contents != r.Contents) {
			return fmt.Errorf("%s: object %d is described in two ways", what, r.ID)
		}
		objects[r.ID] = r
		return nil
	}
	for _, p := range t.Processes {
		if err := checkRef(fmt.Sprintf("process %d executable", p.PID), p.Exe); err != nil {
			return err
		}
		if p.CwdFile != nil && p.CwdFile.Mode&sIFMT != sIFDIR {
			return fmt.Errorf("process %d: working directory object %d is not a directory", p.PID, p.CwdFile.ID)
		}
		if err := checkRef(fmt.Sprintf("process %d working directory", p.PID), p.CwdFile); err != nil {
			return err
		}
		for _, m := range p.Mappings {
			if err := checkRef(fmt.Sprintf("process %d mapping %#x", p.PID, m.Start), m.File); err != nil {
				return err
			}
		}
	}
	for _, f := range t.Files {
		what := fmt.Sprintf("file %d (%s)", f.ID, f.Kind)
		if err := checkRef(what, f.Ref); err != nil {
			return err
		}
		for _, w := range f.Watches {
			if w.File != 0 && !files[w.File] {
				return fmt.Errorf("%s: epoll watch of fd %d refers to unknown file %d", what, w.FD, w.File)
			}
		}
		for _, w := range f.Inotify {
			if err := checkRef(what+" inotify watch", w.File); err != nil {
				return err
			}
		}
		if o := f.Owner; o != nil && !(o.Type == 0 && tids[o.PID] || o.Type == 1 && procs[o.PID] != nil || o.Type == 2 && pgids[o.PID]) {
			return fmt.Errorf("%s: the owner of its signals (type %d, %d) is not in the tree", what, o.Type, o.PID)
		}
		if f.Signal < 0 || f.Signal > 64 {
			return fmt.Errorf("%s: signal %d", what, f.Signal)
		}
		switch f.Kind {
		case FileNamespace:
			if !nsEntries[f.NS] || procs[f.NSPID] == nil {
				return fmt.Errorf("%s: namespace %q of process %d, which is not in the tree", what, f.NS, f.NSPID)
			}
		case FilePidfd:
			if procs[f.PidfdPID] == nil && !tids[f.PidfdPID] {
				return fmt.Errorf("%s: pidfd of %d, which is not in the tree", what, f.PidfdPID)
			}
		case FileRegular, FileDirectory, FileMemfd, FilePath, FileDevice, FileTerminal, FileFIFO:
			if f.Ref == nil {
				return fmt.Errorf("%s: no file", what)
			}
		}
	}
	return nil
}

// File type bits of a mode (S_IFMT and S_IFDIR).
const (
	sIFMT  = 0o170000
	sIFDIR = 0o040000
	sIFLNK = 0o120000
	sIFREG = 0o100000
)

// validateObject checks what a Ref says about the object it stands for: a
// tmpfs file recreated at its path, a memfd named like one, an object ID
// only for what cannot be opened by path, a symlink target only on a
// symlink.
func (r *Ref) validateObject() error {
	if r.Volatile && (r.Deleted || r.Mode&sIFMT != sIFREG) {
		return fmt.Errorf("%s: only a regular file of a tmpfs is recreated at its path", r.Path)
	}
	if r.Memfd && !strings.HasPrefix(r.Path, "/memfd:") {
		return fmt.Errorf("memfd named %q", r.Path)
	}
	if r.ID != 0 && !r.Deleted && !r.Memfd && !r.Volatile {
		return fmt.Errorf("object %d of %s that can be opened by path", r.ID, r.Path)
	}
	if r.Target != "" && r.Mode&sIFMT != sIFLNK {
		return fmt.Errorf("%s has a symlink target but is not a symlink", r.Path)
	}
	return nil
}
