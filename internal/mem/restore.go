package mem

import (
	"errors"
	"fmt"
	"os"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/fileref"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/kmod"
	"github.com/seamless-linux/seamless/internal/proc"
)

// Restorer rebuilds address spaces from an image. Files and shared memory
// objects are opened once in the restorer and handed to every process that
// maps them.
type Restorer struct {
	Image *image.Image
	// Files opens the file a mapping refers to (recreating deleted files
	// once for every mapping and descriptor of them).
	Files *fileref.Opener
	// VDSO says whether the kernel's vDSO may take the place of the
	// image's when they match, or is always reached through a proxy.
	VDSO VDSOMode
	// Proxies lists the vDSO proxies built so far, one per process.
	Proxies []ProxiedVDSO
	// Filled counts the private memory filled so far, by how.
	Filled FillStats
	shared map[int]*os.File
	pages  map[string][]byte
}

// NewRestorer returns a Restorer for im, which opens mapped files with
// files.
func NewRestorer(im *image.Image, files *fileref.Opener) *Restorer {
	return &Restorer{Image: im, Files: files, shared: map[int]*os.File{}, pages: map[string][]byte{}}
}

// Close releases the restorer's copies of files and page data.
func (r *Restorer) Close() {
	for _, f := range r.shared {
		f.Close()
	}
	for _, b := range r.pages {
		unix.Munmap(b)
	}
}

// shmExec is SHM_EXEC from linux/shm.h.
const shmExec = 0o100000

// TempGap is the room that Restore needs right after the target's region
// to move the kernel's vDSO and its data pages through.
const TempGap = 1 << 20

// Restore replaces the address space of t (a fresh copy of the seed, or
// of its restored parent when p inherits mappings from it) with the
// mappings of p. Only t.Region and the mappings p inherits survive; the
// region is removed at the very end of the restore by the caller.
func (r *Restorer) Restore(t *inject.Target, p *image.Process) error {
	cur, err := proc.ReadMappings(t.PID)
	if err != nil {
		return err
	}
	if err := r.clear(t, cur, keepRanges(t, p)); err != nil {
		return err
	}
	if err := r.placeVDSO(t, cur, p); err != nil {
		return err
	}
	data, err := r.pageData(p.Pages)
	if err != nil {
		return err
	}
	release := r.releaser(p.Pages)
	var opened []int
	defer func() {
		for _, fd := range opened {
			t.Call(unix.SYS_CLOSE, uintptr(fd))
		}
	}()
	fds := map[*image.Ref]int{}
	for _, m := range p.Mappings {
		if err := r.mapOne(t, m, fds, &opened); err != nil {
			return fmt.Errorf("process %d mapping %#x-%#x %s: %w", p.PID, m.Start, m.End, m.Name, err)
		}
	}
	if err := adviseHugePages(t, p); err != nil {
		return err
	}
	st, err := fill(t, p, data, release)
	r.Filled.Copied += st.Copied
	r.Filled.Written += st.Written
	if err != nil {
		return err
	}
	for _, m := range p.Mappings {
		if err := dropZero(t, m); err != nil {
			return fmt.Errorf("process %d mapping %#x-%#x %s: %w", p.PID, m.Start, m.End, m.Name, err)
		}
		if err := finishOne(t, m); err != nil {
			return fmt.Errorf("process %d mapping %#x-%#x %s: %w", p.PID, m.Start, m.End, m.Name, err)
		}
	}
	return nil
}

// clear unmaps everything the seed (or the parent the process was forked
// from) had except the ranges of keep and the kernel's special mappings.
// A kept range may lie inside a larger mapping (the kernel merges
// neighbouring anonymous mappings): only the parts outside it go.
func (r *Restorer) clear(t *inject.Target, cur []proc.Mapping, keep [][2]uint64) error {
	for _, m := range cur {
		if m.IsSpecial() {
			continue
		}
		for _, part := range outside(m.Start, m.End, keep) {
			if _, err := t.Call(unix.SYS_MUNMAP, uintptr(part[0]), uintptr(part[1]-part[0])); err != nil {
				return fmt.Errorf("unmap mapping %#x-%#x: %w", part[0], part[1], err)
			}
		}
	}
	return nil
}

