package lab

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func TestStatOf(t *testing.T) {
	for _, c := range []struct {
		in   []int64
		want Stat
	}{
		{nil, Stat{}},
		{[]int64{5}, Stat{N: 1, Median: 5, Min: 5, Max: 5}},
		{[]int64{30, 10, 20}, Stat{N: 3, Median: 20, Min: 10, Max: 30, Spread: 20}},
		{[]int64{4, 1, 3, 2}, Stat{N: 4, Median: 2.5, Min: 1, Max: 4, Spread: 3}},
		{[]int64{7, 7, 100}, Stat{N: 3, Median: 7, Min: 7, Max: 100, Spread: 93}},
	} {
		in := append([]int64(nil), c.in...)
		if got := StatOf(c.in); got != c.want {
			t.Errorf("StatOf(%v) = %+v, want %+v", c.in, got, c.want)
		}
		if !reflect.DeepEqual(in, c.in) {
			t.Errorf("StatOf sorted its argument: %v", c.in)
		}
	}
}

func TestBenchOrder(t *testing.T) {
	for _, c := range []struct {
		sc   []string
		n    int
		want []string
	}{
		{[]string{"a", "b"}, 1, []string{"a", "b"}},
		{[]string{"a", "b"}, 3, []string{"a", "b", "b", "a", "a", "b"}},
		{[]string{"a"}, 2, []string{"a", "a"}},
		{[]string{"a", "b"}, 0, nil},
	} {
		if got := BenchOrder(c.sc, c.n); !reflect.DeepEqual(got, c.want) {
			t.Errorf("BenchOrder(%v, %d) = %v, want %v", c.sc, c.n, got, c.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	runs := []BenchRun{
		{Scenario: "seamless-update", OK: true, GapMS: 40000, Phases: map[string]int64{PointInitramfs: 2000, PointKexec: 900}},
		{Scenario: "kexec-plain", OK: true, GapMS: 45000, Phases: map[string]int64{PointInitramfs: 1000}},
		{Scenario: "seamless-update", OK: true, GapMS: 50000, Phases: map[string]int64{PointInitramfs: 4000}},
		{Scenario: "seamless-update", OK: false, GapMS: 1, Phases: map[string]int64{PointInitramfs: 1}}, // failed: not counted
		{Scenario: "kexec-plain", OK: true, GapMS: 47000, Phases: map[string]int64{PointInitramfs: 3000}},
	}
	s := Summarize(runs)
	su, kp := s["seamless-update"], s["kexec-plain"]
	if su.Runs != 3 || su.Failed != 1 || kp.Runs != 2 || kp.Failed != 0 {
		t.Fatalf("counts: %+v %+v", su, kp)
	}
	if su.Gap != (Stat{N: 2, Median: 45000, Min: 40000, Max: 50000, Spread: 10000}) {
		t.Errorf("seamless gap %+v", su.Gap)
	}
	if kp.Gap.Median != 46000 || kp.Phases[PointInitramfs].Median != 2000 {
		t.Errorf("kexec-plain %+v", kp)
	}
	if st := su.Phases[PointKexec]; st.N != 1 || st.Median != 900 {
		t.Errorf("a phase seen once: %+v", st)
	}
}

// The JSON has the shape the issue asks for: {"runs": [{"scenario",
// "gap_ms", "phases": {...}}, ...]}, plus the summary.
func TestBenchWriteJSON(t *testing.T) {
	for _, c := range []struct {
		name string
		res  BenchResult
		runs int
	}{
		{"empty", BenchResult{}, 0},
		{"two", BenchResult{Runs: []BenchRun{
			{Scenario: "seamless-update", OK: true, GapMS: 41000, Phases: map[string]int64{PointInitramfs: 2100}, Points: map[string]int64{PointStop: 0}},
			{Scenario: "kexec-plain", OK: true, GapMS: 45000, Phases: map[string]int64{}, Points: map[string]int64{}},
		}}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.res.Summary = Summarize(c.res.Runs)
			var buf bytes.Buffer
			if err := c.res.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			var got struct {
				Runs []struct {
					Scenario string           `json:"scenario"`
					GapMS    *int64           `json:"gap_ms"`
					Phases   map[string]int64 `json:"phases"`
				} `json:"runs"`
				Summary map[string]json.RawMessage `json:"summary"`
			}
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatalf("%v\n%s", err, buf.String())
			}
			if got.Runs == nil || len(got.Runs) != c.runs {
				t.Fatalf("runs = %v\n%s", got.Runs, buf.String())
			}
			for i, r := range got.Runs {
				if r.Scenario != c.res.Runs[i].Scenario || r.GapMS == nil || *r.GapMS != c.res.Runs[i].GapMS || r.Phases == nil {
					t.Errorf("run %d = %+v", i, r)
				}
			}
			if len(got.Summary) != len(c.res.Summary) {
				t.Errorf("summary = %v", got.Summary)
			}
		})
	}
}

func TestBenchRunOf(t *testing.T) {
	rep := &Report{Scenario: "kexec-plain", OK: true, RunDir: "/r", Probe: &ProbeResult{GapMS: 44000},
		Timeline: &Timeline{Points: []Point{{Name: PointStop, MS: ms(0)}, {Name: PointShutdown}, {Name: PointKernel, MS: ms(5000)}}}}
	br := BenchRunOf(rep)
	if br.GapMS != 44000 || br.Phases[PointKernel] != 5000 || len(br.Phases) != 1 || br.Points[PointKernel] != 5000 || len(br.Points) != 2 {
		t.Errorf("%+v", br)
	}
}
