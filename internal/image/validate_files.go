package image

import (
	"fmt"
	"strings"
)

// nsEntries are the /proc/PID/ns entries a namespace file may be.
var nsEntries = map[string]bool{"cgroup": true, "ipc": true, "mnt": true, "net": true, "pid": true,
	"pid_for_children": true, "time": true, "time_for_children": true, "user": true, "uts": true}

// validateFiles checks the references of descriptors, working directories
// and file objects: descriptor tables shared with a parent, epoll watches,
// namespace files and pidfds of processes of the tree, recreated objects
// that agree on what they are.
func (t *Tree) validateFiles() error {
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
		if err := r.validate(); err != nil {
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

// validate checks what a Ref says about itself: a contents file with a
// plain name, data extents inside the file, a memfd named like one.
func (r *Ref) validate() error {
	if r.Contents != "" && !validName(r.Contents) {
		return fmt.Errorf("contents %q is not a plain file name", r.Contents)
	}
	if r.Size < 0 {
		return fmt.Errorf("size %d", r.Size)
	}
	var prev uint64
	for _, run := range r.Runs {
		if r.Contents == "" || run.Addr%pageSize != 0 || run.Off%pageSize != 0 || run.Addr < prev ||
			run.Addr+run.Pages*pageSize > (uint64(r.Size)+pageSize-1)&^(pageSize-1) {
			return fmt.Errorf("data extent at %d (%d pages) lies outside the %d bytes of %s", run.Addr, run.Pages, r.Size, r.Path)
		}
		prev = run.Addr + run.Pages*pageSize
	}
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
