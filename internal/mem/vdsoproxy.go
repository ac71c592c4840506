package mem

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
	"github.com/seamless-linux/seamless/internal/proc"
)

// A restored process keeps calling its vDSO at the addresses it resolved
// when it started: glibc and the Go runtime look the entry points up once
// and cache the function pointers. On a kernel whose vDSO is laid out like
// the image's, the kernel's vDSO simply moves to where the old one was.
// When the layouts differ, the new vDSO and its data pages move, together,
// to a free range, and a proxy takes the old vDSO's place: anonymous memory
// full of int3 with, at each old entry point, an absolute jump to the same
// function of the new vDSO. A call through a cached pointer lands on the
// jump and continues in the new vDSO, which returns straight to the caller.
//
// The old data pages ([vvar] and friends) stay unmapped: only vDSO code
// reads them. AT_SYSINFO_EHDR in the auxiliary vector keeps pointing at the
// old address, where a parser finds no ELF header (int3 bytes) and falls
// back to system calls; cached entry points keep working.

// VDSOMode says how a restore treats the running kernel's vDSO.
type VDSOMode int

const (
	// VDSOAuto moves the kernel's vDSO to the image's vDSO address when the
	// two have the same entry points and layout, and builds a proxy
	// otherwise.
	VDSOAuto VDSOMode = iota
	// VDSOProxy always builds a proxy, even for a matching vDSO; it proves
	// the proxy on a single kernel.
	VDSOProxy
)

func (m VDSOMode) String() string {
	switch m {
	case VDSOAuto:
		return "auto"
	case VDSOProxy:
		return "proxy"
	}
	return fmt.Sprintf("VDSOMode(%d)", int(m))
}

// ParseVDSOMode parses "auto" or "proxy".
func ParseVDSOMode(s string) (VDSOMode, error) {
	switch s {
	case "auto":
		return VDSOAuto, nil
	case "proxy":
		return VDSOProxy, nil
	}
	return 0, fmt.Errorf("unknown vDSO mode %q (want auto or proxy)", s)
}

// ProxiedVDSO describes the proxy built for one restored process.
type ProxiedVDSO struct {
	PID int
	// Old is the image's vDSO address, where the proxy now lies.
	Old uint64
	// New is where the running kernel's vDSO now lies.
	New uint64
	// Entries is the number of entry points redirected (aliases count once).
	Entries int
}

// jumpSize is the length of one proxy entry:
//
//	49 bb imm64    movabs $target, %r11
//	41 ff e3       jmp    *%r11
//
// r11 is a scratch register at a call boundary in the SysV ABI, so the
// caller expects it clobbered; every other register reaches the new vDSO
// untouched, and its ret returns to the caller.
const jumpSize = 13

// int3 fills the proxy between entries: a stray jump into it traps at once
// instead of running into another entry.
const int3 = 0xcc

// proxyJump is one entry point of the proxy.
type proxyJump struct {
	// Off is the entry's offset in the old vDSO.
	Off uint64
	// Target is the offset of the same function in the new vDSO.
	Target uint64
	// Names are the old vDSO's names at Off (aliases such as clock_gettime
	// and __vdso_clock_gettime share one entry).
	Names []string
}

