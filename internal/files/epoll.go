package files

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/proc"
)

// epoll instances, which watch other files.
//
// The kernel keys an epoll watch by the watched open file description and
// the descriptor number it was added under, and keeps it until that
// description is closed for good: the number may have been closed since,
// or given to another file, and several numbers (dup) of one description
// may be watched. So the checkpoint finds each watched description among
// the tree's descriptors (kcmp KCMP_EPOLL_TFD), and the restore adds the
// watch under its old number, lending that number to the description for
// the duration of the call if it is not already its own.

// KindEpoll is an epoll instance.
const KindEpoll = "epoll"

var epollKind = &kind{name: KindEpoll, record: func() image.FileRecord { return new(Epoll) },
	is:    anonIs("anon_inode:[eventpoll]"),
	check: checkEpoll, dump: dumpEpoll, open: openEpoll}

// Epoll is the record of an epoll instance: its registrations.
type Epoll struct {
	Watches []EpollWatch `json:"watches,omitempty"`
}

// EpollWatch is one epoll registration: the fd number in the owning
// process, the event mask and the user data.
type EpollWatch struct {
	FD     int    `json:"fd"`
	Events uint32 `json:"events"`
	Data   uint64 `json:"data"`
	// File is the open file description watched. The watch is registered
	// under the number FD (which the process may have closed since, or
	// given to another file), as the kernel keys watches by file and number.
	// 0 in older images: the file open at FD.
	File int `json:"file,omitempty"`
}

// Validate checks the numbers the watches are registered under.
func (e *Epoll) Validate(*image.Checker) error {
	for _, w := range e.Watches {
		if w.FD < 0 || w.FD >= image.MaxFD {
			return fmt.Errorf("epoll watch of bad fd %d", w.FD)
		}
	}
	return nil
}

// Link checks that every watched description is the tree's.
func (e *Epoll) Link(l *image.Links) error {
	for _, w := range e.Watches {
		if w.File != 0 && !l.File(w.File) {
			return fmt.Errorf("epoll watch of fd %d refers to unknown file %d", w.FD, w.File)
		}
	}
	return nil
}

// kcmpEpollTFD is KCMP_EPOLL_TFD from linux/kcmp.h.
const kcmpEpollTFD = 7

// kcmpEpollSlot is struct kcmp_epoll_slot.
type kcmpEpollSlot struct {
	efd, tfd, toff uint32
}

// sameAsWatched reports whether descriptor fd of pid is the description
// that the toff-th watch under number tfd of epoll efd (of epid) watches.
func sameAsWatched(pid, fd, epid, efd, tfd, toff int) bool {
	slot := kcmpEpollSlot{uint32(efd), uint32(tfd), uint32(toff)}
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(epid), kcmpEpollTFD, uintptr(fd),
		uintptr(unsafe.Pointer(&slot)), 0)
	return e == 0 && r == 0
}

// watchOffsets gives each watch its toff: how many watches before it were
// added under the same number (fdinfo lists them in the kernel's order).
func watchOffsets(ws []EpollWatch) []int {
	seen := map[int]int{}
	out := make([]int, len(ws))
	for i, w := range ws {
		out[i] = seen[w.FD]
		seen[w.FD]++
	}
	return out
}

