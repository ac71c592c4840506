package proc

import (
	"os"
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	// comm with spaces and a parenthesis, as a process may name itself.
	line := "1234 (a b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 100 2000 50 18446744073709551615 " +
		"4194304 4200000 140737000000000 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 6300000 6300100 6400000 140737000001000 140737000001100 140737000001100 140737000001200 0\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{State: 'S', PPID: 1, PGID: 1234, SID: 1234, Tpgid: -1, ExitSignal: 17, StartCode: 4194304, EndCode: 4200000,
		StartStack: 140737000000000, StartData: 6300000, EndData: 6300100, StartBrk: 6400000,
		ArgStart: 140737000001000, ArgEnd: 140737000001100, EnvStart: 140737000001100, EnvEnd: 140737000001200}
	if *st != want {
		t.Fatalf("parseStat = %+v\nwant %+v", *st, want)
	}
	if _, err := parseStat([]byte("1 (x) S 1 2")); err == nil {
		t.Fatal("short stat accepted")
	}
}

func TestParseSmaps(t *testing.T) {
	in := `55d0c0000000-55d0c0001000 r-xp 00001000 fe:00 325835                     /usr/bin/a b
Size:                  4 kB
VmFlags: rd ex mr mw me
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
VmFlags: rd wr mr mw me gd ac
7f0000000000-7f0000001000 rw-s 00000000 00:01 1234                       /dev/zero (deleted)
VmFlags: rd wr sh mr mw me ms
`
	maps, err := parseSmaps([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		i                     int
		path                  string
		shared, deleted, exec bool
		flag                  string
	}{
		{0, "/usr/bin/a b", false, false, true, "mw"},
		{1, "[stack]", false, false, false, "gd"},
		{2, "/dev/zero", true, true, false, "sh"},
	}
	if len(maps) != len(tests) {
		t.Fatalf("got %d mappings, want %d", len(maps), len(tests))
	}
	for _, tt := range tests {
		m := maps[tt.i]
		if m.Path != tt.path || m.Shared != tt.shared || m.Deleted != tt.deleted || m.Exec != tt.exec || !m.HasFlag(tt.flag) {
			t.Errorf("mapping %d = %+v", tt.i, m)
		}
	}
	if maps[0].Offset != 0x1000 || maps[0].Inode != 325835 || maps[0].Major != 0xfe {
		t.Errorf("mapping 0 identity = %+v", maps[0])
	}
	if maps[1].IsSpecial() || !(&Mapping{Path: "[vdso]"}).IsSpecial() {
		t.Error("IsSpecial misclassifies [stack] or [vdso]")
	}
}

func TestSelf(t *testing.T) {
	tids, err := Threads(os.Getpid())
	if err != nil || len(tids) == 0 || tids[0] != os.Getpid() {
		t.Fatalf("Threads(self) = %v, %v", tids, err)
	}
	maps, err := ReadMappings(os.Getpid())
	if err != nil || len(maps) == 0 {
		t.Fatalf("ReadMappings(self) = %d, %v", len(maps), err)
	}
	if _, err := ReadStat(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestMeminfoField(t *testing.T) {
	s := "MemTotal:        4012345 kB\nMemFree:          100 kB\nMemAvailable:    2000000 kB\n"
	for _, c := range []struct {
		field string
		want  int64
	}{{"MemTotal", 4012345 << 10}, {"MemAvailable", 2000000 << 10}, {"Mem", 0}, {"SwapTotal", 0}} {
		if got := meminfoField(s, c.field); got != c.want {
			t.Errorf("%s = %d, want %d", c.field, got, c.want)
		}
	}
	if Meminfo("MemTotal") <= 0 {
		t.Error("MemTotal of this machine is not positive")
	}
}

func TestKernelMemAvailable(t *testing.T) {
	const noMovable = `Node 0, zone      DMA
  pages free     3840
        high     20
        managed  3840
      nr_zone_inactive_file 0
      nr_zone_active_file 0
Node 0, zone    DMA32
  pages free     1000
        high     100
        managed  2000
      nr_zone_inactive_file 50
      nr_zone_active_file 50
Node 0, zone  Movable
  pages free     0
        high     32
        managed  0
`
	if got := kernelMemAvailable(noMovable, 4096); got != -1 {
		t.Errorf("without ZONE_MOVABLE: %d, want -1", got)
	}
	withMovable := strings.Replace(noMovable, "  pages free     0\n        high     32\n        managed  0",
		"  pages free     200000\n        high     32\n        managed  262144", 1)
	// DMA: 3840-20, DMA32: 1000+100-100; the Movable zone's free pages do not count.
	if got, want := kernelMemAvailable(withMovable, 4096), int64(3820+1000)*4096; got != want {
		t.Errorf("with ZONE_MOVABLE: %d, want %d", got, want)
	}
}