// releaser returns what gives back the parts of pages file name that the
// restore has written into its process: on the kmod store their memory
// goes back to the system as it empties (docs/kmod.md), so that the image
// and the restored processes never hold a service's memory twice; on
// other stores, nothing. The parts given back are unmapped from the
// restore: nothing may read them again.
func (r *Restorer) releaser(name string) func(ranges [][2]int64) error {
	f, err := r.Image.File(name)
	if err != nil || !kmod.IsKmod(f) {
		return nil
	}
	// Onlining the memory given back is the restore daemon's (a sandboxed
	// unit's sysfs is read-only).
	return func(ranges [][2]int64) error { return kmod.ReleaseOnly(f, ranges) }
}

// pageData maps a pages file of the image read-only.
func (r *Restorer) pageData(name string) ([]byte, error) {
	if b, ok := r.pages[name]; ok {
		return b, nil
	}
	// The verified file the image holds, never a path opened again.
	f, err := r.Image.File(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return nil, nil
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", name, err)
	}
	unix.Madvise(b, unix.MADV_SEQUENTIAL)
	r.pages[name] = b
	return b, nil
}

// fillProt is the protection a mapping has while its pages are written.
func fillProt(m *image.Mapping) int {
	if len(m.Runs) > 0 && m.Kind != image.MapShared {
		return m.Prot | unix.PROT_READ | unix.PROT_WRITE
	}
	return m.Prot
}

func hasFlag(m *image.Mapping, f string) bool {
	for _, g := range m.Flags {
		if g == f {
			return true
		}
	}
	return false
}

// anonPart is the size of the parts mapInParts maps a private anonymous
// mapping in.
const anonPart = 64 << 20

// mapInParts maps [start, start+length) as the anonymous mapping flags
// describe, anonPart at a time: the kernel merges the parts into one
// mapping, as the one call would have made it. The kernel's overcommit
// heuristic refuses a single private mapping larger than all of its RAM,
// and a kernel booted with the kmod store's image reserved starts with
// less RAM than the service had: the image's memory comes back only as
// the restore reads it.
func mapInParts(t *inject.Target, start uint64, length uintptr, prot, flags int) error {
	for done := uintptr(0); done < length; done += anonPart {
		n := min(length-done, anonPart)
		if _, err := t.Call(unix.SYS_MMAP, uintptr(start)+done, n, uintptr(prot), uintptr(flags), ^uintptr(0), 0); err != nil {
			return fmt.Errorf("map part at %#x: %w", uintptr(start)+done, err)
		}
	}
	return nil
}

