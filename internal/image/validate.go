package image

import "fmt"

// validate checks the internal consistency of a decoded tree, so that a
// restore never acts on references that point nowhere.
func (t *Tree) validate() error {
	if len(t.Processes) == 0 {
		return fmt.Errorf("no processes")
	}
	if t.Processes[0].PID != t.Root {
		return fmt.Errorf("first process %d is not the root %d", t.Processes[0].PID, t.Root)
	}
	files := map[int]bool{}
	for _, f := range t.Files {
		files[f.ID] = true
		if err := f.validateFileState(); err != nil {
			return err
		}
	}
	if err := t.validatePtys(); err != nil {
		return err
	}
	shm := map[int]bool{}
	for _, s := range t.SharedMemory {
		shm[s.ID] = true
	}
	pids := map[int]bool{}
	for _, p := range t.Processes {
		if p.PID <= 0 || pids[p.PID] {
			return fmt.Errorf("bad or duplicate pid %d", p.PID)
		}
		pids[p.PID] = true
		if p.PID != t.Root && !pids[p.PPID] {
			return fmt.Errorf("process %d: parent %d is not earlier in the tree", p.PID, p.PPID)
		}
		if p.Zombie {
			if len(p.Threads) != 0 || len(p.Mappings) != 0 || len(p.FDs) != 0 || p.PID == t.Root {
				return fmt.Errorf("zombie %d has state a zombie cannot have", p.PID)
			}
			continue
		}
		if len(p.Threads) == 0 || p.Threads[0].TID != p.PID {
			return fmt.Errorf("process %d: first thread is not the leader", p.PID)
		}
		if err := t.validateAttrs(p); err != nil {
			return err
		}
		for _, th := range p.Threads {
			if th.TID <= 0 {
				return fmt.Errorf("process %d: bad tid %d", p.PID, th.TID)
			}
			for i, f := range th.Seccomp {
				if err := f.validate(); err != nil {
					return fmt.Errorf("process %d thread %d: seccomp filter %d: %v", p.PID, th.TID, i, err)
				}
			}
		}
		for _, fd := range p.FDs {
			if !files[fd.File] || fd.FD < 0 {
				return fmt.Errorf("process %d: fd %d refers to unknown file %d", p.PID, fd.FD, fd.File)
			}
		}
		var prev uint64
		for _, m := range p.Mappings {
			if m.Start >= m.End || m.Start < prev || m.Start%pageSize != 0 || m.End%pageSize != 0 {
				return fmt.Errorf("process %d: mapping %#x-%#x is out of order or unaligned", p.PID, m.Start, m.End)
			}
			prev = m.End
			if m.Kind == MapShared && !shm[m.SharedID] {
				return fmt.Errorf("process %d: mapping %#x refers to unknown shared memory %d", p.PID, m.Start, m.SharedID)
			}
			for _, r := range m.Runs {
				if r.Addr < m.Start || r.Addr+r.Pages*pageSize > m.End {
					return fmt.Errorf("process %d: page run at %#x lies outside its mapping", p.PID, r.Addr)
				}
			}
			if err := m.validateGuards(); err != nil {
				return fmt.Errorf("process %d: %v", p.PID, err)
			}
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
