package task

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/proc"
)

// prctl options and membarrier commands that golang.org/x/sys lacks.
const (
	prGetMDWE                     = 66
	prSetMDWE                     = 65
	prSetMemoryMerge              = 67
	prGetMemoryMerge              = 68
	membarrierGetRegistrations    = 1 << 9
	ioprioWhoProcess              = 1
	ioprioClassShift              = 13
	schedFlagUtilClampMin         = 0x20
	schedFlagUtilClampMax         = 0x40
	uclampMax                     = 1024
	sysctlUclampMinRTDefault      = "/proc/sys/kernel/sched_util_clamp_min_rt_default"
	procSelfLoginuid              = "/proc/self/loginuid"
	errNoAuditMsg                 = "this kernel has no audit support (/proc/self/loginuid is missing)"
	membarrierRegisterCommandBits = 1<<2 | 1<<4 | 1<<6 | 1<<8
	// atFDCWD is AT_FDCWD as a system-call argument.
	atFDCWD = ^uintptr(99)
)

// dumpProcessAttrs reads the per-process settings that procfs shows. The
// audit identity belongs to each thread: threads that differ from their
// leader are refused, since the restore gives every thread the leader's.
func dumpProcessAttrs(pid int, tids []int) (*image.ProcessAttrs, error) {
	a := &image.ProcessAttrs{}
	s, err := proc.ReadString(pid, "oom_score_adj")
	if err != nil {
		return nil, fmt.Errorf("process %d oom_score_adj: %w", pid, err)
	}
	if a.OOMScoreAdj, err = strconv.Atoi(s); err != nil {
		return nil, fmt.Errorf("process %d oom_score_adj %q: %w", pid, s, err)
	}
	if s, err := proc.ReadString(pid, "loginuid"); err == nil {
		uid, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("process %d loginuid %q: %w", pid, s, err)
		}
		u := uint32(uid)
		a.LoginUID = &u
		s, err = proc.ReadString(pid, "sessionid")
		if err != nil {
			return nil, fmt.Errorf("process %d audit session: %w", pid, err)
		}
		sid, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("process %d audit session %q: %w", pid, s, err)
		}
		a.SessionID = uint32(sid)
		for _, tid := range tids[1:] {
			t := strconv.Itoa(tid)
			l, err1 := proc.ReadString(pid, "task", t, "loginuid")
			s, err2 := proc.ReadString(pid, "task", t, "sessionid")
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("thread %d of process %d: audit identity: %w", tid, pid, err)
			}
			if l != strconv.FormatUint(uid, 10) || s != strconv.FormatUint(sid, 10) {
				return nil, fmt.Errorf("thread %d of process %d has its own loginuid %s (audit session %s), the process %d (session %d); per-thread audit identities cannot be restored",
					tid, pid, l, s, uid, sid)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("process %d loginuid: %w", pid, err)
	}
	return a, nil
}

// dumpRemoteAttrs reads, by calls inside the process, the settings only
// it can report: transparent huge pages, MDWE, membarrier registrations.
// A kernel that predates a call answers EINVAL: it has no such setting.
func dumpRemoteAttrs(a *image.ProcessAttrs, call func(uintptr, ...uintptr) (uintptr, error)) error {
	optional := func(what string, nr uintptr, args ...uintptr) (int, error) {
		v, err := call(nr, args...)
		if errors.Is(err, unix.EINVAL) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", what, err)
		}
		return int(v), nil
	}
	var err error
	if a.THPDisable, err = optional("PR_GET_THP_DISABLE", unix.SYS_PRCTL, unix.PR_GET_THP_DISABLE, 0, 0, 0, 0); err != nil {
		return err
	}
	if a.MDWE, err = optional("PR_GET_MDWE", unix.SYS_PRCTL, prGetMDWE, 0, 0, 0, 0); err != nil {
		return err
	}
	mb, err := optional("membarrier registrations", unix.SYS_MEMBARRIER, membarrierGetRegistrations, 0, 0)
	if err != nil {
		return err
	}
	a.Membarrier = uint32(mb) & membarrierRegisterCommandBits
	merge, err := optional("PR_GET_MEMORY_MERGE", unix.SYS_PRCTL, prGetMemoryMerge, 0, 0, 0, 0)
	a.MemoryMerge = merge == 1
	return err
}

// dumpThreadAttrs reads what the checkpointer can read about thread tid
// from outside: scheduling attributes, I/O priority, CPU affinity.
func dumpThreadAttrs(tid int, status proc.Status) (*image.ThreadAttrs, error) {
	a := &image.ThreadAttrs{CPUs: status["Cpus_allowed_list"]}
	if a.CPUs == "" {
		return nil, fmt.Errorf("thread %d: no Cpus_allowed_list in its status", tid)
	}
	prio, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if e != 0 {
		return nil, fmt.Errorf("thread %d ioprio_get: %w", tid, e)
	}
	a.IOPrio = int(prio)
	sa, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return nil, fmt.Errorf("thread %d sched_getattr: %w", tid, err)
	}
	a.SchedFlags = sa.Flags & (unix.SCHED_FLAG_RESET_ON_FORK | unix.SCHED_FLAG_RECLAIM | unix.SCHED_FLAG_DL_OVERRUN)
	if sa.Policy == unix.SCHED_DEADLINE {
		a.Deadline = &image.SchedDeadline{Runtime: sa.Runtime, Deadline: sa.Deadline, Period: sa.Period}
	}
	if def := defaultUtilClamp(int(sa.Policy)); (sa.Util_min != 0 || sa.Util_max != 0) && (sa.Util_min != def[0] || sa.Util_max != def[1]) {
		a.UtilClamp = &[2]uint32{sa.Util_min, sa.Util_max}
	}
	return a, nil
}

