package lab

import (
	"bytes"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Sample is one request made by the probe.
type Sample struct {
	Start time.Time
	End   time.Time
	OK    bool   // answered with the expected value
	Held  bool   // made on the held connection (else on a fresh one)
	Err   string // why it failed
}

// Probe is the host-side client of a service update: it holds ONE memcached
// connection through the port forward and issues a get every Interval, as a
// real client would. While that connection is stalled or dead it also tries
// fresh connections, to see when the service answers again.
type Probe struct {
	Addr     string
	Key      string
	Want     []byte
	Interval time.Duration // between requests (default 50 ms)
	Stall    time.Duration // a slower answer counts as an outage (default 500 ms)

	mu          sync.Mutex
	samples     []Sample
	heldSince   time.Time // start of the outstanding request on the held connection
	heldDead    bool
	heldErr     string
	heldDiedAt  time.Time
	heldLocal   string
	heldConn    *MemcacheConn
	lastHeldOK  bool
	start       time.Time
	stop        chan struct{}
	wg          sync.WaitGroup
	lastFailure time.Time
}

// Start opens the held connection and starts probing.
func (p *Probe) Start() error {
	if p.Interval == 0 {
		p.Interval = 50 * time.Millisecond
	}
	if p.Stall == 0 {
		p.Stall = 500 * time.Millisecond
	}
	c, err := DialMemcache(p.Addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	p.heldLocal, p.heldConn = c.LocalAddr(), c
	p.start = time.Now()
	p.stop = make(chan struct{})
	p.wg.Add(2)
	go p.held(c)
	go p.fresh()
	return nil
}

func (p *Probe) record(s Sample) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.samples = append(p.samples, s)
	if !s.OK {
		p.lastFailure = s.Start
	}
}

func (p *Probe) stopped() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

// held issues gets on the held connection. Its deadline is long on purpose:
// a connection that survives the update may pause, and must not be dropped
// by the client for that.
func (p *Probe) held(c *MemcacheConn) {
	defer p.wg.Done()
	defer c.Close()
	for !p.stopped() {
		t0 := time.Now()
		p.mu.Lock()
		p.heldSince = t0
		p.mu.Unlock()
		got, err := c.GetMulti([]string{p.Key}, 10*time.Minute)
		t1 := time.Now()
		if err != nil && p.stopped() {
			return // closed by Stop: not something the service did
		}
		p.mu.Lock()
		p.heldSince = time.Time{}
		p.mu.Unlock()
		s := Sample{Start: t0, End: t1, Held: true, OK: err == nil && bytes.Equal(got[p.Key], p.Want)}
		if err != nil {
			s.Err = err.Error()
		} else if !s.OK {
			s.Err = "wrong or missing value"
		}
		p.record(s)
		p.mu.Lock()
		p.lastHeldOK = s.OK
		p.mu.Unlock()
		if err != nil {
			p.mu.Lock()
			p.heldDead, p.heldErr, p.heldDiedAt = true, err.Error(), t1
			p.mu.Unlock()
			return
		}
		p.sleep(t0)
	}
}

func (p *Probe) sleep(since time.Time) {
	select {
	case <-p.stop:
	case <-time.After(time.Until(since.Add(p.Interval))):
	}
}

// fresh probes with new connections while the held one is dead or stalled.
func (p *Probe) fresh() {
	defer p.wg.Done()
	for !p.stopped() {
		t0 := time.Now()
		p.mu.Lock()
		need := p.heldDead || (!p.heldSince.IsZero() && t0.Sub(p.heldSince) > p.Stall)
		p.mu.Unlock()
		if need {
			p.record(p.freshOnce(t0))
		}
		p.sleep(t0)
	}
}

func (p *Probe) freshOnce(t0 time.Time) Sample {
	s := Sample{Start: t0}
	c, err := DialMemcache(p.Addr, time.Second)
	if err == nil {
		var got map[string][]byte
		got, err = c.GetMulti([]string{p.Key}, time.Second)
		c.Close()
		if err == nil && !bytes.Equal(got[p.Key], p.Want) {
			// memcached answers but lost the key: the service is back (empty).
			s.OK = true
			s.Err = "key missing"
		} else if err == nil {
			s.OK = true
		}
	}
	s.End = time.Now()
	if err != nil {
		s.Err = err.Error()
	}
	return s
}

// WaitAnswering waits until a request started after the last failure
// succeeds (the service answers again), or until timeout.
func (p *Probe) WaitAnswering(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		ok := false
		for i := len(p.samples) - 1; i >= 0; i-- {
			s := p.samples[i]
			if s.OK && s.Start.After(p.lastFailure) {
				ok = true
				break
			}
		}
		p.mu.Unlock()
		if ok {
			return true
		}
		time.Sleep(p.Interval)
	}
	return false
}

