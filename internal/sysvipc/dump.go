// Package sysvipc checkpoints and restores the System V IPC objects a tree
// uses in the host IPC namespace: shared memory segments, semaphore sets
// and message queues, with their IDs, keys, modes and contents.
//
// System V objects belong to no process. The ones kept are those the tree
// shows it uses: segments it has attached (or created, or last attached),
// semaphore sets one of its processes last operated on, and message queues
// it last sent to or received from.
package sysvipc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// Dump collects the objects the tree uses. attached are the IDs of the
// segments its processes have attached.
func Dump(w *image.Writer, inTree func(int) bool, attached map[int]bool) (*image.SysV, error) {
	sv := &image.SysV{}
	shms, err := readTable("/proc/sysvipc/shm")
	if err != nil {
		return nil, err
	}
	for _, r := range shms {
		id := r.int("shmid")
		if !attached[id] && !inTree(r.int("cpid")) && !inTree(r.int("lpid")) {
			continue
		}
		s, err := dumpShm(w, r)
		if err != nil {
			return nil, fmt.Errorf("shared memory segment %d: %w", id, err)
		}
		sv.Shm = append(sv.Shm, s)
	}
	sems, err := readTable("/proc/sysvipc/sem")
	if err != nil {
		return nil, err
	}
	for _, r := range sems {
		s, used, err := dumpSem(r, inTree)
		if err != nil {
			return nil, fmt.Errorf("semaphore set %d: %w", r.int("semid"), err)
		}
		if used {
			sv.Sem = append(sv.Sem, s)
		}
	}
	msgs, err := readTable("/proc/sysvipc/msg")
	if err != nil {
		return nil, err
	}
	for _, r := range msgs {
		if !inTree(r.int("lspid")) && !inTree(r.int("lrpid")) {
			continue
		}
		q, err := dumpMsg(r)
		if err != nil {
			return nil, fmt.Errorf("message queue %d: %w", r.int("msqid"), err)
		}
		sv.Msg = append(sv.Msg, q)
	}
	if len(sv.Shm)+len(sv.Sem)+len(sv.Msg) == 0 {
		return nil, nil
	}
	return sv, nil
}

// row is one line of a /proc/sysvipc table, by column name.
type row map[string]string

func (r row) int(k string) int {
	v, _ := strconv.Atoi(r[k])
	return v
}

// owner reads the uid and gid columns.
func (r row) owner() image.SysVOwner {
	return image.SysVOwner{UID: uint32(r.int("uid")), GID: uint32(r.int("gid"))}
}

func (r row) mode() uint32 {
	v, _ := strconv.ParseUint(r["perms"], 8, 32)
	return uint32(v)
}

// readTable reads a /proc/sysvipc table.
func readTable(path string) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	rows, err := parseTable(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return rows, nil
}

// parseTable parses a /proc/sysvipc table: a header line naming the
// columns, then one line per object (a column missing from a short line
// reads as absent).
func parseTable(rd io.Reader) ([]row, error) {
	sc := bufio.NewScanner(rd)
	var cols []string
	var rows []row
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if cols == nil {
			cols = fl
			continue
		}
		r := row{}
		for i, c := range cols {
			if i < len(fl) {
				r[c] = fl[i]
			}
		}
		rows = append(rows, r)
	}
	return rows, sc.Err()
}

func dumpShm(w *image.Writer, r row) (image.SysVShm, error) {
	id := r.int("shmid")
	s := image.SysVShm{ID: id, Key: int32(r.int("key")), Mode: r.mode() & 0o777, SysVOwner: r.owner(),
		Destroyed: r.mode()&shmDest != 0, Data: fmt.Sprintf("sysv-shm-%d.img", id)}
	size, _ := strconv.ParseUint(r["size"], 10, 64)
	s.Size = size
	b, err := unix.SysvShmAttach(id, 0, unix.SHM_RDONLY)
	if err != nil {
		return s, fmt.Errorf("attach: %w", err)
	}
	defer unix.SysvShmDetach(b)
	return s, w.WriteFile(s.Data, b[:size])
}

// semctl wraps semctl(2); arg is the union semun value.
func semctl(id, num, cmd int, arg uintptr) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), uintptr(num), uintptr(cmd), arg, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// Commands of semctl(2) and msgrcv(2) flags from linux/sem.h and linux/msg.h.
const (
	semGetPID = 11
	semGetAll = 13
	semSetAll = 17
	msgCopy   = 0o40000
	msgNoErr  = 0o10000
	shmDest   = 0o1000 // SHM_DEST in the perms column: IPC_RMID was requested
)

func dumpSem(r row, inTree func(int) bool) (image.SysVSem, bool, error) {
	id := r.int("semid")
	n := r.int("nsems")
	s := image.SysVSem{ID: id, Key: int32(r.int("key")), Mode: r.mode() & 0o777, SysVOwner: r.owner(),
		Values: make([]uint16, n)}
	used := false
	for i := 0; i < n; i++ {
		pid, err := semctl(id, i, semGetPID, 0)
		if err != nil {
			return s, false, err
		}
		used = used || inTree(pid)
	}
	if !used || n == 0 {
		return s, used, nil
	}
	if _, err := semctl(id, 0, semGetAll, uintptr(unsafe.Pointer(&s.Values[0]))); err != nil {
		return s, false, err
	}
	return s, true, nil
}

func dumpMsg(r row) (image.SysVMsg, error) {
	id := r.int("msqid")
	q := image.SysVMsg{ID: id, Key: int32(r.int("key")), Mode: r.mode() & 0o777, SysVOwner: r.owner()}
	buf := make([]byte, 8+65536)
	for i := 0; i < r.int("qnum"); i++ {
		// MSG_COPY reads message number i without taking it off the queue.
		n, _, e := unix.Syscall6(unix.SYS_MSGRCV, uintptr(id), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)-8),
			uintptr(i), unix.IPC_NOWAIT|msgCopy|msgNoErr, 0)
		if e != 0 {
			return q, fmt.Errorf("read message %d: %w", i, e)
		}
		typ := *(*int64)(unsafe.Pointer(&buf[0]))
		q.Messages = append(q.Messages, image.SysVMessage{Type: typ, Data: append([]byte(nil), buf[8:8+n]...)})
	}
	return q, nil
}
