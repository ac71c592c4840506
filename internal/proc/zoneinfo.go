package proc

import (
	"os"
	"strconv"
	"strings"
)

// KernelMemAvailable estimates the memory the kernel can still allocate
// for itself (GFP_KERNEL, which never takes ZONE_MOVABLE pages): the free
// and file-cache pages of every other zone, less their high watermarks.
// It is -1 when no ZONE_MOVABLE manages memory (MemAvailable says it then)
// or /proc/zoneinfo cannot be read.
func KernelMemAvailable() int64 {
	b, err := os.ReadFile("/proc/zoneinfo")
	if err != nil {
		return -1
	}
	return kernelMemAvailable(string(b), int64(os.Getpagesize()))
}

type zone struct {
	name                      string
	free, high, file, managed int64
}

func kernelMemAvailable(zoneinfo string, page int64) int64 {
	var zones []*zone
	var cur *zone
	for _, line := range strings.Split(zoneinfo, "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "Node" && f[2] == "zone" {
			cur = &zone{name: f[3]}
			zones = append(zones, cur)
			continue
		}
		if cur == nil || len(f) < 2 {
			continue
		}
		n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if err != nil {
			continue
		}
		switch {
		case len(f) == 3 && f[0] == "pages" && f[1] == "free":
			cur.free = n
		case len(f) == 2 && f[0] == "high":
			cur.high = n
		case len(f) == 2 && f[0] == "managed":
			cur.managed = n
		case len(f) == 2 && (f[0] == "nr_zone_inactive_file" || f[0] == "nr_zone_active_file"):
			cur.file += n
		}
	}
	movable := false
	var pages int64
	for _, z := range zones {
		if z.name == "Movable" {
			movable = movable || z.managed > 0
			continue
		}
		pages += max(z.free+z.file-z.high, 0)
	}
	if !movable {
		return -1
	}
	return pages * page
}
