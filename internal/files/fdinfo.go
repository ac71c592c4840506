package files

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/proc"
)

// fdinfo is what /proc/PID/fdinfo/FD says about a descriptor.
type fdinfo struct {
	pos          int64
	flags        int
	eventfdCount uint64
	semaphore    bool
	watches      []EpollWatch
	sigmask      uint64
	timer        Timer
	inotify      []inotifyMark
	locks        []image.Lock
	// lockErr is why a lock taken through the descriptor cannot be taken
	// again (a mandatory lock, a delegation, a lease being broken).
	lockErr error
	// pidfdPID is the "Pid:" of a pidfd: -1 once the process is reaped,
	// 0 in another PID namespace.
	pidfdPID int
}

// inotifyMark is an inotify watch as fdinfo shows it: the file is named by
// a file handle on the device sdev.
type inotifyMark struct {
	wd     int
	mask   uint32
	sdev   uint64
	htype  int
	handle []byte
}

// readFdinfo reads /proc/PID/fdinfo/FD.
func readFdinfo(pid, fd int) (*fdinfo, error) {
	f, err := os.Open(proc.Path(pid, "fdinfo", strconv.Itoa(fd)))
	if err != nil {
		return nil, fmt.Errorf("process %d fd %d: %w", pid, fd, err)
	}
	defer f.Close()
	info, err := parseFdinfo(f)
	if err != nil {
		return nil, fmt.Errorf("process %d fd %d: %w", pid, fd, err)
	}
	return info, nil
}

// parseFdinfo parses the text of an fdinfo file.
func parseFdinfo(r io.Reader) (*fdinfo, error) {
	info := &fdinfo{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "pos":
			info.pos, _ = strconv.ParseInt(v, 10, 64)
		case "flags":
			fl, _ := strconv.ParseInt(v, 8, 64)
			info.flags = int(fl)
		case "eventfd-count":
			info.eventfdCount, _ = strconv.ParseUint(v, 16, 64)
		case "eventfd-semaphore":
			info.semaphore = v == "1"
		case "sigmask":
			info.sigmask, _ = strconv.ParseUint(v, 16, 64)
		case "clockid":
			info.timer.Clock, _ = strconv.Atoi(v)
		case "ticks":
			info.timer.Ticks, _ = strconv.ParseUint(v, 10, 64)
		case "settime flags":
			fl, _ := strconv.ParseInt(v, 8, 64)
			info.timer.SettimeFlag = int(fl)
		case "it_value":
			info.timer.ValueNs = parseTimespec(v)
		case "it_interval":
			info.timer.IntervalNs = parseTimespec(v)
		case "inotify wd":
			m, err := parseInotify(line)
			if err != nil {
				return nil, err
			}
			info.inotify = append(info.inotify, m)
		case "lock":
			l, err := parseLock(v)
			if err != nil {
				if info.lockErr == nil {
					info.lockErr = err
				}
				continue
			}
			info.locks = append(info.locks, l)
		case "Pid":
			info.pidfdPID, _ = strconv.Atoi(v)
		case "tfd":
			w, err := parseWatch(line)
			if err != nil {
				return nil, err
			}
			info.watches = append(info.watches, w)
		}
	}
	return info, sc.Err()
}

// parseWatch reads "tfd: N events: HEX data: HEX ..." of an epoll fdinfo.
func parseWatch(line string) (EpollWatch, error) {
	var w EpollWatch
	f := strings.Fields(line)
	for i := 0; i+1 < len(f); i++ {
		switch f[i] {
		case "tfd:":
			v, err := strconv.Atoi(f[i+1])
			if err != nil {
				return w, fmt.Errorf("epoll watch %q: %w", line, err)
			}
			w.FD = v
		case "events:":
			v, err := strconv.ParseUint(f[i+1], 16, 32)
			if err != nil {
				return w, fmt.Errorf("epoll watch %q: %w", line, err)
			}
			w.Events = uint32(v)
		case "data:":
			v, err := strconv.ParseUint(f[i+1], 16, 64)
			if err != nil {
				return w, fmt.Errorf("epoll watch %q: %w", line, err)
			}
			w.Data = v
		}
	}
	return w, nil
}

// parseTimespec reads "(sec, nsec)" into nanoseconds.
func parseTimespec(v string) int64 {
	v = strings.Trim(v, "()")
	sec, nsec, _ := strings.Cut(v, ",")
	s, _ := strconv.ParseInt(strings.TrimSpace(sec), 10, 64)
	n, _ := strconv.ParseInt(strings.TrimSpace(nsec), 10, 64)
	return s*1e9 + n
}

// parseInotify reads "inotify wd:1 ino:3c4a3 sdev:fe00000 mask:300 ...
// fhandle-bytes:8 fhandle-type:1 f_handle:a3c4030000000000".
func parseInotify(line string) (inotifyMark, error) {
	var m inotifyMark
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, ":")
		if !ok {
			continue
		}
		var err error
		var x uint64
		// The kernel prints every number of the line in hex.
		switch k {
		case "wd":
			x, err = strconv.ParseUint(v, 16, 31)
			m.wd = int(x)
		case "mask":
			x, err = strconv.ParseUint(v, 16, 32)
			m.mask = uint32(x)
		case "sdev":
			m.sdev, err = strconv.ParseUint(v, 16, 64)
		case "fhandle-type":
			x, err = strconv.ParseUint(v, 16, 31)
			m.htype = int(x)
		case "f_handle":
			m.handle, err = hex.DecodeString(v)
		}
		if err != nil {
			return m, fmt.Errorf("inotify watch %q: %w", line, err)
		}
	}
	return m, nil
}

// parseLock reads a /proc/locks style record: "1: POSIX  ADVISORY  WRITE
// 1234 fe:00:9980358 0 EOF", or for a lease "1: LEASE  ACTIVE  READ ...".
func parseLock(v string) (image.Lock, error) {
	var l image.Lock
	f := strings.Fields(v)
	if len(f) < 8 {
		return l, fmt.Errorf("lock record %q", v)
	}
	switch {
	case f[1] == "DELEG":
		return l, fmt.Errorf("an NFS delegation is not supported")
	case f[1] == "LEASE" && f[2] != "ACTIVE":
		return l, fmt.Errorf("a file lease being broken (%s) is not supported", strings.ToLower(f[2]))
	case f[1] != "LEASE" && f[2] != "ADVISORY":
		return l, fmt.Errorf("a %s %s lock is not supported", strings.ToLower(f[2]), f[1])
	}
	l.Kind, l.Write = f[1], f[3] == "WRITE"
	l.PID, _ = strconv.Atoi(f[4])
	var err error
	if l.Start, err = strconv.ParseInt(f[6], 10, 64); err != nil {
		return l, fmt.Errorf("lock record %q: %w", v, err)
	}
	l.End = -1
	if f[7] != "EOF" {
		if l.End, err = strconv.ParseInt(f[7], 10, 64); err != nil {
			return l, fmt.Errorf("lock record %q: %w", v, err)
		}
	}
	return l, nil
}
