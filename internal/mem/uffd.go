package mem

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
)

// The userfaultfd interface (linux/userfaultfd.h), which x/sys/unix does not
// carry.
const (
	uffdAPI             = 0xaa
	uffdioAPI           = 0xc018aa3f
	uffdioRegister      = 0xc020aa00
	uffdioUnregister    = 0x8010aa01
	uffdioCopy          = 0xc028aa03
	uffdRegisterMissing = 1
	uffdUserModeOnly    = 1
)

type uffdioAPIArg struct{ API, Features, Ioctls uint64 }

type uffdioRange struct{ Start, Len uint64 }

type uffdioRegisterArg struct {
	Range        uffdioRange
	Mode, Ioctls uint64
}

type uffdioCopyArg struct {
	Dst, Src, Len, Mode uint64
	Copy                int64
}

// A copier fills private anonymous mappings of a restored process with
// UFFDIO_COPY on a userfaultfd of its address space: the kernel allocates
// each page and copies into it. A write through process_vm_writev faults
// every page in first, which allocates it zeroed, and then copies: twice the
// work per page (0.25-0.28 s per GiB against 0.53-0.57 on the development
// VM, one thread). The pages end up as a fault would have left them
// (anonymous, dirty, writable as the mapping is while it is filled); the
// registration is undone before anything else touches the process.
type copier struct {
	fd int // the userfaultfd, in this process
	// registered are the ranges to unregister.
	registered []uffdioRange
}

// newCopier makes a userfaultfd for t's address space: the system call
// runs in t (a userfaultfd serves the memory of the process that made it),
// the descriptor is taken over with pidfd_getfd and closed in t. It returns
// nil when the kernel offers none (no CONFIG_USERFAULTFD, a seccomp filter,
// a sysctl), and then the pages are written as before.
func newCopier(t *inject.Target) *copier {
	remote, err := t.Call(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|uffdUserModeOnly)
	if err != nil {
		return nil
	}
	defer t.Call(unix.SYS_CLOSE, remote)
	pidfd, err := unix.PidfdOpen(t.PID, 0)
	if err != nil {
		return nil
	}
	fd, err := unix.PidfdGetfd(pidfd, int(remote), 0)
	unix.Close(pidfd)
	if err != nil {
		return nil
	}
	api := uffdioAPIArg{API: uffdAPI}
	if err := uffdIoctl(fd, uffdioAPI, unsafe.Pointer(&api)); err != nil {
		unix.Close(fd)
		return nil
	}
	return &copier{fd: fd}
}

// thpAlways reports whether transparent huge pages are "always": a write
// then faults in a huge page wherever a mapping has a whole aligned 2 MiB
// and neither it nor its process refused them.
func thpAlways() bool {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	return err == nil && strings.Contains(string(b), "[always]")
}

// faultsHuge reports whether writing m's pages in p would fault in huge
// pages, as the process had them: UFFDIO_COPY makes small pages only, so
// such a mapping is written instead. Its process's prctl(PR_SET_THP_DISABLE)
// is restored only after the memory, so it is read from the image.
func faultsHuge(p *image.Process, m *image.Mapping, always bool) bool {
	advised := hasFlag(m, "hg")
	if p.Attrs != nil && p.Attrs.THPDisable&1 != 0 && !(p.Attrs.THPDisable&2 != 0 && advised) {
		return false
	}
	return advised || (always && !hasFlag(m, "nh"))
}

func uffdIoctl(fd int, req uintptr, arg unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

// register registers [start, end) for UFFDIO_COPY, and reports whether the
// kernel took it (only anonymous private mappings qualify).
func (c *copier) register(start, end uint64) bool {
	reg := uffdioRegisterArg{Range: uffdioRange{start, end - start}, Mode: uffdRegisterMissing}
	if uffdIoctl(c.fd, uffdioRegister, unsafe.Pointer(&reg)) != nil {
		return false
	}
	c.registered = append(c.registered, reg.Range)
	return true
}

// copy fills the pages at dst with src and returns how many bytes it
// filled: all of them, or those before a page that is there already (a
// page shared with the parent the process was forked from, which only a
// write may replace) or before any other failure. The caller writes the
// rest once the range is unregistered. Safe for concurrent use once every
// range is registered.
func (c *copier) copy(dst uint64, src []byte) int {
	done, stalled := 0, 0
	for done < len(src) {
		arg := uffdioCopyArg{Dst: dst + uint64(done), Src: uint64(uintptr(unsafe.Pointer(&src[done]))), Len: uint64(len(src) - done)}
		err := uffdIoctl(c.fd, uffdioCopy, unsafe.Pointer(&arg))
		if arg.Copy > 0 {
			done += int(arg.Copy)
		}
		switch {
		case err == nil:
		case errors.Is(err, unix.EAGAIN) && arg.Copy > 0:
			// Part of the range was filled: go on from where it stopped.
			stalled = 0
		case errors.Is(err, unix.EAGAIN) && stalled < 100:
			// The address space is changing: try again.
			stalled++
		default:
			return done
		}
	}
	return done
}

// close unregisters every range and closes the userfaultfd: the mappings
// are as they were before, with their pages. Closing again does nothing.
func (c *copier) close() error {
	if c.fd < 0 {
		return nil
	}
	var errs []error
	for _, r := range c.registered {
		if err := uffdIoctl(c.fd, uffdioUnregister, unsafe.Pointer(&r)); err != nil {
			errs = append(errs, fmt.Errorf("UFFDIO_UNREGISTER %#x-%#x: %w", r.Start, r.Start+r.Len, err))
		}
	}
	c.registered = nil
	unix.Close(c.fd)
	c.fd = -1
	return errors.Join(errs...)
}
