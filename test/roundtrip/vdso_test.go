package roundtrip

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestVDSOProxy restores with `seamless restore --vdso proxy`, which gives
// the restored processes a vDSO proxy at their old vDSO address even though
// this kernel's vDSO is the same: what a restore on a kernel with another
// vDSO does, proven on one kernel. vdso.c checks every vDSO call glibc makes
// through its cached pointers against the raw system call; gowork is the Go
// runtime, which calls the vDSO for every clock reading; tree has four
// processes. After each restore the harness checks the memory maps (the
// proxy at the old vDSO address, the kernel's vDSO elsewhere, the old data
// pages unmapped), the proxy's jumps, and the restore's warning. A second
// checkpoint dumps the proxy as plain memory: "twice" restores that image
// through a second proxy, "proxy-then-auto" restores it on the matching
// vDSO.
func TestVDSOProxy(t *testing.T) {
	needSeamless(t)
	proxy := []string{"--vdso", "proxy"}
	byName := map[string]workload{}
	for _, w := range workloads {
		byName[w.name] = w
	}
	for _, c := range []struct {
		workload string
		mode     mode
		args     [][]string // restore arguments of each round
	}{
		{"vdso", modes[0], [][]string{proxy}},
		{"vdso", modes[1], [][]string{proxy, proxy}},
		{"vdso", modes[2], [][]string{proxy}},
		{"vdso", mode{name: "proxy-then-auto", rounds: 2}, [][]string{proxy, nil}},
		{"gowork", modes[0], [][]string{proxy}},
		{"gowork", modes[1], [][]string{proxy, proxy}},
		{"tree", modes[0], [][]string{proxy}},
		// Clocks far ahead of the kernel's (as after a kexec) read through the proxy.
		{"clocks", modes[1], [][]string{proxy, proxy}},
	} {
		t.Run(c.workload+"/"+c.mode.name, func(t *testing.T) {
			vdsoRoundTrip(t, byName[c.workload], c.mode, c.args)
		})
	}
}

// vdsoRoundTrip is roundTrip with per-round restore arguments and the vDSO
// checks after each restore.
func vdsoRoundTrip(t *testing.T, w workload, m mode, args [][]string) {
	r := start(t, w)
	r.vdsoProxies = map[string]bool{}
	ticks := r.waitTicks(0, 3)
	usr1 := 0
	if w.usr1 {
		usr1 = r.signalUSR1(ticks[len(ticks)-1].usr1)
	}
	tree := r.snapshot()
	r.checkTree(tree)
	for round := 1; round <= m.rounds; round++ {
		img := filepath.Join(r.dir, fmt.Sprintf("image-%d", round))
		before := r.lastTick()
		r.pause()
		fp := takeFingerprint(tree, w.runtime)
		maps := map[int][]mapLine{}
		for pid := range tree {
			maps[pid] = r.readMaps(pid)
		}
		r.restoreArgs = args[round-1]
		proxied := len(r.restoreArgs) > 0
		if proxied {
			// The proxies of this round lie at the vDSO addresses of now.
			for _, ms := range maps {
				if v, ok := findMapping(ms, "[vdso]"); ok {
					r.vdsoProxies[v.rng] = true
				}
			}
		}
		if m.leaveRunning {
			r.checkpoint(img, true, false)
			atCheckpoint := r.lastTick()
			r.checkAlive(tree)
			r.killTree(tree)
			r.reapTree(tree)
			r.restoreAndCheck(img, tree, before.n+1, atCheckpoint.n+1, before)
		} else {
			r.checkpoint(img, false, false)
			r.reapTree(tree)
			r.inspect(img)
			last := r.lastTick()
			r.restoreAndCheck(img, tree, last.n+1, last.n+1, last)
		}
		if proxied {
			entries := 0
			for pid := range tree {
				entries = r.checkProxy(pid, maps[pid])
			}
			want := fmt.Sprintf("vDSO proxy: %d entry points redirected", entries)
			if len(tree) > 1 {
				want += fmt.Sprintf(" in each of %d processes", len(tree))
			}
			if !strings.Contains(r.restoreStderr, want) {
				r.fatalf("seamless restore --vdso proxy printed %q, want the warning %q", r.restoreStderr, want)
			}
		} else {
			for pid := range tree {
				r.checkVDSOKept(pid, maps[pid])
			}
			if strings.Contains(r.restoreStderr, "vDSO proxy") {
				r.fatalf("a restore on the same kernel built a vDSO proxy: %q", r.restoreStderr)
			}
		}
		r.compareFingerprint(fmt.Sprintf("after restore %d", round), fp, tree)
		// The workload goes on calling the vDSO after the checks above.
		r.waitTicks(r.logSize(), 5)
		if w.usr1 {
			usr1 = r.signalUSR1(usr1)
		}
	}
	r.finish(usr1)
}

// mapLine is one line of /proc/PID/maps.
type mapLine struct {
	rng              string // "lo-hi" as printed
	lo, hi           uint64
	perms, off, name string
	inode            string
}

