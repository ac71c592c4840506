// Package mem checkpoints and restores address spaces: which mappings exist,
// what backs them, and the pages whose contents cannot be found elsewhere.
//
// Pages are chosen with /proc/PID/pagemap: anonymous pages that are present
// or swapped are stored, as are private copies of file pages; clean file
// pages and never-touched pages are not. Shared memory objects are stored
// once however many processes map them.
package mem

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/fileref"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/parallel"
	"github.com/seamless-linux/seamless/internal/proc"
)

// PageSize is the x86-64 base page size.
const PageSize = 4096

const (
	pmPresent   = 1 << 63
	pmSwapped   = 1 << 62
	pmFile      = 1 << 61
	pmExclusive = 1 << 56 // the page is mapped by this process only
)

// Dumper stores the memory of the processes of one checkpoint.
type Dumper struct {
	W *image.Writer
	// Shared collects shared memory objects by identity (device and inode).
	Shared map[[2]uint64]*image.SharedMemory
	// Files stores the contents of deleted files once per identity.
	Files *fileref.Dumper
	// Order keeps SharedMemory in creation order.
	Order []*image.SharedMemory
	// SysV are the IDs of the System V segments the processes attached.
	SysV map[int]bool
	// Move, if set, moves the processes' private memory into the image
	// rather than copying it (see Mover).
	Move *Mover
	buf  []byte
	// dumped are the mappings of the processes dumped so far, by PID: a
	// child's are compared with its parent's (see inherit.go).
	dumped map[int][]*image.Mapping
}

// NewDumper returns a Dumper writing into w.
func NewDumper(w *image.Writer, files *fileref.Dumper) *Dumper {
	return &Dumper{W: w, Shared: map[[2]uint64]*image.SharedMemory{}, Files: files, SysV: map[int]bool{}, buf: make([]byte, 4<<20),
		dumped: map[int][]*image.Mapping{}}
}

// Dump describes the mappings of pid and stores its private pages in the
// image file named pages. parent is pid's parent when it is in the tree
// and was dumped before (0 otherwise): the pages pid still shares with it
// since a fork are left to the parent's (see inherit.go). The processes
// must be stopped.
func (d *Dumper) Dump(pid int, pages string, parent int) ([]*image.Mapping, error) {
	maps, err := proc.ReadMappings(pid)
	if err != nil {
		return nil, err
	}
	pm, err := os.Open(proc.Path(pid, "pagemap"))
	if err != nil {
		return nil, fmt.Errorf("open pagemap of %d: %w", pid, err)
	}
	defer pm.Close()
	from, err := d.parentOf(parent, maps)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	if from != nil {
		defer from.pagemap.Close()
	}
	var res []*image.Mapping
	var drop []image.Run // runs that a Mover may drop once written
	var off uint64
	cow := false // a page to store is shared copy-on-write with another process
	for i := range maps {
		m := &maps[i]
		im, err := d.describe(pid, m)
		if err != nil {
			return nil, fmt.Errorf("process %d mapping %#x-%#x %s: %w", pid, m.Start, m.End, m.Path, err)
		}
		switch {
		case im.Kind == image.MapAnon || (im.Kind == image.MapFile && !im.Shared):
			var skip []bool
			if skip, err = from.inherit(pm, im); err != nil {
				return nil, fmt.Errorf("process %d mapping %#x-%#x: %w", pid, m.Start, m.End, err)
			}
			if off, err = choosePages(pm, m, im, off, skip, &cow); err != nil {
				return nil, fmt.Errorf("process %d mapping %#x-%#x: %w", pid, m.Start, m.End, err)
			}
			if droppable(m, im) {
				drop = append(drop, im.Runs...)
			}
		case im.Kind == image.MapFile || im.Kind == image.MapShared || im.Kind == image.MapSysV:
			if im.Guards, err = readGuards(pm, m); err != nil {
				return nil, fmt.Errorf("process %d mapping %#x-%#x: %w", pid, m.Start, m.End, err)
			}
		case im.Kind == image.MapVDSO:
			// All of it: a restore on a kernel with another vDSO keeps the
			// old one's ELF tables readable at the old address (see vdsoproxy.go).
			im.Runs = []image.Run{{Addr: m.Start, Pages: m.Len() / PageSize, Off: off}}
			off += m.Len()
		}
		res = append(res, im)
	}
	out, err := d.W.CreateSized(pages, int64(off))
	if err != nil {
		return nil, err
	}
	var runs []image.Run
	for _, im := range res {
		runs = append(runs, im.Runs...)
	}
	if d.Move != nil {
		err = d.Move.copy(pid, runs, drop, out, cow)
	} else {
		err = copyPages(pid, runs, out, cow)
	}
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	d.dumped[pid] = res
	return res, out.Close()
}

