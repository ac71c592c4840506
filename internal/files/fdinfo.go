package files

import (
	"bufio"
	"fmt"
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
	watches      []image.EpollWatch
}

func readFdinfo(pid, fd int) (*fdinfo, error) {
	f, err := os.Open(proc.Path(pid, "fdinfo", strconv.Itoa(fd)))
	if err != nil {
		return nil, fmt.Errorf("process %d fd %d: %w", pid, fd, err)
	}
	defer f.Close()
	info := &fdinfo{}
	sc := bufio.NewScanner(f)
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
		case "tfd":
			w, err := parseWatch(line)
			if err != nil {
				return nil, fmt.Errorf("process %d fd %d: %w", pid, fd, err)
			}
			info.watches = append(info.watches, w)
		}
	}
	return info, sc.Err()
}

// parseWatch reads "tfd: N events: HEX data: HEX ..." of an epoll fdinfo.
func parseWatch(line string) (image.EpollWatch, error) {
	var w image.EpollWatch
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
