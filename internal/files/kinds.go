package files

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/proc"
)

// One decision per kind of descriptor. Each kind says which descriptors
// are its own (is), what stands in their way (check), how they are saved
// (dump) and rebuilt (open), and what its record in the image is and
// checks (record, registered with the image). `seamless plan` (Check), the
// checkpoint (Dumper) and the restore (Opener) all go through this table,
// so that the checkpoint never accepts a descriptor that the restore would
// refuse, nor the image a record that no kind reads.
//
// Each kind is defined, with all of that, in a file of its own (kinds
// that share their code share it): regular.go (regular files,
// directories, memfds, O_PATH), device.go, terminal.go (the ends of ptys,
// /dev/tty, hung-up terminals), pipe.go (pipes and FIFOs), socket.go,
// eventfd.go, epoll.go, signalfd.go, timerfd.go, inotify.go, namespace.go,
// pidfd.go. A new kind is a file and its line in kinds.

// kind is what the checkpoint and the restore do for one kind of descriptor.
type kind struct {
	// name is the kind's name in the image (image.File.Kind).
	name string
	// is says whether d is a descriptor of this kind. classify asks the
	// kinds in the order of the table: the first that says yes has it.
	is func(s *Scope, d *desc) bool
	// check says why a descriptor of this kind cannot be carried, from what
	// can be seen while the process runs (checkNothing when nothing can
	// stand in the way: every kind says so explicitly).
	check func(s *Scope, d *desc) error
	// dump fills in f, the image of d's open file description.
	dump func(dd *Dumper, d *desc, f *image.File) error
	// open rebuilds the description f in the restorer.
	open func(o *Opener, f *image.File) (*os.File, error)
	// setfl says whether the status flags F_SETFL changes are put back on
	// the rebuilt description (the kinds whose flags the restore owns).
	setfl bool
	// ref says that the kind's descriptions name a file (image.File.Ref).
	ref bool
	// record returns an empty record of the kind, the type that holds what
	// only this kind has in the image and checks it (nil: no record).
	record func() image.FileRecord
}

// kinds are the kinds of descriptor carried, in the order classify asks
// them; byName finds them by their name in the image.
var (
	kinds  []*kind
	byName = map[string]*kind{}
)

// init fills the table and registers its kinds with the image, which
// knows them only so, before anything decodes an image.
func init() {
	kinds = []*kind{
		pathKind, // an O_PATH descriptor, of any file
		// Anonymous inodes, which look like regular files.
		eventfdKind, epollKind, signalfdKind, timerfdKind, inotifyKind, pidfdKind,
		// Regular files: a namespace's and a memfd's are special.
		namespaceKind, memfdKind, regularKind, directoryKind,
		// Character devices: a hung-up terminal whatever its number was;
		// the ends of a pty of the tree before any other terminal.
		hungUpKind, ptyMasterKind, ptySlaveKind, cttyKind, deviceKind, terminalKind,
		pipeKind, fifoKind, socketKind,
	}
	for _, k := range kinds {
		byName[k.name] = k
		image.RegisterFileKind(image.FileKind{Name: k.name, Ref: k.ref, New: k.record})
	}
}

// checkNothing is the check of the kinds that nothing seen while the
// process runs can refuse: a pipe, a pty of the tree, a counter or timer
// whose whole state fdinfo gives. What their dump may still refuse (a pty
// whose queues cannot be read) is refused before the kill.
func checkNothing(*Scope, *desc) error { return nil }

// recordOf returns the record of f if it is a T (nil otherwise).
func recordOf[T any](f *image.File) *T {
	r, _ := any(f.Record).(*T)
	return r
}

// Kinds lists the kinds of descriptor that are carried, sorted.
func Kinds() []string {
	var out []string
	for _, k := range kinds {
		out = append(out, k.name)
	}
	sort.Strings(out)
	return out
}

// unsupportedAnon are anonymous-inode files seamless cannot carry, with
// the reason given to the operator.
var unsupportedAnon = map[string]string{
	"[io_uring]":     "io_uring instance (its rings and in-flight requests live in the kernel)",
	"[fanotify]":     "fanotify group (its marks name mounts and filesystems of this boot)",
	"[perf_event]":   "perf event",
	"[userfaultfd]":  "userfaultfd",
	"bpf-map":        "BPF map",
	"bpf-prog":       "BPF program",
	"bpf_link":       "BPF link",
	"[kvm-vm]":       "KVM virtual machine",
	"seccomp notify": "seccomp user-notification listener",
}

// desc is one descriptor as the checkpoint and plan see it: its /proc
// link, its fdinfo, the checkpointer's duplicate of it (pidfd_getfd) and
// that duplicate's stat.
type desc struct {
	pid, fd int
	link    string
	info    *fdinfo
	local   *os.File
	st      unix.Stat_t
	// kept is set by a kind's dump that holds on to local.
	kept bool
	// fs is the magic of the filesystem of the file (statfs), once read.
	fs     int64
	fsRead bool
}

// fileType is the type of the file (S_IFMT of its mode).
func (d *desc) fileType() uint32 { return d.st.Mode & unix.S_IFMT }

// anon reports whether d is an anonymous-inode file (eventfd, epoll, ...):
// linked as "anon_inode:..." with a regular file's type, or of a type that
// no file has.
func (d *desc) anon() bool {
	switch d.fileType() {
	case unix.S_IFREG:
		return strings.HasPrefix(d.link, "anon_inode:")
	case unix.S_IFDIR, unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		return false
	}
	return true
}

