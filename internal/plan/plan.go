// Package plan tells, without stopping anything, whether the processes of a
// unit can be checkpointed now, and if not exactly why: which process,
// which descriptor or mapping, which resource.
package plan

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/files"
	"github.com/seamless-linux/seamless/internal/proc"
	"github.com/seamless-linux/seamless/internal/unixsock"
)

// Problem is something that keeps a unit from being checkpointed.
type Problem struct {
	PID    int    `json:"pid"`
	Comm   string `json:"comm"`
	What   string `json:"what"` // "fd 7", "mapping 7f00...-7f01...", "process"
	Reason string `json:"reason"`
}

func (p Problem) String() string {
	return fmt.Sprintf("pid %d (%s) %s: %s", p.PID, p.Comm, p.What, p.Reason)
}

// Report describes the processes of one unit.
type Report struct {
	Processes []Process `json:"processes"`
	// Resources counts descriptors by kind across the unit.
	Resources map[string]int `json:"resources"`
	// External lists connections to things outside the unit (journald,
	// D-Bus) that restore reconnects rather than restores.
	External []string  `json:"external,omitempty"`
	Problems []Problem `json:"problems,omitempty"`
	// ImageBytes estimates the image: the processes' private memory.
	ImageBytes int64 `json:"image_bytes"`
}

// Process is one process of the unit.
type Process struct {
	PID     int    `json:"pid"`
	PPID    int    `json:"ppid"`
	Comm    string `json:"comm"`
	Threads int    `json:"threads"`
}

// OK reports whether nothing stands in the way of a checkpoint.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Check inspects the given processes (a unit's cgroup).
func Check(pids []int) *Report {
	r := &Report{Resources: map[string]int{}}
	peers, _ := unixsock.Peers()
	held := map[uint64]bool{} // socket inodes the unit holds
	for _, pid := range pids {
		ents, _ := os.ReadDir(proc.Path(pid, "fd"))
		for _, e := range ents {
			if l, _ := os.Readlink(proc.Path(pid, "fd", e.Name())); strings.HasPrefix(l, "socket:[") {
				ino, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]"), 10, 64)
				held[ino] = true
			}
		}
	}
	external := func(ino uint64) string {
		p, ok := peers[ino]
		if !ok || p.Inode == 0 || held[p.Inode] {
			return ""
		}
		if p.Name == "" {
			return fmt.Sprintf("unix socket connected to socket:[%d] outside the unit", p.Inode)
		}
		return "unix socket connected to " + p.Name
	}
	inUnit := map[int]bool{}
	for _, pid := range pids {
		inUnit[pid] = true
	}
	for _, pid := range pids {
		comm, _ := proc.ReadString(pid, "comm")
		st, err := proc.ReadStat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		tids, _ := proc.Threads(pid)
		r.Processes = append(r.Processes, Process{PID: pid, PPID: st.PPID, Comm: comm, Threads: len(tids)})
		bad := func(what, reason string) {
			r.Problems = append(r.Problems, Problem{PID: pid, Comm: comm, What: what, Reason: reason})
		}
		if st.State == 'Z' && !inUnit[st.PPID] {
			bad("process", "a zombie whose parent is outside the unit")
		}
		checkSeccomp(pid, tids, bad)
		checkFDs(pid, r, bad, external)
		checkMaps(pid, r, bad)
	}
	sort.Strings(r.External)
	return r
}

// unsupportedAnon are anonymous-inode files seamless cannot carry, with
// the reason given to the operator.
var unsupportedAnon = map[string]string{
	"[io_uring]":     "io_uring instance (its rings and in-flight requests live in the kernel)",
	"[fanotify]":     "fanotify group",
	"[perf_event]":   "perf event",
	"[userfaultfd]":  "userfaultfd",
	"[pidfd]":        "pidfd",
	"bpf-map":        "BPF map",
	"bpf-prog":       "BPF program",
	"[kvm-vm]":       "KVM virtual machine",
	"seccomp notify": "seccomp user-notification listener",
}

