package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Probe key and value, stored by memcached-fill and probe-start.
const probeKey = "seamless:probe"

var probeValue = []byte("seamless-probe-value")

// RunOptions tunes a scenario run.
type RunOptions struct {
	Repo string    // repository root: its commands are built into the guest ("" to skip)
	Keep bool      // keep the run's disk overlay
	Out  io.Writer // progress
	// Forwards are guest TCP ports forwarded from 127.0.0.1 by name,
	// besides memcached's.
	Forwards map[string]int
	// Capture records the guest's network traffic, as QEMU's user network
	// sees it, into net.pcap in the run directory.
	Capture bool
	// NoInstall leaves the seamless package uninstalled on the payload.
	NoInstall bool
	// PayloadScript is the scenario's payload_script: run with the
	// payload's directory while the payload is built ("" for none).
	PayloadScript string
}

// runner holds the state of one scenario run.
type runner struct {
	sc    *Scenario
	g     *Guest
	rep   *Report
	out   io.Writer
	probe *Probe
	holds []held
}

// RunScenario boots a fresh copy of img (a qcow2 overlay: the cached image is
// never modified), runs the scenario and returns its report. The error is
// non-nil when the run could not complete or an expectation failed.
func RunScenario(ctx context.Context, cfg Config, img *Image, sc *Scenario, opt RunOptions) (*Report, error) {
	if sc.MemoryMB > 0 {
		cfg.MemoryMB = sc.MemoryMB
	}
	cfg.LowMemoryMB = sc.LowMemoryMB
	runDir, err := NewRunDir(cfg, sc.Name)
	if err != nil {
		return nil, err
	}
	rep := &Report{Scenario: sc.Name, Description: sc.Description, Image: img.Hash, RunDir: runDir,
		SerialLog: filepath.Join(runDir, "serial.log"), Started: time.Now(), Saved: map[string]string{},
		KeysStored: -1, KeysBefore: -1, KeysAfter: -1}
	err = runScenario(ctx, cfg, img, sc, opt, rep)
	rep.Seconds = time.Since(rep.Started).Seconds()
	if err == nil {
		rep.Checks = checkExpect(sc.Expect, rep)
		for _, c := range rep.Checks {
			if !c.OK && err == nil {
				err = fmt.Errorf("check %s failed: %s", c.Name, c.Detail)
			}
		}
	}
	if err != nil {
		rep.Error = err.Error()
	}
	rep.OK = err == nil
	if len(rep.Boots) > 1 || rep.Probe != nil {
		tl, terr := WriteTimeline(rep)
		if terr != nil {
			logf(opt.Out, "warning: timeline: %v", terr)
		}
		rep.Timeline = tl
	}
	if b, jerr := json.MarshalIndent(rep, "", "  "); jerr == nil {
		_ = os.WriteFile(filepath.Join(runDir, "report.json"), b, 0o600)
	}
	if !opt.Keep {
		_ = os.Remove(filepath.Join(runDir, "overlay.qcow2"))
		_ = os.Remove(filepath.Join(runDir, "payload.img"))
	}
	pruneRuns(filepath.Join(cfg.CacheDir, "runs"), 20)
	return rep, err
}

func runScenario(ctx context.Context, cfg Config, img *Image, sc *Scenario, opt RunOptions, rep *Report) error {
	out := opt.Out
	for _, h := range sc.Holds {
		if opt.Forwards == nil {
			opt.Forwards = map[string]int{}
		}
		opt.Forwards[h.Name] = h.Port
	}
	opt.NoInstall = sc.NoInstall
	opt.PayloadScript = sc.PayloadScript
	// The scenario's time counts from QEMU's start: waiting for another
	// engineer's guest to end (the guest lock) must not eat into it.
	g, boot, err := BootGuest(ctx, cfg, img, rep.RunDir, opt)
	if g != nil {
		defer g.VM.Kill()
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, g.VM.Started.Add(sc.Timeout.Duration))
		defer cancel()
	}
	if g != nil && g.Payload != nil {
		rep.Payload = g.Payload
	}
	if err != nil {
		return err
	}
	r := &runner{sc: sc, g: g, rep: rep, out: out}
	defer func() {
		for _, h := range r.holds { // a failed run: close what the host holds
			h.close()
		}
		if r.probe != nil { // a failed run: stop the client anyway
			res := r.probe.Stop()
			rep.Probe = &res
		}
	}()
	rep.Boots = append(rep.Boots, boot)
	if want := sc.Expect.KernelBefore; want != "" && boot.Release != want {
		return r.g.Fail("first boot", fmt.Errorf("guest booted %s, scenario expects %s", boot.Release, want))
	}
	for i, st := range sc.Steps {
		if err := r.step(ctx, i, st); err != nil {
			return err
		}
	}
	return nil
}