// anonIs is the test of the anonymous-inode kinds: d is one, linked as one
// of links.
func anonIs(links ...string) func(*Scope, *desc) bool {
	return func(_ *Scope, d *desc) bool { return d.anon() && slices.Contains(links, d.link) }
}

// fsType returns the magic of the filesystem of d's file (0 when statfs
// fails).
func (d *desc) fsType() int64 {
	if !d.fsRead {
		var fs unix.Statfs_t
		if unix.Fstatfs(int(d.local.Fd()), &fs) == nil {
			d.fs = int64(fs.Type)
		}
		d.fsRead = true
	}
	return d.fs
}

// plainFile reports whether d is a regular file (not an anonymous inode).
func (d *desc) plainFile() bool { return d.fileType() == unix.S_IFREG && !d.anon() }

// charDevice reports whether d is a character device.
func (d *desc) charDevice() bool { return d.fileType() == unix.S_IFCHR }

// name is the path of a descriptor's file without " (deleted)", and
// whether the kernel marked it deleted.
func (d *desc) name() (string, bool) { return strings.CutSuffix(d.link, " (deleted)") }

// openDesc reads everything classify and the kinds need about fd of pid;
// pidfd is a pidfd of pid. The caller closes d.local unless it keeps it.
func openDesc(pid, pidfd, fd int) (*desc, error) {
	d := &desc{pid: pid, fd: fd}
	var err error
	if d.link, err = os.Readlink(proc.Path(pid, "fd", strconv.Itoa(fd))); err != nil {
		return nil, fmt.Errorf("process %d fd %d: %w", pid, fd, err)
	}
	if d.info, err = readFdinfo(pid, fd); err != nil {
		return nil, err
	}
	lfd, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return nil, fmt.Errorf("process %d fd %d: pidfd_getfd: %w", pid, fd, err)
	}
	d.local = os.NewFile(uintptr(lfd), d.link)
	if err := unix.Fstat(lfd, &d.st); err != nil {
		d.local.Close()
		return nil, fmt.Errorf("process %d fd %d: stat: %w", pid, fd, err)
	}
	return d, nil
}

// classify returns the kind d is carried as, or why none fits (an error
// that names the file).
func classify(s *Scope, d *desc) (*kind, error) {
	for _, k := range kinds {
		if k.is(s, d) {
			return k, nil
		}
	}
	switch {
	case d.anon():
		name := strings.TrimPrefix(d.link, "anon_inode:")
		if reason, ok := unsupportedAnon[name]; ok {
			return nil, fmt.Errorf("%s, %s,", d.link, reason)
		}
	case d.charDevice():
		return nil, fmt.Errorf("character device %s (%d:%d)", d.link, unix.Major(d.st.Rdev), unix.Minor(d.st.Rdev))
	case d.fileType() == unix.S_IFBLK:
		return nil, fmt.Errorf("block device %s", d.link)
	}
	return nil, fmt.Errorf("%s", d.link)
}

// Scope is the set of processes checkpointed together, which the checks of
// some kinds look at: a pidfd or a namespace file must refer to one of
// them, an epoll watch to a file one of them holds.
type Scope struct {
	PIDs []int
	in   map[int]bool
}

// NewScope returns the Scope of pids.
func NewScope(pids []int) *Scope {
	s := &Scope{PIDs: pids, in: map[int]bool{}}
	for _, p := range pids {
		s.in[p] = true
	}
	return s
}

// Has reports whether pid is one of the scope's processes.
func (s *Scope) Has(pid int) bool { return s.in[pid] }

// holdsMaster reports whether a process of s holds the master of pty
// index (fdinfo names it: "tty-index").
func (s *Scope) holdsMaster(index int) bool {
	for _, pid := range s.PIDs {
		for _, fd := range fdsOf(pid) {
			l, err := os.Readlink(proc.Path(pid, "fd", strconv.Itoa(fd)))
			if err != nil || (l != "/dev/ptmx" && l != "/dev/pts/ptmx") {
				continue
			}
			b, err := os.ReadFile(proc.Path(pid, "fdinfo", strconv.Itoa(fd)))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "tty-index:"); ok && strings.TrimSpace(v) == strconv.Itoa(index) {
					return true
				}
			}
		}
	}
	return false
}

// Check tells, without stopping anything, the kind that descriptor fd of
// pid would be carried as, or why it cannot be (an *Unsupported error).
// The checkpoint makes the same decision with the same code.
func Check(s *Scope, pid, fd int) (string, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return "", fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	d, err := openDesc(pid, pidfd, fd)
	if err != nil {
		return "", err
	}
	defer d.local.Close()
	k, err := decide(s, d)
	if err != nil {
		return "", err
	}
	return k.name, nil
}

// decide classifies d and runs its kind's check.
func decide(s *Scope, d *desc) (*kind, error) {
	k, err := classify(s, d)
	if err != nil {
		return nil, &Unsupported{PID: d.pid, FD: d.fd, What: err.Error()}
	}
	if err := d.info.lockErr; err != nil {
		// A mandatory lock, a delegation, a lease being broken.
		return nil, &Unsupported{PID: d.pid, FD: d.fd, What: err.Error()}
	}
	if err := checkOwner(s, d); err != nil {
		return nil, &Unsupported{PID: d.pid, FD: d.fd, What: "a description with " + err.Error()}
	}
	if err := k.check(s, d); err != nil {
		return nil, &Unsupported{PID: d.pid, FD: d.fd, What: err.Error(), Err: err}
	}
	return k, nil
}
