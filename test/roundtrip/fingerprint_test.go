package roundtrip

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A fingerprint is what /proc shows about a tree from the outside, reduced
// to what a faithful restore must reproduce exactly: credentials, signal
// dispositions and masks, limits, scheduling, process group and session,
// the memory map and its madvise flags, the fds and their flags, cwd, root,
// exe, cmdline, environ, namespaces, cgroup, POSIX timers, per-thread name,
// mask and affinity. Keys name the process (and thread) and the item.
type fingerprint map[string]string

// statusFields are the lines of /proc/PID/status that must not change.
var statusFields = []string{
	"Name", "Umask", "Tgid", "Pid", "PPid", "Uid", "Gid", "Groups", "NStgid", "NSpid",
	"NSpgid", "NSsid", "Kthread", "THP_enabled", "untag_mask", "SigIgn", "SigCgt",
	"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
	"Seccomp_filters", "Speculation_Store_Bypass", "SpeculationIndirectBranch",
	"Cpus_allowed_list", "Mems_allowed_list", "x86_Thread_features",
	"x86_Thread_features_locked",
}

// threadStatusFields are the per-thread lines of /proc/PID/task/TID/status.
// Credentials and seccomp filters belong to each thread.
var threadStatusFields = []string{"Name", "SigBlk", "Cpus_allowed_list", "NoNewPrivs", "Seccomp",
	"Seccomp_filters"}

// statFields1 are fields of /proc/PID/stat (1-based, as in proc(5)).
var statFieldNames = map[int]string{
	4: "ppid", 5: "pgrp", 6: "session", 7: "tty_nr", 8: "tpgid", 18: "priority",
	19: "nice", 26: "startcode", 27: "endcode", 28: "startstack", 38: "exit_signal",
	40: "rt_priority", 41: "policy", 45: "start_data", 46: "end_data", 47: "start_brk",
	48: "arg_start", 49: "arg_end", 50: "env_start", 51: "env_end",
}

// threadStatFields are per-thread scheduling fields of /proc/PID/task/TID/stat.
var threadStatFields = map[int]string{18: "priority", 19: "nice", 40: "rt_priority", 41: "policy"}

// vmFlagsKept are the smaps VmFlags set by mmap, madvise and mlock.
var vmFlagsKept = map[string]bool{
	"rd": true, "wr": true, "ex": true, "sh": true, "gd": true, "lo": true, "sr": true,
	"rr": true, "dc": true, "dd": true, "wf": true, "hg": true, "nh": true, "mg": true,
	"nr": true, "dp": true, "gu": true,
}

// takeFingerprint reads the fingerprint of every process of tr. With
// runtime set, the memory map and the thread list are left out.
//
// A running workload passes through states that last microseconds: a
// thread inside a signal handler has that signal in its SigBlk until the
// handler returns. Such a moment must not become the reference, so the
// fingerprint is read until two reads in a row agree.
func takeFingerprint(tr tree, runtime bool) fingerprint {
	fp := readFingerprint(tr, runtime)
	for try := 0; try < 20; try++ {
		time.Sleep(2 * time.Millisecond)
		again := readFingerprint(tr, runtime)
		if len(fp.diff(again)) == 0 {
			return fp
		}
		fp = again
	}
	return fp
}

func readFingerprint(tr tree, runtime bool) fingerprint {
	fp := fingerprint{}
	for pid := range tr {
		addProcess(fp, pid, runtime)
	}
	fp.classes(tr, "sessionid", "audit session", func(v string) bool { return v != "4294967295" })
	fp.classes(tr, "ns time", "time namespace", func(string) bool { return true })
	return fp
}

// classes replaces the values of item key by which processes share one,
// for values that keep says are identities. The kernel hands out a new
// audit session ID whenever a loginuid is set, and the restore builds a
// time namespace of its own for the tree (its clocks continue from the
// checkpoint): a restore keeps the sharing, never the numbers. An unset
// session stays as it is.
func (fp fingerprint) classes(tr tree, key, what string, keep func(string) bool) {
	var pids []int
	for pid := range tr {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	class := map[string]string{}
	for _, pid := range pids {
		k := fmt.Sprintf("pid %d %s", pid, key)
		v, ok := fp[k]
		if !ok || !keep(v) || strings.HasPrefix(v, "(") {
			continue
		}
		if class[v] == "" {
			class[v] = fmt.Sprintf("%s #%d (first in pid %d)", what, len(class)+1, pid)
		}
		fp[k] = class[v]
	}
}

func readTrim(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(error: " + strings.TrimPrefix(err.Error(), "open ") + ")"
	}
	return strings.TrimRight(string(data), "\n")
}

