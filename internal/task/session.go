package task

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/proc"
	"github.com/seamless-linux/seamless/internal/ptrace"
)

// session is a window during which system calls are injected into a
// stopped process: "syscall; int3" is written over the first bytes of an
// executable mapping, a scratch page is mapped, and every thread that runs
// calls has all signals blocked and its seccomp filters suspended, so that
// they cannot refuse the calls (or kill the process for them). close
// undoes all of it.
type session struct {
	pid       int
	spot      uintptr
	saved     uint64
	scratch   uintptr
	threads   []*inject.Thread
	masks     []uint64
	suspended []bool
	mappedAt  bool
	// opts are the ptrace options the threads have outside the session.
	opts int
}

func injectInto(pid int, leader *image.Thread) (*session, error) {
	return injectWith(pid, leader, SeizeOptions)
}

// injectWith is injectInto for a process whose threads have the ptrace
// options opts.
func injectWith(pid int, leader *image.Thread, opts int) (*session, error) {
	maps, err := proc.ReadMappings(pid)
	if err != nil {
		return nil, err
	}
	s := &session{pid: pid, opts: opts}
	// Prefer the vDSO: a private copy of its page is harmless, whereas
	// poking a file-backed page would turn it into anonymous memory.
	for i := range maps {
		m := &maps[i]
		if m.Exec && (m.Path == "[vdso]" || (s.spot == 0 && m.Path != "[vsyscall]")) {
			s.spot = uintptr(m.Start)
		}
	}
	if s.spot == 0 {
		return nil, errors.New("no executable mapping to run system calls from")
	}
	if s.saved, err = ptrace.PeekWord(pid, s.spot); err != nil {
		return nil, err
	}
	code := s.saved&^0xffffff | 0xcc050f
	if err := ptrace.PokeWord(pid, s.spot, code); err != nil {
		return nil, err
	}
	if _, err := s.thread(0, leader); err != nil {
		s.close()
		return nil, err
	}
	addr, err := s.threads[0].Syscall(unix.SYS_MMAP, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uintptr(0), 0)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("map scratch page: %w", err)
	}
	s.scratch, s.mappedAt = addr, true
	return s, nil
}

// thread returns the injector for the i-th thread, blocking its signals.
func (s *session) thread(i int, t *image.Thread) (*inject.Thread, error) {
	for i >= len(s.threads) {
		s.threads = append(s.threads, nil)
		s.masks = append(s.masks, 0)
		s.suspended = append(s.suspended, false)
	}
	if s.threads[i] != nil {
		return s.threads[i], nil
	}
	th, err := inject.Attach(t.TID, s.spot)
	if err != nil {
		return nil, err
	}
	mask, err := ptrace.GetSigmask(t.TID)
	if err != nil {
		return nil, err
	}
	if err := ptrace.SetSigmask(t.TID, allSignals); err != nil {
		return nil, err
	}
	s.threads[i], s.masks[i] = th, mask
	if len(t.Seccomp) > 0 {
		if err := SuspendSeccomp(t.TID, s.opts); err != nil {
			return nil, err
		}
		s.suspended[i] = true
	}
	return th, nil
}

// close unmaps the scratch page, restores the poked bytes, registers and
// signal masks. The first error is returned; the rest is still undone.
func (s *session) close() error {
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	if s.mappedAt {
		if _, err := s.threads[0].Syscall(unix.SYS_MUNMAP, s.scratch, 4096); err != nil {
			keep(fmt.Errorf("unmap scratch page: %w", err))
		}
	}
	if s.spot != 0 {
		if err := ptrace.PokeWord(s.pid, s.spot, s.saved); err != nil {
			keep(err)
		}
	}
	for i, th := range s.threads {
		if th == nil {
			continue
		}
		// The thread now sits in a syscall-exit stop, where the kernel no
		// longer restarts the call it was interrupted in: do it here.
		regs := th.Base
		restartInPlace(&regs)
		if err := ptrace.SetRegs(th.TID, &regs); err != nil {
			keep(err)
		}
		if err := ptrace.SetSigmask(th.TID, s.masks[i]); err != nil {
			keep(err)
		}
	}
	for i, on := range s.suspended {
		if on {
			if err := ptrace.SetOptions(s.threads[i].TID, s.opts); err != nil {
				keep(err)
			}
		}
	}
	return first
}