// defaultUtilClamp is the utilization clamp of a thread of policy that
// never set one: real-time threads get the administrator's minimum.
func defaultUtilClamp(policy int) [2]uint32 {
	if policy != unix.SCHED_FIFO && policy != unix.SCHED_RR {
		return [2]uint32{0, uclampMax}
	}
	min := uint32(uclampMax)
	if b, err := os.ReadFile(sysctlUclampMinRTDefault); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			min = uint32(v)
		}
	}
	return [2]uint32{min, uclampMax}
}

// dumpRemoteThreadAttrs reads, by calls inside thread th, its timer slack
// and parent-death signal.
func dumpRemoteThreadAttrs(a *image.ThreadAttrs, th *inject.Thread, pid int, scratch uintptr) error {
	slack, err := th.Syscall(unix.SYS_PRCTL, unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
	if err != nil {
		return fmt.Errorf("thread %d timer slack: %w", th.TID, err)
	}
	a.TimerSlack = uint64(slack)
	if _, err := th.Syscall(unix.SYS_PRCTL, unix.PR_GET_PDEATHSIG, scratch); err != nil {
		return fmt.Errorf("thread %d parent death signal: %w", th.TID, err)
	}
	var b [4]byte
	if err := inject.ReadMem(pid, scratch, b[:]); err != nil {
		return err
	}
	a.PdeathSig = int(int32(binary.LittleEndian.Uint32(b[:])))
	return nil
}

// SetLoginUID gives the freshly cloned process t the audit identity of p.
// parent is p's parent in the image, whose identity t inherited at its
// clone, or nil for the root, which inherited the restorer's. The loginuid
// is written by the process itself (the kernel takes it from no one else)
// before it has threads or children, which inherit it; each write starts a
// new audit session, so processes that shared a session share a new one.
func SetLoginUID(t *inject.Target, p, parent *image.Process) error {
	a := p.Attrs
	if a == nil || a.LoginUID == nil {
		return nil
	}
	if parent == nil && *a.LoginUID == image.LoginUIDUnset {
		now, err := proc.ReadString(t.PID, "loginuid")
		if err == nil && now == strconv.FormatUint(uint64(image.LoginUIDUnset), 10) {
			return nil // unset, as in the image
		}
	}
	if parent != nil && parent.Attrs != nil && parent.Attrs.LoginUID != nil &&
		*parent.Attrs.LoginUID == *a.LoginUID && parent.Attrs.SessionID == a.SessionID {
		return nil // inherited with the parent's session
	}
	path, err := t.PutString(0, procSelfLoginuid)
	if err != nil {
		return err
	}
	fd, err := t.Call(unix.SYS_OPENAT, atFDCWD, path, unix.O_WRONLY|unix.O_CLOEXEC)
	if errors.Is(err, unix.ENOENT) {
		if *a.LoginUID == image.LoginUIDUnset {
			return nil
		}
		return fmt.Errorf("loginuid %d: %s", *a.LoginUID, errNoAuditMsg)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", procSelfLoginuid, err)
	}
	defer t.Call(unix.SYS_CLOSE, fd)
	v := strconv.FormatUint(uint64(*a.LoginUID), 10)
	buf, err := t.Put(64, []byte(v))
	if err != nil {
		return err
	}
	if _, err := t.Call(unix.SYS_WRITE, fd, buf, uintptr(len(v))); err != nil {
		if errors.Is(err, unix.EPERM) {
			err = fmt.Errorf("%w (changing a loginuid that is set needs CAP_AUDIT_CONTROL, and auditd may have made loginuids immutable)", err)
		}
		return fmt.Errorf("set loginuid %s: %w", v, err)
	}
	return nil
}

// restoreProcessAttrs sets the per-process settings of p in t, once its
// address space is complete (MDWE forbids making memory executable later).
func restoreProcessAttrs(t *inject.Target, p *image.Process) error {
	a := p.Attrs
	if a == nil {
		return nil
	}
	adj := strconv.Itoa(a.OOMScoreAdj)
	if err := os.WriteFile(proc.Path(t.PID, "oom_score_adj"), []byte(adj), 0); err != nil {
		if errors.Is(err, unix.EACCES) {
			err = fmt.Errorf("%w (lowering it needs CAP_SYS_RESOURCE)", err)
		}
		return fmt.Errorf("oom_score_adj %s: %w", adj, err)
	}
	if a.THPDisable != 0 {
		if _, err := t.Call(unix.SYS_PRCTL, unix.PR_SET_THP_DISABLE, 1, uintptr(a.THPDisable&^1), 0, 0); err != nil {
			return fmt.Errorf("PR_SET_THP_DISABLE %d: %w", a.THPDisable, err)
		}
	}
	for bit := uint32(1); bit <= a.Membarrier; bit <<= 1 {
		if a.Membarrier&bit == 0 {
			continue
		}
		if _, err := t.Call(unix.SYS_MEMBARRIER, uintptr(bit), 0, 0); err != nil {
			return fmt.Errorf("membarrier registration %#x: %w", bit, err)
		}
	}
	if a.MemoryMerge {
		if err := restoreMemoryMerge(t, p); err != nil {
			return err
		}
	}
	if a.MDWE != 0 {
		if _, err := t.Call(unix.SYS_PRCTL, prSetMDWE, uintptr(a.MDWE), 0, 0, 0); err != nil {
			return fmt.Errorf("PR_SET_MDWE %d: %w", a.MDWE, err)
		}
	}
	return nil
}

// RestoreThreadLate sets what a thread's restored credentials would have
// reset: its parent-death signal (cleared whenever its uids, gids or
// capabilities change), and its timer slack (before its scheduling policy:
// real-time threads have none).
func RestoreThreadLate(th *inject.Thread, img *image.Thread) error {
	a := img.Attrs
	if a == nil {
		return nil
	}
	if _, err := th.Syscall(unix.SYS_PRCTL, unix.PR_SET_TIMERSLACK, uintptr(a.TimerSlack), 0, 0, 0); err != nil {
		return fmt.Errorf("thread %d timer slack %d: %w", img.TID, a.TimerSlack, err)
	}
	if a.PdeathSig != 0 {
		if _, err := th.Syscall(unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uintptr(a.PdeathSig), 0, 0, 0); err != nil {
			return fmt.Errorf("thread %d parent death signal %d: %w", img.TID, a.PdeathSig, err)
		}
	}
	return nil
}

// restoreSchedAttrs sets a thread's scheduling attributes, I/O priority
// and CPU affinity from the restorer.
func restoreSchedAttrs(img *image.Thread) error {
	a := img.Attrs
	sa := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: uint32(img.Policy), Flags: a.SchedFlags,
		Nice: int32(img.Nice), Priority: uint32(img.RTPriority)}
	if d := a.Deadline; d != nil {
		sa.Runtime, sa.Deadline, sa.Period = d.Runtime, d.Deadline, d.Period
	}
	if c := a.UtilClamp; c != nil {
		sa.Flags |= schedFlagUtilClampMin | schedFlagUtilClampMax
		sa.Util_min, sa.Util_max = c[0], c[1]
	}
	if err := unix.SchedSetAttr(img.TID, sa, 0); err != nil {
		return fmt.Errorf("thread %d scheduling policy %d (flags %#x): %w", img.TID, img.Policy, sa.Flags, err)
	}
	cpus, err := image.ParseCPUList(a.CPUs)
	if err != nil {
		return fmt.Errorf("thread %d: %w", img.TID, err)
	}
	var set unix.CPUSet
	for _, c := range cpus {
		if c >= len(set)*64 {
			return fmt.Errorf("thread %d CPU affinity %s: CPU %d is beyond the %d this restorer handles", img.TID, a.CPUs, c, len(set)*64)
		}
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(img.TID, &set); err != nil {
		return fmt.Errorf("thread %d CPU affinity %s: %w", img.TID, a.CPUs, err)
	}
	if a.IOPrio != 0 {
		if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(img.TID), uintptr(a.IOPrio)); e != 0 {
			return fmt.Errorf("thread %d I/O priority class %d level %d: %w", img.TID, a.IOPrio>>ioprioClassShift,
				a.IOPrio&(1<<ioprioClassShift-1), e)
		}
	}
	return nil
}