// checkSeccomp refuses threads in seccomp strict mode, which allows only
// read, write, exit and sigreturn: no restore can put a thread back into
// it and still rebuild it. Filters (mode 2) are carried; the checkpoint
// itself refuses the few it cannot carry, since reading a filter needs the
// thread stopped.
func checkSeccomp(pid int, tids []int, bad func(string, string)) {
	for _, tid := range tids {
		st, err := proc.ReadStatus(pid, tid)
		if err != nil {
			continue // gone meanwhile
		}
		if st["Seccomp"] == "1" {
			bad("thread "+strconv.Itoa(tid), "seccomp strict mode cannot be restored")
		}
	}
}

func checkFDs(pid int, r *Report, bad func(string, string), externalSocket func(uint64) string) {
	ents, err := os.ReadDir(proc.Path(pid, "fd"))
	if err != nil {
		bad("fds", err.Error())
		return
	}
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		link, err := os.Readlink(proc.Path(pid, "fd", e.Name()))
		if err != nil {
			continue
		}
		var st unix.Stat_t
		unix.Stat(proc.Path(pid, "fd", e.Name()), &st)
		what := "fd " + strconv.Itoa(fd)
		switch {
		case strings.HasPrefix(link, "anon_inode:"):
			name := strings.TrimPrefix(link, "anon_inode:")
			switch name {
			case "[eventfd]", "[eventpoll]", "[signalfd]", "[timerfd]", "inotify":
				r.Resources[strings.Trim(name, "[]")]++
			default:
				reason, ok := unsupportedAnon[name]
				if !ok {
					reason = link
				}
				bad(what, reason+" is not supported")
			}
		case strings.HasPrefix(link, "socket:"):
			r.Resources["socket"]++
			if ext := externalSocket(st.Ino); ext != "" {
				r.External = append(r.External, fmt.Sprintf("pid %d %s: %s", pid, what, ext))
			}
		case strings.HasPrefix(link, "pipe:"):
			r.Resources["pipe"]++
		case st.Mode&unix.S_IFMT == unix.S_IFCHR:
			if kind := files.CharDeviceKind(st.Rdev); kind != "" {
				r.Resources[kind]++
			} else {
				bad(what, fmt.Sprintf("character device %s (%d:%d) is not supported", link, unix.Major(st.Rdev), unix.Minor(st.Rdev)))
			}
		case st.Mode&unix.S_IFMT == unix.S_IFDIR:
			r.Resources["directory"]++
		case st.Mode&unix.S_IFMT == unix.S_IFIFO:
			r.Resources["fifo"]++
		case st.Mode&unix.S_IFMT == unix.S_IFBLK:
			bad(what, "block device "+link+" is not supported")
		default:
			r.Resources["file"]++
		}
	}
}

func checkMaps(pid int, r *Report, bad func(string, string)) {
	maps, err := proc.ReadMappings(pid)
	if err != nil {
		bad("mappings", err.Error())
		return
	}
	for _, m := range maps {
		what := fmt.Sprintf("mapping %x-%x %s", m.Start, m.End, m.Path)
		if m.IsSpecial() {
			switch {
			case m.Path == "[vdso]", strings.HasPrefix(m.Path, "[vvar"), m.Path == "[vsyscall]", strings.HasPrefix(m.Path, "[anon:"):
			default:
				bad(what, "kernel mapping "+m.Path+" is not supported")
			}
			continue
		}
		if m.Major != 0 && !m.Shared && m.Inode != 0 && strings.HasPrefix(m.Path, "/dev/") {
			bad(what, "device mapping is not supported")
		}
	}
	if b, err := os.ReadFile(proc.Path(pid, "smaps_rollup")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && (k == "Anonymous" || k == "Private_Dirty") {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if k == "Anonymous" {
					r.ImageBytes += kb << 10
				}
			}
		}
	}
}
