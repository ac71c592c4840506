package files

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
)

// mountOf finds a mount point of the filesystem with the kernel device
// number sdev (major << 20 | minor, as fdinfo prints it).
func mountOf(sdev uint64) (string, error) {
	want := fmt.Sprintf("%d:%d", sdev>>20, sdev&0xfffff)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) > 4 && fl[2] == want {
			return fl[4], nil
		}
	}
	return "", fmt.Errorf("no mount of device %s", want)
}

func dumpEventfd(_ *Dumper, ds *desc, f *image.File) error {
	f.Count = ds.info.eventfdCount
	if ds.info.semaphore {
		f.Flags |= unix.EFD_SEMAPHORE
	}
	return nil
}

func openEventfd(_ *Opener, f *image.File) (*os.File, error) {
	fd, err := unix.Eventfd(uint(f.Count), f.Flags&(unix.EFD_NONBLOCK|unix.EFD_SEMAPHORE)|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "eventfd"), nil
}

func dumpSignalfd(_ *Dumper, ds *desc, f *image.File) error {
	f.Sigmask = ds.info.sigmask
	return nil
}

func dumpTimerfd(_ *Dumper, ds *desc, f *image.File) error {
	t := ds.info.timer
	f.Timer = &t
	return nil
}

// openSignalfd creates a signalfd for the signals of mask. A signalfd
// reads the signals of whichever process reads it, so the restorer can
// create it and hand it over.
func openSignalfd(_ *Opener, f *image.File) (*os.File, error) {
	mask := f.Sigmask
	fd, _, e := unix.Syscall6(unix.SYS_SIGNALFD4, ^uintptr(0), uintptr(unsafe.Pointer(&mask)), 8,
		uintptr(f.Flags&unix.O_NONBLOCK|unix.O_CLOEXEC), 0, 0)
	if e != 0 {
		return nil, fmt.Errorf("signalfd: %w", e)
	}
	return os.NewFile(fd, "signalfd"), nil
}

// tfdSetTicks is TFD_IOC_SET_TICKS: it sets a timerfd's unread expirations.
const tfdSetTicks = 0x40085400

// openTimerfd re-arms a timerfd for the time it had left at checkpoint,
// relative to now, with its interval and its unread expirations.
func openTimerfd(_ *Opener, f *image.File) (*os.File, error) {
	if f.Timer == nil {
		return nil, fmt.Errorf("timerfd without state")
	}
	t := f.Timer
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

// openInotify creates an inotify instance with the same watches under the
// same watch descriptors. Descriptors are handed out in increasing order,
// so gaps are filled with throw-away watches that are removed afterwards.
// A watch on a deleted file goes on the recreated file.
func openInotify(o *Opener, f *image.File) (*os.File, error) {
	fd, err := unix.InotifyInit1(f.Flags&unix.O_NONBLOCK | unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	h := os.NewFile(uintptr(fd), "inotify")
	var filler []int
	var tmp string
	defer func() {
		for _, wd := range filler {
			unix.InotifyRmWatch(fd, uint32(wd))
		}
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}()
	next := 1
	for _, w := range sortedWatches(f.Inotify) {
		for next < w.WD {
			if tmp == "" {
				if tmp, err = os.MkdirTemp("", "seamless-inotify-"); err != nil {
					h.Close()
					return nil, err
				}
			}
			p := fmt.Sprintf("%s/%d", tmp, next)
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				h.Close()
				return nil, err
			}
			wd, err := unix.InotifyAddWatch(fd, p, unix.IN_ATTRIB)
			if err != nil {
				h.Close()
				return nil, fmt.Errorf("inotify filler watch: %w", err)
			}
			filler = append(filler, wd)
			next = wd + 1
		}
		path, mask := w.Path, w.Mask
		if w.File != nil {
			g, err := o.object(w.File)
			if err != nil {
				h.Close()
				return nil, err
			}
			path, mask = "/proc/self/fd/"+strconv.Itoa(int(g.Fd())), mask&^unix.IN_DONT_FOLLOW
		}
		wd, err := unix.InotifyAddWatch(fd, path, mask)
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("inotify watch %s: %w", w.Path, err)
		}
		if wd != w.WD {
			h.Close()
			return nil, fmt.Errorf("inotify watch %s got descriptor %d, want %d", w.Path, wd, w.WD)
		}
		next = wd + 1
	}
	return h, nil
}

func sortedWatches(ws []image.InotifyWatch) []image.InotifyWatch {
	out := append([]image.InotifyWatch(nil), ws...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].WD < out[j-1].WD; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