// fdsOf lists the descriptor numbers of pid.
func fdsOf(pid int) []int {
	ents, _ := os.ReadDir(proc.Path(pid, "fd"))
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// checkEpoll refuses an epoll instance watching a description that no
// process of the scope holds (it could not be opened again).
func checkEpoll(s *Scope, d *desc) error {
	offs := watchOffsets(d.info.watches)
	for i, w := range d.info.watches {
		if !watchedIn(s, d.pid, d.fd, w.FD, offs[i]) {
			return fmt.Errorf("epoll instance watching fd %d (whose open file no process of the tree holds)", w.FD)
		}
	}
	return nil
}

// watchedIn reports whether a process of s holds the description watched.
func watchedIn(s *Scope, epid, efd, tfd, toff int) bool {
	if sameAsWatched(epid, tfd, epid, efd, tfd, toff) {
		return true
	}
	for _, pid := range s.PIDs {
		for _, fd := range fdsOf(pid) {
			if sameAsWatched(pid, fd, epid, efd, tfd, toff) {
				return true
			}
		}
	}
	return false
}

// epollDump is an epoll description whose watches Finish resolves.
type epollDump struct {
	pid, fd int
	rec     *Epoll
}

func dumpEpoll(d *Dumper, ds *desc, f *image.File) error {
	rec := &Epoll{Watches: ds.info.watches}
	f.Record = rec
	d.epolls = append(d.epolls, epollDump{pid: ds.pid, fd: ds.fd, rec: rec})
	return nil
}

// finishEpolls names the description each watch watches, once every
// descriptor of the tree is dumped.
func (d *Dumper) finishEpolls() error {
	var all [][2]int
	for k := range d.byFD {
		all = append(all, k)
	}
	sort.Slice(all, func(i, j int) bool { return all[i][0] < all[j][0] || all[i][0] == all[j][0] && all[i][1] < all[j][1] })
	for _, e := range d.epolls {
		offs := watchOffsets(e.rec.Watches)
		for i := range e.rec.Watches {
			w := &e.rec.Watches[i]
			// Nearly always the number still names the watched file.
			if f := d.byFD[[2]int{e.pid, w.FD}]; f != nil && sameAsWatched(e.pid, w.FD, e.pid, e.fd, w.FD, offs[i]) {
				w.File = f.ID
				continue
			}
			for _, c := range all {
				if sameAsWatched(c[0], c[1], e.pid, e.fd, w.FD, offs[i]) {
					w.File = d.byFD[c].ID
					break
				}
			}
			if w.File == 0 {
				return &Unsupported{PID: e.pid, FD: e.fd,
					What: fmt.Sprintf("epoll instance watching fd %d (whose open file no process of the tree holds)", w.FD)}
			}
		}
	}
	return nil
}

func openEpoll(_ *Opener, f *image.File) (*os.File, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "epoll"), nil
}

// Watch registers the epoll watches of p's epoll descriptors, once every
// descriptor is in place.
func Watch(t *inject.Target, p *image.Process, o *Opener, done map[int]bool) error {
	at := map[int]image.FD{}
	for _, d := range p.FDs {
		at[d.FD] = d
	}
	for _, d := range p.FDs {
		f := o.file(d.File)
		rec := recordOf[Epoll](f)
		if rec == nil || done[f.ID] {
			continue
		}
		done[f.ID] = true
		for _, w := range rec.Watches {
			if err := addWatch(t, o, d.FD, w, at); err != nil {
				return fmt.Errorf("process %d epoll fd %d: watch fd %d: %w", p.PID, d.FD, w.FD, err)
			}
		}
	}
	return nil
}

// addWatch adds one watch to epoll descriptor efd of t, whose descriptors
// are at.
func addWatch(t *inject.Target, o *Opener, efd int, w EpollWatch, at map[int]image.FD) error {
	ev := make([]byte, 12)
	*(*uint32)(ptr(ev)) = w.Events
	*(*uint64)(ptr(ev[4:])) = w.Data
	addr, err := t.Put(0, ev)
	if err != nil {
		return err
	}
	cur, taken := at[w.FD]
	if w.File == 0 || taken && cur.File == w.File {
		_, err := t.Call(unix.SYS_EPOLL_CTL, uintptr(efd), unix.EPOLL_CTL_ADD, uintptr(w.FD), addr)
		return err
	}
	// Lend number w.FD to the watched description for the call.
	h, err := o.Open(o.file(w.File))
	if err != nil {
		return err
	}
	got, err := t.SendFile(h)
	if err != nil {
		return err
	}
	saved := -1
	if taken {
		s, err := t.Call(unix.SYS_FCNTL, uintptr(w.FD), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("set fd %d aside: %w", w.FD, err)
		}
		saved = int(s)
	}
	if got != w.FD {
		if _, err := t.Call(unix.SYS_DUP3, uintptr(got), uintptr(w.FD), 0); err != nil {
			return fmt.Errorf("lend fd %d: %w", w.FD, err)
		}
		t.Call(unix.SYS_CLOSE, uintptr(got))
	}
	_, err = t.Call(unix.SYS_EPOLL_CTL, uintptr(efd), unix.EPOLL_CTL_ADD, uintptr(w.FD), addr)
	if saved >= 0 {
		flags := uintptr(0)
		if cur.Cloexec {
			flags = unix.O_CLOEXEC
		}
		if _, derr := t.Call(unix.SYS_DUP3, uintptr(saved), uintptr(w.FD), flags); derr != nil && err == nil {
			err = fmt.Errorf("put fd %d back: %w", w.FD, derr)
		}
		t.Call(unix.SYS_CLOSE, uintptr(saved))
	} else {
		t.Call(unix.SYS_CLOSE, uintptr(w.FD))
	}
	return err
}
