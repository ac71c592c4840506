package proc

import (
	"os"
	"strconv"
	"strings"
)

// Meminfo returns a field of /proc/meminfo in bytes ("MemAvailable",
// "MemTotal", ...), or 0 when it cannot be read.
func Meminfo(field string) int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	return meminfoField(string(b), field)
}

func meminfoField(s, field string) int64 {
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