// Stop ends probing and analyses what the client saw.
func (p *Probe) Stop() ProbeResult {
	close(p.stop)
	// Let the current requests finish; a held request stalled beyond that
	// means the connection did not survive (as far as the client can tell).
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(p.Interval + p.Stall):
	}
	p.mu.Lock()
	survived := !p.heldDead && p.lastHeldOK && p.heldSince.IsZero()
	heldErr, diedAt := p.heldErr, p.heldDiedAt
	p.mu.Unlock()
	p.heldConn.Close() // unblocks a stalled read
	<-done
	if !survived && heldErr == "" {
		heldErr = "held connection stalled or returned wrong data at the end"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return analyse(p.start, p.samples, p.Stall, survived, heldErr, diedAt, p.heldLocal)
}

// Outage is a period during which the service did not answer the client.
type Outage struct {
	StartMS    int64 `json:"start_ms"` // since the probe started
	DurationMS int64 `json:"duration_ms"`
	Ended      bool  `json:"ended"` // false: still down when the probe stopped
}

// ProbeResult is what the host client saw during the scenario.
type ProbeResult struct {
	Requests           int      `json:"requests"`
	Failed             int      `json:"failed"`
	HeldRequests       int      `json:"held_requests"`
	ConnectionSurvived bool     `json:"connection_survived"`
	HeldLocalAddr      string   `json:"held_local_addr"`
	HeldError          string   `json:"held_error,omitempty"`
	HeldDiedMS         int64    `json:"held_died_ms,omitempty"`
	Outages            []Outage `json:"outages"`
	GapMS              int64    `json:"gap_ms"` // the longest outage
	MaxLatencyMS       int64    `json:"max_held_latency_ms"`
	// Started is the host time the probe started: every _ms field counts
	// from it.
	Started time.Time `json:"started"`
	// GapStartMS is when the longest outage began; FirstHeldAnswerMS and
	// FirstFreshAnswerMS when, after that, the held connection and a new
	// one first answered correctly (absent: they never did).
	GapStartMS         int64  `json:"gap_start_ms"`
	FirstHeldAnswerMS  *int64 `json:"first_held_answer_ms,omitempty"`
	FirstFreshAnswerMS *int64 `json:"first_fresh_answer_ms,omitempty"`
}

// analyse turns samples into outages. A request that failed, or answered
// later than stall, marks the service down from the moment it was sent; the
// first good answer after that marks it up again.
func analyse(start time.Time, samples []Sample, stall time.Duration, survived bool, heldErr string, diedAt time.Time, local string) ProbeResult {
	r := ProbeResult{ConnectionSurvived: survived, HeldError: heldErr, HeldLocalAddr: local, Outages: []Outage{}, Started: start}
	if !diedAt.IsZero() {
		r.HeldDiedMS = diedAt.Sub(start).Milliseconds()
	}
	type event struct {
		t  time.Time
		up bool
	}
	var ev []event
	for _, s := range samples {
		r.Requests++
		if s.Held {
			r.HeldRequests++
			if l := s.End.Sub(s.Start).Milliseconds(); l > r.MaxLatencyMS && s.OK {
				r.MaxLatencyMS = l
			}
		}
		slow := s.End.Sub(s.Start) > stall
		if !s.OK {
			r.Failed++
		}
		if !s.OK || slow {
			ev = append(ev, event{t: s.Start, up: false})
		}
		if s.OK {
			ev = append(ev, event{t: s.End, up: true})
		}
	}
	sort.SliceStable(ev, func(i, j int) bool { return ev[i].t.Before(ev[j].t) })
	down := false
	var since time.Time
	for _, e := range ev {
		switch {
		case !e.up && !down:
			down, since = true, e.t
		case e.up && down:
			down = false
			r.Outages = append(r.Outages, Outage{StartMS: since.Sub(start).Milliseconds(), DurationMS: e.t.Sub(since).Milliseconds(), Ended: true})
		}
	}
	if down {
		end := since
		if len(samples) > 0 {
			end = samples[len(samples)-1].End
		}
		r.Outages = append(r.Outages, Outage{StartMS: since.Sub(start).Milliseconds(), DurationMS: end.Sub(since).Milliseconds()})
	}
	for _, o := range r.Outages {
		if o.DurationMS > r.GapMS {
			r.GapMS, r.GapStartMS = o.DurationMS, o.StartMS
		}
	}
	if r.GapMS > 0 {
		r.FirstHeldAnswerMS, r.FirstFreshAnswerMS = firstAnswers(start, samples, start.Add(time.Duration(r.GapStartMS)*time.Millisecond))
	}
	return r
}

// firstAnswers finds when, after from, the held connection and a new
// connection first answered correctly. A held request sent before from and
// answered after it counts: that is a connection that paused and went on.
func firstAnswers(start time.Time, samples []Sample, from time.Time) (held, fresh *int64) {
	for _, s := range samples {
		if !s.OK || !s.End.After(from) {
			continue
		}
		ms := s.End.Sub(start).Milliseconds()
		switch {
		case s.Held && (held == nil || ms < *held):
			held = &ms
		case !s.Held && !s.Start.Before(from) && (fresh == nil || ms < *fresh):
			fresh = &ms
		}
	}
	return held, fresh
}
