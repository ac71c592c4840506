package update

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/seamless-linux/seamless/internal/bytesize"
	"github.com/seamless-linux/seamless/internal/config"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/kernel"
	"github.com/seamless-linux/seamless/internal/kexec"
	"github.com/seamless-linux/seamless/internal/logind"
	"github.com/seamless-linux/seamless/internal/units"
)

// Options are the choices of `seamless update`.
type Options struct {
	Kernel  string // release or path; empty: the newest installed
	Initrd  string
	Append  string
	Boot    string // /boot
	Config  config.Config
	Out     io.Writer
	DryRun  bool // stop after the preflight, start nothing
	Confirm func(question string) bool
	// IgnoreInhibitors goes ahead although a program holds a blocking
	// shutdown inhibitor (as `systemctl reboot --ignore-inhibitors`).
	IgnoreInhibitors bool
	// Progress, if set, is told of each step: its name, the fraction of
	// the preparation done, and a line for people.
	Progress func(phase string, fraction float64, message string)
	// Arm prepares everything and leaves the kernel loaded, but starts
	// nothing: the next kexec of the system (kexec.target, which is what
	// `shutdown -r` starts while a kernel is loaded) is the update.
	Arm bool
}

// Phases of Update, as Progress names them.
const (
	PhaseKernel    = "kernel"     // the target kernel and its command line
	PhaseInhibit   = "inhibitors" // logind's shutdown inhibitors
	PhaseLoad      = "kexec-load" // the test load of the new kernel
	PhasePlan      = "plan"       // which units are carried
	PhaseStore     = "store"      // where the image will go
	PhasePlanned   = "planned"    // everything checked: the update can start
	PhaseSwitching = "switching"  // kexec.target started: the system goes down
)

// Update prepares and starts a seamless update: plan, preflight (kernel,
// RAM, a test load of the kernel, which also stays loaded so that a failed
// checkpoint still ends in the new kernel, as a plain reboot would), the
// intent, the shutdown ordering, and kexec.target.
func Update(ctx context.Context, o Options) error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	say := func(format string, a ...any) { fmt.Fprintf(o.Out, format+"\n", a...) }
	step := func(phase string, fraction float64, format string, a ...any) {
		if o.Progress != nil {
			o.Progress(phase, fraction, fmt.Sprintf(format, a...))
		}
	}
	from := kernel.Running()
	k, err := kernel.Pick(o.Boot, o.Kernel, o.Initrd, from)
	if err != nil {
		return err
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	cl, err := kernel.Cmdline(contract.WithoutKmodReservations(string(cmdline)), o.Append)
	if err != nil {
		return fmt.Errorf("--append: %w", err)
	}
	say("update %s -> %s", from, k.Release)
	initrdKmod := false
	if o.Initrd == "" {
		r, why := restorerFor(o.Config, k.Release, cl)
		switch {
		case r.path != "":
			k.Initrd, initrdKmod = r.path, r.kmod
			say("  restorer initramfs (initrd = %s in seamless.conf): %s", o.Config.Initrd, r.what)
		case why != "":
			say("  restorer initramfs not used (initrd = %s): %s; the kernel's own initrd boots the update", o.Config.Initrd, why)
		}
	}
	say("  kernel %s, initrd %s", k.Image, k.Initrd)
	say("  command line: %s", cl)
	step(PhaseKernel, 0.1, "update %s -> %s", from, k.Release)
	if why := inhibitorsSkipped(o); why != "" {
		step(PhaseInhibit, 0.2, "%s", why)
	} else if err := checkInhibitors(ctx); err != nil {
		return err
	} else {
		step(PhaseInhibit, 0.2, "no shutdown inhibitor blocks the update")
	}

	st := kexec.Probe()
	if err := st.Problem(); err != nil {
		return err
	}
	if st.SecureBoot || st.Lockdown != "none" {
		say("  Secure Boot %v, lockdown %s: the kernel must be signed by a trusted key", st.SecureBoot, st.Lockdown)
	}

	// Test-load the kernel: it must load, and stays loaded as the fallback.
	if err := loadKernel(k, cl, nil); err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	say("  kexec test load: ok")
	step(PhaseLoad, 0.5, "kernel %s loaded for kexec", k.Release)
	if err := ctx.Err(); err != nil {
		kexec.Unload()
		return err
	}
	plans, err := Plan(ctx, o.Config, nil)
	if err != nil {
		kexec.Unload()
		return err
	}
	var carry []string
	cgroups, stopped := map[string]string{}, map[string]string{}
	start := map[string]units.Start{}
	var need int64
	for _, p := range plans {
		if p.Carry {
			carry = append(carry, p.Name)
			cgroups[p.Name] = p.ControlGroup
			start[p.Name] = p.Start
			need += p.Report.ImageBytes
			say("  carry %s (%s, about %s)", p.Name, bytesize.Count(len(p.Report.Processes), "process", "processes"), bytesize.Format(p.Report.ImageBytes))
		} else {
			stopped[p.Name] = p.Reason
			say("  stop  %s: %s", p.Name, p.Reason)
		}
	}
	if len(plans) == 0 {
		say("  no unit is preserved (add X-SeamlessPreserve=yes in a drop-in, or preserve = in seamless.conf): a plain kexec")
	}
	var store string
	if len(carry) > 0 {
		var why string
		store, why, err = chooseStore(o.Config, need, fileSize(k.Initrd), measure(o.Config, from, k.Release))
		if err != nil {
			kexec.Unload()
			return err
		}
		say("  image store: %s", why)
	}
	step(PhasePlan, 0.7, "%d units carried, %d stopped", len(carry), len(stopped))
	if store != "" {
		step(PhaseStore, 0.8, "image store: %s", store)
	}
	step(PhasePlanned, 0.9, "ready to switch to %s", k.Release)

	if o.DryRun {
		return kexec.Unload()
	}
	// The last moment a cancel is heard: once kexec.target is started the
	// system goes down.
	if err := ctx.Err(); err != nil {
		kexec.Unload()
		return err
	}
	if o.Confirm != nil && !o.Confirm(fmt.Sprintf("Switch to %s now? Services not carried are stopped.", k.Release)) {
		kexec.Unload()
		return fmt.Errorf("cancelled")
	}
	in := &contract.Intent{From: from, Kernel: k, Cmdline: cl, Units: carry, Cgroups: cgroups, Start: start, Stopped: stopped, Store: store, ImageBytes: need, DiskDir: o.Config.DiskDir, Requested: time.Now(), Armed: o.Arm, InitrdKmod: initrdKmod}
	if err := contract.WriteIntent(in); err != nil {
		return fmt.Errorf("record the update: %w", err)
	}
	if !o.Arm {
		if err := contract.WriteStatus(&contract.Status{State: contract.UpdatePending, From: from, To: k.Release, Store: store}); err != nil {
			return err
		}
	}
	if err := startKexec(ctx, carry, !o.Arm, say, func() {
		step(PhaseSwitching, 1, "switching to %s: the system goes down now", k.Release)
	}); err != nil {
		os.Remove(contract.IntentPath())
		return err
	}
	return nil
}

