package lab

import (
	"testing"
	"time"
)

func TestAnalyseOutage(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	samples := []Sample{
		{Start: ms(0), End: ms(2), OK: true, Held: true},
		{Start: ms(50), End: ms(52), OK: true, Held: true},
		// the held connection's request hangs, then fails: the service is down from 100 ms
		{Start: ms(100), End: ms(9000), OK: false, Held: true, Err: "EOF"},
		{Start: ms(700), End: ms(1700), OK: false},
		{Start: ms(1750), End: ms(2750), OK: false},
		{Start: ms(8000), End: ms(8003), OK: true}, // fresh connection answers
		{Start: ms(8050), End: ms(8052), OK: true},
	}
	r := analyse(t0, samples, 500*time.Millisecond, false, "EOF", ms(9000), "127.0.0.1:1")
	if len(r.Outages) != 1 {
		t.Fatalf("outages = %+v, want 1", r.Outages)
	}
	if r.GapMS != 7903 {
		t.Errorf("gap = %d ms, want 7903", r.GapMS)
	}
	if r.Failed != 3 || r.Requests != 7 || r.HeldRequests != 3 {
		t.Errorf("counts = %+v", r)
	}
	if r.HeldDiedMS != 9000 {
		t.Errorf("held died at %d ms", r.HeldDiedMS)
	}
}

func TestAnalyseSurvivedPause(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	samples := []Sample{
		{Start: ms(0), End: ms(2), OK: true, Held: true},
		{Start: ms(50), End: ms(3050), OK: true, Held: true}, // a 3 s pause, same connection
		{Start: ms(3100), End: ms(3102), OK: true, Held: true},
	}
	r := analyse(t0, samples, 500*time.Millisecond, true, "", time.Time{}, "")
	if r.GapMS != 3000 || len(r.Outages) != 1 || !r.Outages[0].Ended {
		t.Fatalf("result = %+v", r)
	}
	if r.MaxLatencyMS != 3000 || !r.ConnectionSurvived {
		t.Errorf("result = %+v", r)
	}
}

func TestAnalyseNoOutage(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var samples []Sample
	for i := 0; i < 10; i++ {
		s := t0.Add(time.Duration(i) * 50 * time.Millisecond)
		samples = append(samples, Sample{Start: s, End: s.Add(time.Millisecond), OK: true, Held: true})
	}
	r := analyse(t0, samples, 500*time.Millisecond, true, "", time.Time{}, "")
	if r.GapMS != 0 || len(r.Outages) != 0 || r.Failed != 0 {
		t.Fatalf("result = %+v", r)
	}
}

func TestAnalyseStillDown(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	samples := []Sample{
		{Start: ms(0), End: ms(1), OK: true, Held: true},
		{Start: ms(50), End: ms(1050), OK: false},
	}
	r := analyse(t0, samples, 500*time.Millisecond, false, "x", time.Time{}, "")
	if len(r.Outages) != 1 || r.Outages[0].Ended || r.GapMS != 1000 {
		t.Fatalf("result = %+v", r)
	}
}

func TestAnalyseFirstAnswers(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	for _, c := range []struct {
		name        string
		samples     []Sample
		gapStart    int64
		held, fresh *int64
	}{
		{"held pauses and goes on, fresh answers first", []Sample{
			{Start: at(0), End: at(2), OK: true, Held: true},
			{Start: at(50), End: at(9000), OK: true, Held: true}, // stalled 8.95 s, then answered
			{Start: at(600), End: at(1600), OK: false},
			{Start: at(8500), End: at(8510), OK: true},
			{Start: at(8560), End: at(8570), OK: true},
		}, 50, ms(9000), ms(8510)},
		{"held dies, memcached comes back empty", []Sample{
			{Start: at(0), End: at(2), OK: true, Held: true},
			{Start: at(50), End: at(60), OK: false, Held: true, Err: "EOF"},
			{Start: at(100), End: at(1100), OK: false},
			{Start: at(5000), End: at(5003), OK: true, Err: "key missing"},
		}, 50, nil, ms(5003)},
		{"an answer before the gap does not count", []Sample{
			{Start: at(0), End: at(600), OK: true}, // slow fresh answer: an outage of its own
			{Start: at(1000), End: at(1002), OK: true, Held: true},
			{Start: at(1050), End: at(4000), OK: false, Held: true, Err: "EOF"},
		}, 1050, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := analyse(t0, c.samples, 500*time.Millisecond, false, "", time.Time{}, "")
			if r.GapStartMS != c.gapStart || !r.Started.Equal(t0) {
				t.Errorf("gap starts at %d ms, want %d (%+v)", r.GapStartMS, c.gapStart, r.Outages)
			}
			eq := func(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
			if !eq(r.FirstHeldAnswerMS, c.held) || !eq(r.FirstFreshAnswerMS, c.fresh) {
				t.Errorf("first answers held %v fresh %v, want %v %v", r.FirstHeldAnswerMS, r.FirstFreshAnswerMS, c.held, c.fresh)
			}
		})
	}
}
