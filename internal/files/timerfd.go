package files

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// timerfds: the clock, the time left, the interval and the expirations not
// read yet, from fdinfo.

// KindTimerfd is a timerfd (timerfd_create(2)).
const KindTimerfd = "timerfd"

var timerfdKind = &kind{name: KindTimerfd, record: func() image.FileRecord { return new(Timer) },
	is:    anonIs("anon_inode:[timerfd]"),
	check: checkNothing, dump: dumpTimerfd, open: openTimerfd}

// Timer is the record of a timerfd: its clock, the time left until it
// fires next (it is re-armed relative to the restore), the interval, and
// the expirations that were not read yet.
type Timer struct {
	Clock       int    `json:"clock"`
	ValueNs     int64  `json:"value_ns"`
	IntervalNs  int64  `json:"interval_ns"`
	Ticks       uint64 `json:"ticks"`
	SettimeFlag int    `json:"settime_flags"`
}

// Validate refuses a negative time.
func (t *Timer) Validate(*image.Checker) error {
	if t.ValueNs < 0 || t.IntervalNs < 0 {
		return errors.New("a timer with a negative time")
	}
	return nil
}

// dumpTimerfd records the timer as fdinfo shows it.
func dumpTimerfd(_ *Dumper, ds *desc, f *image.File) error {
	t := ds.info.timer
	f.Record = &t
	return nil
}

// tfdSetTicks is TFD_IOC_SET_TICKS: it sets a timerfd's unread expirations.
const tfdSetTicks = 0x40085400

// openTimerfd re-arms a timerfd for the time it had left at checkpoint,
// relative to now, with its interval and its unread expirations.
func openTimerfd(_ *Opener, f *image.File) (*os.File, error) {
	t := recordOf[Timer](f)
	if t == nil {
		return nil, fmt.Errorf("timerfd without state")
	}
	fd, err := unix.TimerfdCreate(t.Clock, f.Flags&unix.O_NONBLOCK|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	h := os.NewFile(uintptr(fd), "timerfd")
	value := t.ValueNs
	if value == 0 && t.IntervalNs != 0 {
		// A periodic timer that expired and was not read yet is re-armed
		// by the next read; armed here for one more period instead.
		value = t.IntervalNs
	}
	spec := unix.ItimerSpec{
		Value:    unix.NsecToTimespec(value),
		Interval: unix.NsecToTimespec(t.IntervalNs),
	}
	if value != 0 {
		if err := unix.TimerfdSettime(fd, 0, &spec, nil); err != nil {
			h.Close()
			return nil, fmt.Errorf("timerfd_settime: %w", err)
		}
	}
	if t.Ticks > 0 {
		ticks := t.Ticks
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), tfdSetTicks, uintptr(unsafe.Pointer(&ticks))); e != 0 {
			h.Close()
			return nil, fmt.Errorf("restore %d unread timer expirations: %w", ticks, e)
		}
	}
	return h, nil
}
