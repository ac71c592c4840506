package files

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/fileref"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/proc"
)

// Pipes and FIFOs. Each open file description of a pipe is dumped as one
// image.File; the bytes buffered in the pipe go with the first of them, in
// Finish, once it is known whether a process outside the tree holds the
// pipe too.

// The kinds of pipes: an anonymous pipe, and a named one (a FIFO, which
// also has a Ref).
const (
	KindPipe = "pipe"
	KindFIFO = "fifo"
)

var (
	pipeKind = &kind{name: KindPipe, setfl: true, record: func() image.FileRecord { return new(Pipe) },
		is: func(_ *Scope, d *desc) bool {
			return d.fileType() == unix.S_IFIFO && strings.HasPrefix(d.link, "pipe:")
		},
		check: checkNothing, dump: dumpPipe, open: openPipe}
	fifoKind = &kind{name: KindFIFO, ref: true, setfl: true, record: func() image.FileRecord { return new(Pipe) },
		is:    func(_ *Scope, d *desc) bool { return d.fileType() == unix.S_IFIFO },
		check: checkPathFile, dump: dumpPipe, open: openFIFO}
)

// Pipe is the record of one end of a pipe: the pipe's identity, which
// end, its capacity and the bytes buffered in it when the tree held a read
// end.
type Pipe struct {
	Inode    uint64 `json:"inode"`
	Write    bool   `json:"write"`
	Capacity int    `json:"capacity"`
	Data     []byte `json:"data,omitempty"`
	// External is set when a process outside the tree held the pipe too.
	External bool `json:"external,omitempty"`
}

// Validate has nothing to check: any pipe can be made again.
func (*Pipe) Validate(*image.Checker) error { return nil }

// pipeEnds is a pipe (or FIFO) of the tree, as the dump found it.
type pipeEnds struct {
	link  string   // what /proc/PID/fd shows for it: pipe:[N] or the FIFO's path
	read  *os.File // a read end held by the tree, to peek at buffered data
	files []*Pipe
}

func dumpPipe(d *Dumper, ds *desc, f *image.File) error {
	if f.Kind == KindFIFO {
		name, deleted := ds.name()
		var err error
		if f.Ref, err = d.Refs.RefFile(ds.local, name, deleted); err != nil {
			return err
		}
	}
	rec := &Pipe{Inode: ds.st.Ino, Write: f.Flags&unix.O_ACCMODE == unix.O_WRONLY}
	f.Record = rec
	if c, err := unix.FcntlInt(ds.local.Fd(), unix.F_GETPIPE_SZ, 0); err == nil {
		rec.Capacity = c
	}
	p := d.pipes[ds.st.Ino]
	if p == nil {
		p = &pipeEnds{link: ds.link}
		d.pipes[ds.st.Ino] = p
	}
	p.files = append(p.files, rec)
	if f.Flags&unix.O_ACCMODE != unix.O_WRONLY && p.read == nil {
		p.read, ds.kept = ds.local, true
	}
	return nil
}

// finishPipes completes the pipes once every process has been dumped: a
// pipe that a process outside the tree also holds is marked external (the
// restore reconnects to it); otherwise its buffered bytes are saved.
func (d *Dumper) finishPipes() error {
	if len(d.pipes) == 0 {
		return nil
	}
	outside, err := outsideHolders(d.InTree)
	if err != nil {
		return err
	}
	for ino, p := range d.pipes {
		ext := outside[p.link]
		var data []byte
		if !ext && p.read != nil {
			if data, err = peekPipe(p.read); err != nil {
				return fmt.Errorf("pipe %d: %w", ino, err)
			}
		}
		for _, rec := range p.files {
			rec.External = ext
			rec.Data = nil
		}
		if len(data) > 0 {
			p.files[0].Data = data
		}
	}
	return nil
}

// outsideHolders lists the fd links of processes outside the tree, for the
// pipes and FIFOs among them.
func outsideHolders(inTree func(int) bool) (map[string]bool, error) {
	res := map[string]bool{}
	self := os.Getpid() // the checkpointer's own duplicates do not count
	ents, err := os.ReadDir(proc.Root)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || inTree(pid) || pid == self {
			continue
		}
		fds, err := os.ReadDir(proc.Path(pid, "fd"))
		if err != nil {
			continue // gone, or a kernel thread
		}
		for _, fd := range fds {
			l, err := os.Readlink(proc.Path(pid, "fd", fd.Name()))
			if err != nil {
				continue
			}
			res[l] = true
		}
	}
	return res, nil
}

// peekPipe returns the bytes buffered in the pipe whose read end is r,
// without consuming them: tee(2) duplicates them into a private pipe.
func peekPipe(r *os.File) ([]byte, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, err
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if sz, err := unix.FcntlInt(r.Fd(), unix.F_GETPIPE_SZ, 0); err == nil {
		unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, sz)
	}
	n, err := unix.Tee(int(r.Fd()), p[1], 1<<30, unix.SPLICE_F_NONBLOCK)
	if err == unix.EAGAIN {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tee: %w", err)
	}
	buf := make([]byte, n)
	got := 0
	for got < int(n) {
		m, err := unix.Read(p[0], buf[got:])
		if err != nil {
			return nil, err
		}
		got += m
	}
	return buf, nil
}

