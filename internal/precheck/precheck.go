// Package precheck tells, without stopping anything, whether the processes of a
// unit can be checkpointed now, and if not exactly why: which process,
// which descriptor or mapping, which resource.
package precheck

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/files"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/mem"
	"github.com/seamless-linux/seamless/internal/proc"
	"github.com/seamless-linux/seamless/internal/task"
	"github.com/seamless-linux/seamless/internal/timens"
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
	External []string `json:"external,omitempty"`
	// Closed lists the connections to peers outside the unit that come back
	// closed by their peer (the program must reconnect): a database, redis,
	// D-Bus, a client of the unit's server (unixsock.ExternalFate).
	Closed   []string  `json:"closed,omitempty"`
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
	external := func(ino uint64) (string, bool) {
		p, ok := peers[ino]
		if !ok || p.Inode == 0 || held[p.Inode] {
			return "", false
		}
		e := &image.UnixExternal{Name: []byte(p.Name), Key: p.Name}
		if p.Name == "" {
			e.Key = fmt.Sprintf("socket:[%d]", p.Inode)
		}
		// The restore daemon hands every unit its new journal stream.
		fate := unixsock.ExternalFate(p.Type, e, e.Key == unixsock.JournalStream)
		if fate == unixsock.Replaced {
			return fmt.Sprintf("unix socket connected to %s: the unit's new journal stream stands in for it", e.Key), false
		}
		return "unix socket " + fate.Describe(e.Key), fate == unixsock.Closed
	}
	inUnit := map[int]bool{}
	for _, pid := range pids {
		inUnit[pid] = true
	}
	sc := files.NewScope(pids)
	tables, fsTables := files.NewTables(), files.NewFSTables()
	for _, pid := range byStart(pids) {
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
		checkSeccomp(proc.Root, pid, tids, bad)
		for _, tid := range tids {
			if err := task.CheckLabel(pid, tid); err != nil {
				bad("thread "+strconv.Itoa(tid), err.Error())
			}
		}
		if st.State != 'Z' {
			if err := task.CheckUserNS(pid); err != nil && !os.IsNotExist(err) {
				bad("process", err.Error())
			}
			if _, err := tables.Add(pid, st.PPID); err != nil {
				bad("descriptor table", err.Error())
			}
			if _, err := fsTables.Add(pid, st.PPID); err != nil {
				bad("working directory", err.Error())
			}
			if err := files.CheckFS(pid); err != nil {
				bad("working directory", err.Error())
			}
		}
		checkFDs(pid, sc, r, bad, external)
		checkMaps(pid, r, bad)
	}
	if _, err := timens.Check(pids); err != nil && len(pids) > 0 {
		comm, _ := proc.ReadString(pids[0], "comm")
		r.Problems = append(r.Problems, Problem{PID: pids[0], Comm: comm, What: "clocks", Reason: err.Error()})
	}
	sort.Strings(r.External)
	sort.Strings(r.Closed)
	return r
}

// byStart orders pids by start time, parents before their children, as
// files.Tables wants them.
func byStart(pids []int) []int {
	start := map[int]uint64{}
	for _, pid := range pids {
		if b, err := os.ReadFile(proc.Path(pid, "stat")); err == nil {
			if i := strings.LastIndexByte(string(b), ')'); i > 0 {
				if f := strings.Fields(string(b[i+1:])); len(f) > 19 {
					start[pid], _ = strconv.ParseUint(f[19], 10, 64)
				}
			}
		}
	}
	out := append([]int(nil), pids...)
	sort.SliceStable(out, func(i, j int) bool {
		if start[out[i]] != start[out[j]] {
			return start[out[i]] < start[out[j]]
		}
		return out[i] < out[j]
	})
	return out
}

// checkSeccomp refuses threads in seccomp strict mode, which allows only
// read, write, exit and sigreturn: no restore can put a thread back into
// it and still rebuild it. Filters (mode 2) are carried; the checkpoint
// itself refuses the few it cannot carry, since reading a filter needs the
// thread stopped. root is the mount point of procfs.
func checkSeccomp(root string, pid int, tids []int, bad func(string, string)) {
	for _, tid := range tids {
		st, err := proc.ReadStatusIn(root, pid, tid)
		if err != nil {
			continue // gone meanwhile
		}
		if st["Seccomp"] == "1" {
			bad("thread "+strconv.Itoa(tid), "seccomp strict mode cannot be restored")
		}
	}
}

// checkFDs decides every descriptor of pid with files.Check, the decision
// the checkpoint makes, and counts them by kind.
func checkFDs(pid int, sc *files.Scope, r *Report, bad func(string, string), externalSocket func(uint64) (string, bool)) {
	ents, err := os.ReadDir(proc.Path(pid, "fd"))
	if err != nil {
		bad("fds", err.Error())
		return
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		what := "fd " + strconv.Itoa(fd)
		kind, err := files.Check(sc, pid, fd)
		if err != nil {
			var u *files.Unsupported
			if errors.As(err, &u) {
				bad(what, u.What+" is not supported")
			} else if _, serr := os.Stat(proc.Path(pid, "fd", e.Name())); serr == nil {
				bad(what, err.Error())
			} // else: closed meanwhile
			continue
		}
		r.Resources[kind]++
		if kind == image.FileSocket {
			var st unix.Stat_t
			if unix.Stat(proc.Path(pid, "fd", e.Name()), &st) == nil {
				if ext, closed := externalSocket(st.Ino); closed {
					r.Closed = append(r.Closed, fmt.Sprintf("pid %d %s: %s", pid, what, ext))
				} else if ext != "" {
					r.External = append(r.External, fmt.Sprintf("pid %d %s: %s", pid, what, ext))
				}
			}
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
		if err := mem.CheckMapping(&m); err != nil {
			bad(fmt.Sprintf("mapping %x-%x %s", m.Start, m.End, m.Path), err.Error())
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
