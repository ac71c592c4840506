package lab

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestScaled(t *testing.T) {
	tests := []struct {
		base      string
		mib       int
		keys      int
		limit     string
		keepsKeys bool
	}{
		{"seamless-update", 64, 4096, "-m 1024", true},
		{"seamless-update", 1536, 98304, "-m 2368", true},
		{"kexec-plain", 512, 32768, "-m 1024", false},
	}
	for _, tt := range tests {
		t.Run(tt.base, func(t *testing.T) {
			base, err := LoadScenario(tt.base)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := Scaled(base, tt.mib)
			if err != nil {
				t.Fatal(err)
			}
			if sc.MemoryMB != ScaleGuestMB || sc.Memcached.Keys != tt.keys || sc.Memcached.ValueSize != scaleValueSize {
				t.Errorf("memory %d, keys %d of %d bytes", sc.MemoryMB, sc.Memcached.Keys, sc.Memcached.ValueSize)
			}
			if !strings.Contains(sc.Steps[0].Guest, tt.limit) || len(sc.Steps) != len(base.Steps)+1 {
				t.Errorf("first step %q (of %d), want memcached's limit %s first", sc.Steps[0].Guest, len(sc.Steps), tt.limit)
			}
			if sc.Timeout.Duration <= base.Timeout.Duration || sc.Steps[1].Timeout.Duration <= base.Steps[0].Timeout.Duration {
				t.Errorf("timeouts %v / %v did not grow from %v / %v", sc.Timeout, sc.Steps[1].Timeout, base.Timeout, base.Steps[0].Timeout)
			}
			if got := sc.Expect.MinKeysAfter != nil && *sc.Expect.MinKeysAfter == tt.keys; got != tt.keepsKeys {
				t.Errorf("expects all %d keys kept: %v, want %v", tt.keys, got, tt.keepsKeys)
			}
			if base.Memcached.Keys != 100000 || base.MemoryMB != 0 || strings.Contains(base.Steps[0].Guest, "-m ") {
				t.Errorf("the base scenario changed")
			}
		})
	}
	if _, err := Scaled(&Scenario{Name: "x", Timeout: Duration{time.Minute}}, 0); err == nil {
		t.Error("size 0 accepted")
	}
}

func TestScaleResult(t *testing.T) {
	run := func(base string, size int, gap int64, ok bool) ScaleRun {
		return ScaleRun{BenchRun: BenchRun{Scenario: base, OK: ok, GapMS: gap}, Base: base, SizeMiB: size}
	}
	res := &ScaleResult{Runs: []ScaleRun{
		run("seamless-update", 512, 40000, true),
		run("seamless-update", 64, 30000, true),
		run("kexec-plain", 64, 25000, true),
		run("kexec-plain", 512, 99000, false),
		run("seamless-update", 512, 44000, true),
	}}
	ser := res.series()
	if got := ser["seamless-update"]; len(got) != 2 || got[0] != [2]float64{64, 30000} || got[1] != [2]float64{512, 42000} {
		t.Errorf("seamless-update series %v, want 64 MiB: 30 s, 512 MiB: median 42 s", got)
	}
	if got := ser["kexec-plain"]; len(got) != 1 {
		t.Errorf("kexec-plain series %v: the failed run counts", got)
	}
	var out bytes.Buffer
	res.Print(&out)
	if !strings.Contains(out.String(), "failed: kexec-plain at 512 MiB") || !strings.Contains(out.String(), "42") {
		t.Errorf("table:\n%s", out.String())
	}
	out.Reset()
	if err := WriteScaleSVG(&out, res); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "<polyline"); n != 2 || !strings.Contains(out.String(), ">42 s<") {
		t.Errorf("plot has %d lines:\n%s", n, out.String())
	}
	if err := WriteScaleSVG(&out, &ScaleResult{}); err == nil {
		t.Error("a plot of no runs")
	}
}