// restoreMemoryMerge makes KSM merge all of the process's memory again
// (PR_SET_MEMORY_MERGE, which needs CAP_SYS_RESOURCE). That marks every
// mapping mergeable: the ones that were not (MADV_UNMERGEABLE, or memory
// KSM does not handle) are unmarked again.
func restoreMemoryMerge(t *inject.Target, p *image.Process) error {
	if _, err := t.Call(unix.SYS_PRCTL, prSetMemoryMerge, 1, 0, 0, 0); err != nil {
		if errors.Is(err, unix.EPERM) {
			err = fmt.Errorf("%w (it needs CAP_SYS_RESOURCE)", err)
		}
		return fmt.Errorf("PR_SET_MEMORY_MERGE: %w", err)
	}
	for _, m := range p.Mappings {
		if m.Kind == image.MapVDSO || m.Kind == image.MapVVAR || m.Kind == image.MapSkip || slices.Contains(m.Flags, "mg") {
			continue
		}
		if _, err := t.Call(unix.SYS_MADVISE, uintptr(m.Start), uintptr(m.End-m.Start), unix.MADV_UNMERGEABLE); err != nil {
			return fmt.Errorf("mapping %#x-%#x: madvise MADV_UNMERGEABLE: %w", m.Start, m.End, err)
		}
	}
	return nil
}