// CheckMapping says why mapping m cannot be carried, nil if it can:
// `seamless plan` and the checkpoint decide with it.
func CheckMapping(m *proc.Mapping) error {
	switch {
	case m.Path == "[vdso]", strings.HasPrefix(m.Path, "[vvar"), m.Path == "[vsyscall]", strings.HasPrefix(m.Path, "[anon:"):
		return nil
	case m.IsSpecial():
		return fmt.Errorf("kernel mapping %s is not supported", m.Path)
	case m.Path == "/[aio]":
		// Its ring and the requests in flight live in the kernel.
		return fmt.Errorf("AIO context (io_setup) is not supported: its ring and in-flight requests live in the kernel")
	case strings.HasPrefix(m.Path, "/anon_hugepage"):
		return fmt.Errorf("MAP_HUGETLB memory is not supported")
	case m.Major != 0 && !m.Shared && m.Inode != 0 && strings.HasPrefix(m.Path, "/dev/"):
		return fmt.Errorf("device mapping %s is not supported", m.Path)
	}
	return nil
}

// keptFlags are the smaps VmFlags that restore reproduces.
var keptFlags = map[string]bool{"gd": true, "dd": true, "dc": true, "wf": true, "hg": true, "nh": true, "lo": true, "mw": true,
	"sr": true, "rr": true, "mg": true, "nr": true, "dp": true, "gu": true}

func (d *Dumper) describe(pid int, m *proc.Mapping) (*image.Mapping, error) {
	im := &image.Mapping{Start: m.Start, End: m.End, Shared: m.Shared, Offset: m.Offset, Name: m.Path}
	if m.Read {
		im.Prot |= unix.PROT_READ
	}
	if m.Write {
		im.Prot |= unix.PROT_WRITE
	}
	if m.Exec {
		im.Prot |= unix.PROT_EXEC
	}
	for _, f := range m.VMFlags {
		if keptFlags[f] {
			im.Flags = append(im.Flags, f)
		}
	}
	if err := CheckMapping(m); err != nil {
		return nil, err
	}
	switch {
	case m.Path == "[vdso]":
		im.Kind = image.MapVDSO
	case strings.HasPrefix(m.Path, "[vvar"):
		im.Kind = image.MapVVAR
	case m.Path == "[vsyscall]":
		im.Kind = image.MapSkip
	case m.Shared && strings.HasPrefix(m.Path, "/SYSV"):
		// The segment's ID is the inode number of its mapping (0 included).
		im.Kind, im.SharedID = image.MapSysV, int(m.Inode)
		d.SysV[im.SharedID] = true
	case m.Inode == 0:
		if m.Shared {
			return nil, fmt.Errorf("unsupported shared mapping without a backing object")
		}
		im.Kind = image.MapAnon
	case m.Shared && m.Major == 0 && m.Path == "/dev/zero" && m.Deleted:
		// MAP_SHARED|MAP_ANONYMOUS: shared memory that no path or
		// descriptor names; its contents go into the image once.
		s, err := d.sharedObject(pid, m)
		if err != nil {
			return nil, err
		}
		im.Kind, im.SharedID = image.MapShared, s.ID
	default:
		// A file by path (one of a tmpfs saved too), or an object restore
		// recreates once for every mapping and descriptor of it (a memfd,
		// a deleted file), shared or private: a private mapping's untouched
		// pages keep following the file.
		ref, err := d.Files.Ref(proc.Path(pid, "map_files", fmt.Sprintf("%x-%x", m.Start, m.End)), m.Path, m.Deleted)
		if err != nil {
			return nil, err
		}
		im.Kind, im.File = image.MapFile, ref
	}
	return im, nil
}

// choosePages picks the pages of m that only the process's memory holds
// (and that skip, when not nil, does not leave to the parent's) and lays
// them out in the pages file from offset off on. It sets *cow when one of
// them is present but not mapped by this process alone (shared
// copy-on-write since a fork).
func choosePages(pm *os.File, m *proc.Mapping, im *image.Mapping, off uint64, skip []bool, cow *bool) (uint64, error) {
	n := m.Len() / PageSize
	ents := make([]byte, n*8)
	if _, err := pm.ReadAt(ents, int64(m.Start/PageSize*8)); err != nil && err != io.EOF {
		return off, fmt.Errorf("read pagemap: %w", err)
	}
	anon := im.Kind == image.MapAnon
	im.Guards = guardRuns(ents, m.Start)
	want := func(i uint64) bool {
		e := binary.LittleEndian.Uint64(ents[i*8:])
		if e&pmGuard != 0 {
			return false // a guard page has no data: reading it faults
		}
		if skip != nil && skip[i] {
			return false // stored with the parent's pages
		}
		if e&pmSwapped != 0 {
			return true
		}
		if e&pmPresent == 0 {
			return false
		}
		if anon || e&pmFile == 0 { // a private copy of a file page
			if e&pmExclusive == 0 {
				*cow = true
			}
			return true
		}
		return false
	}
	for i := uint64(0); i < n; {
		if !want(i) {
			i++
			continue
		}
		j := i + 1
		for j < n && want(j) {
			j++
		}
		im.Runs = append(im.Runs, image.Run{Addr: m.Start + i*PageSize, Pages: j - i, Off: off})
		off += (j - i) * PageSize
		i = j
	}
	return off, nil
}

