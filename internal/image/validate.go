package image

import (
	"errors"
	"fmt"
	"math"
)

// Validation: every record of a decoded tree is checked before anything
// downstream uses it, so that no image, however malformed (a checksum only
// says that the bytes are those written, not that they make sense), can
// make a reader dereference a missing object, index out of range, or
// allocate or loop without bound. The rules are those of what a checkpoint
// writes; each record type has its validate method, so that a new field or
// kind brings its own rule beside the others.

// Limits of the values an image may hold.
const (
	// MaxPID is PID_MAX_LIMIT on 64-bit Linux.
	MaxPID = 4 << 20
	// MaxFD is above fs.nr_open's largest value.
	MaxFD = 1 << 30
	// MaxAddress is the end of the largest user address space (5-level
	// paging); only the vsyscall page lies above it.
	MaxAddress = 1 << 57
	// MaxVDSOSize bounds the vDSO and its data pages (a few pages today).
	MaxVDSOSize = 1 << 20
	// MaxPtyIndex bounds /dev/pts indexes (the kernel's limit is lower).
	MaxPtyIndex = 1 << 20
	// MaxGroups is NGROUPS_MAX.
	MaxGroups = 65536
	// SiginfoSize is sizeof(siginfo_t).
	SiginfoSize = 128
	// MaxXstate bounds the XSAVE area (about 11 KiB with AMX today).
	MaxXstate = 1 << 20
	maxSignal = 64
	nRlimits  = 16
)

// Checker holds what the records of one tree refer to.
type Checker struct {
	files    map[string]int64 // the MANIFEST: file name -> size
	fileByID map[int]*File
	shm      map[int]*SharedMemory
	ptys     map[int]bool
	sysvShm  map[int]bool
	unix     map[uint64]*UnixSocket
	procs    map[int]*Process
	tids     map[int]bool
}

// imageFile checks that name, which a record names as where its data is,
// is a plain file name that the MANIFEST lists (so it is checksummed), and
// returns its size.
func (c *Checker) imageFile(name, what string) (int64, error) {
	if !validName(name) {
		return 0, fmt.Errorf("%s %q is not a plain file name", what, name)
	}
	size, ok := c.files[name]
	if !ok {
		return 0, fmt.Errorf("%s %s is not listed in the manifest", what, name)
	}
	return size, nil
}

// Validate checks the consistency of a decoded tree against the files of
// its MANIFEST (name -> size): every reference resolves, every object a
// kind needs is there, every number lies in its range, every file named is
// listed.
func (t *Tree) Validate(files map[string]int64) error {
	c := &Checker{files: files, fileByID: map[int]*File{}, shm: map[int]*SharedMemory{}, ptys: map[int]bool{},
		sysvShm: map[int]bool{}, unix: map[uint64]*UnixSocket{}, procs: map[int]*Process{}, tids: map[int]bool{}}
	if len(t.Processes) == 0 {
		return errors.New("no processes")
	}
	if t.Processes[0] == nil || t.Processes[0].PID != t.Root {
		return fmt.Errorf("the first process is not the root %d", t.Root)
	}
	if c := t.Clocks; c != nil && (c.MonotonicNs < 0 || c.BoottimeNs < 0 || c.RealtimeNs < 0) {
		return fmt.Errorf("clocks: a negative reading (%+v)", *c)
	}
	// What processes refer to, first.
	for i, p := range t.Ptys {
		if err := p.validate(c); err != nil {
			return fmt.Errorf("pty %d: %w", i, err)
		}
	}
	if t.SysV != nil {
		if err := t.SysV.validate(c); err != nil {
			return fmt.Errorf("sysv: %w", err)
		}
	}
	for i, s := range t.SharedMemory {
		if err := s.validate(c); err != nil {
			return fmt.Errorf("shared memory %d: %w", i, err)
		}
	}
	for i, f := range t.Files {
		if f == nil {
			return fmt.Errorf("file %d is null", i)
		}
		if _, dup := c.fileByID[f.ID]; dup {
			return fmt.Errorf("file id %d appears twice", f.ID)
		}
		c.fileByID[f.ID] = f
	}
	for _, f := range t.Files {
		if err := f.validate(c); err != nil {
			return fmt.Errorf("file %d (%s): %w", f.ID, f.Kind, err)
		}
		if err := f.validateFileState(); err != nil {
			return err
		}
	}
	if err := t.validatePtys(); err != nil {
		return err
	}
	for _, f := range t.Files {
		if s := f.Socket(); s != nil && s.Unix != nil {
			if err := s.Unix.validatePeers(c); err != nil {
				return fmt.Errorf("file %d: unix socket socket:[%d]: %w", f.ID, s.Unix.Inode, err)
			}
		}
	}
	for i, p := range t.Processes {
		if p == nil {
			return fmt.Errorf("process %d is null", i)
		}
		if err := p.validate(c, p.PID == t.Root); err != nil {
			return fmt.Errorf("process %d: %w", p.PID, err)
		}
	}
	// Once every process is known to be there: attributes refer to others.
	for _, p := range t.Processes {
		if p.Zombie {
			continue
		}
		if err := t.validateAttrs(p); err != nil {
			return err
		}
	}
	return t.validateFiles(c)
}

