package files

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/proc"
)

// One decision per kind of descriptor: classify names the kind a
// descriptor is carried as (or why none fits), and the kind's entry in
// kinds says what stands in its way (check), how it is saved (dump) and
// how it is rebuilt (open). `seamless plan` (Check), the checkpoint
// (Dumper) and the restore (Opener) all go through this table, so that the
// checkpoint never accepts a descriptor that the restore would refuse.
//
// Each kind keeps its check, dump and open (and what it does once the
// whole tree is dumped) in a file of its own: regular.go (regular files,
// directories, memfds, O_PATH), device.go, terminal.go, pipe.go (pipes and
// FIFOs), socket.go, eventfd.go, epoll.go, signalfd.go, timerfd.go,
// inotify.go, namespace.go, pidfd.go. A new kind is a file, a line in
// classify and a line in this table.

// kind is what the checkpoint and the restore do for one kind of descriptor.
type kind struct {
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
}

var kinds map[string]*kind

func init() {
	kinds = map[string]*kind{
		image.FileRegular:   {check: checkPathFile, dump: dumpPathFile, open: openPathFile, setfl: true},
		image.FileDirectory: {check: checkPathFile, dump: dumpPathFile, open: openPathFile, setfl: true},
		image.FileMemfd:     {check: checkPathFile, dump: dumpPathFile, open: openMemfd, setfl: true},
		image.FilePath:      {check: checkOPath, dump: dumpPathFile, open: openOPath},
		image.FileDevice:    {check: checkPathFile, dump: dumpDevice, open: openDevice, setfl: true},
		image.FileTerminal:  {check: checkPathFile, dump: dumpDevice, open: openDevice},
		image.FileCtty:      {check: checkNothing, dump: dumpDevice, open: openCtty},
		image.FilePtyMaster: {check: checkNothing, dump: dumpPtyMaster, open: openPtyMaster},
		image.FilePtySlave:  {check: checkNothing, dump: dumpPtySlave, open: openPtySlave},
		image.FileHungUp:    {check: checkNothing, dump: dumpHungUp, open: openHungUp},
		image.FilePipe:      {check: checkNothing, dump: dumpPipe, open: openPipe, setfl: true},
		image.FileFIFO:      {check: checkPathFile, dump: dumpPipe, open: openFIFO, setfl: true},
		image.FileSocket:    {check: checkSocket, dump: dumpSocket, open: openSocket},
		image.FileEventfd:   {check: checkNothing, dump: dumpEventfd, open: openEventfd},
		image.FileEpoll:     {check: checkEpoll, dump: dumpEpoll, open: openEpoll},
		image.FileSignalfd:  {check: checkNothing, dump: dumpSignalfd, open: openSignalfd},
		image.FileTimerfd:   {check: checkNothing, dump: dumpTimerfd, open: openTimerfd},
		image.FileInotify:   {check: checkInotify, dump: dumpInotify, open: openInotify},
		image.FileNamespace: {check: checkNamespace, dump: dumpNamespace, open: openNamespace},
		image.FilePidfd:     {check: checkPidfd, dump: dumpPidfd, open: openPidfd},
	}
}

// checkNothing is the check of the kinds that nothing seen while the
// process runs can refuse: a pipe, a pty of the tree, a counter or timer
// whose whole state fdinfo gives. What their dump may still refuse (a pty
// whose queues cannot be read) is refused before the kill.
func checkNothing(*Scope, *desc) error { return nil }

