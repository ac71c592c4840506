package image

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// ProcessAttrs are per-process settings of the kernel that no descriptor or
// mapping shows: they are read from procfs or with prctl(2) and membarrier(2)
// calls made inside the process.
type ProcessAttrs struct {
	// OOMScoreAdj is /proc/PID/oom_score_adj (-1000 to 1000).
	OOMScoreAdj int `json:"oom_score_adj"`
	// LoginUID is /proc/PID/loginuid (4294967295: unset) and SessionID the
	// audit session /proc/PID/sessionid; absent on kernels without audit.
	// The kernel hands out a new session ID whenever a loginuid is set, so
	// SessionID only tells which processes of the tree shared one.
	LoginUID  *uint32 `json:"loginuid,omitempty"`
	SessionID uint32  `json:"sessionid,omitempty"`
	// THPDisable is prctl(PR_GET_THP_DISABLE): 0, 1 (disabled), or with
	// PR_THP_DISABLE_EXCEPT_ADVISED (2) also set.
	THPDisable int `json:"thp_disable,omitempty"`
	// MDWE is prctl(PR_GET_MDWE): PR_MDWE_REFUSE_EXEC_GAIN (1), with
	// PR_MDWE_NO_INHERIT (2).
	MDWE int `json:"mdwe,omitempty"`
	// Membarrier is membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS): the
	// MEMBARRIER_CMD_REGISTER_* commands the process registered for.
	Membarrier uint32 `json:"membarrier,omitempty"`
	// MemoryMerge is prctl(PR_GET_MEMORY_MERGE): KSM merges all of the
	// process's memory, its new mappings included (each mapping's own
	// state is its VmFlag mg).
	MemoryMerge bool `json:"memory_merge,omitempty"`
	// StopSignal is the signal of the group stop (job control) the process
	// was in: SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU; 0 when it ran.
	StopSignal int `json:"stop_signal,omitempty"`
	// StopWaited says its parent (in the tree) had already waited for
	// that stop (waitpid with WUNTRACED): there is none left to report.
	StopWaited bool `json:"stop_waited,omitempty"`
}

// ThreadAttrs are per-thread settings of the kernel: scheduling beyond the
// policy and nice value, CPU affinity, I/O priority, timer slack and the
// parent-death signal.
type ThreadAttrs struct {
	// CPUs is the CPU affinity as /proc/PID/task/TID/status shows it in
	// Cpus_allowed_list ("0-3,6").
	CPUs string `json:"cpus"`
	// IOPrio is ioprio_get(IOPRIO_WHO_PROCESS, TID); 0 for the default,
	// which follows the nice value.
	IOPrio int `json:"ioprio,omitempty"`
	// TimerSlack is prctl(PR_GET_TIMERSLACK) in nanoseconds (real-time
	// threads have none).
	TimerSlack uint64 `json:"timer_slack_ns"`
	// PdeathSig is prctl(PR_GET_PDEATHSIG): the signal the thread gets when
	// the thread that created its process exits.
	PdeathSig int `json:"pdeathsig,omitempty"`
	// SchedFlags are the sched_getattr(2) flags (SCHED_FLAG_RESET_ON_FORK,
	// and for SCHED_DEADLINE the reclaim and overrun flags).
	SchedFlags uint64 `json:"sched_flags,omitempty"`
	// Deadline holds the SCHED_DEADLINE parameters.
	Deadline *SchedDeadline `json:"deadline,omitempty"`
	// UtilClamp is the utilization clamp (minimum, maximum, 0 to 1024) when
	// the thread set one.
	UtilClamp *[2]uint32 `json:"util_clamp,omitempty"`
}

// SchedDeadline are the sched_attr fields of SCHED_DEADLINE, in nanoseconds.
type SchedDeadline struct {
	Runtime  uint64 `json:"runtime"`
	Deadline uint64 `json:"deadline"`
	Period   uint64 `json:"period"`
}

// LoginUIDUnset is the loginuid of a process that never had one set.
const LoginUIDUnset = ^uint32(0)

