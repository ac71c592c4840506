package lab

import (
	"strings"
	"testing"
	"time"
)

// A serial console of a seamless update: the old boot going down through
// kexec, the new one restoring memcached.
const serialUpdate = `[    0.000000] Linux version 6.1.0-47-amd64 (debian-kernel@lists.debian.org) #1 SMP
[    1.000000] Trying to unpack rootfs image as initramfs...
[    1.300000] Freeing initrd memory: 7048K
[  100.000000] seamless-lab clock 0001
[  130.000000] systemd-shutdown[1]: Syncing filesystems and block devices.
[  130.500000] systemd-shutdown[1]: Rebooting with kexec.
[  131.000000] kexec_core: Starting new kernel
[    0.000000] Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) #1 SMP
[    1.000000] Trying to unpack rootfs image as initramfs...
[    3.000000] Freeing initrd memory: 30996K
[    4.000000] Run /init as init process
[    5.000000] seamless: restore daemon 115: memcached.service pending
[    9.000000] systemd[1]: systemd 252.39-1~deb12u2 running in system mode (+PAM)
[   18.000000] seamless-restored: memcached.service: asked by process 402, checked in 12 ms
[   19.900000] seamless-restored: restore of pid 281: open 40 ms, seed 20 ms, processes 60 ms, memory 300 ms, files 90 ms, finish 300 ms, network 600 ms, resume 2 ms
[   20.000000] seamless-restored: memcached.service: restored in 1436 ms, main pid 281
[   30.000000] seamless-lab clock 0002
`

func ms(n int64) *int64 { return &n }

func TestBuildTimeline(t *testing.T) {
	h0 := time.Unix(5000, 0)
	at := func(s float64) time.Time { return h0.Add(time.Duration(s * float64(time.Second))) }
	// The old boot's kernel clock reads 100 s at host 5000 s; the new boot
	// starts at host 5032 s (its 30 s is host 5062 s).
	rep := &Report{
		Scenario: "seamless-update",
		Boots: []BootInfo{
			{Release: "6.1.0-47-amd64", Clock: &ClockSample{Host: at(0), KernelS: 100}},
			{Release: "6.1.0-50-amd64", Clock: &ClockSample{Host: at(62), KernelS: 30},
				UnitJournal: "[   15.500000] seamless-lab systemd[1]: Starting memcached.service - memcached daemon...\n" +
					"[   16.700000] seamless-lab seamless[402]: seamless: memcached.service: asking the restore daemon\n"},
		},
		Steps: []StepResult{{Phase: "switch", Started: at(20), Reboots: true}},
		// The host client stopped getting answers at host 5029 s, the held
		// connection answered at 5053.5 s, a new one at 5053 s.
		Probe: &ProbeResult{Started: at(-10), GapMS: 24000, GapStartMS: 39000, FirstHeldAnswerMS: ms(63500), FirstFreshAnswerMS: ms(63000)},
	}
	tl := BuildTimeline(rep, []byte(serialUpdate))
	want := map[string]int64{
		PointStop:      0,
		PointShutdown:  1000,  // old 130 s = host 5030 s
		PointKexec:     2000,  // old 131 s
		PointKernel:    3000,  // new 0 s = host 5032 s
		PointInitramfs: 6000,  // new 3 s
		PointStage1:    8000,  // new 5 s
		PointSwitch:    12000, // new 9 s
		PointUnit:      18500, // journal 15.5 s
		PointAsked:     19700, // journal 16.7 s (the daemon's line, at 18 s, comes after its checks)
		PointRestored:  22900, // new 19.9 s: the restore's phases line, the tree running
		PointHeld:      24500,
		PointFresh:     24000,
	}
	if len(tl.Points) != len(PointNames) {
		t.Fatalf("points = %+v", tl.Points)
	}
	for i, p := range tl.Points {
		if p.Name != PointNames[i] {
			t.Errorf("point %d is %q, want %q", i, p.Name, PointNames[i])
		}
		w, ok := want[p.Name]
		if !ok {
			continue
		}
		if p.MS == nil || *p.MS != w {
			t.Errorf("%s = %v, want %d ms (%+v)", p.Name, p.MS, w, p)
		}
	}
	if !tl.Origin.Equal(at(29)) || tl.GapMS != 24000 {
		t.Errorf("origin %v, gap %d", tl.Origin, tl.GapMS)
	}
	if src := tl.Points[7].Source; src != "journal (new boot)" {
		t.Errorf("unit started from %q", src)
	}
	ph := tl.Phases()
	if ph[PointInitramfs] != 3000 || ph[PointKexec] != 1000 || ph[PointFresh] != 1100 || ph[PointHeld] != 1600 {
		t.Errorf("phases = %v", ph)
	}
	if _, ok := ph[PointStop]; ok {
		t.Errorf("the first point ends no phase: %v", ph)
	}
	// Runs before the restore's "resume" phase: the unit's restored line.
	older := strings.Replace(serialUpdate, ", network 600 ms, resume 2 ms", "", 1)
	if v, ok := BuildTimeline(rep, []byte(older)).At(PointRestored); !ok || v != 23000 {
		t.Errorf("restored without a resume phase = %d %v, want 23000", v, ok)
	}
}

