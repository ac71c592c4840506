package sysvipc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
)

// Restore makes sure every object of sv exists with its ID. An object still
// there with the same key (the same kernel, the tree was only killed) is
// used as it is; a missing one is created with its ID through the
// *_next_id sysctls and filled. Semaphores and messages are set from inside
// t, a process of the tree, so that the kernel records the tree as their
// last user, as it did before.
func Restore(im *image.Image, sv *image.SysV, t *inject.Target) error {
	if sv == nil {
		return nil
	}
	for _, s := range sv.Shm {
		if err := restoreShm(im, s); err != nil {
			return fmt.Errorf("shared memory segment %d: %w", s.ID, err)
		}
	}
	for _, s := range sv.Sem {
		if err := restoreSem(s, t); err != nil {
			return fmt.Errorf("semaphore set %d: %w", s.ID, err)
		}
	}
	for _, q := range sv.Msg {
		if err := restoreMsg(q, t); err != nil {
			return fmt.Errorf("message queue %d: %w", q.ID, err)
		}
	}
	return nil
}

// Finish marks segments for removal that were marked at checkpoint, now
// that the restored processes have attached them again.
func Finish(sv *image.SysV) {
	if sv == nil {
		return
	}
	for _, s := range sv.Shm {
		if s.Destroyed {
			unix.SysvShmCtl(s.ID, unix.IPC_RMID, nil)
		}
	}
}

// exists reports whether the table lists id with key.
func exists(table, idCol string, id int, key int32) (bool, error) {
	rows, err := readTable(table)
	if err != nil {
		return false, err
	}
	for _, r := range rows {
		if r.int(idCol) == id {
			if int32(r.int("key")) != key {
				return false, fmt.Errorf("ID %d now belongs to another object (key %s)", id, r["key"])
			}
			return true, nil
		}
	}
	return false, nil
}

// nextID makes the kernel hand out id to the next object of kind.
func nextID(kind string, id int) error {
	return os.WriteFile("/proc/sys/kernel/"+kind+"_next_id", []byte(strconv.Itoa(id)), 0)
}

func restoreShm(im *image.Image, s image.SysVShm) error {
	ok, err := exists("/proc/sysvipc/shm", "shmid", s.ID, s.Key)
	if err != nil {
		return err
	}
	// The verified file the image holds (its size was bounded by the
	// segment's), never a path opened again.
	src, err := im.Reader(s.Data)
	if err != nil {
		return err
	}
	data := make([]byte, src.Size())
	if _, err := src.ReadAt(data, 0); err != nil && len(data) > 0 {
		return fmt.Errorf("read %s: %w", s.Data, err)
	}
	if ok {
		// Still there (the same kernel): it may have changed since the
		// checkpoint, so it gets the image's contents back.
		b, err := unix.SysvShmAttach(s.ID, 0, 0)
		if err != nil {
			return fmt.Errorf("attach: %w", err)
		}
		copy(b, data)
		return unix.SysvShmDetach(b)
	}
	if err := nextID("shm", s.ID); err != nil {
		return err
	}
	id, err := unix.SysvShmGet(int(s.Key), int(s.Size), unix.IPC_CREAT|unix.IPC_EXCL|int(s.Mode))
	if err != nil {
		return fmt.Errorf("shmget: %w", err)
	}
	if id != s.ID {
		unix.SysvShmCtl(id, unix.IPC_RMID, nil)
		return fmt.Errorf("the kernel gave ID %d", id)
	}
	if err := setOwner(unix.SYS_SHMCTL, id, s.SysVOwner); err != nil {
		return err
	}
	b, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	copy(b, data)
	return unix.SysvShmDetach(b)
}