// Kinds lists the kinds of descriptor that are carried, sorted.
func Kinds() []string {
	var out []string
	for k := range kinds {
		out = append(out, k)
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
}

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

// classify names the kind d is carried as, or returns why none fits.
func classify(d *desc) (string, error) {
	if d.info.flags&unix.O_PATH != 0 {
		return image.FilePath, nil
	}
	switch d.st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		var fs unix.Statfs_t
		unix.Fstatfs(int(d.local.Fd()), &fs)
		switch {
		case strings.HasPrefix(d.link, "anon_inode:"):
			return anonKind(d.link)
		case int64(fs.Type) == unix.NSFS_MAGIC:
			return image.FileNamespace, nil
		case strings.HasPrefix(d.link, "/memfd:") && (int64(fs.Type) == unix.TMPFS_MAGIC || int64(fs.Type) == unix.HUGETLBFS_MAGIC):
			return image.FileMemfd, nil
		}
		return image.FileRegular, nil
	case unix.S_IFDIR:
		return image.FileDirectory, nil
	case unix.S_IFCHR:
		rdev := d.st.Rdev
		switch {
		case CharDeviceKind(rdev) == "terminal" && !isPtyMaster(rdev) && hungUp(int(d.local.Fd())):
			// Its pty master was closed (or vhangup ran): a dead
			// descriptor, whatever /dev/pts/N became since.
			return image.FileHungUp, nil
		case isPtyMaster(rdev):
			return image.FilePtyMaster, nil
		case ptySlaveIndex(rdev) >= 0:
			return image.FilePtySlave, nil
		case unix.Major(rdev) == 5 && unix.Minor(rdev) == 0:
			// /dev/tty: opened again by the restored process itself, once
			// its session has its controlling terminal back.
			return image.FileCtty, nil
		case CharDeviceKind(rdev) == "device":
			return image.FileDevice, nil
		case CharDeviceKind(rdev) == "terminal":
			return image.FileTerminal, nil
		}
		return "", fmt.Errorf("character device %s (%d:%d)", d.link, unix.Major(rdev), unix.Minor(rdev))
	case unix.S_IFBLK:
		return "", fmt.Errorf("block device %s", d.link)
	case unix.S_IFIFO:
		if strings.HasPrefix(d.link, "pipe:") {
			return image.FilePipe, nil
		}
		return image.FileFIFO, nil
	case unix.S_IFSOCK:
		return image.FileSocket, nil
	}
	return anonKind(d.link)
}

// anonKind classifies an anonymous-inode file by its link.
func anonKind(link string) (string, error) {
	switch link {
	case "anon_inode:[eventfd]":
		return image.FileEventfd, nil
	case "anon_inode:[eventpoll]":
		return image.FileEpoll, nil
	case "anon_inode:[signalfd]":
		return image.FileSignalfd, nil
	case "anon_inode:[timerfd]":
		return image.FileTimerfd, nil
	case "anon_inode:inotify":
		return image.FileInotify, nil
	case "anon_inode:[pidfd]":
		return image.FilePidfd, nil
	}
	if strings.HasPrefix(link, "pidfd:") {
		return image.FilePidfd, nil
	}
	name := strings.TrimPrefix(link, "anon_inode:")
	if reason, ok := unsupportedAnon[name]; ok {
		return "", fmt.Errorf("%s, %s,", link, reason)
	}
	return "", fmt.Errorf("%s", link)
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
	return decide(s, d)
}

// decide classifies d and runs its kind's check.
func decide(s *Scope, d *desc) (string, error) {
	k, err := classify(d)
	if err != nil {
		return "", &Unsupported{PID: d.pid, FD: d.fd, What: err.Error()}
	}
	if k == image.FilePtySlave && !s.holdsMaster(ptySlaveIndex(d.st.Rdev)) {
		// A slave whose master is outside the tree is somebody else's
		// terminal, reopened by path.
		k = image.FileTerminal
	}
	if err := d.info.lockErr; err != nil {
		// A mandatory lock, a delegation, a lease being broken.
		return "", &Unsupported{PID: d.pid, FD: d.fd, What: err.Error()}
	}
	if err := checkOwner(s, d); err != nil {
		return "", &Unsupported{PID: d.pid, FD: d.fd, What: "a description with " + err.Error()}
	}
	if err := kinds[k].check(s, d); err != nil {
		return "", &Unsupported{PID: d.pid, FD: d.fd, What: err.Error(), Err: err}
	}
	return k, nil
}
