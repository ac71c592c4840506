// Package timens keeps a restored tree's clocks where they were.
//
// CLOCK_MONOTONIC and CLOCK_BOOTTIME start again near zero in every boot,
// and programs keep their readings in memory: a connection's start time, a
// deadline for an absolute sleep or a futex wait, the time of the last
// answer. Restored on a new kernel with the new kernel's clocks, such a
// program sees time go backwards by the old kernel's uptime: nginx reads
// the age of a keep-alive connection as an unsigned difference, finds it
// enormous and closes the connection after its next answer; a thread
// sleeping until an absolute time sleeps for the old uptime.
//
// The restored tree therefore runs in a time namespace of its own (Linux
// 5.6, CONFIG_TIME_NS), whose offsets make its clocks continue from their
// values at checkpoint: CLOCK_MONOTONIC as if the machine had been
// suspended for the pause (it does not count it, as it does not count a
// suspend), CLOCK_BOOTTIME counting the pause (as it counts a suspend).
// Timers the restore re-arms keep the time they had left, so the two agree.
//
// A tree whose processes live in different time namespaces, or a process
// that made a new one for its children only, is refused: one namespace is
// rebuilt for the whole tree.
package timens

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/proc"
)

// Offsets are the amounts, in nanoseconds, that a time namespace adds to
// the kernel's CLOCK_MONOTONIC and CLOCK_BOOTTIME.
type Offsets struct {
	Monotonic, Boottime int64
}

// Supported reports whether the running kernel has time namespaces.
func Supported() bool {
	_, err := os.Stat("/proc/self/ns/time")
	return err == nil
}

// Check verifies that every process of pids (live ones; zombies have no
// namespaces left to read) runs in the same time namespace, and that none
// made a different one for its future children. It returns the offsets of
// that namespace.
func Check(pids []int) (Offsets, error) {
	var first int
	var ns uint64
	for _, pid := range pids {
		id, err := namespace(pid)
		if os.IsNotExist(err) {
			continue // gone, or a zombie
		}
		if err != nil {
			return Offsets{}, err
		}
		if first == 0 {
			first, ns = pid, id
			continue
		}
		if id != ns {
			return Offsets{}, fmt.Errorf("processes %d and %d run in different time namespaces: "+
				"the restore rebuilds one for the whole tree", first, pid)
		}
	}
	if first == 0 {
		return Offsets{}, nil
	}
	return readOffsets(proc.Path(first, "timens_offsets"))
}

// namespace returns the inode of pid's time namespace, and refuses a
// process whose children would start in another one (it called
// unshare(CLONE_NEWTIME) and has not forked since): /proc shows only the
// offsets of the children's namespace, and the restore could not rebuild
// both.
func namespace(pid int) (uint64, error) {
	var its, children unix.Stat_t
	if err := unix.Stat(proc.Path(pid, "ns", "time"), &its); err != nil {
		if os.IsNotExist(err) {
			return 0, err
		}
		return 0, fmt.Errorf("process %d time namespace: %w", pid, err)
	}
	if err := unix.Stat(proc.Path(pid, "ns", "time_for_children"), &children); err != nil {
		return 0, fmt.Errorf("process %d time namespace for children: %w", pid, err)
	}
	if its.Ino != children.Ino {
		return 0, fmt.Errorf("process %d made a time namespace for its children that it is not in itself: "+
			"its children's clocks could not be rebuilt", pid)
	}
	return its.Ino, nil
}

// Capture returns the clocks as the processes pids see them now: the
// kernel's, moved by the offsets of their time namespace. It is called
// while they are stopped, so that these are the last readings they made.
func Capture(pids []int) (*image.Clocks, error) {
	theirs, err := Check(pids)
	if err != nil {
		return nil, err
	}
	now, err := kernelNow()
	if err != nil {
		return nil, err
	}
	return &image.Clocks{
		MonotonicNs: now.Monotonic + theirs.Monotonic,
		BoottimeNs:  now.Boottime + theirs.Boottime,
		RealtimeNs:  now.Realtime,
	}, nil
}

