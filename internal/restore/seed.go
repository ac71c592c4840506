package restore

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/ptrace"
)

// RegionSize is the memory each restored process keeps for the restorer
// until the end: one page of code, then scratch space and a stack.
const RegionSize = 64 << 10

const (
	elfHeaderSize = 64
	phdrSize      = 56
	codeOff       = elfHeaderSize + 2*phdrSize
)

// seedELF builds a minimal static x86-64 executable loaded at base. Its
// only instructions are "syscall; int3" at its entry point, and it never
// runs them by itself: it is started under ptrace and stops at exec. Every
// restored process is forked from it, so all of them have the restore
// region at base.
func seedELF(base uint64) []byte {
	b := make([]byte, codeOff, codeOff+len(inject.Code))
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0})
	le := binary.LittleEndian
	le.PutUint16(b[16:], 2)    // ET_EXEC
	le.PutUint16(b[18:], 0x3e) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], base+codeOff) // entry
	le.PutUint64(b[32:], elfHeaderSize)
	le.PutUint16(b[52:], elfHeaderSize)
	le.PutUint16(b[54:], phdrSize)
	le.PutUint16(b[56:], 2)
	ph := b[elfHeaderSize:]
	le.PutUint32(ph[0:], 1)           // PT_LOAD
	le.PutUint32(ph[4:], 7)           // read, write, execute
	le.PutUint64(ph[16:], base)       // vaddr
	le.PutUint64(ph[24:], base)       // paddr
	le.PutUint64(ph[32:], codeOff+3)  // filesz
	le.PutUint64(ph[40:], RegionSize) // memsz
	le.PutUint64(ph[48:], 4096)       // align
	ph = ph[phdrSize:]
	le.PutUint32(ph[0:], 0x6474e551) // PT_GNU_STACK
	le.PutUint32(ph[4:], 6)          // read, write: no executable stack
	return append(b, inject.Code...)
}

// traceOptions are the ptrace options of the seed, which every process and
// thread forked from it inherits.
const traceOptions = unix.PTRACE_O_EXITKILL | unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_TRACECLONE |
	unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACEVFORK

// startSeed runs the seed executable stopped under ptrace and prepares it
// to fork the tree: its descriptor channel at fd sock, ptrace options that
// follow every fork and clone, and an exit-kill guard so that nothing half
// restored outlives a crashed restorer.
func startSeed(base uint64, sock int) (*inject.Target, error) {
	fd, err := unix.MemfdCreate("seamless-seed", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create seed: %w", err)
	}
	mf := os.NewFile(uintptr(fd), "seamless-seed")
	defer mf.Close()
	if _, err := mf.Write(seedELF(base)); err != nil {
		return nil, fmt.Errorf("create seed: %w", err)
	}
	cmd := exec.Command(fmt.Sprintf("/proc/self/fd/%d", fd))
	cmd.Args = []string{"seamless-seed"}
	cmd.Env = []string{}
	cmd.Dir = "/"
	cmd.SysProcAttr = &unix.SysProcAttr{Ptrace: true}
	// The memfd is close-on-exec in the restorer; hand it over explicitly.
	cmd.ExtraFiles = []*os.File{mf}
	cmd.Path = "/proc/self/fd/3"
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start seed: %w", err)
	}
	pid := cmd.Process.Pid
	fail := func(err error) (*inject.Target, error) {
		unix.Kill(pid, unix.SIGKILL)
		cmd.Wait()
		return nil, err
	}
	if _, err := ptrace.Wait(pid); err != nil {
		return fail(fmt.Errorf("start seed: %w", err))
	}
	if err := ptrace.SetOptions(pid, traceOptions); err != nil {
		return fail(err)
	}
	th, err := inject.Attach(pid, uintptr(base+codeOff))
	if err != nil {
		return fail(err)
	}
	th.Stack = uintptr(base + RegionSize - 64)
	// Replace the file-backed code page with anonymous memory: the restored
	// processes must not keep the seed executable mapped, or the kernel
	// refuses to point /proc/PID/exe at their own executable.
	if _, err := th.SyscallToExit(unix.SYS_MMAP, uintptr(base), 4096, unix.PROT_READ|unix.PROT_WRITE|unix.PROT_EXEC,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED, ^uintptr(0), 0); err != nil {
		return fail(fmt.Errorf("seed code page: %w", err))
	}
	if err := inject.WriteMem(pid, uintptr(base+codeOff), inject.Code); err != nil {
		return fail(fmt.Errorf("seed code page: %w", err))
	}
	t := &inject.Target{
		PID: pid, Leader: th,
		Region:      [2]uintptr{uintptr(base), uintptr(base + RegionSize)},
		Scratch:     uintptr(base + 4096),
		ScratchSize: RegionSize - 4096 - 256,
		Sock:        sock,
	}
	if err := openChannel(t); err != nil {
		return fail(err)
	}
	return t, nil
}

// openChannel creates the datagram socket through which the restorer passes
// descriptors: bound to an abstract name in the seed, at descriptor t.Sock.
func openChannel(t *inject.Target) error {
	lim := unix.Rlimit{Cur: uint64(t.Sock) + 64, Max: uint64(t.Sock) + 64}
	var cur unix.Rlimit
	if err := unix.Prlimit(t.PID, unix.RLIMIT_NOFILE, nil, &cur); err == nil {
		lim.Cur, lim.Max = max(lim.Cur, cur.Cur), max(lim.Max, cur.Max)
	}
	if err := unix.Prlimit(t.PID, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		return fmt.Errorf("raise seed fd limit: %w", err)
	}
	s, err := t.Call(unix.SYS_SOCKET, unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		return fmt.Errorf("seed socket: %w", err)
	}
	name := fmt.Sprintf("seamless-restore-%d-%d", os.Getpid(), t.PID)
	sa := make([]byte, 2, 2+1+len(name))
	binary.LittleEndian.PutUint16(sa, unix.AF_UNIX)
	sa = append(sa, 0)
	sa = append(sa, name...)
	addr, err := t.Put(0, sa)
	if err != nil {
		return err
	}
	if _, err := t.Call(unix.SYS_BIND, s, addr, uintptr(len(sa))); err != nil {
		return fmt.Errorf("seed bind: %w", err)
	}
	if int(s) != t.Sock {
		if _, err := t.Call(unix.SYS_DUP3, s, uintptr(t.Sock), 0); err != nil {
			return fmt.Errorf("seed dup3: %w", err)
		}
		t.Call(unix.SYS_CLOSE, s)
	}
	local, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("restorer socket: %w", err)
	}
	t.Local = local
	t.Addr = &unix.SockaddrUnix{Name: "@" + name}
	return nil
}