func readLink(path string) string {
	s, err := os.Readlink(path)
	if err != nil {
		return "(error)"
	}
	return s
}

// statusMap parses a status file into field -> value.
func statusMap(path string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(readTrim(path), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}

// statByNumber returns /proc/.../stat fields keyed by their proc(5) number.
func statByNumber(path string) map[int]string {
	data, err := os.ReadFile(path)
	m := map[int]string{}
	if err != nil {
		return m
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return m
	}
	for j, f := range strings.Fields(string(data[i+1:])) {
		m[j+3] = f
	}
	return m
}

func addProcess(fp fingerprint, pid int, runtime bool) {
	p := fmt.Sprintf("pid %d ", pid)
	base := fmt.Sprintf("/proc/%d/", pid)
	st := statusMap(base + "status")
	for _, k := range statusFields {
		if v, ok := st[k]; ok {
			fp[p+"status "+k] = v
		}
	}
	stat := statByNumber(base + "stat")
	for n, name := range statFieldNames {
		fp[p+"stat "+name] = stat[n]
	}
	for _, f := range []string{"limits", "cmdline", "environ", "comm", "oom_score_adj",
		"coredump_filter", "personality", "cgroup", "timers", "loginuid", "sessionid"} {
		fp[p+f] = readTrim(base + f)
	}
	for _, l := range []string{"cwd", "root", "exe"} {
		fp[p+l] = readLink(base + l)
	}
	if ents, err := os.ReadDir(base + "ns"); err == nil {
		for _, e := range ents {
			fp[p+"ns "+e.Name()] = readLink(base + "ns/" + e.Name())
		}
		// Whether its children start in its own time namespace; which
		// one that is, classes compares.
		if t, ok := fp[p+"ns time_for_children"]; ok {
			fp[p+"ns time_for_children"] = strconv.FormatBool(t == fp[p+"ns time"])
		}
	}
	addFds(fp, p, base)
	if !runtime {
		fp[p+"maps"] = normalizedMaps(base + "smaps")
		tids, _ := threads(pid)
		fp[p+"threads"] = fmt.Sprint(tids)
		for _, tid := range tids {
			tp := fmt.Sprintf("%stid %d ", p, tid)
			tbase := fmt.Sprintf("%stask/%d/", base, tid)
			ts := statusMap(tbase + "status")
			for _, k := range threadStatusFields {
				fp[tp+"status "+k] = ts[k]
			}
			tstat := statByNumber(tbase + "stat")
			for n, name := range threadStatFields {
				fp[tp+"stat "+name] = tstat[n]
			}
		}
	}
}

// addFds records each fd's target (pipe and socket inodes left out) and
// its flags from fdinfo.
func addFds(fp fingerprint, p, base string) {
	ents, err := os.ReadDir(base + "fd")
	if err != nil {
		fp[p+"fds"] = "(error)"
		return
	}
	var fds []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// Workloads open their own /proc files for a moment while they
		// check themselves: those fds come and go and are left out, as is
		// an fd closed while it was being read.
		if _, err := os.Readlink(fmt.Sprintf("%sfd/%d", base, n)); err != nil {
			continue
		}
		if strings.HasPrefix(readLink(fmt.Sprintf("%sfd/%d", base, n)), "/proc/") {
			continue
		}
		fds = append(fds, n)
	}
	sort.Ints(fds)
	fp[p+"fds"] = fmt.Sprint(fds)
	for _, fd := range fds {
		target := readLink(fmt.Sprintf("%sfd/%d", base, fd))
		for _, kind := range []string{"pipe:", "socket:"} {
			if strings.HasPrefix(target, kind) {
				target = kind + "[*]"
			}
		}
		// The kernel names a file made with O_TMPFILE after its inode
		// number, which a recreated one does not keep.
		target = tmpfileName.ReplaceAllString(target, "/#* (deleted)")
		flags := ""
		for _, l := range strings.Split(readTrim(fmt.Sprintf("%sfdinfo/%d", base, fd)), "\n") {
			if v, ok := strings.CutPrefix(l, "flags:"); ok {
				flags = strings.TrimSpace(v)
			}
		}
		fp[fmt.Sprintf("%sfd %d", p, fd)] = target + " flags " + flags
	}
}

// tmpfileName matches the name of an O_TMPFILE file in an fd link.
var tmpfileName = regexp.MustCompile(`/#[0-9]+ \(deleted\)$`)

