package image

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		err  string
	}{
		{"0", []int{0}, ""},
		{"0-3,6", []int{0, 1, 2, 3, 6}, ""},
		{"1,3-4\n", []int{1, 3, 4}, ""},
		{"", nil, "empty"},
		{"3-1", nil, "bad range"},
		{"x", nil, "bad CPU"},
		{"-1", nil, "bad CPU"},
		{"0-9000", nil, "beyond"},
	}
	for _, tc := range tests {
		got, err := ParseCPUList(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseCPUList(%q): error %v, want one with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestValidateAttrs checks that a tree with impossible attributes is
// refused with a message that names the process and the attribute.
func TestValidateAttrs(t *testing.T) {
	tree := func() *Tree {
		return &Tree{Root: 10, Processes: []*Process{
			{PID: 10, PPID: 1, PGID: 10, SID: 10, Ctty: -1, Threads: []*Thread{{TID: 10, Attrs: &ThreadAttrs{CPUs: "0-1"}}, {TID: 11}},
				Attrs: &ProcessAttrs{OOMScoreAdj: 400, THPDisable: 1, Membarrier: 0x54}},
			{PID: 12, PPID: 10, PGID: 10, SID: 10, Ctty: -1, ParentTID: 11, Threads: []*Thread{{TID: 12}}},
		}}
	}
	if err := tree().Validate(map[string]int64{TreeName: 100}); err != nil {
		t.Fatalf("valid tree refused: %v", err)
	}
	tests := []struct {
		name    string
		breakIt func(*Tree)
		want    string
	}{
		{"oom_score_adj", func(t *Tree) { t.Processes[0].Attrs.OOMScoreAdj = 1001 }, "process 10: oom_score_adj 1001"},
		{"thp", func(t *Tree) { t.Processes[0].Attrs.THPDisable = 4 }, "thp_disable 4"},
		{"mdwe", func(t *Tree) { t.Processes[0].Attrs.MDWE = 8 }, "mdwe 8"},
		{"membarrier", func(t *Tree) { t.Processes[0].Attrs.Membarrier = 1 }, "membarrier registrations 0x1"},
		{"cpus", func(t *Tree) { t.Processes[0].Threads[0].Attrs.CPUs = "a" }, "thread 10: CPU list"},
		{"ioprio", func(t *Tree) { t.Processes[0].Threads[0].Attrs.IOPrio = 4 << 13 }, "ioprio"},
		{"pdeathsig", func(t *Tree) { t.Processes[0].Threads[0].Attrs.PdeathSig = 65 }, "parent death signal 65"},
		{"sched flags", func(t *Tree) { t.Processes[0].Threads[0].Attrs.SchedFlags = 0x8 }, "scheduling flags 0x8"},
		{"util clamp", func(t *Tree) { t.Processes[0].Threads[0].Attrs.UtilClamp = &[2]uint32{600, 500} }, "utilization clamp"},
		{"parent thread", func(t *Tree) { t.Processes[1].ParentTID = 13 }, "parent thread 13 is not a thread of process 10"},
		{"root parent thread", func(t *Tree) { t.Processes[0].ParentTID = 11 }, "process 10: parent thread 11"},
	}
	for _, tc := range tests {
		tr := tree()
		tc.breakIt(tr)
		err := tr.Validate(map[string]int64{TreeName: 100})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.want)
		}
	}
}

func TestValidateGuards(t *testing.T) {
	tests := []struct {
		guards []PageRange
		want   string
	}{
		{[]PageRange{{0x2000, 1}, {0x4000, 2}}, ""},
		{[]PageRange{{0x1000, 1}}, "overlap stored pages"},
		{[]PageRange{{0x4000, 1}, {0x2000, 1}}, "out of order"},
		{[]PageRange{{0x7000, 2}}, "outside"},
		{[]PageRange{{0x2800, 1}}, "out of order or outside"},
		{[]PageRange{{0x2000, 0}}, "outside"},
	}
	for _, tc := range tests {
		m := &Mapping{Start: 0x1000, End: 0x8000, Runs: []Run{{Addr: 0x1000, Pages: 1}}, Guards: tc.guards}
		err := m.validateGuards()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("guards %v: error %v, want %q", tc.guards, err, tc.want)
		}
	}
}

func TestValidateFileState(t *testing.T) {
	tests := []struct {
		f    File
		want string
	}{
		{File{ID: 1, Record: &Socket{Filter: &SocketFilter{Prog: make([]byte, 16)}}}, ""},
		{File{ID: 1, Record: &Socket{Filter: &SocketFilter{Prog: make([]byte, 12)}}}, "file 1: socket filter of 12 bytes"},
		{File{ID: 2, Record: &Socket{Inet: &InetSocket{Shutdown: 4}}}, "file 2: shutdown state 4"},
		{File{ID: 3, Record: &Socket{Unix: &UnixSocket{Path: &UnixPath{Dir: "/srv/run"}}}}, ""},
		{File{ID: 3, Record: &Socket{Unix: &UnixSocket{Path: &UnixPath{Dir: "run"}}}}, "not a clean absolute path"},
		{File{ID: 3, Record: &Socket{Unix: &UnixSocket{Path: &UnixPath{Dir: "/srv/../etc"}}}}, "not a clean absolute path"},
	}
	for _, tc := range tests {
		err := tc.f.validateFileState()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: error %v, want %q", tc.f, err, tc.want)
		}
	}
	tr := &Tree{Ptys: []*Pty{{Index: 3, Owner: &PtyOwner{Mode: 0o100620}}}}
	if err := tr.validatePtys(); err == nil || !strings.Contains(err.Error(), "pty 3: mode") {
		t.Errorf("a pty mode with file type bits: %v", err)
	}
}