func (r *run) readMaps(pid int) []mapLine {
	r.t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		r.fatalf("maps of %d: %v", pid, err)
	}
	var out []mapLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		m := mapLine{rng: f[0], perms: f[1], off: f[2], inode: f[4]}
		lo, hi, _ := strings.Cut(f[0], "-")
		m.lo, _ = strconv.ParseUint(lo, 16, 64)
		m.hi, _ = strconv.ParseUint(hi, 16, 64)
		if len(f) > 5 {
			m.name = strings.Join(f[5:], " ")
		}
		out = append(out, m)
	}
	return out
}

func findMapping(ms []mapLine, name string) (mapLine, bool) {
	for _, m := range ms {
		if m.name == name {
			return m, true
		}
	}
	return mapLine{}, false
}

// checkProxy checks pid after a proxied restore, given its maps before the
// checkpoint, and returns the number of entry points of its proxy: anonymous
// r-x memory where [vdso] was, holding the old vDSO's ELF tables and a jump
// to the same function of the kernel's vDSO at every entry point; the
// kernel's [vdso] and data pages elsewhere, clear of the old ones, which
// stay unmapped.
func (r *run) checkProxy(pid int, before []mapLine) int {
	r.t.Helper()
	old, ok := findMapping(before, "[vdso]")
	if !ok {
		r.fatalf("process %d had no [vdso] before the checkpoint", pid)
	}
	after := r.readMaps(pid)
	var proxy *mapLine
	for i, m := range after {
		if m.rng == old.rng {
			proxy = &after[i]
		}
	}
	if proxy == nil || proxy.perms != "r-xp" || proxy.name != "" || proxy.inode != "0" {
		r.fatalf("process %d: no anonymous r-x proxy at the old vDSO %s; maps now:\n%s", pid, old.rng, mapsText(after))
	}
	cur, ok := findMapping(after, "[vdso]")
	if !ok {
		r.fatalf("process %d has no [vdso] after the restore:\n%s", pid, mapsText(after))
	}
	for _, b := range before {
		if b.name != "[vdso]" && !strings.HasPrefix(b.name, "[vvar") {
			continue
		}
		for _, a := range after {
			if a.lo < b.hi && a.hi > b.lo && a.rng != proxy.rng {
				r.fatalf("process %d: %s %s overlaps the old %s %s, which must stay unmapped", pid, a.name, a.rng, b.name, b.rng)
			}
		}
	}
	proxyMem, curMem := r.readMem(pid, proxy.lo, proxy.hi), r.readMem(pid, cur.lo, cur.hi)
	oldSyms, err := funcSymbols(proxyMem)
	if err != nil {
		r.fatalf("process %d: the proxy keeps no readable vDSO tables: %v", pid, err)
	}
	newSyms, err := funcSymbols(curMem)
	if err != nil {
		r.fatalf("process %d: the kernel's vDSO: %v", pid, err)
	}
	entries := map[uint64]bool{}
	for name, off := range oldSyms {
		tgt, ok := newSyms[name]
		if !ok {
			r.fatalf("process %d: the kernel's vDSO lacks %s", pid, name)
		}
		stub := proxyMem[off : off+13]
		if stub[0] != 0x49 || stub[1] != 0xbb || !bytes.Equal(stub[10:], []byte{0x41, 0xff, 0xe3}) {
			r.fatalf("process %d: no jump at %s (offset %#x) of the proxy: % x", pid, name, off, stub)
		}
		if got := binary.LittleEndian.Uint64(stub[2:]); got != cur.lo+tgt {
			r.fatalf("process %d: %s of the proxy jumps to %#x, want %#x (%s in [vdso] at %s)", pid, name, got, cur.lo+tgt, name, cur.rng)
		}
		entries[off] = true
	}
	if len(entries) == 0 {
		r.fatalf("process %d: the proxy has no entry points", pid)
	}
	return len(entries)
}

// checkVDSOKept checks that after a restore on the matching vDSO, pid has
// its [vdso] and data pages exactly where they were.
func (r *run) checkVDSOKept(pid int, before []mapLine) {
	r.t.Helper()
	after := r.readMaps(pid)
	want, got := vdsoRanges(before), vdsoRanges(after)
	if want != got {
		r.fatalf("process %d: vDSO mappings %s, were %s", pid, got, want)
	}
}

func vdsoRanges(ms []mapLine) string {
	var out []string
	for _, m := range ms {
		if m.name == "[vdso]" || strings.HasPrefix(m.name, "[vvar") {
			out = append(out, m.rng+" "+m.name)
		}
	}
	return strings.Join(out, ", ")
}

func mapsText(ms []mapLine) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "  %s %s %s %s\n", m.rng, m.perms, m.off, m.name)
	}
	return b.String()
}

func (r *run) readMem(pid int, lo, hi uint64) []byte {
	r.t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		r.fatalf("%v", err)
	}
	defer f.Close()
	b := make([]byte, hi-lo)
	if _, err := f.ReadAt(b, int64(lo)); err != nil {
		r.fatalf("read %#x-%#x of %d: %v", lo, hi, pid, err)
	}
	return b
}

// funcSymbols returns the function symbols of a vDSO image and their
// offsets from its start.
func funcSymbols(b []byte) (map[string]uint64, error) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	var base uint64
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			base = p.Vaddr
			break
		}
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
			out[s.Name] = s.Value - base
		}
	}
	return out, nil
}