// A scenario that reboots while it prepares (a kernel parameter to set)
// has three boots: the restart drawn is the one the gap began in, the
// second and third boots, not the first two.
func TestBuildTimelinePrepareReboot(t *testing.T) {
	h0 := time.Unix(5000, 0)
	at := func(s float64) time.Time { return h0.Add(time.Duration(s * float64(time.Second))) }
	serial := "[    0.000000] Linux version 6.1.0-47-amd64 (debian-kernel@lists.debian.org) #1 SMP\n" +
		"[   20.000000] systemd-shutdown[1]: Syncing filesystems and block devices.\n" + serialUpdate
	rep := &Report{
		Scenario: "seamless-update-userfaultfd",
		Boots: []BootInfo{
			{Release: "6.1.0-47-amd64", Clock: &ClockSample{Host: at(-60), KernelS: 10}},
			{Release: "6.1.0-47-amd64", Clock: &ClockSample{Host: at(0), KernelS: 100}},
			{Release: "6.1.0-50-amd64", Clock: &ClockSample{Host: at(62), KernelS: 30},
				UnitJournal: "[   15.500000] seamless-lab systemd[1]: Starting memcached.service - memcached daemon...\n"},
		},
		Steps: []StepResult{{Phase: "prepare", Started: at(-55), Reboots: true}, {Phase: "switch", Started: at(20), Reboots: true}},
		Probe: &ProbeResult{Started: at(-10), GapMS: 24000, GapStartMS: 39000, FirstHeldAnswerMS: ms(63500)},
	}
	tl := BuildTimeline(rep, []byte(serial))
	for name, want := range map[string]int64{PointShutdown: 1000, PointKexec: 2000, PointKernel: 3000, PointRestored: 22900, PointUnit: 18500} {
		if got, ok := tl.At(name); !ok || got != want {
			t.Errorf("%s = %d (%v), want %d; notes %v", name, got, ok, want, tl.Notes)
		}
	}
}