// openPipe returns a new open file description of the end of the pipe that
// f describes. A pipe that was shared with a process outside the tree is
// reconnected to that very pipe when the process still holds it; otherwise
// a new pipe is made, once, and refilled with the bytes that were buffered
// in it. Every description is opened on its own through /proc/self/fd, so
// that the status flags of one (O_NONBLOCK) do not leak into another.
func openPipe(o *Opener, f *image.File) (*os.File, error) {
	rec := recordOf[Pipe](f)
	if rec == nil {
		return nil, fmt.Errorf("pipe without state")
	}
	end, acc := 0, unix.O_RDONLY
	if rec.Write {
		end, acc = 1, unix.O_WRONLY
	}
	if rec.External {
		if h := o.reconnect(rec); h != nil {
			return h, nil
		}
		o.Warnings = append(o.Warnings, fmt.Sprintf("pipe:[%d] was shared with a process that is gone; a new pipe stands in for it", rec.Inode))
	}
	p := o.pipes[rec.Inode]
	if p == nil {
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			return nil, err
		}
		p = &pipePair{ends: [2]*os.File{os.NewFile(uintptr(fds[0]), "pipe"), os.NewFile(uintptr(fds[1]), "pipe")}}
		o.pipes[rec.Inode] = p
		if rec.Capacity > 0 {
			unix.FcntlInt(p.ends[0].Fd(), unix.F_SETPIPE_SZ, rec.Capacity)
		}
	}
	if err := refill(rec, p.ends[1]); err != nil {
		return nil, err
	}
	// pipe(2) made one description of each end, without O_LARGEFILE; any
	// other was opened through /proc, which adds it.
	if f.Flags&unix.O_LARGEFILE == 0 && !p.given[end] {
		p.given[end] = true
		return dupFile(p.ends[end])
	}
	// The restorer holds both ends, so neither open can block or fail.
	return fileref.ReopenFD(p.ends[end], acc|unix.O_NONBLOCK)
}

// pipePair is a pipe the restorer made: its ends, and whether the
// description pipe(2) made of each was handed out.
type pipePair struct {
	ends  [2]*os.File
	given [2]bool
}

// openFIFO opens a named pipe: by its path, or a recreated one when it was
// deleted. The restorer holds it open for reading and writing meanwhile,
// so that no open blocks and the buffered bytes can be written back.
func openFIFO(o *Opener, f *image.File) (*os.File, error) {
	rec := recordOf[Pipe](f)
	if rec == nil || f.Ref == nil {
		return nil, fmt.Errorf("FIFO without state")
	}
	p := o.pipes[rec.Inode]
	if p == nil {
		var anchor *os.File
		var err error
		if f.Ref.Deleted {
			if anchor, err = o.Refs.Reopen(f.Ref, unix.O_RDWR|unix.O_NONBLOCK); err != nil {
				return nil, err
			}
		} else if anchor, err = os.OpenFile(f.Ref.Path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err != nil {
			return nil, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(anchor.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			anchor.Close()
			return nil, fmt.Errorf("%s is no longer a FIFO", f.Ref.Path)
		}
		p = &pipePair{ends: [2]*os.File{anchor, nil}}
		o.pipes[rec.Inode] = p
	}
	if err := refill(rec, p.ends[0]); err != nil {
		return nil, err
	}
	return fileref.ReopenFD(p.ends[0], f.Flags&unix.O_ACCMODE|unix.O_NONBLOCK)
}

// refill writes the bytes buffered in the pipe of rec into it, through
// its write end w.
func refill(rec *Pipe, w *os.File) error {
	if len(rec.Data) == 0 {
		return nil
	}
	if _, err := w.Write(rec.Data); err != nil {
		return fmt.Errorf("refill pipe: %w", err)
	}
	rec.Data = nil // written once, whichever end is opened first
	return nil
}

// reconnect finds a process outside the tree that holds the pipe of rec
// and opens the wanted end of the same pipe through its /proc fd link.
func (o *Opener) reconnect(rec *Pipe) *os.File {
	want := fmt.Sprintf("pipe:[%d]", rec.Inode)
	ents, _ := os.ReadDir(proc.Root)
	acc := unix.O_RDONLY
	if rec.Write {
		acc = unix.O_WRONLY
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || o.InTree(pid) || pid == os.Getpid() {
			continue
		}
		fds, _ := os.ReadDir(proc.Path(pid, "fd"))
		for _, fd := range fds {
			p := proc.Path(pid, "fd", fd.Name())
			if l, _ := os.Readlink(p); l != want {
				continue
			}
			h, err := os.OpenFile(p, acc|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			if err != nil {
				continue // e.g. ENXIO: a write end with no reader left
			}
			return h
		}
	}
	return nil
}
