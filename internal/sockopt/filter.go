package sockopt

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// filterInsnSize is the size of a struct sock_filter (code u16, jt u8,
// jf u8, k u32).
const filterInsnSize = 8

// ReadFilter returns the classic BPF program attached to fd with
// SO_ATTACH_FILTER (nil if none) and whether SO_LOCK_FILTER locks it. An
// eBPF program (SO_ATTACH_BPF) cannot be read back and is refused.
func ReadFilter(fd int) ([]byte, bool, error) {
	// SO_GET_FILTER counts in instructions, not bytes: a zero length asks
	// for the count.
	n, err := getFilter(fd, nil)
	if errors.Is(err, unix.EACCES) {
		return nil, false, errors.New("an eBPF socket filter (SO_ATTACH_BPF) is attached; its program cannot be read back")
	}
	if err != nil {
		return nil, false, fmt.Errorf("SO_GET_FILTER: %w", err)
	}
	if n == 0 {
		return nil, false, nil
	}
	prog := make([]byte, n*filterInsnSize)
	got, err := getFilter(fd, prog)
	if err != nil {
		return nil, false, fmt.Errorf("SO_GET_FILTER: %w", err)
	}
	if got != n {
		return nil, false, fmt.Errorf("SO_GET_FILTER: the filter changed from %d to %d instructions", n, got)
	}
	locked, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_LOCK_FILTER)
	if err != nil && !unavailable(err) {
		return nil, false, fmt.Errorf("SO_LOCK_FILTER: %w", err)
	}
	return prog, locked != 0, nil
}

func getFilter(fd int, buf []byte) (int, error) {
	l := uint32(len(buf) / filterInsnSize)
	var p unsafe.Pointer
	if len(buf) > 0 {
		p = unsafe.Pointer(&buf[0])
	}
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_GET_FILTER,
		uintptr(p), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
		return 0, e
	}
	return int(l), nil
}

// AttachFilter attaches the classic BPF program prog to fd and locks it
// if locked was set. It comes last in a restore: the filter would also
// judge the data the restore puts back into the socket's queues.
func AttachFilter(fd int, prog []byte, locked bool) error {
	if len(prog) == 0 {
		return nil
	}
	if len(prog)%filterInsnSize != 0 {
		return fmt.Errorf("socket filter of %d bytes is not a whole number of instructions", len(prog))
	}
	fprog := unix.SockFprog{Len: uint16(len(prog) / filterInsnSize), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fmt.Errorf("SO_ATTACH_FILTER (%d instructions): %w", fprog.Len, err)
	}
	if locked {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_LOCK_FILTER, 1); err != nil {
			return fmt.Errorf("SO_LOCK_FILTER: %w", err)
		}
	}
	return nil
}
