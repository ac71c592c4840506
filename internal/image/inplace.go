package image

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// fillsInPlace reports whether the memory files of directory d are best
// filled through a mapping of each file (BlockFile.Fill): on a tmpfs
// whose files are given huge pages, copying into the file's own pages is
// one copy where a write is two, and mapping them costs little. On a
// tmpfs of 4 KiB pages the page faults cost more than the copy saves, and
// other file systems are written (see docs/limitations.md).
func fillsInPlace(d *os.File) bool {
	var fs unix.Statfs_t
	if unix.Fstatfs(int(d.Fd()), &fs) != nil || fs.Type != unix.TMPFS_MAGIC {
		return false
	}
	var st unix.Stat_t
	if unix.Fstat(int(d.Fd()), &st) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	return hugeTmpfs(string(b), unix.Major(st.Dev), unix.Minor(st.Dev))
}

// hugeTmpfs reports whether mountinfo lists the device major:minor as a
// tmpfs mounted with huge=always or huge=within_size.
func hugeTmpfs(mountinfo string, major, minor uint32) bool {
	want := fmt.Sprintf("%d:%d", major, minor)
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[2] != want {
			continue
		}
		// After the optional fields: "-", type, source, super options.
		sep := slices.Index(f, "-")
		if sep < 0 || len(f) < sep+4 || f[sep+1] != "tmpfs" {
			return false
		}
		for _, o := range strings.Split(f[sep+3], ",") {
			if o == "huge=always" || o == "huge=within_size" {
				return true
			}
		}
		return false
	}
	return false
}
