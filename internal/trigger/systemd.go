package trigger

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	sd "github.com/coreos/go-systemd/v22/dbus"
)

// The units that apply an update on their own.
const (
	// ApplyService runs `seamless apply`.
	ApplyService = "seamless-apply.service"
	// ApplyTimer starts ApplyService at the time of an "apply = HH:MM"
	// policy; its OnCalendar= is a runtime drop-in written by Schedule.
	ApplyTimer = "seamless-apply.timer"
)

// TimerDropIn is the runtime drop-in that gives ApplyTimer its time.
var TimerDropIn = "/run/systemd/system/" + ApplyTimer + ".d/50-apply.conf"

// StartApply queues a start of ApplyService and returns at once: the
// service waits for apt and dpkg to be done.
func StartApply(ctx context.Context) error {
	conn, err := sd.NewSystemConnectionContext(ctx)
	if err != nil {
		return fmt.Errorf("connect to systemd: %w", err)
	}
	defer conn.Close()
	if _, err := conn.StartUnitContext(ctx, ApplyService, "replace", nil); err != nil {
		return fmt.Errorf("start %s: %w", ApplyService, err)
	}
	return nil
}

// Schedule sets ApplyTimer to go off daily at hour:minute, local time,
// and (re)starts it. The drop-in is in /run: after a reboot the kernel is
// no longer pending.
func Schedule(ctx context.Context, hour, minute int) error {
	body := fmt.Sprintf("# Written by seamless: apply = %02d:%02d in /etc/seamless/seamless.conf.\n[Timer]\nOnCalendar=\nOnCalendar=*-*-* %02d:%02d:00\n", hour, minute, hour, minute)
	if err := os.MkdirAll(filepath.Dir(TimerDropIn), 0o755); err != nil {
		return fmt.Errorf("schedule the update: %w", err)
	}
	if err := os.WriteFile(TimerDropIn, []byte(body), 0o644); err != nil {
		return fmt.Errorf("schedule the update: %w", err)
	}
	conn, err := sd.NewSystemConnectionContext(ctx)
	if err != nil {
		return fmt.Errorf("connect to systemd: %w", err)
	}
	defer conn.Close()
	if err := conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("systemd daemon-reload: %w", err)
	}
	done := make(chan string, 1)
	if _, err := conn.RestartUnitContext(ctx, ApplyTimer, "replace", done); err != nil {
		return fmt.Errorf("start %s: %w", ApplyTimer, err)
	}
	select {
	case r := <-done:
		if r != "done" {
			return fmt.Errorf("start %s: %s", ApplyTimer, r)
		}
	case <-ctx.Done():
		return fmt.Errorf("start %s: %w", ApplyTimer, ctx.Err())
	}
	return nil
}

// Unschedule stops ApplyTimer and removes its time. It reports whether the
// timer was set.
func Unschedule(ctx context.Context) (bool, error) {
	if err := os.Remove(TimerDropIn); err != nil {
		if os.IsNotExist(err) {
			return false, nil
		}
		return false, fmt.Errorf("unschedule the update: %w", err)
	}
	conn, err := sd.NewSystemConnectionContext(ctx)
	if err != nil {
		return true, fmt.Errorf("connect to systemd: %w", err)
	}
	defer conn.Close()
	if _, err := conn.StopUnitContext(ctx, ApplyTimer, "replace", nil); err != nil {
		return true, fmt.Errorf("stop %s: %w", ApplyTimer, err)
	}
	if err := conn.ReloadContext(ctx); err != nil {
		return true, fmt.Errorf("systemd daemon-reload: %w", err)
	}
	return true, nil
}