// step runs one step and records it.
func (r *runner) step(ctx context.Context, i int, st Step) error {
	what := "host: " + st.Host
	if st.Guest != "" {
		what = "guest: " + short(st.Guest)
	}
	logf(r.out, "step %d/%d [%s] %s", i+1, len(r.sc.Steps), st.Phase, what)
	t0 := time.Now()
	sr := StepResult{Phase: st.Phase, What: what, Started: t0, Reboots: st.Reboots}
	var err error
	if st.Guest != "" {
		err = r.guestStep(ctx, st, &sr)
	} else {
		err = r.hostStep(ctx, st)
	}
	sr.Seconds = time.Since(t0).Seconds()
	if err != nil {
		sr.Error = err.Error()
		err = r.g.Fail(fmt.Sprintf("step %d [%s] %s", i+1, st.Phase, what), err)
	}
	r.rep.Steps = append(r.rep.Steps, sr)
	return err
}

func (r *runner) guestStep(ctx context.Context, st Step, sr *StepResult) error {
	if st.Reboots {
		return r.rebootStep(ctx, st)
	}
	res, err := r.g.Run(ctx, st.Guest, st.Timeout.Duration)
	sr.ExitCode, sr.Output = res.ExitCode, lastLines(res.Stdout+res.Stderr, 10)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 && !st.AllowFail {
		return fmt.Errorf("exit status %d:\n%s", res.ExitCode, lastLines(res.Stdout+res.Stderr, 20))
	}
	if st.Save != "" {
		r.rep.Saved[st.Save] = trimSpace(res.Stdout)
	}
	return nil
}

// rebootStep starts a command that restarts the guest, then waits for the
// new boot (another boot_id) and records it.
func (r *runner) rebootStep(ctx context.Context, st Step) error {
	before := r.rep.After().BootID
	// The old boot's clock, as close to its end as can be.
	if c, err := r.g.SampleClock(ctx); err == nil {
		r.rep.Boots[len(r.rep.Boots)-1].Clock = c
	} else {
		logf(r.out, "warning: no clock sample before the restart: %v", err)
	}
	t0 := time.Now()
	pid, err := r.g.VM.Agent.Start(ctx, []string{"/bin/sh", "-c", st.Guest}, guestEnv)
	if err != nil {
		logf(r.out, "guest agent went away while starting the command (%v): waiting for the new boot", err)
	} else {
		// A command that fails (nothing loaded for kexec, a package that
		// does not install, …) is an error, however long it ran first; the
		// agent disappearing is the expected end, and so is a command that
		// succeeds before the machine goes down.
		deadline := time.Now().Add(st.Timeout.Duration)
		for wait := 200 * time.Millisecond; time.Now().Before(deadline); time.Sleep(wait) {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			done, res, err := r.g.VM.Agent.Status(sctx, pid)
			cancel()
			if err != nil {
				break
			}
			if done {
				if res.ExitCode != 0 {
					return fmt.Errorf("exit status %d: %s", res.ExitCode, lastLines(res.Stdout+res.Stderr, 20))
				}
				break
			}
			if time.Since(t0) > 15*time.Second {
				wait = time.Second // a long command (a package install): ask less often
			}
		}
	}
	boot, err := r.g.WaitBoot(ctx, st.Timeout.Duration, before, t0)
	if err != nil {
		return err
	}
	r.rep.Boots = append(r.rep.Boots, boot)
	return nil
}

