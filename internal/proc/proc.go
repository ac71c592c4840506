// Package proc reads the state that Linux exposes about a process under
// /proc: its threads, children, memory map, status and open files.
//
// Everything here is read-only and works on any process the caller may
// ptrace; nothing depends on kernel-internal structures, only on the text
// formats documented in proc(5).
package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Root is the mount point of procfs. Code that tests give another root
// takes it as an argument (ReadStatusIn).
const Root = "/proc"

// Path joins a path below /proc/PID.
func Path(pid int, elem ...string) string {
	return filepath.Join(append([]string{Root, strconv.Itoa(pid)}, elem...)...)
}

// Threads lists the thread IDs of process pid, sorted, the leader first.
func Threads(pid int) ([]int, error) {
	ents, err := os.ReadDir(Path(pid, "task"))
	if err != nil {
		return nil, fmt.Errorf("list threads of %d: %w", pid, err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err == nil {
			tids = append(tids, tid)
		}
	}
	sort.Slice(tids, func(i, j int) bool {
		if tids[i] == pid || tids[j] == pid {
			return tids[i] == pid
		}
		return tids[i] < tids[j]
	})
	return tids, nil
}

// Children lists the direct children of every thread of pid.
func Children(pid int) ([]int, error) {
	tids, err := Threads(pid)
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, tid := range tids {
		b, err := os.ReadFile(Path(pid, "task", strconv.Itoa(tid), "children"))
		if err != nil {
			if os.IsNotExist(err) {
				continue // the thread exited meanwhile
			}
			return nil, fmt.Errorf("read children of %d/%d: %w", pid, tid, err)
		}
		for _, f := range strings.Fields(string(b)) {
			if k, err := strconv.Atoi(f); err == nil {
				kids = append(kids, k)
			}
		}
	}
	sort.Ints(kids)
	return kids, nil
}

// ParentThread returns the thread of process ppid whose children include
// pid: the thread that created it (or inherited it when that one exited).
func ParentThread(ppid, pid int) (int, error) {
	tids, err := Threads(ppid)
	if err != nil {
		return 0, err
	}
	want := strconv.Itoa(pid)
	for _, tid := range tids {
		b, err := os.ReadFile(Path(ppid, "task", strconv.Itoa(tid), "children"))
		if err != nil {
			continue // the thread exited meanwhile
		}
		for _, f := range strings.Fields(string(b)) {
			if f == want {
				return tid, nil
			}
		}
	}
	return 0, fmt.Errorf("process %d is not a child of any thread of %d", pid, ppid)
}

// Stat holds the fields of /proc/PID/stat that a checkpoint needs.
type Stat struct {
	State      byte
	PPID       int
	PGID       int
	SID        int
	TtyNr      int // device number of the controlling terminal
	Tpgid      int // foreground process group of that terminal
	ExitSignal int
	Nice       int
	Policy     int
	RTPriority int
	ExitCode   int
	StartCode  uint64
	EndCode    uint64
	StartStack uint64
	StartData  uint64
	EndData    uint64
	StartBrk   uint64
	ArgStart   uint64
	ArgEnd     uint64
	EnvStart   uint64
	EnvEnd     uint64
}

// ReadStat parses /proc/PID/stat.
func ReadStat(pid int) (*Stat, error) {
	b, err := os.ReadFile(Path(pid, "stat"))
	if err != nil {
		return nil, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	return parseStat(b)
}

// ReadTaskStat parses /proc/PID/task/TID/stat, the per-thread fields.
func ReadTaskStat(pid, tid int) (*Stat, error) {
	b, err := os.ReadFile(Path(pid, "task", strconv.Itoa(tid), "stat"))
	if err != nil {
		return nil, fmt.Errorf("read stat of %d/%d: %w", pid, tid, err)
	}
	return parseStat(b)
}

func parseStat(b []byte) (*Stat, error) {
	// comm may contain spaces and parentheses: the fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("parse stat: no comm terminator")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state) in proc(5) numbering.
	field := func(n int) uint64 {
		if n-3 >= len(f) {
			return 0
		}
		if v, err := strconv.ParseInt(f[n-3], 10, 64); err == nil {
			return uint64(v) // nice is negative for raised priority
		}
		v, _ := strconv.ParseUint(f[n-3], 10, 64)
		return v
	}
	if len(f) < 50 {
		return nil, fmt.Errorf("parse stat: %d fields, want at least 52", len(f)+2)
	}
	return &Stat{
		State:      f[0][0],
		PPID:       int(field(4)),
		PGID:       int(field(5)),
		SID:        int(field(6)),
		TtyNr:      int(field(7)),
		Tpgid:      int(int64(field(8))),
		ExitSignal: int(field(38)),
		Nice:       int(int64(field(19))),
		Policy:     int(field(41)),
		RTPriority: int(field(40)),
		ExitCode:   int(field(52)),
		StartCode:  field(26),
		EndCode:    field(27),
		StartStack: field(28),
		StartData:  field(45),
		EndData:    field(46),
		StartBrk:   field(47),
		ArgStart:   field(48),
		ArgEnd:     field(49),
		EnvStart:   field(50),
		EnvEnd:     field(51),
	}, nil
}

// Status is /proc/PID/status as a map from key to the text after the colon.
type Status map[string]string

// ReadStatus parses /proc/PID/task/TID/status.
func ReadStatus(pid, tid int) (Status, error) { return ReadStatusIn(Root, pid, tid) }

// ReadStatusIn is ReadStatus of the procfs at root.
func ReadStatusIn(root string, pid, tid int) (Status, error) {
	p := filepath.Join(root, strconv.Itoa(pid), "task", strconv.Itoa(tid), "status")
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read status of %d/%d: %w", pid, tid, err)
	}
	s := Status{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			s[k] = strings.TrimSpace(v)
		}
	}
	return s, nil
}

// Ints returns the whitespace-separated decimal integers of key.
func (s Status) Ints(key string) []int {
	var out []int
	for _, f := range strings.Fields(s[key]) {
		if v, err := strconv.Atoi(f); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// Hex returns the hexadecimal value of key (capability sets, signal masks).
func (s Status) Hex(key string) uint64 {
	v, _ := strconv.ParseUint(s[key], 16, 64)
	return v
}

// Octal returns the octal value of key (Umask).
func (s Status) Octal(key string) uint64 {
	v, _ := strconv.ParseUint(s[key], 8, 64)
	return v
}

// Int returns the decimal value of key.
func (s Status) Int(key string) int {
	v, _ := strconv.Atoi(s[key])
	return v
}

// ReadString reads a small text file below /proc/PID and trims the newline.
func ReadString(pid int, elem ...string) (string, error) {
	b, err := os.ReadFile(Path(pid, elem...))
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\n"), nil
}