// ParseCPUList parses a CPU list such as "0-3,6" into CPU numbers.
func ParseCPUList(s string) ([]int, error) {
	var cpus []int
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("empty CPU list")
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, rng := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("CPU list %q: bad CPU %q", s, lo)
		}
		b := a
		if rng {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("CPU list %q: bad range %q", s, part)
			}
		}
		if b >= maxCPUs {
			return nil, fmt.Errorf("CPU list %q: CPU %d beyond %d", s, b, maxCPUs-1)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// maxCPUs bounds CPU numbers (the kernel's NR_CPUS limit).
const maxCPUs = 8192

func (a *ProcessAttrs) validate() error {
	if a.OOMScoreAdj < -1000 || a.OOMScoreAdj > 1000 {
		return fmt.Errorf("oom_score_adj %d outside -1000..1000", a.OOMScoreAdj)
	}
	if a.THPDisable&^3 != 0 {
		return fmt.Errorf("thp_disable %d", a.THPDisable)
	}
	if a.MDWE&^3 != 0 {
		return fmt.Errorf("mdwe %d", a.MDWE)
	}
	if a.Membarrier&^membarrierRegistrations != 0 {
		return fmt.Errorf("membarrier registrations %#x", a.Membarrier)
	}
	switch a.StopSignal {
	case 0, sigStop, sigTstp, sigTtin, sigTtou:
	default:
		return fmt.Errorf("stop signal %d is not a stop signal", a.StopSignal)
	}
	return nil
}

// Signals that stop a process (signal(7)).
const (
	sigStop = 19
	sigTstp = 20
	sigTtin = 21
	sigTtou = 22
)

// membarrierRegistrations are the MEMBARRIER_CMD_REGISTER_* commands:
// global expedited, private expedited, its sync-core and rseq variants.
const membarrierRegistrations = 1<<2 | 1<<4 | 1<<6 | 1<<8

// schedFlags are the sched_attr flags an image may carry: reset on fork,
// deadline reclaim and overrun.
const schedFlags = 0x1 | 0x2 | 0x4

func (a *ThreadAttrs) validate() error {
	if _, err := ParseCPUList(a.CPUs); err != nil {
		return err
	}
	if class := a.IOPrio >> 13; a.IOPrio < 0 || class > 3 {
		return fmt.Errorf("ioprio %#x", a.IOPrio)
	}
	if a.PdeathSig < 0 || a.PdeathSig > 64 {
		return fmt.Errorf("parent death signal %d", a.PdeathSig)
	}
	if a.SchedFlags&^schedFlags != 0 {
		return fmt.Errorf("scheduling flags %#x", a.SchedFlags)
	}
	if c := a.UtilClamp; c != nil && (c[0] > 1024 || c[1] > 1024 || c[0] > c[1]) {
		return fmt.Errorf("utilization clamp %d..%d", c[0], c[1])
	}
	return nil
}

// validateAttrs checks the attributes of live process p and its threads.
func (t *Tree) validateAttrs(p *Process) error {
	if p.ParentTID != 0 {
		var parent *Process
		for _, q := range t.Processes {
			if q.PID == p.PPID {
				parent = q
			}
		}
		found := false
		for _, th := range parent.threadsOrNone() {
			found = found || th.TID == p.ParentTID
		}
		if !found {
			return fmt.Errorf("process %d: parent thread %d is not a thread of process %d", p.PID, p.ParentTID, p.PPID)
		}
	}
	if p.Attrs != nil {
		if err := p.Attrs.validate(); err != nil {
			return fmt.Errorf("process %d: %v", p.PID, err)
		}
	}
	for _, th := range p.Threads {
		if th.Attrs == nil {
			continue
		}
		if err := th.Attrs.validate(); err != nil {
			return fmt.Errorf("process %d thread %d: %v", p.PID, th.TID, err)
		}
	}
	return nil
}

func (p *Process) threadsOrNone() []*Thread {
	if p == nil || p.Zombie {
		return nil
	}
	return p.Threads
}

// validateGuards checks that the guard pages lie inside the mapping, in
// order, and hold no stored page.
func (m *Mapping) validateGuards() error {
	prev := m.Start
	for _, g := range m.Guards {
		if g.Pages == 0 || g.Addr%pageSize != 0 || g.Addr < prev || g.Addr >= m.End || g.Pages > (m.End-g.Addr)/pageSize {
			return fmt.Errorf("mapping %#x-%#x: guard pages at %#x (%d pages) out of order or outside it", m.Start, m.End, g.Addr, g.Pages)
		}
		prev = g.Addr + g.Pages*pageSize
		for _, r := range m.Runs {
			if r.Addr < prev && g.Addr < r.Addr+r.Pages*pageSize {
				return fmt.Errorf("mapping %#x-%#x: guard pages at %#x overlap stored pages", m.Start, m.End, g.Addr)
			}
		}
	}
	return nil
}

// validateFileState checks the parts of an open file description that
// this file's fields describe: socket filters, shutdown states, socket
// owners' and relative socket paths' directories, and pty owners.
func (f *File) validateFileState() error {
	s := f.Socket()
	if s == nil {
		return nil
	}
	if flt := s.Filter; flt != nil {
		if n := len(flt.Prog); n == 0 || n%8 != 0 || n/8 > maxBPFInstructions {
			return fmt.Errorf("file %d: socket filter of %d bytes is not 1 to %d instructions of 8 bytes", f.ID, n, maxBPFInstructions)
		}
	}
	if in := s.Inet; in != nil && (in.Shutdown < 0 || in.Shutdown > 3) {
		return fmt.Errorf("file %d: shutdown state %d", f.ID, in.Shutdown)
	}
	if u := s.Unix; u != nil && u.Path != nil && u.Path.Dir != "" {
		if d := u.Path.Dir; d[0] != '/' || filepath.Clean(d) != d {
			return fmt.Errorf("file %d: directory %q of a relative socket path is not a clean absolute path", f.ID, d)
		}
	}
	return nil
}

// validatePtys checks the owners of the pseudo-terminals.
func (t *Tree) validatePtys() error {
	for _, p := range t.Ptys {
		if p.Owner != nil && p.Owner.Mode&^0o7777 != 0 {
			return fmt.Errorf("pty %d: mode %o", p.Index, p.Owner.Mode)
		}
	}
	return nil
}
