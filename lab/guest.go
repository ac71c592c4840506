package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// guestEnv is the environment of every command run in the guest.
var guestEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive",
}

// Guest drives a booted VM through its guest agent.
type Guest struct {
	VM      *VM
	Out     io.Writer
	Payload []string // what BootGuest built and installed
}

// BootInfo describes one boot of the guest.
type BootInfo struct {
	Release     string  `json:"release"`      // uname -r
	Version     string  `json:"proc_version"` // /proc/version
	BootID      string  `json:"boot_id"`
	Cmdline     string  `json:"cmdline"`
	AgentSecs   float64 `json:"agent_seconds"`      // from start (power-on or reboot request) to agent answering
	ReadySecs   float64 `json:"multi_user_seconds"` // to systemctl is-system-running --wait returning
	SystemState string  `json:"system_state"`
	Analyze     string  `json:"systemd_analyze"`
	// Clock ties the boot's kernel timestamps to the host's clock (taken
	// once it is up, and again just before a step that restarts it).
	Clock *ClockSample `json:"clock,omitempty"`
	// UnitJournal is what systemd logged about memcached.service in this
	// boot, with monotonic timestamps (journalctl -o short-monotonic).
	UnitJournal string `json:"unit_journal,omitempty"`
}

// guestFailure is an error that carries the tail of the serial console.
type guestFailure struct {
	what, log, tail string
	err             error
}

func (f *guestFailure) Error() string {
	return fmt.Sprintf("%s: %v\n--- serial console, last 40 lines (%s) ---\n%s\n--- end of serial console ---",
		f.what, f.err, f.log, f.tail)
}

func (f *guestFailure) Unwrap() error { return f.err }

// Fail wraps err with what failed and the tail of the serial console (once:
// an error that already carries it is only prefixed).
func (g *Guest) Fail(what string, err error) error {
	var f *guestFailure
	if errors.As(err, &f) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return &guestFailure{what: what, err: err, log: g.VM.SerialLog, tail: g.VM.SerialTail(40)}
}

// WaitBoot waits for the guest agent of a boot other than notBootID, then for
// multi-user (systemctl is-system-running --wait), and describes the boot.
// Times are measured from since (QEMU start when zero).
func (g *Guest) WaitBoot(ctx context.Context, timeout time.Duration, notBootID string, since time.Time) (BootInfo, error) {
	if since.IsZero() {
		since = g.VM.Started
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var info BootInfo
	for {
		select {
		case <-g.VM.Exited():
			return info, g.Fail("waiting for the guest to boot", fmt.Errorf("QEMU exited: %v", g.VM.ExitErr()))
		case <-ctx.Done():
			return info, g.Fail("waiting for the guest to boot", fmt.Errorf("no guest agent after %s (guest did not boot?)", timeout))
		default:
		}
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		err := g.VM.Agent.Ping(pctx)
		pcancel()
		if err == nil {
			id, err := g.Output(ctx, "cat /proc/sys/kernel/random/boot_id", 30*time.Second)
			if err == nil && id != notBootID {
				info.BootID = id
				break
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	info.AgentSecs = time.Since(since).Seconds()
	res, err := g.Run(ctx, "systemctl is-system-running --wait", time.Until(deadlineOf(ctx)))
	if err != nil {
		return info, g.Fail("waiting for multi-user", err)
	}
	info.SystemState = strings.TrimSpace(res.Stdout)
	info.ReadySecs = time.Since(since).Seconds()
	if info.SystemState != "running" {
		failed, _ := g.Output(ctx, "systemctl --failed --no-legend --plain | cut -d' ' -f1 | xargs", 30*time.Second)
		logf(g.Out, "warning: system state %q, failed units: %s", info.SystemState, failed)
	}
	for _, q := range []struct {
		dst *string
		cmd string
	}{
		{&info.Release, "uname -r"},
		{&info.Version, "cat /proc/version"},
		{&info.Cmdline, "cat /proc/cmdline"},
		{&info.Analyze, "systemd-analyze time | head -1"},
	} {
		if *q.dst, err = g.Output(ctx, q.cmd, 30*time.Second); err != nil {
			return info, g.Fail("describe the boot", err)
		}
	}
	if info.Clock, err = g.SampleClock(ctx); err != nil {
		logf(g.Out, "warning: no clock sample of this boot: %v", err)
	}
	info.UnitJournal, _ = g.Output(ctx, "journalctl -b -o short-monotonic --no-pager -u memcached.service | grep -E 'Starting|Started|Stopping|Stopped|Failed|asking the restore daemon' | head -20", 30*time.Second)
	logf(g.Out, "guest up: %s, agent after %.1f s, multi-user (%s) after %.1f s", info.Release, info.AgentSecs, info.SystemState, info.ReadySecs)
	return info, nil
}

func deadlineOf(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(time.Hour)
	}
	return d
}

// Run runs a shell script in the guest with a timeout enforced in the guest
// (timeout(1), exit code 124) and, as a backstop, on the host.
func (g *Guest) Run(ctx context.Context, script string, timeout time.Duration) (ExecResult, error) {
	if timeout <= 0 {
		return ExecResult{}, errors.New("no time left to run a guest command")
	}
	secs := strconv.Itoa(int(timeout.Seconds() + 0.999))
	argv := []string{"/usr/bin/timeout", "-k", "5", secs, "/bin/sh", "-c", script}
	hctx, cancel := context.WithTimeout(ctx, timeout+20*time.Second)
	defer cancel()
	res, err := g.VM.Agent.Exec(hctx, argv, guestEnv)
	if err != nil {
		return res, fmt.Errorf("guest command %q: %w", short(script), err)
	}
	if res.ExitCode == 124 {
		return res, fmt.Errorf("guest command %q timed out after %s\n%s", short(script), timeout, lastLines(res.Stdout+res.Stderr, 15))
	}
	return res, nil
}

// Output runs a command that must succeed and returns its trimmed stdout.
func (g *Guest) Output(ctx context.Context, script string, timeout time.Duration) (string, error) {
	res, err := g.Run(ctx, script, timeout)
	if err != nil {
		return "", err
	}
	if res.ExitCode != 0 {
		return "", fmt.Errorf("guest command %q: exit %d: %s", short(script), res.ExitCode, lastLines(res.Stderr+res.Stdout, 15))
	}
	return strings.TrimSpace(res.Stdout), nil
}

func short(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