func validPID(pid int) bool { return pid > 0 && pid <= MaxPID }

func (p *Process) validate(c *Checker, root bool) error {
	if !validPID(p.PID) || c.procs[p.PID] != nil || c.tids[p.PID] {
		return errors.New("bad or duplicate pid")
	}
	if !root {
		parent := c.procs[p.PPID]
		if parent == nil {
			return fmt.Errorf("parent %d is not earlier in the tree", p.PPID)
		}
		if parent.Zombie {
			return fmt.Errorf("parent %d is a zombie", p.PPID)
		}
	}
	c.procs[p.PID] = p
	// Zero: the group or session leader lies outside the PID namespace the
	// process was seen from, as for a service started by a container's init.
	if p.PGID < 0 || p.PGID > MaxPID || p.SID < 0 || p.SID > MaxPID {
		return fmt.Errorf("bad process group %d or session %d", p.PGID, p.SID)
	}
	if p.ExitSignal < 0 || p.ExitSignal > maxSignal {
		return fmt.Errorf("bad exit signal %d", p.ExitSignal)
	}
	if p.Zombie {
		if len(p.Threads) != 0 || len(p.Mappings) != 0 || len(p.FDs) != 0 || root {
			return errors.New("a zombie with state a zombie cannot have")
		}
		c.tids[p.PID] = true
		return nil
	}
	if p.Ctty != -1 && !c.ptys[p.Ctty] {
		return fmt.Errorf("controlling terminal %d is not a pty of the image", p.Ctty)
	}
	if p.Tpgid < -1 || p.Tpgid > MaxPID {
		return fmt.Errorf("bad foreground process group %d", p.Tpgid)
	}
	if len(p.Threads) == 0 || p.Threads[0] == nil || p.Threads[0].TID != p.PID {
		return errors.New("the first thread is not the leader")
	}
	for i, th := range p.Threads {
		if th == nil {
			return fmt.Errorf("thread %d is null", i)
		}
		if err := th.validate(c); err != nil {
			return fmt.Errorf("thread %d: %w", th.TID, err)
		}
	}
	if p.Exe != nil {
		if err := p.Exe.validate(c); err != nil {
			return fmt.Errorf("executable: %w", err)
		}
	}
	for name, off := range p.VDSO {
		if off >= MaxVDSOSize {
			return fmt.Errorf("vDSO entry point %q at offset %#x lies beyond any vDSO", name, off)
		}
	}
	for _, r := range p.Rlimits {
		if r.Resource < 0 || r.Resource >= nRlimits {
			return fmt.Errorf("bad resource limit %d", r.Resource)
		}
	}
	for _, a := range p.Sigactions {
		if a.Signal < 1 || a.Signal > maxSignal {
			return fmt.Errorf("bad signal %d in its handlers", a.Signal)
		}
	}
	if err := validSiginfos(p.Pending); err != nil {
		return fmt.Errorf("queued signals: %w", err)
	}
	for i, it := range p.Itimers {
		if it.ValueUs < 0 || it.IntervalUs < 0 {
			return fmt.Errorf("interval timer %d: negative time", i)
		}
	}
	for _, pt := range p.Timers {
		if pt.ID < 0 || pt.ID > math.MaxInt32 || pt.ValueNs < 0 || pt.IntervalNs < 0 {
			return fmt.Errorf("posix timer %d: bad id or time", pt.ID)
		}
	}
	fds := map[int]bool{}
	for _, fd := range p.FDs {
		if fd.FD < 0 || fd.FD >= MaxFD || fds[fd.FD] {
			return fmt.Errorf("bad or duplicate fd %d", fd.FD)
		}
		fds[fd.FD] = true
		if c.fileByID[fd.File] == nil {
			return fmt.Errorf("fd %d refers to unknown file %d", fd.FD, fd.File)
		}
	}
	return p.validateMemory(c)
}

