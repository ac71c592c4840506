package dbusapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/config"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/kernel"
	"github.com/seamless-linux/seamless/internal/logind"
	"github.com/seamless-linux/seamless/internal/trigger"
	"github.com/seamless-linux/seamless/internal/update"
)

// System is the Backend of a real machine: the same plan and update as the
// command line, and the state files they leave.
type System struct {
	// Conn is the system bus, to ask systemd about the checkpoint unit.
	Conn *dbus.Conn
	// ConfigPath is seamless.conf; Boot holds the kernels.
	ConfigPath, Boot string
}

// Plan implements Backend.
func (b System) Plan(ctx context.Context) ([]Verdict, error) {
	cfg, err := config.Load(b.ConfigPath)
	if err != nil {
		return nil, err
	}
	plans, err := update.Plan(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	out := make([]Verdict, 0, len(plans))
	for _, p := range plans {
		v := Verdict{Unit: p.Name, Carry: p.Carry, Reason: p.Reason, PreservedBy: p.Why}
		if p.Report != nil && p.Report.ImageBytes > 0 {
			v.ImageBytes = uint64(p.Report.ImageBytes)
		}
		out = append(out, v)
	}
	return out, nil
}

// Update implements Backend: update.Update, confirmed by the caller's
// authorisation.
func (b System) Update(ctx context.Context, o UpdateOptions, progress func(string, float64, string)) error {
	cfg, err := config.Load(b.ConfigPath)
	if err != nil {
		return err
	}
	if !o.DryRun {
		// As for the command: a kexec in the middle of a package run
		// would leave dpkg's work half done.
		release, err := trigger.HoldPackageLocks(ctx, func(holder string) {
			if progress != nil {
				progress("packages", 0, "waiting for "+holder+" to finish (package manager lock)")
			}
		})
		if err != nil {
			return err
		}
		defer release()
	}
	err = update.Update(ctx, update.Options{Kernel: o.Kernel, Boot: b.Boot, Config: cfg, DryRun: o.DryRun,
		IgnoreInhibitors: o.IgnoreInhibitors, Progress: progress})
	var inh *logind.InhibitedError
	switch {
	case errors.Is(err, kernel.ErrNoNewer):
		return fmt.Errorf("%w: %v", ErrNoNewerKernel, err)
	case errors.As(err, &inh):
		return fmt.Errorf("%w: %v", ErrBlocked, err)
	}
	return err
}

// Snapshot implements Backend.
func (b System) Snapshot(ctx context.Context) Snapshot {
	s := Snapshot{RunningKernel: kernel.Running(), State: StateIdle}
	if ks, err := kernel.Installed(b.Boot); err == nil && len(ks) > 0 && kernel.CompareVersions(ks[0].Release, s.RunningKernel) > 0 {
		s.PendingKernel = ks[0].Release
	}
	st, _ := contract.ReadStatus()
	if st != nil {
		s.Last = LastUpdate{From: st.From, To: st.To, Result: st.State, Error: st.Error,
			Timestamp: uint64(st.Updated.UnixMicro())}
		for _, u := range st.Units {
			s.Last.Units = append(s.Last.Units, UnitOutcome{Unit: u.Unit, Outcome: u.Outcome, MainPID: uint32(max(u.MainPID, 0)), Reason: u.Reason})
		}
	}
	in, _ := contract.ReadIntent()
	switch {
	case in != nil && b.unitState(ctx, "seamless-checkpoint.service") == "deactivating":
		s.State = StateCheckpointing
	case in != nil && in.Armed:
		s.State = StateArmed // the next reboot is the update
	case in != nil:
		s.State = StateSwitching // kexec.target is starting
	case st != nil && st.State == contract.UpdateHandedOver && st.From == s.RunningKernel:
		s.State = StateSwitching // the image is handed over, kexec follows
	case restoring():
		s.State = StateRestoring
	}
	return s
}

// restoring reports whether this boot's restore daemon still has units to
// restore.
func restoring() bool {
	live, err := contract.ReadState()
	if err != nil || unix.Kill(live.Daemon, 0) != nil {
		return false
	}
	for _, u := range live.Units {
		if u.Waiting() {
			return true
		}
	}
	return false
}

// unitState is a unit's ActiveState, "" if systemd cannot say.
func (b System) unitState(ctx context.Context, unit string) string {
	if b.Conn == nil {
		return ""
	}
	var path dbus.ObjectPath
	sd := b.Conn.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1")
	if err := sd.CallWithContext(ctx, "org.freedesktop.systemd1.Manager.GetUnit", 0, unit).Store(&path); err != nil {
		return ""
	}
	v, err := b.Conn.Object("org.freedesktop.systemd1", path).GetProperty("org.freedesktop.systemd1.Unit.ActiveState")
	if err != nil {
		return ""
	}
	state, _ := v.Value().(string)
	return state
}