// systemBusSocket is the system bus's default address (D-Bus
// specification); DBUS_SYSTEM_BUS_ADDRESS overrides it.
const systemBusSocket = "/run/dbus/system_bus_socket"

// checkInhibitors refuses an update that a blocking shutdown inhibitor
// holds off.
// inhibitorsSkipped says why logind's shutdown inhibitors are not checked
// for o, or "" when they are.
func inhibitorsSkipped(o Options) string {
	switch {
	case o.IgnoreInhibitors:
		return "shutdown inhibitors ignored"
	case o.Arm:
		// Arming shuts nothing down: the reboot that later applies it is
		// logind's to refuse while an inhibitor blocks. Armed from APT's
		// hook, APT's own inhibitor is still held.
		return "shutdown inhibitors are checked by the reboot that applies it"
	}
	return ""
}

func checkInhibitors(ctx context.Context) error {
	if _, err := os.Stat(systemBusSocket); os.IsNotExist(err) && os.Getenv("DBUS_SYSTEM_BUS_ADDRESS") == "" {
		return nil // no system bus: no logind, nobody can hold an inhibitor
	}
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("connect to the system bus to check inhibitors: %w", err)
	}
	defer conn.Close()
	return logind.CheckShutdown(ctx, conn)
}

// startKexec orders seamless-checkpoint.service after the carried units
// (so that at shutdown it stops, and checkpoints, before them), makes sure
// it is active, and, with start, starts kexec.target with
// replace-irreversibly (switching is called just before).
func startKexec(ctx context.Context, carry []string, start bool, say func(string, ...any), switching func()) error {
	conn, err := sd.NewSystemConnectionContext(ctx)
	if err != nil {
		return fmt.Errorf("connect to systemd: %w", err)
	}
	defer conn.Close()
	dropin := orderDropIn
	body := "# Written by seamless update: stop (and checkpoint) before the carried units.\n[Unit]\n"
	for _, u := range carry {
		body += "After=" + u + "\n"
	}
	if err := os.MkdirAll(filepath.Dir(dropin), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(dropin, []byte(body), 0o644); err != nil {
		return err
	}
	if err := conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("systemd daemon-reload: %w", err)
	}
	if err := runJob(ctx, conn.StartUnitContext, "seamless-checkpoint.service", "replace"); err != nil {
		return err
	}
	if !start {
		say("armed: the next kexec of this system (shutdown -r, systemctl kexec) carries the services")
		return nil
	}
	say("starting kexec.target: the system goes down now")
	switching()
	return runJob(ctx, conn.StartUnitContext, "kexec.target", "replace-irreversibly")
}

func runJob(ctx context.Context, start func(context.Context, string, string, chan<- string) (int, error), unit, mode string) error {
	done := make(chan string, 1)
	if _, err := start(ctx, unit, mode, done); err != nil {
		return fmt.Errorf("start %s: %w", unit, err)
	}
	if unit == "kexec.target" {
		return nil // the job completes as the system goes down
	}
	select {
	case r := <-done:
		if r != "done" {
			return fmt.Errorf("start %s: %s", unit, r)
		}
	case <-time.After(30 * time.Second):
		return fmt.Errorf("start %s: timed out", unit)
	}
	return nil
}