// copyPages reads the runs out of process pid into the pages file, block by
// block, on every CPU: process_vm_readv needs no ptrace stop of its own.
// With cow (pages shared copy-on-write with other processes) it reads
// through /proc/PID/mem instead: process_vm_readv would unshare every page
// it reads (the process would take private copies of them, and a forked
// server hold twice its memory, while running on or until it is killed).
func copyPages(pid int, runs []image.Run, out *image.BlockFile, cow bool) error {
	return copyBlocks(pid, runs, out, cow, 0, out.Blocks())
}

// copyBlocks is copyPages of the n blocks of out from block first on.
func copyBlocks(pid int, runs []image.Run, out *image.BlockFile, cow bool, first, n int) error {
	return parallel.Each(n, func(i int) error {
		return out.Fill(first+i, func(b []byte) error {
			return readBlock(pid, runs, uint64(first+i)*image.BlockSize, b, cow)
		})
	})
}

// readBlock fills b with the file range [off, off+len(b)) of the pages
// file: the parts of the runs that fall into it; through /proc/PID/mem
// only with cow.
func readBlock(pid int, runs []image.Run, off uint64, b []byte, cow bool) error {
	end := off + uint64(len(b))
	// runs are sorted by Off; find the first that ends after off.
	k := sort.Search(len(runs), func(i int) bool { return runs[i].Off+runs[i].Pages*PageSize > off })
	var remote []unix.RemoteIovec
	for ; k < len(runs) && runs[k].Off < end; k++ {
		r := runs[k]
		lo, hi := max(r.Off, off), min(r.Off+r.Pages*PageSize, end)
		remote = append(remote, unix.RemoteIovec{Base: uintptr(r.Addr + lo - r.Off), Len: int(hi - lo)})
	}
	read := inject.ReadMemFile
	if !cow {
		local := []unix.Iovec{{Base: &b[0]}}
		local[0].SetLen(len(b))
		if got, err := unix.ProcessVMReadv(pid, local, remote, 0); err == nil && got == len(b) {
			return nil
		}
		// Some pages refuse process_vm_readv (PROT_NONE, for one): go one
		// segment at a time, through /proc/PID/mem where needed.
		read = inject.ReadMem
	}
	pos := 0
	for _, r := range remote {
		if err := read(pid, r.Base, b[pos:pos+r.Len]); err != nil {
			return err
		}
		pos += r.Len
	}
	return nil
}

// sharedObject stores a shared memory object the first time it is seen,
// reading it through /proc/PID/map_files so that pages other processes
// touched are included, and skipping holes.
func (d *Dumper) sharedObject(pid int, m *proc.Mapping) (*image.SharedMemory, error) {
	key := [2]uint64{uint64(m.Major)<<32 | uint64(m.Minor), m.Inode}
	if s, ok := d.Shared[key]; ok {
		return s, nil
	}
	f, err := os.Open(proc.Path(pid, "map_files", fmt.Sprintf("%x-%x", m.Start, m.End)))
	if err != nil {
		return nil, fmt.Errorf("open shared memory object: %w", err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat shared memory object: %w", err)
	}
	s := &image.SharedMemory{ID: len(d.Order) + 1, Name: m.Path, Size: uint64(st.Size), Kind: "anon"}
	switch {
	case strings.HasPrefix(m.Path, "/memfd:"):
		s.Kind = "memfd"
		s.Name = strings.TrimPrefix(m.Path, "/memfd:")
		if seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0); err == nil {
			s.Seals = seals
		}
	case m.Path != "/dev/zero":
		s.Kind = "file"
	}
	s.Data = fmt.Sprintf("shmem-%d.img", s.ID)
	out, err := d.W.Create(s.Data)
	if err != nil {
		return nil, err
	}
	if s.Runs, err = fileref.CopySparse(f, int64(s.Size), out, d.buf); err != nil {
		out.Close()
		return nil, fmt.Errorf("copy shared memory object: %w", err)
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	d.Shared[key] = s
	d.Order = append(d.Order, s)
	return s, nil
}
