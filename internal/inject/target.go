package inject

import (
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Target is a process being rebuilt at restore. It owns a region of memory
// that holds Code and a scratch area for the arguments of injected calls,
// and a datagram socket through which the restorer hands it file
// descriptors (SCM_RIGHTS).
type Target struct {
	PID int
	// Leader runs calls in the thread-group leader.
	Leader *Thread
	// Region is the address range the restorer keeps mapped for itself
	// until the very end: Code at its start, scratch after it.
	Region [2]uintptr
	// Scratch is where call arguments are written.
	Scratch uintptr
	// ScratchSize is the number of bytes at Scratch.
	ScratchSize int
	// Sock is the target's end of the descriptor channel (an fd number in
	// the target), and Local the restorer's socket with Addr the target's name.
	Sock  int
	Local int
	Addr  *unix.SockaddrUnix
}

// Call runs a system call in the leader.
func (t *Target) Call(nr uintptr, args ...uintptr) (uintptr, error) {
	return t.Leader.Syscall(nr, args...)
}

// Put writes b into the scratch area at offset off and returns its address
// in the target.
func (t *Target) Put(off int, b []byte) (uintptr, error) {
	if off+len(b) > t.ScratchSize {
		return 0, fmt.Errorf("%d bytes do not fit the scratch area", off+len(b))
	}
	if err := WriteMem(t.PID, t.Scratch+uintptr(off), b); err != nil {
		return 0, err
	}
	return t.Scratch + uintptr(off), nil
}

// PutString writes a NUL-terminated string into the scratch area.
func (t *Target) PutString(off int, s string) (uintptr, error) {
	return t.Put(off, append([]byte(s), 0))
}

// Get reads n bytes of the scratch area at off.
func (t *Target) Get(off, n int) ([]byte, error) {
	b := make([]byte, n)
	return b, ReadMem(t.PID, t.Scratch+uintptr(off), b)
}

// msgOff is where SendFD lays out its recvmsg arguments in the scratch area.
const msgOff = 3072

// SendFD gives the target a duplicate of the restorer's descriptor fd and
// returns the descriptor number it received (the lowest free one).
func (t *Target) SendFD(fd int) (int, error) {
	rights := unix.UnixRights(fd)
	if err := unix.Sendmsg(t.Local, []byte{0}, rights, t.Addr, 0); err != nil {
		return -1, fmt.Errorf("send fd to %d: %w", t.PID, err)
	}
	// struct msghdr { name, namelen, iov, iovlen, control, controllen, flags }
	base := t.Scratch + msgOff
	iov := base + 64
	data := base + 80
	ctl := base + 96
	msg := make([]byte, 0, 128)
	msg = binary.LittleEndian.AppendUint64(msg, 0)
	msg = binary.LittleEndian.AppendUint64(msg, 0)
	msg = binary.LittleEndian.AppendUint64(msg, uint64(iov))
	msg = binary.LittleEndian.AppendUint64(msg, 1)
	msg = binary.LittleEndian.AppendUint64(msg, uint64(ctl))
	msg = binary.LittleEndian.AppendUint64(msg, uint64(unix.CmsgSpace(4)))
	msg = binary.LittleEndian.AppendUint64(msg, 0)
	msg = append(msg, make([]byte, 64-len(msg))...)
	msg = binary.LittleEndian.AppendUint64(msg, uint64(data))
	msg = binary.LittleEndian.AppendUint64(msg, 1)
	if _, err := t.Put(msgOff, msg); err != nil {
		return -1, err
	}
	if _, err := t.Leader.Syscall(unix.SYS_RECVMSG, uintptr(t.Sock), base, unix.MSG_DONTWAIT); err != nil {
		return -1, fmt.Errorf("receive fd in %d: %w", t.PID, err)
	}
	got, err := t.Get(msgOff+96, unix.CmsgSpace(4))
	if err != nil {
		return -1, err
	}
	if binary.LittleEndian.Uint32(got[12:]) != unix.SCM_RIGHTS {
		return -1, fmt.Errorf("receive fd in %d: no descriptor arrived", t.PID)
	}
	return int(int32(binary.LittleEndian.Uint32(got[16:]))), nil
}

// SendFile is SendFD for an *os.File.
func (t *Target) SendFile(f *os.File) (int, error) { return t.SendFD(int(f.Fd())) }

// Uint64s encodes words in native byte order.
func Uint64s(v ...uint64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		*(*uint64)(unsafe.Pointer(&b[8*i])) = x
	}
	return b
}