// normalizedMaps renders smaps as one line per mapping: range, protection,
// offset, path and the mmap/madvise VmFlags. Device and inode numbers are
// left out (shared memory and deleted files get new ones), and so is the
// name of shared anonymous memory, which may come back as a memfd.
func normalizedMaps(path string) string {
	var out []string
	for _, l := range strings.Split(readTrim(path), "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 && strings.Contains(f[0], "-") && len(f[1]) == 4 {
			name := ""
			if len(f) >= 6 {
				name = strings.Join(f[5:], " ")
			}
			if f[1][3] == 's' && (strings.HasPrefix(name, "/dev/zero") || strings.HasPrefix(name, "/memfd:") ||
				strings.HasPrefix(name, "/SYSV")) {
				name = "(shared anon)"
			}
			out = append(out, fmt.Sprintf("%s %s %s %s", f[0], f[1], f[2], name))
			continue
		}
		if v, ok := strings.CutPrefix(l, "VmFlags:"); ok && len(out) > 0 {
			var kept []string
			for _, fl := range strings.Fields(v) {
				if vmFlagsKept[fl] {
					kept = append(kept, fl)
				}
			}
			out[len(out)-1] += " [" + strings.Join(kept, " ") + "]"
		}
	}
	return strings.Join(out, "\n")
}

// withoutVDSO returns a copy of fp whose memory maps leave out the kernel's
// vDSO mappings and the vDSO proxies at the ranges in proxies: a restore
// through a proxy moves the vDSO on purpose.
func (fp fingerprint) withoutVDSO(proxies map[string]bool) fingerprint {
	out := fingerprint{}
	for k, v := range fp {
		if strings.HasSuffix(k, " maps") {
			var kept []string
			for _, l := range strings.Split(v, "\n") {
				f := strings.Fields(l)
				if len(f) > 0 && proxies[f[0]] {
					continue
				}
				if strings.Contains(l, " [vdso]") || strings.Contains(l, " [vvar") {
					continue
				}
				kept = append(kept, l)
			}
			v = strings.Join(kept, "\n")
		}
		out[k] = v
	}
	return out
}

// diff lists the differences between two fingerprints, one per line.
func (a fingerprint) diff(b fingerprint) []string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var out []string
	for _, k := range sorted {
		va, oka := a[k]
		vb, okb := b[k]
		switch {
		case !oka:
			out = append(out, fmt.Sprintf("%s: appeared: %q", k, vb))
		case !okb:
			out = append(out, fmt.Sprintf("%s: disappeared (was %q)", k, va))
		case va != vb && strings.Contains(va, "\n"):
			out = append(out, fmt.Sprintf("%s:\n%s", k, lineDiff(va, vb)))
		case va != vb:
			out = append(out, fmt.Sprintf("%s: %q, was %q", k, vb, va))
		}
	}
	return out
}

// lineDiff shows the lines only in a (-) and only in b (+).
func lineDiff(a, b string) string {
	inA, inB := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(a, "\n") {
		inA[l] = true
	}
	for _, l := range strings.Split(b, "\n") {
		inB[l] = true
	}
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !inB[l] {
			out = append(out, "    - "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !inA[l] {
			out = append(out, "    + "+l)
		}
	}
	return strings.Join(out, "\n")
}

// untraced checks that no thread of tr is traced or stopped: the engine
// must let go of every thread after a checkpoint or a restore. The
// processes in stopped are the opposite: every one of their threads must
// be stopped (state T, job control), as they were.
func untraced(tr tree, stopped map[int]bool) []string {
	var out []string
	for pid := range tr {
		tids, _ := threads(pid)
		for _, tid := range tids {
			base := fmt.Sprintf("/proc/%d/task/%d/", pid, tid)
			st := statusMap(base + "status")
			if st["TracerPid"] != "0" {
				out = append(out, fmt.Sprintf("thread %d of %d is traced by %s", tid, pid, st["TracerPid"]))
			}
			s := st["State"]
			switch {
			case stopped[pid] && !strings.HasPrefix(s, "T"):
				out = append(out, fmt.Sprintf("thread %d of %d is not stopped (%s), as it was", tid, pid, s))
			case !stopped[pid] && (strings.HasPrefix(s, "t") || strings.HasPrefix(s, "T")):
				out = append(out, fmt.Sprintf("thread %d of %d is stopped (%s)", tid, pid, s))
			}
		}
	}
	return out
}
