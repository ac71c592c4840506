package mem

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inject"
)

// The entry points of the x86-64 vDSO of two Debian kernels, read from
// linux-image-6.1.0-56-amd64 (6.1.192-2) and linux-image-6.12.117+deb12-amd64
// (6.12.117-1~deb12u1): the update the lab carries services across. The
// 6.1 vDSO is one page, the 6.12 one two; every function moved.
var (
	vdso61 = map[string]uint64{
		"__vdso_gettimeofday": 0x780, "gettimeofday": 0x780,
		"__vdso_time": 0x930, "time": 0x930,
		"__vdso_clock_gettime": 0x960, "clock_gettime": 0x960,
		"__vdso_clock_getres": 0xbc0, "clock_getres": 0xbc0,
		"__vdso_getcpu": 0xc20, "getcpu": 0xc20,
		"__vdso_sgx_enter_enclave": 0xc50,
	}
	vdso612 = map[string]uint64{
		"__vdso_gettimeofday": 0x8b0, "gettimeofday": 0x8b0,
		"__vdso_time": 0xbb0, "time": 0xbb0,
		"__vdso_clock_gettime": 0xbe0, "clock_gettime": 0xbe0,
		"__vdso_clock_getres": 0xfb0, "clock_getres": 0xfb0,
		"__vdso_getcpu": 0x1020, "getcpu": 0x1020,
		"__vdso_getrandom": 0x1050, "getrandom": 0x1050,
		"__vdso_sgx_enter_enclave": 0x1560,
	}
)

