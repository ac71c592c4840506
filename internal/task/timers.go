package task

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/proc"
)

// Notification kinds of struct sigevent.
const (
	sigevSignal   = 0
	sigevNone     = 1
	sigevThread   = 2
	sigevThreadID = 4
)

// dumpTimers reads the interval timers and POSIX timers of a process by
// running getitimer and timer_gettime inside it; /proc/PID/timers tells
// which POSIX timers exist and how they notify.
func dumpTimers(p *image.Process, call func(nr uintptr, args ...uintptr) (uintptr, error), scratch uintptr) error {
	var b [32]byte
	for which := 0; which < 3; which++ {
		if _, err := call(unix.SYS_GETITIMER, uintptr(which), scratch); err != nil {
			return fmt.Errorf("getitimer %d: %w", which, err)
		}
		if err := inject.ReadMem(p.PID, scratch, b[:]); err != nil {
			return err
		}
		// struct itimerval { interval timeval; value timeval }
		le := binary.LittleEndian
		p.Itimers[which] = image.Itimer{
			IntervalUs: int64(le.Uint64(b[0:]))*1e6 + int64(le.Uint64(b[8:])),
			ValueUs:    int64(le.Uint64(b[16:]))*1e6 + int64(le.Uint64(b[24:])),
		}
	}
	timers, err := readTimers(p.PID)
	if err != nil {
		return err
	}
	for i := range timers {
		t := &timers[i]
		if _, err := call(unix.SYS_TIMER_GETTIME, uintptr(t.ID), scratch); err != nil {
			return fmt.Errorf("timer_gettime %d: %w", t.ID, err)
		}
		if err := inject.ReadMem(p.PID, scratch, b[:]); err != nil {
			return err
		}
		// struct itimerspec { interval timespec; value timespec }
		le := binary.LittleEndian
		t.IntervalNs = int64(le.Uint64(b[0:]))*1e9 + int64(le.Uint64(b[8:]))
		t.ValueNs = int64(le.Uint64(b[16:]))*1e9 + int64(le.Uint64(b[24:]))
	}
	p.Timers = timers
	return nil
}

// readTimers parses /proc/PID/timers.
func readTimers(pid int) ([]image.PosixTimer, error) {
	f, err := os.Open(proc.Path(pid, "timers"))
	if err != nil {
		return nil, fmt.Errorf("read timers of %d: %w", pid, err)
	}
	defer f.Close()
	var out []image.PosixTimer
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		v = strings.TrimSpace(v)
		switch k {
		case "ID":
			id, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("timers of %d: %q", pid, sc.Text())
			}
			out = append(out, image.PosixTimer{ID: id})
		case "signal":
			if len(out) == 0 {
				continue
			}
			sig, val, _ := strings.Cut(v, "/")
			out[len(out)-1].Signal, _ = strconv.Atoi(sig)
			out[len(out)-1].Value, _ = strconv.ParseUint(val, 16, 64)
		case "notify":
			if len(out) == 0 {
				continue
			}
			kind, target, _ := strings.Cut(v, "/")
			t := &out[len(out)-1]
			switch kind {
			case "signal":
				t.Notify = sigevSignal
			case "none":
				t.Notify = sigevNone
			case "thread":
				t.Notify = sigevThread
			default:
				return nil, fmt.Errorf("timers of %d: unknown notification %q", pid, v)
			}
			if who, id, ok := strings.Cut(target, "."); ok && who == "tid" {
				t.Notify |= sigevThreadID
				t.TID, _ = strconv.Atoi(id)
			}
		case "ClockID":
			if len(out) > 0 {
				out[len(out)-1].Clock, _ = strconv.Atoi(v)
			}
		}
	}
	return out, sc.Err()
}

// restoreTimers re-creates the POSIX timers with their IDs and re-arms
// them and the interval timers relative to now. The kernel takes the IDs
// we ask for with PR_TIMER_CREATE_RESTORE_IDS (Linux 6.17 and later);
// older kernels hand them out in order, so gaps are filled with timers
// that are deleted again.
func restoreTimers(t *inject.Target, p *image.Process) error {
	for which, it := range p.Itimers {
		if it.ValueUs == 0 && it.IntervalUs == 0 {
			continue
		}
		if it.ValueUs == 0 {
			// The timer fired and waits for its signal to be delivered
			// before it re-arms: arm it for one more interval.
			it.ValueUs = it.IntervalUs
		}
		b := inject.Uint64s(uint64(it.IntervalUs/1e6), uint64(it.IntervalUs%1e6), uint64(it.ValueUs/1e6), uint64(it.ValueUs%1e6))
		addr, err := t.Put(0, b)
		if err != nil {
			return err
		}
		if _, err := t.Call(unix.SYS_SETITIMER, uintptr(which), addr, 0); err != nil {
			return fmt.Errorf("setitimer %d: %w", which, err)
		}
	}
	if len(p.Timers) == 0 {
		return nil
	}
	exact := true
	if _, err := t.Call(unix.SYS_PRCTL, unix.PR_TIMER_CREATE_RESTORE_IDS, unix.PR_TIMER_CREATE_RESTORE_IDS_ON, 0, 0, 0); err != nil {
		exact = false
	}
	var fillers []int
	for _, pt := range p.Timers {
		// struct sigevent: value, signo, notify, then the thread id.
		ev := inject.Uint64s(pt.Value, uint64(uint32(pt.Signal))|uint64(uint32(pt.Notify))<<32, uint64(uint32(pt.TID)), 0, 0, 0, 0, 0)
		evAddr, err := t.Put(0, ev)
		if err != nil {
			return err
		}
		for {
			idAddr, err := t.Put(128, inject.Uint64s(uint64(pt.ID)))
			if err != nil {
				return err
			}
			if _, err := t.Call(unix.SYS_TIMER_CREATE, uintptr(pt.Clock), evAddr, idAddr); err != nil {
				return fmt.Errorf("timer_create %d: %w", pt.ID, err)
			}
			got, err := t.Get(128, 4)
			if err != nil {
				return err
			}
			id := int(int32(binary.LittleEndian.Uint32(got)))
			if id == pt.ID {
				break
			}
			if exact || id > pt.ID {
				return fmt.Errorf("timer_create gave timer %d, want %d", id, pt.ID)
			}
			fillers = append(fillers, id)
		}
		value := pt.ValueNs
		if value == 0 {
			value = pt.IntervalNs // fired, re-arms once its signal is delivered
		}
		spec := inject.Uint64s(uint64(pt.IntervalNs/1e9), uint64(pt.IntervalNs%1e9), uint64(value/1e9), uint64(value%1e9))
		specAddr, err := t.Put(256, spec)
		if err != nil {
			return err
		}
		if value != 0 {
			if _, err := t.Call(unix.SYS_TIMER_SETTIME, uintptr(pt.ID), 0, specAddr, 0); err != nil {
				return fmt.Errorf("timer_settime %d: %w", pt.ID, err)
			}
		}
	}
	for _, id := range fillers {
		t.Call(unix.SYS_TIMER_DELETE, uintptr(id))
	}
	if exact {
		t.Call(unix.SYS_PRCTL, unix.PR_TIMER_CREATE_RESTORE_IDS, unix.PR_TIMER_CREATE_RESTORE_IDS_OFF, 0, 0, 0)
	}
	return nil
}