func restoreSem(s image.SysVSem, t *inject.Target) error {
	ok, err := exists("/proc/sysvipc/sem", "semid", s.ID, s.Key)
	if err != nil {
		return err
	}
	if !ok {
		if err := nextID("sem", s.ID); err != nil {
			return err
		}
		id, err := t.Call(unix.SYS_SEMGET, uintptr(s.Key), uintptr(len(s.Values)), uintptr(unix.IPC_CREAT|unix.IPC_EXCL|int(s.Mode)))
		if err != nil {
			return fmt.Errorf("semget: %w", err)
		}
		if int(id) != s.ID {
			return fmt.Errorf("the kernel gave ID %d", id)
		}
		if err := setOwner(unix.SYS_SEMCTL, s.ID, s.SysVOwner); err != nil {
			return err
		}
	}
	if len(s.Values) == 0 {
		return nil
	}
	vals := make([]byte, 2*len(s.Values))
	for i, v := range s.Values {
		binary.LittleEndian.PutUint16(vals[2*i:], v)
	}
	addr, err := t.Put(0, vals)
	if err != nil {
		return err
	}
	if _, err := t.Call(unix.SYS_SEMCTL, uintptr(s.ID), 0, semSetAll, addr); err != nil {
		return fmt.Errorf("set values: %w", err)
	}
	return nil
}

func restoreMsg(q image.SysVMsg, t *inject.Target) error {
	ok, err := exists("/proc/sysvipc/msg", "msqid", q.ID, q.Key)
	if err != nil {
		return err
	}
	if ok {
		// Still there (the same kernel): empty it, and queue the image's
		// messages again, as they were at the checkpoint.
		buf := make([]byte, 8+65536)
		for {
			_, _, e := unix.Syscall6(unix.SYS_MSGRCV, uintptr(q.ID), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)-8), 0, unix.IPC_NOWAIT|msgNoErr, 0)
			if e != 0 {
				break
			}
		}
	} else {
		if err := nextID("msg", q.ID); err != nil {
			return err
		}
		id, err := t.Call(unix.SYS_MSGGET, uintptr(q.Key), uintptr(unix.IPC_CREAT|unix.IPC_EXCL|int(q.Mode)))
		if err != nil {
			return fmt.Errorf("msgget: %w", err)
		}
		if int(id) != q.ID {
			return fmt.Errorf("the kernel gave ID %d", id)
		}
		if err := setOwner(unix.SYS_MSGCTL, q.ID, q.SysVOwner); err != nil {
			return err
		}
	}
	for i, m := range q.Messages {
		var b bytes.Buffer
		binary.Write(&b, binary.LittleEndian, m.Type)
		b.Write(m.Data)
		addr, err := t.Put(0, b.Bytes())
		if err != nil {
			return err
		}
		if _, err := t.Call(unix.SYS_MSGSND, uintptr(q.ID), addr, uintptr(len(m.Data)), unix.IPC_NOWAIT); err != nil {
			return fmt.Errorf("queue message %d: %w", i, err)
		}
	}
	return nil
}

// setOwner gives object id the owner o through the kernel's own record:
// IPC_STAT, then IPC_SET with uid and gid changed (the mode is set again
// as it is). ctl is SYS_SHMCTL, SYS_SEMCTL or SYS_MSGCTL, whose buffers
// (64-bit layout, the only one of amd64's own calls) open with struct
// ipc64_perm: the owner's uid is at byte 4, its gid at byte 8.
func setOwner(ctl uintptr, id int, o image.SysVOwner) error {
	if o == (image.SysVOwner{}) {
		return nil // root's, as the restorer made it
	}
	var buf [256]byte
	call := func(cmd int) error {
		arg := uintptr(unsafe.Pointer(&buf[0]))
		if ctl == unix.SYS_SEMCTL { // semctl(id, semnum, cmd, arg)
			_, err := semctl(id, 0, cmd, arg)
			return err
		}
		if _, _, e := unix.Syscall(ctl, uintptr(id), uintptr(cmd), arg); e != 0 {
			return e
		}
		return nil
	}
	if err := call(unix.IPC_STAT); err != nil {
		return fmt.Errorf("read owner: %w", err)
	}
	binary.NativeEndian.PutUint32(buf[4:], o.UID)
	binary.NativeEndian.PutUint32(buf[8:], o.GID)
	if err := call(unix.IPC_SET); err != nil {
		return fmt.Errorf("set owner %d:%d: %w", o.UID, o.GID, err)
	}
	return nil
}