func (r *runner) addr() string {
	return fmt.Sprintf("127.0.0.1:%d", r.g.VM.HostPort("memcached"))
}

func (r *runner) hostStep(ctx context.Context, st Step) error {
	ctx, cancel := context.WithTimeout(ctx, st.Timeout.Duration)
	defer cancel()
	mc := r.sc.Memcached
	switch st.Host {
	case "sleep":
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(st.Duration.Duration):
			return nil
		}
	case "wait-memcached":
		c, err := waitMemcached(ctx, r.addr())
		if err == nil {
			c.Close()
		}
		return err
	case "memcached-fill":
		c, err := waitMemcached(ctx, r.addr())
		if err != nil {
			return err
		}
		defer c.Close()
		t0 := time.Now()
		if err := c.Fill(ctx, mc.Keys, mc.ValueSize); err != nil {
			return err
		}
		if err := c.Set(probeKey, probeValue, 10*time.Second); err != nil {
			return err
		}
		r.rep.KeysStored = mc.Keys
		n, err := c.Count(ctx, mc.Keys, mc.ValueSize)
		if err != nil {
			return err
		}
		r.rep.KeysBefore = n
		logf(r.out, "stored %d keys, %d read back (%.1f s)", mc.Keys, n, time.Since(t0).Seconds())
		if n != mc.Keys {
			return fmt.Errorf("only %d of %d keys read back after filling", n, mc.Keys)
		}
		return nil
	case "memcached-count":
		c, err := waitMemcached(ctx, r.addr())
		if err != nil {
			return err
		}
		defer c.Close()
		n, err := c.Count(ctx, mc.Keys, mc.ValueSize)
		if err != nil {
			return err
		}
		r.rep.KeysAfter = n
		logf(r.out, "%d of %d keys present", n, mc.Keys)
		return nil
	case "probe-start":
		c, err := waitMemcached(ctx, r.addr())
		if err != nil {
			return err
		}
		err = c.Set(probeKey, probeValue, 10*time.Second)
		c.Close()
		if err != nil {
			return err
		}
		p := &Probe{Addr: r.addr(), Key: probeKey, Want: probeValue,
			Interval: time.Duration(r.sc.Probe.IntervalMS) * time.Millisecond,
			Stall:    time.Duration(r.sc.Probe.StallMS) * time.Millisecond}
		if err := p.Start(); err != nil {
			return err
		}
		r.probe = p
		logf(r.out, "host client holds connection %s -> %s, get every %s", p.heldLocal, p.Addr, p.Interval)
		return nil
	case "serial-contains":
		data, err := os.ReadFile(r.g.VM.SerialLog)
		if err != nil {
			return err
		}
		if !bytes.Contains(data, []byte(st.Match)) {
			return fmt.Errorf("the serial console never printed %q", st.Match)
		}
		return nil
	case "holds-start":
		return r.holdsStart(ctx)
	case "holds-check":
		return r.holdsCheck(ctx)
	case "probe-stop":
		answering := r.probe.WaitAnswering(time.Until(deadlineOf(ctx)))
		res := r.probe.Stop()
		r.probe = nil
		r.rep.Probe = &res
		logf(r.out, "host client: gap %d ms, connection survived: %s, %d requests, %d failed",
			res.GapMS, yesNo(res.ConnectionSurvived), res.Requests, res.Failed)
		if !answering {
			return errors.New("memcached did not answer the host client again before the step timeout")
		}
		return nil
	}
	return fmt.Errorf("unknown host action %q", st.Host)
}

// waitMemcached connects to memcached, retrying until it answers or ctx ends.
func waitMemcached(ctx context.Context, addr string) (*MemcacheConn, error) {
	var last error
	for {
		c, err := DialMemcache(addr, 2*time.Second)
		if err == nil {
			if _, err = c.Stat("pid", 2*time.Second); err == nil {
				return c, nil
			}
			c.Close()
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("memcached at %s does not answer: %w", addr, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