// planProxy pairs every entry point of the old vDSO (old, offsets from its
// start; size bytes long) with the same-named function of the new one
// (cur). An entry point is served if any of its names exists in cur, and
// all of them that exist agree; one no name of which is left refuses the
// restore, since the process may call it.
func planProxy(old, cur map[string]uint64, size uint64) ([]proxyJump, error) {
	byOff := map[uint64][]string{}
	for name, off := range old {
		byOff[off] = append(byOff[off], name)
	}
	var jumps []proxyJump
	var missing, ambiguous []string
	for off, names := range byOff {
		sort.Strings(names)
		j := proxyJump{Off: off, Names: names}
		found := false
		for _, n := range names {
			t, ok := cur[n]
			switch {
			case !ok:
			case !found:
				j.Target, found = t, true
			case t != j.Target:
				ambiguous = append(ambiguous, fmt.Sprintf("%s (%#x in this kernel's vDSO, %s at %#x)",
					strings.Join(names, "/"), t, n, j.Target))
			}
		}
		if !found {
			missing = append(missing, strings.Join(names, "/"))
			continue
		}
		jumps = append(jumps, j)
	}
	sort.Strings(missing)
	sort.Strings(ambiguous)
	if len(missing) > 0 {
		return nil, fmt.Errorf("the vDSO of this kernel lacks %s, which the image's vDSO has and a restored process may call", strings.Join(missing, ", "))
	}
	if len(ambiguous) > 0 {
		return nil, fmt.Errorf("aliases of the image's vDSO are different functions in this kernel's: %s", strings.Join(ambiguous, "; "))
	}
	sort.Slice(jumps, func(i, k int) bool { return jumps[i].Off < jumps[k].Off })
	for i, j := range jumps {
		if j.Off+jumpSize > size {
			return nil, fmt.Errorf("vDSO entry point %s at %#x leaves no room for a %d-byte jump before the end of the vDSO (%#x bytes)",
				j.Names[0], j.Off, jumpSize, size)
		}
		if i > 0 && jumps[i-1].Off+jumpSize > j.Off {
			p := jumps[i-1]
			return nil, fmt.Errorf("vDSO entry points %s at %#x and %s at %#x are closer than the %d bytes of a jump",
				p.Names[0], p.Off, j.Names[0], j.Off, jumpSize)
		}
	}
	return jumps, nil
}

// proxyCode returns the contents of a proxy of size bytes for a new vDSO
// mapped at base. It starts from the old vDSO's own bytes when the image
// holds them (old, else nil): its ELF header, dynamic section, symbol
// tables and unwind tables stay readable where the process's dynamic
// linker found them at startup, so a late symbol lookup in the vDSO (musl
// looks its entry points up at the first call) resolves to the entries. Its
// code is replaced by int3: it reads data pages that are gone.
func proxyCode(old []byte, jumps []proxyJump, size, base uint64) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = int3
	}
	if uint64(len(old)) == size {
		copy(b, old)
		for _, r := range codeRanges(old) {
			for i := r.lo; i < r.hi && i < size; i++ {
				b[i] = int3
			}
		}
	}
	for _, j := range jumps {
		e := b[j.Off : j.Off+jumpSize]
		e[0], e[1] = 0x49, 0xbb
		binary.LittleEndian.PutUint64(e[2:], base+j.Target)
		e[10], e[11], e[12] = 0x41, 0xff, 0xe3
	}
	return b
}

// codeRanges returns the offsets of the executable sections of the vDSO
// image b, or the whole of it when b cannot be parsed: then nothing of it
// may run.
func codeRanges(b []byte) []span {
	all := []span{{0, uint64(len(b))}}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return all
	}
	base, ok := loadBase(f)
	if !ok {
		return all
	}
	var out []span
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_EXECINSTR != 0 && s.Type != elf.SHT_NOBITS && s.Addr >= base {
			out = append(out, span{s.Addr - base, s.Addr - base + s.Size})
		}
	}
	if len(out) == 0 {
		return all
	}
	return out
}

// vdsoPart is one mapping of a vDSO block: [vdso] or a [vvar...] range.
type vdsoPart struct {
	Name       string
	Start, End uint64
}

// vdsoBlock is a vDSO and its data pages, in address order. Its code finds
// the data at fixed distances from itself, so the block only ever moves as
// a whole.
type vdsoBlock []vdsoPart

func (b vdsoBlock) lo() uint64 { return b[0].Start }
func (b vdsoBlock) hi() uint64 { return b[len(b)-1].End }

// code returns the [vdso] part, or nil.
func (b vdsoBlock) code() *vdsoPart {
	for i := range b {
		if b[i].Name == "[vdso]" {
			return &b[i]
		}
	}
	return nil
}

func isVDSOName(name string) bool { return name == "[vdso]" || strings.HasPrefix(name, "[vvar") }

// imageBlock is the vDSO block of p as the image recorded it.
func imageBlock(p *image.Process) vdsoBlock {
	var b vdsoBlock
	for _, m := range p.Mappings {
		if m.Kind == image.MapVDSO || m.Kind == image.MapVVAR {
			b = append(b, vdsoPart{m.Name, m.Start, m.End})
		}
	}
	sort.Slice(b, func(i, j int) bool { return b[i].Start < b[j].Start })
	return b
}