// validateMemory checks the mappings and that every stored page lies in
// the pages file.
func (p *Process) validateMemory(c *Checker) error {
	var pages int64 = -1
	if p.Pages != "" {
		var err error
		if pages, err = c.imageFile(p.Pages, "pages file"); err != nil {
			return err
		}
	}
	var prev uint64
	for i, m := range p.Mappings {
		if m == nil {
			return fmt.Errorf("mapping %d is null", i)
		}
		if m.Start >= m.End || m.Start < prev || m.Start%pageSize != 0 || m.End%pageSize != 0 {
			return fmt.Errorf("mapping %#x-%#x is out of order or unaligned", m.Start, m.End)
		}
		prev = m.End
		if err := m.validate(c); err != nil {
			return fmt.Errorf("mapping %#x-%#x: %w", m.Start, m.End, err)
		}
		for _, r := range m.Runs {
			if pages < 0 {
				return fmt.Errorf("mapping %#x has stored pages but the process has no pages file", m.Start)
			}
			if err := r.validate(m.Start, m.End, pages); err != nil {
				return fmt.Errorf("mapping %#x: %w", m.Start, err)
			}
		}
		if err := m.validateGuards(); err != nil {
			return err
		}
		if err := p.validateInherit(c, m); err != nil {
			return fmt.Errorf("mapping %#x-%#x: %w", m.Start, m.End, err)
		}
	}
	return nil
}

// validateInherit checks a mapping inherited from the parent (copy-on-write
// sharing since a fork): a private anonymous mapping, without guard pages,
// that the parent (earlier in the tree, not a zombie, without System V
// segments: its memory is rebuilt before its children are forked) has at
// the same place with the same protection and name; its Zero pages lie in
// it, in order, apart from its stored pages.
func (p *Process) validateInherit(c *Checker, m *Mapping) error {
	if !m.Inherit {
		if len(m.Zero) > 0 {
			return errors.New("pages to drop in a mapping that is not inherited")
		}
		return nil
	}
	if m.Kind != MapAnon || m.Shared || len(m.Guards) > 0 {
		return errors.New("inherited, but not a private anonymous mapping without guard pages")
	}
	parent := c.procs[p.PPID]
	if parent == nil || parent.PID == p.PID || parent.Zombie {
		return errors.New("inherited, but the process has no parent in the tree")
	}
	var pm *Mapping
	for _, q := range parent.Mappings {
		if q == nil {
			continue
		}
		if q.Kind == MapSysV {
			return fmt.Errorf("inherited from parent %d, whose memory holds System V segments", parent.PID)
		}
		if q.Start == m.Start {
			pm = q
		}
	}
	if pm == nil || pm.End != m.End || pm.Kind != MapAnon || pm.Shared || pm.Prot != m.Prot || pm.Name != m.Name {
		return fmt.Errorf("inherited, but parent %d has no such mapping", parent.PID)
	}
	prev := m.Start
	for _, z := range m.Zero {
		if z.Pages == 0 || z.Addr%pageSize != 0 || z.Addr < prev || z.Addr >= m.End || z.Pages > (m.End-z.Addr)/pageSize {
			return fmt.Errorf("pages to drop at %#x (%d pages) out of order or outside it", z.Addr, z.Pages)
		}
		prev = z.Addr + z.Pages*pageSize
		for _, r := range m.Runs {
			if r.Addr < prev && z.Addr < r.Addr+r.Pages*pageSize {
				return fmt.Errorf("pages to drop at %#x overlap stored pages", z.Addr)
			}
		}
	}
	return nil
}

func (m *Mapping) validate(c *Checker) error {
	if m.Kind != MapSkip && m.End > MaxAddress {
		return errors.New("lies beyond the user address space")
	}
	switch m.Kind {
	case MapAnon, MapSkip:
	case MapVDSO, MapVVAR:
		if m.End-m.Start > MaxVDSOSize {
			return fmt.Errorf("a %s of %d bytes", m.Kind, m.End-m.Start)
		}
	case MapFile:
		if m.File == nil {
			return errors.New("a file mapping without its file")
		}
		if err := m.File.validate(c); err != nil {
			return err
		}
	case MapShared:
		if c.shm[m.SharedID] == nil {
			return fmt.Errorf("refers to unknown shared memory %d", m.SharedID)
		}
	case MapSysV:
		if !c.sysvShm[m.SharedID] {
			return fmt.Errorf("refers to unknown System V segment %d", m.SharedID)
		}
	default:
		return fmt.Errorf("unknown kind %q", m.Kind)
	}
	return nil
}

