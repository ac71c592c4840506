// Package reserve keeps PIDs free for a restore. Early in the boot of the
// new kernel, before services start and take PIDs at random, every PID and
// TID a preserved service had is taken by a holder: a tiny process that
// does nothing but pause. When the restore needs a PID, its holder is
// killed and reaped, and the PID is free for clone3 with set_tid; nothing
// else takes it meanwhile, because the kernel hands out PIDs in increasing
// order and only comes back to low numbers after pid_max.
package reserve

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/proc"
)

// lastPIDPath is the pid namespace's "last PID handed out" knob.
const lastPIDPath = "/proc/sys/kernel/ns_last_pid"

// HolderName is argv[0] of every holder: the '@' tells systemd's shutdown
// to leave it alone, like any process that outlives the switch of root.
const HolderName = "@seamless-pid"

// Set is the PIDs held by this process's holders. The holders are its
// children and die with it (PR_SET_PDEATHSIG), so the calling goroutine
// must stay locked to its OS thread while the set lives.
type Set struct {
	mu      sync.Mutex
	holders map[int]*exec.Cmd
	exe     *os.File // the holder program, in memory
	// afterTake, if set, runs after each holder's start (tests: a process
	// or thread created there must take no PID still to reserve).
	afterTake func()
}

// Taken is a PID that could not be reserved.
type Taken struct {
	PID    int
	Reason string
}

func (t Taken) Error() string { return fmt.Sprintf("pid %d: %s", t.PID, t.Reason) }

// New prepares a set; it holds nothing yet.
func New() (*Set, error) {
	fd, err := unix.MemfdCreate("seamless-pid", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("reserve pids: %w", err)
	}
	f := os.NewFile(uintptr(fd), "seamless-pid")
	if _, err := f.Write(holderELF()); err != nil {
		f.Close()
		return nil, fmt.Errorf("reserve pids: %w", err)
	}
	return &Set{holders: map[int]*exec.Cmd{}, exe: f}, nil
}

// Reserve takes every PID in pids that is free, highest first, and returns
// those it could not take, with why.
//
// The kernel gives a new process or thread the first free PID above the
// last one it gave. Between two holders, whatever is created meanwhile (a
// thread the Go runtime of the caller starts when it needs one, a kernel
// thread, a module's helper) therefore gets a PID above every one still to
// take; lowest first, it got the very next PID wanted (a restore daemon's
// own thread took the last TID of a service). At the end the kernel's next
// PID is put above the highest one held, so that the boot does not
// come across a PID when its holder is released for the restore.
func (s *Set) Reserve(pids []int) []Taken {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := order(pids)
	var taken []Taken
	for _, pid := range want {
		if s.holders[pid] != nil {
			continue
		}
		if err := s.take(pid); err != nil {
			taken = append(taken, Taken{PID: pid, Reason: err.Error()})
		}
		if s.afterTake != nil {
			s.afterTake()
		}
	}
	if len(want) == 0 {
		return taken
	}
	top := want[0]
	for pid := range s.holders {
		top = max(top, pid)
	}
	if err := setLastPID(top); err != nil {
		// The boot would hand out the PIDs between the holders, and a
		// released one to whatever forks next: none can be relied on.
		for _, pid := range want {
			taken = append(taken, Taken{PID: pid, Reason: err.Error()})
		}
	}
	return taken
}

// order returns pids without duplicates, highest first.
func order(pids []int) []int {
	want := slices.Clone(pids)
	slices.Sort(want)
	want = slices.Compact(want)
	slices.Reverse(want)
	return want
}

// setLastPID sets ns_last_pid: the next process or thread created gets the
// first free PID above pid.
func setLastPID(pid int) error {
	if err := os.WriteFile(lastPIDPath, []byte(strconv.Itoa(pid)), 0); err != nil {
		return fmt.Errorf("set %s: %w", lastPIDPath, err)
	}
	return nil
}