// currentBlock is the vDSO block the kernel gave the seed. Any other
// kernel mapping left after clear (but [vsyscall], which is not in the
// address space proper) is unexpected.
func currentBlock(cur []proc.Mapping) (vdsoBlock, error) {
	var b vdsoBlock
	for _, m := range cur {
		switch {
		case isVDSOName(m.Path) && m.IsSpecial():
			b = append(b, vdsoPart{m.Path, m.Start, m.End})
		case m.IsSpecial() && m.Path != "[vsyscall]":
			return nil, fmt.Errorf("unexpected kernel mapping %s at %#x in the restored process", m.Path, m.Start)
		}
	}
	sort.Slice(b, func(i, j int) bool { return b[i].Start < b[j].Start })
	return b, nil
}

// sameLayout reports whether two blocks have the same parts, of the same
// sizes, at the same distances from each other.
func sameLayout(a, b vdsoBlock) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].End-a[i].Start != b[i].End-b[i].Start ||
			a[i].Start-a.lo() != b[i].Start-b.lo() {
			return false
		}
	}
	return true
}

// placeVDSO gives the restored process t the kernel's vDSO: where the
// image had its own when they match (and the mode allows), else in a free
// range with a proxy at the old address. The seed's address space holds
// only the restore region and the kernel's mappings at this point.
func (r *Restorer) placeVDSO(t *inject.Target, cur []proc.Mapping, p *image.Process) error {
	if err := r.placeVDSOIn(t, cur, p); err != nil {
		return fmt.Errorf("process %d: %w", p.PID, err)
	}
	return nil
}

// placeVDSOIn is placeVDSO without the process in its errors.
func (r *Restorer) placeVDSOIn(t *inject.Target, cur []proc.Mapping, p *image.Process) error {
	have, err := currentBlock(cur)
	if err != nil {
		return err
	}
	want := imageBlock(p)
	proxy := r.VDSO == VDSOProxy || !sameLayout(have, want)
	if !proxy && len(p.VDSO) > 0 {
		syms, err := VDSOSymbols(t.PID)
		if err != nil {
			return err
		}
		proxy = needProxy(r.VDSO, have, want, p.VDSO, syms)
	}
	if proxy {
		return r.proxyVDSO(t, have, want, p)
	}
	if len(have) == 0 {
		return nil
	}
	return relocate(t, have, want.lo())
}

// needProxy reports whether a process whose image had the vDSO block want
// with entry points old (nil if the image did not list them) needs a proxy
// to reach the kernel's block have with entry points cur.
func needProxy(mode VDSOMode, have, want vdsoBlock, old, cur map[string]uint64) bool {
	return mode == VDSOProxy || !sameLayout(have, want) || (len(old) > 0 && CompareVDSO(old, cur) != "")
}

// proxyVDSO moves the kernel's vDSO block out of the image's way and puts a
// proxy where the image's vDSO was. Everything that can refuse the restore
// is checked before anything moves.
func (r *Restorer) proxyVDSO(t *inject.Target, have, want vdsoBlock, p *image.Process) error {
	old := want.code()
	if old != nil && len(have) == 0 {
		return errors.New("this kernel maps no vDSO, and the image's process may call its own")
	}
	if len(have) == 0 {
		return nil // neither has a vDSO
	}
	cur := have.code()
	if old != nil && cur == nil {
		return errors.New("this kernel maps vDSO data pages but no [vdso]")
	}
	var jumps []proxyJump
	var oldBytes []byte
	if old != nil {
		if len(p.VDSO) == 0 {
			return errors.New("the image does not list its vDSO's entry points (written by an older seamless?), so they cannot be redirected to this kernel's vDSO")
		}
		syms, err := VDSOSymbols(t.PID)
		if err != nil {
			return err
		}
		if jumps, err = planProxy(p.VDSO, syms, old.End-old.Start); err != nil {
			return err
		}
		if err := checkStranded(p, old, jumps); err != nil {
			return err
		}
		if oldBytes, err = r.vdsoContents(p); err != nil {
			return err
		}
	}
	size := have.hi() - have.lo()
	near := uint64(maxUserAddr)
	if len(want) > 0 {
		near = want.lo()
	}
	at, err := vdsoHole(avoidSpans(p, uint64(t.Region[0]), uint64(t.Region[1])+TempGap), near, size)
	if err != nil {
		return err
	}
	if err := relocate(t, have, at); err != nil {
		return err
	}
	if old == nil {
		return nil // nothing of the image's calls a vDSO
	}
	base := at + cur.Start - have.lo()
	if err := installProxy(t, old.Start, proxyCode(oldBytes, jumps, old.End-old.Start, base)); err != nil {
		return err
	}
	r.Proxies = append(r.Proxies, ProxiedVDSO{PID: p.PID, Old: old.Start, New: base, Entries: len(jumps)})
	return nil
}