func TestPlanProxy(t *testing.T) {
	tests := []struct {
		name     string
		old, cur map[string]uint64
		size     uint64
		want     []proxyJump // nil when an error is expected
		err      string
	}{
		{
			name: "debian 6.1 to 6.12",
			old:  vdso61, cur: vdso612, size: 0x1000,
			want: []proxyJump{
				{0x780, 0x8b0, []string{"__vdso_gettimeofday", "gettimeofday"}},
				{0x930, 0xbb0, []string{"__vdso_time", "time"}},
				{0x960, 0xbe0, []string{"__vdso_clock_gettime", "clock_gettime"}},
				{0xbc0, 0xfb0, []string{"__vdso_clock_getres", "clock_getres"}},
				{0xc20, 0x1020, []string{"__vdso_getcpu", "getcpu"}},
				{0xc50, 0x1560, []string{"__vdso_sgx_enter_enclave"}},
			},
		},
		{
			name: "same vDSO",
			old:  map[string]uint64{"a": 0x10, "b": 0x20},
			cur:  map[string]uint64{"a": 0x10, "b": 0x20},
			size: 0x1000,
			want: []proxyJump{{0x10, 0x10, []string{"a"}}, {0x20, 0x20, []string{"b"}}},
		},
		{
			name: "aliases share one jump",
			old:  map[string]uint64{"clock_gettime": 0x100, "__vdso_clock_gettime": 0x100},
			cur:  map[string]uint64{"clock_gettime": 0x300, "__vdso_clock_gettime": 0x300},
			size: 0x1000,
			want: []proxyJump{{0x100, 0x300, []string{"__vdso_clock_gettime", "clock_gettime"}}},
		},
		{
			name: "an alias the new vDSO dropped is served by the other name",
			old:  map[string]uint64{"time": 0x100, "__vdso_time": 0x100},
			cur:  map[string]uint64{"__vdso_time": 0x240},
			size: 0x1000,
			want: []proxyJump{{0x100, 0x240, []string{"__vdso_time", "time"}}},
		},
		{
			name: "new symbols are ignored",
			old:  map[string]uint64{"time": 0x100},
			cur:  map[string]uint64{"time": 0x100, "getrandom": 0x200},
			size: 0x1000,
			want: []proxyJump{{0x100, 0x100, []string{"time"}}},
		},
		{
			name: "nothing to redirect",
			old:  map[string]uint64{},
			cur:  map[string]uint64{"time": 0x100},
			size: 0x1000,
		},
		{
			name: "missing symbol",
			old:  vdso612, cur: vdso61, size: 0x2000,
			err: "lacks __vdso_getrandom/getrandom",
		},
		{
			name: "no vDSO at all",
			old:  map[string]uint64{"time": 0x100, "getcpu": 0x200},
			cur:  nil,
			size: 0x1000,
			err:  "lacks getcpu, time",
		},
		{
			name: "aliases that became different functions",
			old:  map[string]uint64{"time": 0x100, "__vdso_time": 0x100},
			cur:  map[string]uint64{"time": 0x100, "__vdso_time": 0x180},
			size: 0x1000,
			err:  "different functions",
		},
		{
			name: "entries closer than a jump",
			old:  map[string]uint64{"a": 0x100, "b": 0x10c},
			cur:  map[string]uint64{"a": 0x100, "b": 0x200},
			size: 0x1000,
			err:  "a at 0x100 and b at 0x10c are closer than the 13 bytes",
		},
		{
			name: "entries exactly a jump apart",
			old:  map[string]uint64{"a": 0x100, "b": 0x10d},
			cur:  map[string]uint64{"a": 0x100, "b": 0x200},
			size: 0x1000,
			want: []proxyJump{{0x100, 0x100, []string{"a"}}, {0x10d, 0x200, []string{"b"}}},
		},
		{
			name: "entry too close to the end",
			old:  map[string]uint64{"a": 0xff4},
			cur:  map[string]uint64{"a": 0x100},
			size: 0x1000,
			err:  "no room",
		},
		{
			name: "entry at the very end",
			old:  map[string]uint64{"a": 0xff3},
			cur:  map[string]uint64{"a": 0x100},
			size: 0x1000,
			want: []proxyJump{{0xff3, 0x100, []string{"a"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := planProxy(tt.old, tt.cur, tt.size)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("planProxy error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("planProxy:\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestProxyCode(t *testing.T) {
	jumps := []proxyJump{{Off: 0x10, Target: 0x200}, {Off: 0x40, Target: 0x8}}
	const base = 0x7f0012340000
	b := proxyCode(nil, jumps, 0x1000, base)
	if len(b) != 0x1000 {
		t.Fatalf("proxy is %d bytes, want 0x1000", len(b))
	}
	for _, j := range jumps {
		want := []byte{0x49, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0x41, 0xff, 0xe3}
		binary.LittleEndian.PutUint64(want[2:], base+j.Target)
		if got := b[j.Off : j.Off+jumpSize]; !bytes.Equal(got, want) {
			t.Errorf("entry at %#x: % x, want % x", j.Off, got, want)
		}
	}
	for i, c := range b {
		if (i >= 0x10 && i < 0x10+jumpSize) || (i >= 0x40 && i < 0x40+jumpSize) {
			continue
		}
		if c != int3 {
			t.Fatalf("byte %#x is %#x, want int3", i, c)
		}
	}
}

// TestProxyCodeKeepsTables builds a proxy from this kernel's real vDSO: its
// ELF tables stay (its symbols still resolve, to the entries), its code is
// int3 but for the jumps.
func TestProxyCodeKeepsTables(t *testing.T) {
	old := ownVDSO(t)
	syms, err := elfSymbols(old)
	if err != nil {
		t.Fatal(err)
	}
	jumps, err := planProxy(syms, syms, uint64(len(old)))
	if err != nil {
		t.Fatal(err)
	}
	b := proxyCode(old, jumps, uint64(len(old)), 0x7f0000000000)
	again, err := elfSymbols(b)
	if err != nil {
		t.Fatalf("the proxy's ELF tables do not parse: %v", err)
	}
	if !reflect.DeepEqual(again, syms) {
		t.Fatalf("the proxy's symbols %v, want %v", again, syms)
	}
	code := codeRanges(old)
	if len(code) == 0 || (code[0].lo == 0 && code[0].hi == uint64(len(old))) {
		t.Fatalf("no code sections found in the vDSO: %v", code)
	}
	entry := map[uint64]bool{}
	for _, j := range jumps {
		for i := j.Off; i < j.Off+jumpSize; i++ {
			entry[i] = true
		}
	}
	for _, r := range code {
		for i := r.lo; i < r.hi; i++ {
			if !entry[i] && b[i] != int3 {
				t.Fatalf("code byte %#x of the proxy is %#x, want int3", i, b[i])
			}
		}
	}
	if !bytes.Equal(b[:64], old[:64]) {
		t.Fatal("the proxy lost the vDSO's ELF header")
	}
}

// ownVDSO returns the bytes of this process's vDSO.
func ownVDSO(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if !strings.HasSuffix(l, "[vdso]") {
			continue
		}
		var lo, hi uintptr
		if _, err := fmt.Sscanf(l, "%x-%x", &lo, &hi); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, hi-lo)
		if err := inject.ReadMem(os.Getpid(), lo, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Skip("this kernel maps no vDSO")
	return nil
}

func TestVDSOHole(t *testing.T) {
	const M = 1 << 20
	const hi = 0x7f0000000000
	tests := []struct {
		name  string
		avoid []span
		near  uint64
		size  uint64
		want  uint64
		err   bool
	}{
		{
			name:  "right below, past the guard",
			avoid: []span{{hi - M, hi + 0x5000 + M}},
			near:  hi, size: 0x8000,
			want: hi - M - 0x8000,
		},
		{
			name:  "skips a hole too small",
			avoid: []span{{hi - M, hi + 0x5000 + M}, {hi - 3*M, hi - M - 0x4000}},
			near:  hi, size: 0x8000,
			want: hi - 3*M - 0x8000,
		},
		{
			name:  "overlapping spans merge",
			avoid: []span{{hi - 4*M, hi}, {hi - 2*M, hi - M}, {hi - M, hi + M}},
			near:  hi, size: 0x6000,
			want: hi - 4*M - 0x6000,
		},
		{
			name:  "page aligned",
			avoid: []span{{hi - M + 0x123, hi}},
			near:  hi, size: 0x6000,
			want: (hi - M + 0x123 - 0x6000) &^ (PageSize - 1),
		},
		{
			name:  "above when nothing is free below",
			avoid: []span{{0, hi + M}},
			near:  hi, size: 0x6000,
			want: hi + M,
		},
		{
			name:  "no room at all",
			avoid: []span{{0, 1 << 48}},
			near:  hi, size: 0x6000,
			err: true,
		},
		{
			name:  "never below 4 GiB",
			avoid: []span{{minUserAddr + 0x1000, 1 << 48}},
			near:  minUserAddr + 0x1000, size: 0x6000,
			err: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := vdsoHole(tt.avoid, tt.near, tt.size)
			if tt.err {
				if err == nil {
					t.Fatalf("vdsoHole = %#x, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("vdsoHole = %#x, want %#x", got, tt.want)
			}
			for _, s := range tt.avoid {
				if got < s.hi && got+tt.size > s.lo {
					t.Fatalf("vdsoHole = %#x overlaps %#x-%#x", got, s.lo, s.hi)
				}
			}
		})
	}
}

func TestAvoidSpans(t *testing.T) {
	p := &image.Process{
		Rlimits: []image.Rlimit{{Resource: unix.RLIMIT_STACK, Cur: 8 << 20}},
		Mappings: []*image.Mapping{
			{Start: 0x555500000000, End: 0x555500010000},
			{Start: 0x7ffd00000000, End: 0x7ffd00021000, Flags: []string{"gd"}},
			{Start: 0xffffffffff600000, End: 0xffffffffff601000},
		},
	}
	got := avoidSpans(p, 0x100000000, 0x100110000)
	want := []span{
		{0x100000000 - vdsoGuard, 0x100110000 + vdsoGuard},
		{0x555500000000 - vdsoGuard, 0x555500010000 + vdsoGuard},
		{0x7ffd00000000 - stackRoom, 0x7ffd00021000 + vdsoGuard},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("avoidSpans = %x, want %x", got, want)
	}
	p.Rlimits[0].Cur = unix.RLIM_INFINITY
	if got := avoidSpans(p, 0x100000000, 0x100110000); got[2].lo != 0x7ffd00000000-maxStackRoom {
		t.Fatalf("room below the stack with an unlimited RLIMIT_STACK: %#x", 0x7ffd00000000-got[2].lo)
	}
}

func TestSameLayout(t *testing.T) {
	blk := func(at uint64, parts ...vdsoPart) vdsoBlock {
		var b vdsoBlock
		for _, p := range parts {
			b = append(b, vdsoPart{p.Name, p.Start + at, p.End + at})
		}
		return b
	}
	k618 := []vdsoPart{{"[vvar]", 0, 0x4000}, {"[vvar_vclock]", 0x4000, 0x6000}, {"[vdso]", 0x6000, 0x8000}}
	k61 := []vdsoPart{{"[vvar]", 0, 0x4000}, {"[vdso]", 0x4000, 0x5000}}
	if !sameLayout(blk(0x7f0000000000, k618...), blk(0x7f1234560000, k618...)) {
		t.Error("the same layout at two addresses differs")
	}
	if sameLayout(blk(0, k618...), blk(0, k61...)) {
		t.Error("6.18 and 6.1 layouts are the same")
	}
	gap := []vdsoPart{{"[vvar]", 0, 0x4000}, {"[vvar_vclock]", 0x4000, 0x6000}, {"[vdso]", 0x7000, 0x9000}}
	if sameLayout(blk(0, k618...), blk(0, gap...)) {
		t.Error("a moved [vdso] keeps the layout")
	}
	if !sameLayout(nil, nil) {
		t.Error("no vDSO differs from no vDSO")
	}
}

func TestNeedProxy(t *testing.T) {
	k618 := vdsoBlock{{"[vvar]", 0x7f0000000000, 0x7f0000004000}, {"[vvar_vclock]", 0x7f0000004000, 0x7f0000006000}, {"[vdso]", 0x7f0000006000, 0x7f0000008000}}
	moved := vdsoBlock{{"[vvar]", 0x7f1000000000, 0x7f1000004000}, {"[vvar_vclock]", 0x7f1000004000, 0x7f1000006000}, {"[vdso]", 0x7f1000006000, 0x7f1000008000}}
	k61 := vdsoBlock{{"[vvar]", 0x7ffd00000000, 0x7ffd00004000}, {"[vdso]", 0x7ffd00004000, 0x7ffd00005000}}
	k612 := vdsoBlock{{"[vvar]", 0x7ffd00000000, 0x7ffd00004000}, {"[vdso]", 0x7ffd00004000, 0x7ffd00006000}}
	syms := map[string]uint64{"time": 0xac0, "__vdso_time": 0xac0}
	tests := []struct {
		name       string
		mode       VDSOMode
		have, want vdsoBlock
		old, cur   map[string]uint64
		proxy      bool
	}{
		{"same kernel", VDSOAuto, moved, k618, syms, syms, false},
		{"same kernel, forced", VDSOProxy, moved, k618, syms, syms, true},
		{"old image without entry points", VDSOAuto, moved, k618, nil, syms, false},
		{"new symbols only", VDSOAuto, moved, k618, syms, map[string]uint64{"time": 0xac0, "__vdso_time": 0xac0, "getrandom": 0xf40}, false},
		{"a symbol moved", VDSOAuto, moved, k618, syms, map[string]uint64{"time": 0xad0, "__vdso_time": 0xad0}, true},
		{"6.1 to 6.12", VDSOAuto, k612, k61, vdso61, vdso612, true},
		{"6.1 to 6.18 layout", VDSOAuto, k618, k61, syms, syms, true},
		{"no vDSO on either", VDSOAuto, nil, nil, nil, nil, false},
		{"a vDSO only now", VDSOAuto, k618, nil, nil, syms, true},
	}
	for _, tt := range tests {
		if got := needProxy(tt.mode, tt.have, tt.want, tt.old, tt.cur); got != tt.proxy {
			t.Errorf("%s: needProxy = %v, want %v", tt.name, got, tt.proxy)
		}
	}
}

func TestParseVDSOMode(t *testing.T) {
	for _, m := range []VDSOMode{VDSOAuto, VDSOProxy} {
		got, err := ParseVDSOMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseVDSOMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseVDSOMode("never"); err == nil {
		t.Error("ParseVDSOMode accepted \"never\"")
	}
}

func TestCheckStranded(t *testing.T) {
	old := &vdsoPart{"[vdso]", 0x7f0000005000, 0x7f0000006000}
	jumps := []proxyJump{{Off: 0x960, Target: 0xbe0, Names: []string{"clock_gettime"}}}
	p := &image.Process{PID: 10, VDSO: map[string]uint64{"clock_gettime": 0x960},
		Threads: []*image.Thread{{TID: 10}, {TID: 11}}}
	p.Threads[0].Regs.Rip = 0x555500001234
	p.Threads[1].Regs.Rip = old.Start + 0x960 // at an entry: the jump takes it on
	if err := checkStranded(p, old, jumps); err != nil {
		t.Fatal(err)
	}
	p.Threads[1].Regs.Rip = old.Start + 0x9a0
	err := checkStranded(p, old, jumps)
	if err == nil || !strings.Contains(err.Error(), "thread 11") || !strings.Contains(err.Error(), "clock_gettime+0x40") {
		t.Fatalf("checkStranded = %v, want thread 11 inside clock_gettime+0x40", err)
	}
}