// mapOne creates one mapping, writable if its pages are to be filled. An
// inherited mapping is there already (with its final protection): it is
// only made writable for its own pages.
func (r *Restorer) mapOne(t *inject.Target, m *image.Mapping, fds map[*image.Ref]int, opened *[]int) error {
	length := uintptr(m.End - m.Start)
	prot := fillProt(m)
	has := func(f string) bool { return hasFlag(m, f) }
	var err error
	if m.Inherit {
		if prot != m.Prot {
			if _, err := t.Call(unix.SYS_MPROTECT, uintptr(m.Start), length, uintptr(prot)); err != nil {
				return fmt.Errorf("protect for filling: %w", err)
			}
		}
		return nil
	}
	switch m.Kind {
	case image.MapVDSO, image.MapVVAR, image.MapSkip:
		return nil
	case image.MapSysV:
		flags := uintptr(0)
		if m.Prot&unix.PROT_WRITE == 0 {
			flags |= unix.SHM_RDONLY
		}
		if m.Prot&unix.PROT_EXEC != 0 {
			flags |= shmExec
		}
		_, err = t.Call(unix.SYS_SHMAT, uintptr(m.SharedID), uintptr(m.Start), flags)
		if err == nil && m.Prot == unix.PROT_NONE {
			_, err = t.Call(unix.SYS_MPROTECT, uintptr(m.Start), length, 0)
		}
	case image.MapAnon:
		flags := unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | unix.MAP_FIXED | mapFlags(m)
		if has("gd") {
			flags |= unix.MAP_GROWSDOWN
		}
		if has("dp") {
			// MAP_DROPPABLE is a mapping type of its own, like MAP_PRIVATE.
			flags = flags&^unix.MAP_PRIVATE | mapDroppable
		}
		_, err = t.Call(unix.SYS_MMAP, uintptr(m.Start), length, uintptr(prot), uintptr(flags), ^uintptr(0), 0)
		if errors.Is(err, unix.ENOMEM) && flags&unix.MAP_GROWSDOWN == 0 {
			err = mapInParts(t, m.Start, length, prot, flags)
		}
	case image.MapFile:
		fd, ok := fds[m.File]
		if !ok {
			f, err := r.Files.Open(m.File, m.Shared && has("mw"))
			if err != nil {
				return err
			}
			fd, err = t.SendFile(f)
			f.Close()
			if err != nil {
				return err
			}
			fds[m.File] = fd
			*opened = append(*opened, fd)
		}
		flags := unix.MAP_PRIVATE | unix.MAP_FIXED | mapFlags(m)
		if m.Shared {
			flags = unix.MAP_SHARED | unix.MAP_FIXED | mapFlags(m)
		}
		_, err = t.Call(unix.SYS_MMAP, uintptr(m.Start), length, uintptr(prot), uintptr(flags), uintptr(fd), uintptr(m.Offset))
	case image.MapShared:
		f, ferr := r.sharedObject(m.SharedID)
		if ferr != nil {
			return ferr
		}
		fd, serr := t.SendFile(f)
		if serr != nil {
			return serr
		}
		*opened = append(*opened, fd)
		_, err = t.Call(unix.SYS_MMAP, uintptr(m.Start), length, uintptr(m.Prot), uintptr(unix.MAP_SHARED|unix.MAP_FIXED|mapFlags(m)), uintptr(fd), uintptr(m.Offset))
	default:
		return fmt.Errorf("unknown mapping kind %q", m.Kind)
	}
	if err != nil {
		return fmt.Errorf("map: %w", err)
	}
	return markGuarded(t, m)
}

// mapDroppable is MAP_DROPPABLE (Linux 6.11).
const mapDroppable = 0x08

// mapFlags are the mmap flags that a mapping's VmFlags call for beyond its
// type: MAP_NORESERVE for "nr".
func mapFlags(m *image.Mapping) int {
	if hasFlag(m, "nr") {
		return unix.MAP_NORESERVE
	}
	return 0
}

// finishOne gives a filled mapping its final protection and advice.
func finishOne(t *inject.Target, m *image.Mapping) error {
	if m.Kind == image.MapSysV {
		return installGuards(t, m)
	}
	if !advisable(m) {
		return nil
	}
	length := uintptr(m.End - m.Start)
	has := func(f string) bool { return hasFlag(m, f) }
	if fillProt(m) != m.Prot {
		if _, err := t.Call(unix.SYS_MPROTECT, uintptr(m.Start), length, uintptr(m.Prot)); err != nil {
			return fmt.Errorf("protect: %w", err)
		}
	}
	// The huge page advice was given before the fill (adviseHugePages).
	if err := advise(t, m, laterAdvice); err != nil {
		return err
	}
	if err := installGuards(t, m); err != nil {
		return err
	}
	if has("lo") {
		if _, err := t.Call(unix.SYS_MLOCK, uintptr(m.Start), length); err != nil {
			return fmt.Errorf("mlock: %w", err)
		}
	}
	return nil
}

// An adviceFlag is a VmFlags flag of smaps and the madvise advice that
// sets it.
type adviceFlag struct {
	flag   string
	advice int
}