// vdsoContents returns the bytes of p's vDSO as the image stored them, or
// nil if it did not (images written before seamless stored them).
func (r *Restorer) vdsoContents(p *image.Process) ([]byte, error) {
	for _, m := range p.Mappings {
		if m.Kind != image.MapVDSO || len(m.Runs) != 1 || m.Runs[0].Addr != m.Start || m.Runs[0].Pages*PageSize != m.End-m.Start {
			continue
		}
		data, err := r.pageData(p.Pages)
		if err != nil {
			return nil, err
		}
		run := m.Runs[0]
		if run.Off+run.Pages*PageSize > uint64(len(data)) {
			return nil, fmt.Errorf("the vDSO's pages lie beyond the end of %s", p.Pages)
		}
		return data[run.Off : run.Off+run.Pages*PageSize], nil
	}
	return nil, nil
}

// checkStranded refuses a thread that was stopped inside the old vDSO's
// code anywhere but at an entry point: the new vDSO's code is different,
// there is no instruction to resume it at.
func checkStranded(p *image.Process, old *vdsoPart, jumps []proxyJump) error {
	entry := map[uint64]bool{}
	for _, j := range jumps {
		entry[j.Off] = true
	}
	for _, th := range p.Threads {
		rip := th.Regs.Rip
		if rip < old.Start || rip >= old.End || entry[rip-old.Start] {
			continue
		}
		where := fmt.Sprintf("offset %#x", rip-old.Start)
		best := uint64(0)
		for name, off := range p.VDSO {
			if off <= rip-old.Start && off >= best {
				best, where = off, fmt.Sprintf("%s+%#x", name, rip-old.Start-off)
			}
		}
		return fmt.Errorf("thread %d was stopped inside the vDSO (%s), whose code differs on this kernel: take the checkpoint again", th.TID, where)
	}
	return nil
}

// relocate moves the block b of t to start at to, through the gap after
// the restore region: where b lies now may overlap where it goes, and
// mremap cannot move a mapping onto itself.
func relocate(t *inject.Target, b vdsoBlock, to uint64) error {
	if b.lo() == to {
		return nil
	}
	if n := b.hi() - b.lo(); n > TempGap {
		return fmt.Errorf("the kernel's vDSO block is %#x bytes, more than the %#x the restore keeps free to move it", n, TempGap)
	}
	stage := uint64(t.Region[1])
	if err := moveBlock(t, b, stage); err != nil {
		return err
	}
	staged := make(vdsoBlock, len(b))
	for i, m := range b {
		staged[i] = vdsoPart{m.Name, m.Start - b.lo() + stage, m.End - b.lo() + stage}
	}
	return moveBlock(t, staged, to)
}

// moveBlock moves the parts of b so that the block starts at to, keeping
// their distances.
func moveBlock(t *inject.Target, b vdsoBlock, to uint64) error {
	for _, m := range b {
		n := m.End - m.Start
		dst := to + m.Start - b.lo()
		if _, err := t.Call(unix.SYS_MREMAP, uintptr(m.Start), uintptr(n), uintptr(n), unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, uintptr(dst)); err != nil {
			return fmt.Errorf("move %s from %#x to %#x: %w", m.Name, m.Start, dst, err)
		}
	}
	return nil
}