// take starts a holder with PID pid. Setting ns_last_pid to pid-1 just
// before the fork asks for pid; a process or thread created in between
// (even one of the caller's own) steals it, so a holder that got another
// PID is killed, reaped, and the fork tried again while pid is free.
func (s *Set) take(pid int) error {
	for try := 0; try < 3; try++ {
		if who := holder(pid); who != "" {
			return fmt.Errorf("already used by %s", who)
		}
		if err := setLastPID(pid - 1); err != nil {
			return err
		}
		cmd := &exec.Cmd{
			Path:        fmt.Sprintf("/proc/self/fd/%d", s.exe.Fd()),
			Args:        []string{HolderName},
			Env:         []string{},
			Dir:         "/",
			SysProcAttr: &unix.SysProcAttr{Setsid: true, Pdeathsig: unix.SIGKILL},
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start holder: %w", err)
		}
		if cmd.Process.Pid == pid {
			s.holders[pid] = cmd
			return nil
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
	return fmt.Errorf("taken by another process while being reserved")
}

// holder names the process or thread that uses pid, or "" if none does. A
// thread of the caller is named as such: its comm is the caller's, which
// says nothing (a process started through /proc/self/exe is "exe").
func holder(pid int) string {
	if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", pid)); err == nil {
		return fmt.Sprintf("a thread of this process (pid %d)", os.Getpid())
	}
	b, err := os.ReadFile(proc.Path(pid, "comm"))
	if err != nil {
		if _, err := os.Stat(proc.Path(pid)); err != nil {
			return ""
		}
		return "a thread"
	}
	return strconv.Quote(strings.TrimSpace(string(b)))
}

// Held reports whether pid is held.
func (s *Set) Held(pid int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holders[pid] != nil
}

// Release frees the PIDs in pids that are held: each holder is killed and
// reaped, so the PID is free when Release returns.
func (s *Set) Release(pids []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pid := range pids {
		if cmd := s.holders[pid]; cmd != nil {
			cmd.Process.Kill()
			cmd.Wait()
			delete(s.holders, pid)
		}
	}
}

// Close releases every PID still held.
func (s *Set) Close() {
	s.mu.Lock()
	pids := make([]int, 0, len(s.holders))
	for pid := range s.holders {
		pids = append(pids, pid)
	}
	s.mu.Unlock()
	s.Release(pids)
	s.exe.Close()
}

// holderELF is a static x86-64 program of one page that names itself
// (PR_SET_NAME) and pauses forever. A holder must cost nothing: no
// runtime, no libraries, one page of memory.
func holderELF() []byte {
	const (
		base    = 0x400000
		ehSize  = 64
		phSize  = 56
		codeOff = ehSize + phSize
	)
	code := []byte{
		0xbf, 0x0f, 0x00, 0x00, 0x00, // mov edi, PR_SET_NAME
		0x48, 0x8d, 0x35, 0x10, 0x00, 0x00, 0x00, // lea rsi, [rip+16] (the name)
		0xb8, 0x9d, 0x00, 0x00, 0x00, // mov eax, SYS_prctl
		0x0f, 0x05, // syscall
		0xb8, 0x22, 0x00, 0x00, 0x00, // loop: mov eax, SYS_pause
		0x0f, 0x05, // syscall
		0xeb, 0xf7, // jmp loop
	}
	code = append(code, "seamless-pid\x00"...)
	b := make([]byte, codeOff, codeOff+len(code))
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0})
	le := binary.LittleEndian
	le.PutUint16(b[16:], 2)    // ET_EXEC
	le.PutUint16(b[18:], 0x3e) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], base+codeOff) // entry
	le.PutUint64(b[32:], ehSize)       // program headers
	le.PutUint16(b[52:], ehSize)
	le.PutUint16(b[54:], phSize)
	le.PutUint16(b[56:], 1)
	ph := b[ehSize:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], 5) // read, execute
	le.PutUint64(ph[16:], base)
	le.PutUint64(ph[24:], base)
	le.PutUint64(ph[32:], uint64(codeOff+len(code)))
	le.PutUint64(ph[40:], uint64(codeOff+len(code)))
	le.PutUint64(ph[48:], 4096)
	return append(b, code...)
}
