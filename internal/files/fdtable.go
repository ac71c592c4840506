package files

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/proc"
)

// Processes created with clone(CLONE_FILES) share one descriptor table: a
// descriptor one of them opens or closes is opened or closed for all; with
// clone(CLONE_FS), one root, working directory and umask. The restore
// creates a process that shares its parent's table with the same flag;
// other arrangements (a table shared with a sibling only, a thread with a
// table of its own) are refused at checkpoint.

// kcmpFiles and kcmpFS are KCMP_FILES and KCMP_FS from linux/kcmp.h.
const (
	kcmpFiles = 2
	kcmpFS    = 3
)

func kcmp(pid1, pid2, typ, idx1, idx2 int) (bool, error) {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2), uintptr(typ), uintptr(idx1), uintptr(idx2), 0)
	if e != 0 {
		return false, e
	}
	return r == 0, nil
}

// Tables groups the processes of a tree by descriptor table, or by
// filesystem information (root, working directory, umask).
type Tables struct {
	typ    int    // kcmpFiles or kcmpFS
	what   string // "descriptor table" or "root, working directory and umask"
	flag   string
	owner  map[int]int // process -> the first process of its table
	owners []int
}

// NewTables returns an empty Tables of descriptor tables (CLONE_FILES).
func NewTables() *Tables {
	return &Tables{typ: kcmpFiles, what: "descriptor table", flag: "CLONE_FILES", owner: map[int]int{}}
}

// NewFSTables returns an empty Tables of filesystem information (CLONE_FS).
func NewFSTables() *Tables {
	return &Tables{typ: kcmpFS, what: "root, working directory and umask", flag: "CLONE_FS", owner: map[int]int{}}
}

// Add records process pid, whose parent is ppid (added before it, unless
// it is outside the tree), and returns the earlier process whose table it
// shares, 0 if the table is its own; or why the sharing cannot be restored.
func (t *Tables) Add(pid, ppid int) (int, error) {
	tids, err := proc.Threads(pid)
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	for _, tid := range tids {
		if tid == pid {
			continue
		}
		if same, err := kcmp(pid, tid, t.typ, 0, 0); err == nil && !same {
			return 0, fmt.Errorf("process %d: thread %d has a %s of its own (unshare(%s)), which is not supported", pid, tid, t.what, t.flag)
		}
	}
	for _, q := range t.owners {
		same, err := kcmp(pid, q, t.typ, 0, 0)
		if err != nil {
			return 0, fmt.Errorf("process %d: compare its %s with %d's: %w", pid, t.what, q, err)
		}
		if !same {
			continue
		}
		if t.owner[ppid] != q {
			return 0, fmt.Errorf("process %d shares its %s with process %d but not with its parent %d, which is not supported", pid, t.what, q, ppid)
		}
		t.owner[pid] = q
		return q, nil
	}
	if _, ok := t.owner[ppid]; !ok {
		if same, err := kcmp(pid, ppid, t.typ, 0, 0); err == nil && same {
			return 0, fmt.Errorf("process %d shares its %s with its parent %d, outside the tree, which is not supported", pid, t.what, ppid)
		}
	}
	t.owner[pid] = pid
	t.owners = append(t.owners, pid)
	return 0, nil
}