// installProxy maps the proxy at addr, writes it and makes it read-only
// and executable. MAP_FIXED_NOREPLACE: nothing may be there yet.
func installProxy(t *inject.Target, addr uint64, code []byte) error {
	n := uintptr(len(code))
	got, err := t.Call(unix.SYS_MMAP, uintptr(addr), n, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uintptr(0), 0)
	if err != nil {
		return fmt.Errorf("map vDSO proxy at %#x: %w", addr, err)
	}
	if got != uintptr(addr) {
		t.Call(unix.SYS_MUNMAP, got, n)
		return fmt.Errorf("map vDSO proxy at %#x: the kernel chose %#x", addr, got)
	}
	if err := inject.WriteMem(t.PID, uintptr(addr), code); err != nil {
		return fmt.Errorf("write vDSO proxy: %w", err)
	}
	if _, err := t.Call(unix.SYS_MPROTECT, uintptr(addr), n, unix.PROT_READ|unix.PROT_EXEC); err != nil {
		return fmt.Errorf("protect vDSO proxy: %w", err)
	}
	return nil
}

// span is an address range [lo, hi).
type span struct{ lo, hi uint64 }

const (
	// vdsoGuard is the distance kept from every other mapping: the default
	// stack guard gap, so no stack's growth is cut short by the block.
	vdsoGuard = 1 << 20
	// stackRoom is the least room kept below a grows-down mapping (a
	// stack), as the kernel keeps at least 128 MiB below the main stack
	// for its growth.
	stackRoom = 128 << 20
	// maxStackRoom bounds the room taken from RLIMIT_STACK.
	maxStackRoom = 4 << 30
	// minUserAddr and maxUserAddr bound the search: above the low 4 GiB,
	// which programs with fixed or 32-bit addresses use, and below the
	// 47-bit user address space's top.
	minUserAddr = 1 << 32
	maxUserAddr = 1<<47 - PageSize
)

// avoidSpans lists the ranges the kernel's vDSO block must keep clear of in
// the restored p: each mapping of the image widened by the guard (and the
// stack's growth room below grows-down ones), and the restore area.
func avoidSpans(p *image.Process, regionLo, regionHi uint64) []span {
	room := uint64(stackRoom)
	for _, l := range p.Rlimits {
		if l.Resource == unix.RLIMIT_STACK {
			room = max(room, min(l.Cur, maxStackRoom))
		}
	}
	sub := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	out := []span{{sub(regionLo, vdsoGuard), regionHi + vdsoGuard}}
	for _, m := range p.Mappings {
		if m.Start >= maxUserAddr {
			continue // [vsyscall]
		}
		below := uint64(vdsoGuard)
		if hasFlag(m, "gd") {
			below = room
		}
		out = append(out, span{sub(m.Start, below), m.End + vdsoGuard})
	}
	return out
}

// vdsoHole returns the highest page-aligned address a at which [a, a+size)
// lies below near and clear of every span of avoid; failing that, the
// lowest such address above near.
func vdsoHole(avoid []span, near, size uint64) (uint64, error) {
	sort.Slice(avoid, func(i, j int) bool { return avoid[i].lo < avoid[j].lo })
	// The free gaps between the merged spans, within the user range.
	var gaps []span
	pos := uint64(minUserAddr)
	for _, s := range avoid {
		if s.lo > pos {
			gaps = append(gaps, span{pos, min(s.lo, maxUserAddr)})
		}
		pos = max(pos, s.hi)
		if pos >= maxUserAddr {
			break
		}
	}
	if pos < maxUserAddr {
		gaps = append(gaps, span{pos, maxUserAddr})
	}
	const mask = PageSize - 1
	best, found := uint64(0), false
	for _, g := range gaps {
		top := min(g.hi, near)
		if top < size {
			continue
		}
		a := (top - size) &^ mask
		if a >= g.lo && (!found || a > best) {
			best, found = a, true
		}
	}
	if found {
		return best, nil
	}
	for _, g := range gaps {
		a := (max(g.lo, near) + mask) &^ mask
		if a+size <= g.hi {
			return a, nil
		}
	}
	return 0, errors.New("no free address range for this kernel's vDSO")
}