// hugeAdvice is given before a mapping's pages are filled, laterAdvice
// once they are.
var (
	hugeAdvice  = []adviceFlag{{"hg", unix.MADV_HUGEPAGE}, {"nh", unix.MADV_NOHUGEPAGE}}
	laterAdvice = []adviceFlag{{"dd", unix.MADV_DONTDUMP}, {"dc", unix.MADV_DONTFORK}, {"wf", unix.MADV_WIPEONFORK},
		{"sr", unix.MADV_SEQUENTIAL}, {"rr", unix.MADV_RANDOM}, {"mg", unix.MADV_MERGEABLE}}
)

// advisable reports whether m gets its protection and advice back: the
// kernel's own mappings and System V segments (guards only) do not.
func advisable(m *image.Mapping) bool {
	switch m.Kind {
	case image.MapVDSO, image.MapVVAR, image.MapSkip, image.MapSysV:
		return false
	}
	return true
}

// advise gives m each advice of table whose flag it had.
func advise(t *inject.Target, m *image.Mapping, table []adviceFlag) error {
	for _, a := range table {
		if hasFlag(m, a.flag) {
			if _, err := t.Call(unix.SYS_MADVISE, uintptr(m.Start), uintptr(m.End-m.Start), uintptr(a.advice)); err != nil {
				return fmt.Errorf("madvise %s: %w", a.flag, err)
			}
		}
	}
	return nil
}

// sharedObject creates (once) and fills a shared memory object: a shmem
// object like MAP_SHARED|MAP_ANONYMOUS makes for "anon", a memfd of the
// same name for "memfd", and a re-created deleted file for "file".
func (r *Restorer) sharedObject(id int) (*os.File, error) {
	if f, ok := r.shared[id]; ok {
		return f, nil
	}
	var s *image.SharedMemory
	for _, x := range r.Image.Tree.SharedMemory {
		if x.ID == id {
			s = x
		}
	}
	if s == nil {
		return nil, fmt.Errorf("unknown shared memory %d", id)
	}
	var f *os.File
	var err error
	switch s.Kind {
	case "anon":
		f, err = anonShared(int(s.Size))
	case "memfd":
		var fd int
		fd, err = unix.MemfdCreate(s.Name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err == nil {
			f = os.NewFile(uintptr(fd), "memfd:"+s.Name)
			err = f.Truncate(int64(s.Size))
		}
	default:
		f, err = r.Files.Open(&image.Ref{Path: s.Name, Deleted: true, Size: int64(s.Size), Mode: 0o600}, true)
		if err == nil {
			err = f.Truncate(int64(s.Size))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create shared memory %s: %w", s.Name, err)
	}
	if err := r.fill(f, s); err != nil {
		f.Close()
		return nil, err
	}
	if s.Seals != 0 {
		if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, s.Seals); err != nil {
			f.Close()
			return nil, fmt.Errorf("seal memfd %s: %w", s.Name, err)
		}
	}
	r.shared[id] = f
	return f, nil
}

func (r *Restorer) fill(f *os.File, s *image.SharedMemory) error {
	data, err := r.pageData(s.Data)
	if err != nil {
		return err
	}
	runs := append([]image.Run(nil), s.Runs...)
	sort.Slice(runs, func(i, j int) bool { return runs[i].Addr < runs[j].Addr })
	for _, run := range runs {
		end := run.Off + run.Pages*PageSize
		if end > uint64(len(data)) {
			return fmt.Errorf("shared memory %s: run beyond the end of %s", s.Name, s.Data)
		}
		if _, err := f.WriteAt(data[run.Off:end], int64(run.Addr)); err != nil {
			return fmt.Errorf("fill shared memory %s: %w", s.Name, err)
		}
	}
	return nil
}

// anonShared creates the shmem object that MAP_SHARED|MAP_ANONYMOUS would:
// it maps /dev/zero shared in the restorer and keeps the object's file.
func anonShared(size int) (*os.File, error) {
	z, err := os.OpenFile("/dev/zero", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	b, err := unix.Mmap(int(z.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(b)
	start := uintptr(unsafePointer(b))
	return os.OpenFile(fmt.Sprintf("/proc/self/map_files/%x-%x", start, start+uintptr(size)), os.O_RDWR, 0)
}
