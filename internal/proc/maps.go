package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Mapping is one line of /proc/PID/maps merged with its smaps VmFlags.
type Mapping struct {
	Start, End uint64
	Read       bool
	Write      bool
	Exec       bool
	Shared     bool
	Offset     uint64
	Major      uint32
	Minor      uint32
	Inode      uint64
	Path       string   // file path, or a pseudo name such as [heap]; "" for anonymous
	Deleted    bool     // the path ended in " (deleted)"
	VMFlags    []string // two-letter smaps VmFlags
}

// HasFlag reports whether smaps listed the two-letter VmFlag f.
func (m *Mapping) HasFlag(f string) bool {
	for _, g := range m.VMFlags {
		if g == f {
			return true
		}
	}
	return false
}

// Len is the size of the mapping in bytes.
func (m *Mapping) Len() uint64 { return m.End - m.Start }

// ReadMappings parses /proc/PID/smaps.
func ReadMappings(pid int) ([]Mapping, error) {
	b, err := os.ReadFile(Path(pid, "smaps"))
	if err != nil {
		return nil, fmt.Errorf("read smaps of %d: %w", pid, err)
	}
	return parseSmaps(b)
}

func parseSmaps(b []byte) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmFlags:"); ok {
			if len(out) > 0 {
				out[len(out)-1].VMFlags = strings.Fields(rest)
			}
			continue
		}
		if !isMapsHeader(line) {
			continue
		}
		m, err := parseMapsLine(line)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// isMapsHeader tells a mapping line ("start-end perms ...") from the
// "Key: value" lines of smaps.
func isMapsHeader(line string) bool {
	sp := strings.IndexByte(line, ' ')
	return sp > 0 && strings.IndexByte(line[:sp], '-') > 0 && !strings.HasSuffix(line[:sp], ":")
}

func parseMapsLine(line string) (Mapping, error) {
	var m Mapping
	f := strings.SplitN(line, " ", 6)
	if len(f) < 5 {
		return m, fmt.Errorf("parse maps line %q", line)
	}
	lo, hi, _ := strings.Cut(f[0], "-")
	var err error
	if m.Start, err = strconv.ParseUint(lo, 16, 64); err != nil {
		return m, fmt.Errorf("parse maps line %q: %w", line, err)
	}
	if m.End, err = strconv.ParseUint(hi, 16, 64); err != nil {
		return m, fmt.Errorf("parse maps line %q: %w", line, err)
	}
	perms := f[1]
	if len(perms) < 4 {
		return m, fmt.Errorf("parse maps line %q: perms", line)
	}
	m.Read, m.Write, m.Exec, m.Shared = perms[0] == 'r', perms[1] == 'w', perms[2] == 'x', perms[3] == 's'
	m.Offset, _ = strconv.ParseUint(f[2], 16, 64)
	ma, mi, _ := strings.Cut(f[3], ":")
	maj, _ := strconv.ParseUint(ma, 16, 32)
	min, _ := strconv.ParseUint(mi, 16, 32)
	m.Major, m.Minor = uint32(maj), uint32(min)
	m.Inode, _ = strconv.ParseUint(f[4], 10, 64)
	if len(f) == 6 {
		p := strings.TrimLeft(f[5], " ")
		if s, ok := strings.CutSuffix(p, " (deleted)"); ok {
			p, m.Deleted = s, true
		}
		m.Path = p
	}
	return m, nil
}

// IsSpecial reports whether the mapping is one the kernel provides itself
// ([vdso], [vvar], [vsyscall], ...), as opposed to [heap] and [stack], which
// are ordinary anonymous memory.
func (m *Mapping) IsSpecial() bool {
	switch m.Path {
	case "[heap]", "[stack]":
		return false
	}
	return strings.HasPrefix(m.Path, "[") && m.Inode == 0
}