// For returns the offsets of a time namespace in which the clocks of c
// continue now: CLOCK_MONOTONIC from where it was, CLOCK_BOOTTIME from
// where it was plus the time that passed by CLOCK_REALTIME (none, if the
// wall clock was set back meanwhile).
func For(c *image.Clocks) (Offsets, error) {
	now, err := kernelNow()
	if err != nil {
		return Offsets{}, err
	}
	return offsetsAt(c, now), nil
}

func offsetsAt(c *image.Clocks, now readings) Offsets {
	pause := max(now.Realtime-c.RealtimeNs, 0)
	return Offsets{
		Monotonic: c.MonotonicNs - now.Monotonic,
		Boottime:  c.BoottimeNs + pause - now.Boottime,
	}
}

// Write sets the offsets of the time namespace that process pid's next
// children will start in; pid must have made it with unshare(CLONE_NEWTIME)
// and not forked since (the kernel fixes the offsets at the first entry).
func (o Offsets) Write(pid int) error {
	var b strings.Builder
	for _, c := range []struct {
		name string
		ns   int64
	}{{"monotonic", o.Monotonic}, {"boottime", o.Boottime}} {
		sec, nsec := split(c.ns)
		fmt.Fprintf(&b, "%s %d %d\n", c.name, sec, nsec)
	}
	path := proc.Path(pid, "timens_offsets")
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("set clock offsets: %w", err)
	}
	defer f.Close()
	// One write: the kernel takes every offset of a namespace at once.
	if _, err := f.WriteString(b.String()); err != nil {
		return fmt.Errorf("set clock offsets %q in %s: %w", strings.TrimSpace(b.String()), path, err)
	}
	return nil
}

// split turns nanoseconds into the seconds and non-negative nanoseconds
// timens_offsets takes (-1.5 s is -2 s and 500000000 ns).
func split(ns int64) (sec, nsec int64) {
	sec, nsec = ns/1e9, ns%1e9
	if nsec < 0 {
		sec, nsec = sec-1, nsec+1e9
	}
	return sec, nsec
}

// readings are the three clocks read at one moment, in nanoseconds.
type readings struct {
	Monotonic, Boottime, Realtime int64
}

// kernelNow reads the kernel's clocks, without the offsets of seamless's
// own time namespace (none, unless seamless itself runs in one).
func kernelNow() (readings, error) {
	own, err := Check([]int{os.Getpid()})
	if err != nil {
		return readings{}, fmt.Errorf("seamless's own time namespace: %w", err)
	}
	var r readings
	for _, c := range []struct {
		id  int32
		dst *int64
	}{{unix.CLOCK_MONOTONIC, &r.Monotonic}, {unix.CLOCK_BOOTTIME, &r.Boottime}, {unix.CLOCK_REALTIME, &r.Realtime}} {
		var ts unix.Timespec
		if err := unix.ClockGettime(c.id, &ts); err != nil {
			return readings{}, fmt.Errorf("clock_gettime(%d): %w", c.id, err)
		}
		*c.dst = ts.Nano()
	}
	r.Monotonic -= own.Monotonic
	r.Boottime -= own.Boottime
	return r, nil
}

// readOffsets parses a timens_offsets file: one "NAME SECONDS NANOSECONDS"
// line per clock.
func readOffsets(path string) (Offsets, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return Offsets{}, nil // no time namespaces in this kernel: no offsets
	}
	if err != nil {
		return Offsets{}, fmt.Errorf("read clock offsets: %w", err)
	}
	return parseOffsets(string(b))
}

func parseOffsets(s string) (Offsets, error) {
	var o Offsets
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			return Offsets{}, fmt.Errorf("clock offsets: malformed line %q", line)
		}
		sec, err1 := strconv.ParseInt(f[1], 10, 64)
		nsec, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || nsec < 0 || nsec >= 1e9 {
			return Offsets{}, fmt.Errorf("clock offsets: malformed line %q", line)
		}
		v := sec*1e9 + nsec
		switch f[0] {
		case "monotonic":
			o.Monotonic = v
		case "boottime":
			o.Boottime = v
		default:
			return Offsets{}, fmt.Errorf("clock offsets: unknown clock %q", f[0])
		}
	}
	return o, nil
}