// validate checks that a run of pages lies in [lo, hi) and, stored at Off,
// inside a file of size bytes, without overflowing on the way.
func (r *Run) validate(lo, hi uint64, size int64) error {
	if r.Pages == 0 || r.Addr%pageSize != 0 || r.Off%pageSize != 0 {
		return fmt.Errorf("page run at %#x is empty or unaligned", r.Addr)
	}
	if r.Addr < lo || r.Addr >= hi || r.Pages > (hi-r.Addr)/pageSize {
		return fmt.Errorf("page run at %#x lies outside its mapping", r.Addr)
	}
	if size < 0 || r.Off > uint64(size) || r.Pages > (uint64(size)-r.Off)/pageSize {
		return fmt.Errorf("page run at %#x (%d pages at offset %d) lies beyond the end of its file (%d bytes)", r.Addr, r.Pages, r.Off, size)
	}
	return nil
}

func (t *Thread) validate(c *Checker) error {
	if !validPID(t.TID) || c.tids[t.TID] {
		return errors.New("bad or duplicate tid")
	}
	c.tids[t.TID] = true
	if len(t.Xstate) > MaxXstate {
		return fmt.Errorf("an XSAVE area of %d bytes", len(t.Xstate))
	}
	if len(t.Creds.Groups) > MaxGroups {
		return fmt.Errorf("%d supplementary groups", len(t.Creds.Groups))
	}
	if err := validSiginfos(t.Pending); err != nil {
		return fmt.Errorf("queued signals: %w", err)
	}
	for i, f := range t.Seccomp {
		if err := f.validate(); err != nil {
			return fmt.Errorf("seccomp filter %d: %v", i, err)
		}
	}
	return nil
}

func validSiginfos(s []Siginfo) error {
	for i, si := range s {
		if len(si) != SiginfoSize {
			return fmt.Errorf("signal %d: a siginfo of %d bytes, want %d", i, len(si), SiginfoSize)
		}
	}
	return nil
}

func (r *Ref) validate(c *Checker) error {
	if r.Path == "" {
		return errors.New("a file without a path")
	}
	if r.Size < 0 || uint64(r.Size) > MaxAddress {
		return fmt.Errorf("%s: a size of %d bytes", r.Path, r.Size)
	}
	contents := int64(-1)
	if r.Contents != "" {
		n, err := c.imageFile(r.Contents, "contents of "+r.Path)
		if err != nil {
			return err
		}
		contents = n
	}
	// The data extents of a recreated file: in the file, in order, stored
	// in its contents file.
	end := (uint64(r.Size) + pageSize - 1) &^ (pageSize - 1)
	var prev uint64
	for _, run := range r.Runs {
		if err := run.validate(prev, end, contents); err != nil {
			return fmt.Errorf("%s: data extent: %w", r.Path, err)
		}
		prev = run.Addr + run.Pages*pageSize
	}
	return r.validateObject()
}

func (s *SharedMemory) validate(c *Checker) error {
	if s == nil {
		return errors.New("null")
	}
	if c.shm[s.ID] != nil {
		return fmt.Errorf("id %d appears twice", s.ID)
	}
	c.shm[s.ID] = s
	switch s.Kind {
	case "anon", "memfd", "file":
	default:
		return fmt.Errorf("unknown kind %q", s.Kind)
	}
	if s.Size > MaxAddress {
		return fmt.Errorf("a size of %d bytes", s.Size)
	}
	if s.Kind == "file" && s.Name == "" {
		return errors.New("a deleted file without a path")
	}
	size, err := c.imageFile(s.Data, "data")
	if err != nil {
		return err
	}
	end := (s.Size + pageSize - 1) &^ (pageSize - 1)
	for _, r := range s.Runs {
		if err := r.validate(0, end, size); err != nil {
			return err
		}
	}
	return nil
}

const pageSize = 4096

// seccompInstallFlags are the seccomp(2) flags a filter of an image may be
// installed with: SECCOMP_FILTER_FLAG_LOG and SECCOMP_FILTER_FLAG_SPEC_ALLOW.
// The others (TSYNC, NEW_LISTENER, ...) would change more than the thread.
const seccompInstallFlags = 0x2 | 0x4

// maxBPFInstructions is BPF_MAXINSNS, the kernel's limit for one program.
const maxBPFInstructions = 4096

func (f *SeccompFilter) validate() error {
	if n := len(f.Prog); n == 0 || n%8 != 0 || n/8 > maxBPFInstructions {
		return fmt.Errorf("program of %d bytes is not 1 to %d instructions of 8 bytes", n, maxBPFInstructions)
	}
	if f.Flags&^seccompInstallFlags != 0 {
		return fmt.Errorf("flags %#x", f.Flags)
	}
	return nil
}
