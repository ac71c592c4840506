package image

import (
	"errors"
	"fmt"
	"strings"
)

// Validation of ptys, System V objects and what the records of a tree
// refer to (see validate.go; the record of each kind of open file
// description brings its own checks, see file.go; sockets' are in
// socket.go).

func (p *Pty) validate(c *Checker) error {
	if p == nil {
		return errors.New("null")
	}
	if p.Index < 0 || p.Index >= MaxPtyIndex || c.ptys[p.Index] {
		return fmt.Errorf("bad or duplicate index %d", p.Index)
	}
	c.ptys[p.Index] = true
	return nil
}

func (s *SysV) validate(c *Checker) error {
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

// validateFiles checks the references of descriptors, working directories
// and file objects: descriptor tables shared with a parent, epoll watches,
// namespace files and pidfds of processes of the tree, recreated objects
// that agree on what they are.
func (t *Tree) validateFiles(c *Checker) error {
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
	l := &Links{procs: procs, tids: tids, files: files, ref: checkRef}
	for _, f := range t.Files {
		what := fmt.Sprintf("file %d (%s)", f.ID, f.Kind)
		if err := checkRef(what, f.Ref); err != nil {
			return err
		}
		if r, ok := f.Record.(FileLinker); ok {
			if err := r.Link(l); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if o := f.Owner; o != nil && !(o.Type == 0 && tids[o.PID] || o.Type == 1 && procs[o.PID] != nil || o.Type == 2 && pgids[o.PID]) {
			return fmt.Errorf("%s: the owner of its signals (type %d, %d) is not in the tree", what, o.Type, o.PID)
		}
		if f.Signal < 0 || f.Signal > 64 {
			return fmt.Errorf("%s: signal %d", what, f.Signal)
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