// What a run did not show stays missing: no stage 1 in a plain kexec, no
// held connection once it died, no guest point of a boot without a clock
// sample.
func TestBuildTimelineMissing(t *testing.T) {
	h0 := time.Unix(5000, 0)
	serial := strings.Replace(serialUpdate, "[    5.000000] seamless: restore daemon 115: memcached.service pending\n", "", 1)
	serial = strings.Replace(serial, "[   20.000000] seamless-restored: memcached.service: restored in 1436 ms, main pid 281\n", "", 1)
	serial = strings.Replace(serial, "[   19.900000] seamless-restored: restore of pid 281: open 40 ms, seed 20 ms, processes 60 ms, memory 300 ms, files 90 ms, finish 300 ms, network 600 ms, resume 2 ms\n", "", 1)
	rep := &Report{
		Scenario: "kexec-plain",
		Boots: []BootInfo{
			{Release: "6.1.0-47-amd64"}, // no clock sample
			{Release: "6.1.0-50-amd64", Clock: &ClockSample{Host: h0.Add(62 * time.Second), KernelS: 30},
				UnitJournal: "[   16.000000] seamless-lab systemd[1]: Started memcached.service - memcached daemon.\n"},
		},
		Probe: &ProbeResult{Started: h0, GapMS: 30000, GapStartMS: 29000, FirstFreshAnswerMS: ms(59000)},
	}
	tl := BuildTimeline(rep, []byte(serial))
	missing := map[string]bool{}
	for _, p := range tl.Points {
		if p.MS == nil {
			missing[p.Name] = true
		}
	}
	for _, n := range []string{PointShutdown, PointKexec, PointStage1, PointHeld} {
		if !missing[n] {
			t.Errorf("%s should be missing", n)
		}
	}
	if v, ok := tl.At(PointRestored); !ok || v != 19000 { // journal 16 s = host 5048 s
		t.Errorf("started = %d %v", v, ok)
	}
	if v, ok := tl.At(PointUnit); !ok || v != 19000 { // Type=simple: "Started" only
		t.Errorf("unit started = %d %v", v, ok)
	}
	if v, ok := tl.At(PointKernel); !ok || v != 3000 {
		t.Errorf("new kernel = %d %v", v, ok)
	}
	if len(tl.Notes) == 0 {
		t.Error("no note says why the old boot's points are missing")
	}
}

func TestBuildTimelineBootsMismatch(t *testing.T) {
	rep := &Report{Scenario: "x", Boots: []BootInfo{{Release: "6.1.0-47-amd64"}, {Release: "6.12.0-1-amd64"}},
		Probe: &ProbeResult{Started: time.Unix(1, 0), GapMS: 10, GapStartMS: 5}}
	tl := BuildTimeline(rep, []byte(serialUpdate))
	if v, ok := tl.At(PointStop); !ok || v != 0 {
		t.Errorf("host points are still there: %+v", tl.Points)
	}
	if _, ok := tl.At(PointKernel); ok || len(tl.Notes) == 0 {
		t.Errorf("guest points from the wrong boot: %+v %v", tl.Points, tl.Notes)
	}
}

func TestKernelLine(t *testing.T) {
	for _, c := range []struct {
		in   string
		ts   float64
		text string
		ok   bool
	}{
		{"[   12.500000] Freeing initrd memory: 7048K", 12.5, "Freeing initrd memory: 7048K", true},
		{"[    0.000000] Linux version 6.1", 0, "Linux version 6.1", true},
		{"[  OK  ] Started memcached.service", 0, "", false},
		{"no brackets", 0, "", false},
		{"[   15.500000] host systemd[1]: Starting memcached.service", 15.5, "host systemd[1]: Starting memcached.service", true},
	} {
		ts, text, ok := kernelLine(c.in)
		if ts != c.ts || text != c.text || ok != c.ok {
			t.Errorf("kernelLine(%q) = %v %q %v", c.in, ts, text, ok)
		}
	}
}

func TestTimelineSummary(t *testing.T) {
	tl := &Timeline{Points: ordered(map[string]Point{PointStop: {Name: PointStop, MS: ms(0)}, PointFresh: {Name: PointFresh, MS: ms(41250)}})}
	want := "freeze/stop 0, new conn answers 41.25; missing: shutdown done, kexec, new kernel, initramfs unpacked, stage 1 done, switch root, unit started, restore asked, restored/started, peers woken, held conn answers"
	if got := tl.Summary(); got != want {
		t.Errorf("Summary() = %q\nwant        %q", got, want)
	}
}
