package kmod

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

const MiB = 1 << 20

func TestReservations(t *testing.T) {
	info := Info{Sealed: true, IndexPhys: 0x70000000,
		Ranges: []Range{{0x60000000, 256 * MiB}, {0x38000000, 128 * MiB}}}
	got, err := Reservations(info)
	want := "memmap=0x10000000$0x60000000 memmap=0x8000000$0x38000000"
	if err != nil || got != want {
		t.Errorf("Reservations = %q, %v; want %q", got, err, want)
	}
	if _, err := Reservations(Info{Ranges: info.Ranges}); err == nil {
		t.Error("Reservations of an unsealed pool: no error")
	}
}

func TestHasFS(t *testing.T) {
	fs := "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\tseamlessmem\n"
	if !hasFS(fs, "seamlessmem") || !hasFS(fs, "ext4") || hasFS(fs, "seamless") || hasFS(fs, "nodev") {
		t.Error("hasFS reads /proc/filesystems wrong")
	}
}

// TestCandidates: blocks that extend a held range come first; never the
// block at the end of RAM, one that spans zones, is offline, failed, or
// is not all System RAM; no new range past the limit.
func TestCandidates(t *testing.T) {
	const bs = 128 * MiB
	blk := func(i uint64) Block { return Block{Phys: i * bs, Online: true, Zones: "DMA32"} }
	var blocks []Block
	for i := uint64(0); i < 16; i++ {
		blocks = append(blocks, blk(i))
	}
	blocks[3].Zones = "none"
	blocks[4].Online = false
	// RAM: a hole in block 0 (below 1 MiB), all else up to 2 GiB.
	ram := []Range{{0x1000, 0x9f000 - 0x1000}, {0x100000, 16*bs - 0x100000}}
	tests := []struct {
		name   string
		held   []Range
		avoid  []Range
		failed map[uint64]bool
		max    int
		want   []uint64
	}{
		{"empty pool: highest first, not the last block", nil, nil, nil, 4,
			[]uint64{14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 2, 1}},
		{"next to a held range first", []Range{{6 * bs, 2 * bs}}, nil, map[uint64]bool{14 * bs: true}, 4,
			[]uint64{8, 5, 13, 12, 11, 10, 9, 2, 1}},
		{"at the range limit only adjacent blocks", []Range{{6 * bs, bs}, {10 * bs, bs}}, nil, nil, 2,
			[]uint64{11, 9, 7, 5}},
		{"not where kexec puts its segments", nil, KexecZones(ram, 200*MiB), nil, 4,
			[]uint64{13, 12, 11, 10, 9, 8, 7, 6, 5, 2, 1}},
	}
	for _, tt := range tests {
		var got []uint64
		for _, p := range Candidates(bs, bs, blocks, ram, tt.held, tt.avoid, tt.failed, tt.max) {
			got = append(got, p/bs)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestCandidatePieces: pieces smaller than a block extend the held range
// up or down first, then fill from the top; the range limit counts the
// blocks the next kernel reserves, so a piece in a block already reserved
// is always allowed.
func TestCandidatePieces(t *testing.T) {
	const bs, unit = 128 * MiB, 32 * MiB
	var blocks []Block
	for i := uint64(0); i < 4; i++ {
		blocks = append(blocks, Block{Phys: i * bs, Online: true, Zones: "Movable"})
	}
	ram := []Range{{0, 4 * bs}}
	piece := func(block, i uint64) uint64 { return (block*bs + i*unit) / unit }
	tests := []struct {
		name   string
		held   []Range
		failed map[uint64]bool
		max    int
		want   []uint64
	}{
		{"empty pool: from the top, not the last block", nil, nil, 4,
			[]uint64{piece(2, 3), piece(2, 2), piece(2, 1), piece(2, 0), piece(1, 3), piece(1, 2), piece(1, 1), piece(1, 0), piece(0, 3), piece(0, 2), piece(0, 1), piece(0, 0)}},
		{"next to the held pieces first", []Range{{2*bs + unit, 2 * unit}}, map[uint64]bool{piece(2, 3) * unit: true}, 4,
			[]uint64{piece(2, 0), piece(2, 0) - 1, piece(1, 2), piece(1, 1), piece(1, 0), piece(0, 3), piece(0, 2), piece(0, 1), piece(0, 0)}},
		{"at the range limit: the reserved blocks and those touching them", []Range{{2*bs + unit, unit}}, nil, 1,
			[]uint64{piece(2, 2), piece(2, 0), piece(2, 3), piece(1, 3), piece(1, 2), piece(1, 1), piece(1, 0)}},
	}
	for _, tt := range tests {
		var got []uint64
		for _, p := range Candidates(bs, unit, blocks, ram, tt.held, nil, tt.failed, tt.max) {
			got = append(got, p/unit)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRoundOut(t *testing.T) {
	const bs = 128 * MiB
	tests := []struct {
		in, want []Range
	}{
		{nil, nil},
		{[]Range{{bs + 16*MiB, 16 * MiB}}, []Range{{bs, bs}}},
		{[]Range{{bs - 16*MiB, 32 * MiB}}, []Range{{0, 2 * bs}}},
		{[]Range{{bs, 16 * MiB}, {bs + 64*MiB, 16 * MiB}, {2 * bs, 16 * MiB}, {5 * bs, bs}}, []Range{{bs, 2 * bs}, {5 * bs, bs}}},
	}
	for _, tt := range tests {
		if got := RoundOut(tt.in, bs); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("RoundOut(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestSystemRAM(t *testing.T) {
	p := filepath.Join(t.TempDir(), "iomem")
	os.WriteFile(p, []byte("00000000-00000fff : Reserved\n00001000-0009fbff : System RAM\n000f0000-000fffff : Reserved\n  000f0000-000fffff : System ROM\n00100000-7ffdffff : System RAM\n  01000000-01e02616 : Kernel code\n100000000-13fffffff : System RAM (kmem)\n"), 0o600)
	got, err := SystemRAM(p)
	want := []Range{{0x1000, 0x9f000 - 0x1000 + 0xc00 - 0xc00}, {0x100000, 0x7ffe0000 - 0x100000}}
	want[0].Size = 0x9fc00 - 0x1000
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("SystemRAM = %v, %v; want %v", got, err, want)
	}
	os.WriteFile(p, []byte("00000000-00000000 : System RAM\n"), 0o600)
	if _, err := SystemRAM(p); err == nil || !strings.Contains(err.Error(), "hidden") {
		t.Errorf("hidden addresses: %v", err)
	}
}

func TestModulePath(t *testing.T) {
	old := ModulesDir
	ModulesDir = t.TempDir()
	defer func() { ModulesDir = old }()
	if _, err := ModulePath("6.1.0-50-amd64"); err == nil || !strings.Contains(err.Error(), "linux-headers-6.1.0-50-amd64") {
		t.Errorf("missing module: %v", err)
	}
	for rel, name := range map[string]string{"6.1.0-50-amd64": "updates/dkms/seamlessmem.ko", "6.12.117+deb12-amd64": "updates/dkms/seamlessmem.ko.xz"} {
		p := filepath.Join(ModulesDir, rel, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
		if got, err := ModulePath(rel); err != nil || got != p {
			t.Errorf("ModulePath(%s) = %q, %v; want %q", rel, got, err, p)
		}
	}
}

func TestMovableBytes(t *testing.T) {
	sys := t.TempDir()
	os.WriteFile(filepath.Join(sys, "block_size_bytes"), []byte("8000000\n"), 0o644)
	zones := []string{"none", "DMA32", "DMA32", "DMA32", "DMA32 Movable", "Movable", "Movable", "Movable"}
	for i, z := range zones {
		d := filepath.Join(sys, "memory"+strconv.Itoa(i))
		os.Mkdir(d, 0o755)
		os.WriteFile(filepath.Join(d, "state"), []byte("online\n"), 0o644)
		os.WriteFile(filepath.Join(d, "valid_zones"), []byte(z+"\n"), 0o644)
	}
	iomem := filepath.Join(t.TempDir(), "iomem")
	os.WriteFile(iomem, []byte("00001000-0009fbff : System RAM\n00100000-3fffffff : System RAM\n"), 0o600)
	// Blocks 5 and 6 are Movable candidates; 7 holds the end of RAM.
	got, err := MovableBytes(sys, iomem)
	if err != nil || got != 2*128*MiB {
		t.Errorf("MovableBytes = %d MiB, %v; want 256 MiB", got>>20, err)
	}
}
