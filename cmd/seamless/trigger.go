package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/seamless-linux/seamless/internal/bytesize"
	"github.com/seamless-linux/seamless/internal/config"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/kernel"
	"github.com/seamless-linux/seamless/internal/trigger"
	"github.com/seamless-linux/seamless/internal/update"
)

// The commands the package manager's hooks and the apply units run.

func runKernelInstalled(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("kernel-installed", "VERSION [IMAGE]",
		`Run by /etc/kernel/postinst.d/seamless when a kernel package is installed,
from inside dpkg: it only notes the kernel (APT's hook acts on it once dpkg
is done) and, when the kernel is newer than the running one, sets Debian's
reboot-required flag (/run/reboot-required and .pkgs). It never fails the
kernel's installation.`, stdout)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return fmt.Errorf("%w: need the kernel VERSION (and optionally its IMAGE)", errUsage)
	}
	if trigger.InChroot() {
		return nil // an image build: the running kernel is the builder's
	}
	running := kernel.Running()
	if err := trigger.Note(pos[0], os.Getenv("DPKG_MAINTSCRIPT_PACKAGE"), running); err != nil {
		return err
	}
	if kernel.CompareVersions(pos[0], running) > 0 {
		after := "the package manager is done" // kernel-install, from rpm's transaction
		if os.Getenv("DPKG_MAINTSCRIPT_PACKAGE") != "" {
			after = "apt and dpkg are done"
		}
		fmt.Fprintf(stdout, "seamless: kernel %s noted; seamless acts once %s\n", pos[0], after)
	}
	return nil
}

func runKernelRemoved(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("kernel-removed", "VERSION [IMAGE]",
		`Run by /etc/kernel/postrm.d/seamless when a kernel package is removed: an
update armed for that kernel is withdrawn (its files are going away).`, stdout)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return fmt.Errorf("%w: need the kernel VERSION (and optionally its IMAGE)", errUsage)
	}
	in, err := contract.ReadIntent()
	if err != nil || in == nil || !in.Armed || in.Kernel.Release != pos[0] {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := update.Cancel(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seamless: kernel %s is removed: the update to it is withdrawn\n", pos[0])
	return nil
}

func runAptHook(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("apt-hook", "",
		`Run by APT (DPkg::Post-Invoke in /etc/apt/apt.conf.d/70seamless) after each
dpkg run. When a kernel newer than the running one was installed, it shows
what a seamless update would carry and arms it (a reboot through
'shutdown -r' becomes the update), then acts as "apply =" in
`+configPath+` says: manual (the message), now (seamless-apply.service, which
waits for apt and dpkg to finish) or HH:MM (seamless-apply.timer).
Otherwise it does nothing.`, stdout)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	notes, err := trigger.TakeNotes()
	if err != nil || len(notes) == 0 {
		return err
	}
	if trigger.InChroot() || !trigger.Booted() {
		fmt.Fprintf(stdout, "seamless: kernel %s installed; nothing to do here: systemd does not run this system (a chroot or an image build)\n", strings.Join(notes, ", "))
		return nil
	}
	return actOnPending(stdout, "/boot", "", false)
}

// actOnPending is what the package managers' hooks do once their run is
// over: when a kernel newer than the running one is installed in boot, show
// what an update would carry, arm it and act as "apply =" says. With dry
// set it only shows: nothing is armed, loaded or started. manager names
// who the update waits for ("" for apt and dpkg).
func actOnPending(w io.Writer, boot, manager string, dry bool) error {
	k, err := trigger.Pending(boot)
	if errors.Is(err, trigger.ErrNoPending) {
		if dry {
			fmt.Fprintf(w, "seamless: dry run: %v\n", err)
		}
		return nil // an older kernel, or the running one again
	}
	if err != nil {
		return err
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return fmt.Errorf("kernel %s is not applied: %w", k.Release, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := pendingNote{Running: kernel.Running(), Kernel: k.Release, Apply: cfg.Apply, Manager: manager, DryRun: dry}
	n.Plans, n.PlanErr = update.Plan(ctx, cfg, nil)
	if !dry {
		n.ArmErr = update.Update(ctx, update.Options{Boot: boot, Config: cfg, Out: io.Discard, Arm: true})
		if h, m, ok := config.ApplyAt(cfg.Apply); ok {
			n.Next = trigger.NextAt(time.Now(), h, m)
			n.ScheduleErr = trigger.Schedule(ctx, h, m)
		} else if cfg.Apply == config.ApplyNow {
			n.ScheduleErr = trigger.StartApply(ctx)
		}
	}
	writePending(w, n)
	return nil
}

// dryRunEnv, set to 1 in the environment of dnf (which passes it to its
// hooks), makes dnf-hook show what it would do and do nothing: a test mode.
const dryRunEnv = "SEAMLESS_HOOK_DRY_RUN"

func runDnfHook(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dnf-hook", "[--installroot DIR] [--dry-run] [PACKAGE...]",
		`Run by dnf after a transaction that installed a kernel package: by dnf5's
actions plugin (/etc/dnf/libdnf5-plugins/actions.d/seamless.actions) and by
dnf4's plugin (dnf-plugins/seamless.py). When a kernel newer than the running
one is installed in /boot (vmlinuz-VERSION with initramfs-VERSION.img, or a
boot loader entry in /boot/loader/entries), it shows what a seamless update
would carry and arms it, then acts as "apply =" in `+configPath+` says, as
'seamless apt-hook' does for apt: manual (the message), now
(seamless-apply.service, which waits until dnf and rpm have released their
locks) or HH:MM (seamless-apply.timer). The PACKAGEs dnf names are only
shown. It writes to standard error: dnf5 reads a hook's standard output as
instructions to itself. A transaction in another --installroot installs a
kernel that is not this system's: nothing is done. --dry-run (or
`+dryRunEnv+`=1 in dnf's environment) shows what would be done, also for an
installroot, and does nothing.`, stdout)
	root := fs.String("installroot", "/", "dnf's installroot `DIR`")
	dry := fs.Bool("dry-run", os.Getenv(dryRunEnv) == "1", "show what would be done, do nothing")
	pkgs, err := parse(fs, args)
	if err != nil {
		return err
	}
	// Notes of the kernel-install plugin: this run acts on what it noted.
	notes, err := trigger.TakeNotes()
	if err != nil {
		return err
	}
	if len(pkgs) > 0 || len(notes) > 0 {
		fmt.Fprintf(stderr, "seamless: dnf installed %s\n", strings.Join(append(pkgs, notes...), ", "))
	}
	if *dry {
		fmt.Fprintf(stderr, "seamless: dry run (installroot %s): nothing is armed, loaded or started\n", *root)
	}
	if filepath.Clean(*root) != "/" && !*dry {
		fmt.Fprintf(stderr, "seamless: the kernel was installed into %s, not into this system: nothing to do\n", *root)
		return nil
	}
	if !*dry && (trigger.InChroot() || !trigger.Booted()) {
		fmt.Fprintln(stderr, "seamless: nothing to do here: systemd does not run this system (a chroot or an image build)")
		return nil
	}
	return actOnPending(stderr, filepath.Join(*root, "boot"), "dnf and rpm", *dry)
}

// pendingNote is what apt shows at the end of a run that installed a
// kernel newer than the running one.
type pendingNote struct {
	Running, Kernel string
	Plans           []update.UnitPlan
	PlanErr         error
	ArmErr          error // why the update could not be armed
	Apply           string
	Next            time.Time // when an "HH:MM" policy applies it
	ScheduleErr     error     // starting seamless-apply.service or .timer
	Manager         string    // who the update waits for: "" is apt and dpkg
	DryRun          bool      // shown only: nothing armed or scheduled
}

func writePending(w io.Writer, n pendingNote) {
	say := func(format string, a ...any) { fmt.Fprintf(w, "seamless: "+format+"\n", a...) }
	say("kernel %s is installed; this system runs %s", n.Kernel, n.Running)
	switch {
	case n.PlanErr != nil:
		say("  no plan: %v", n.PlanErr)
	case len(n.Plans) == 0:
		say("  no service is preserved (X-SeamlessPreserve=yes in a drop-in, or preserve = in %s):", configPath)
		say("  every service restarts, as in a reboot")
	default:
		for _, p := range n.Plans {
			if p.Carry {
				say("  carried:       %s (%s, about %s)", p.Name, bytesize.Count(len(p.Report.Processes), "process", "processes"), bytesize.Format(p.Report.ImageBytes))
			} else {
				say("  restarts cold: %s: %s", p.Name, p.Reason)
			}
		}
		say("  every other service restarts, as in a reboot")
	}
	if n.DryRun {
		say("dry run: the update is not armed; apply = %s is not acted on", n.Apply)
		return
	}
	if n.ArmErr != nil {
		say("a seamless update is not possible now: %v", n.ArmErr)
		say("a reboot applies the new kernel")
		return
	}
	switch _, _, at := config.ApplyAt(n.Apply); {
	case n.ScheduleErr != nil:
		say("apply = %s failed: %v", n.Apply, n.ScheduleErr)
		say("apply it with: seamless update")
	case n.Apply == config.ApplyNow:
		manager := n.Manager
		if manager == "" {
			manager = "apt and dpkg"
		}
		say("apply = now: the update starts once %s are done (journalctl -u %s)", manager, trigger.ApplyService)
	case at:
		say("apply = %s: %s applies it at %s; to apply it now: seamless update", n.Apply, trigger.ApplyTimer, n.Next.Format("Mon 2006-01-02 15:04 MST"))
	default:
		say("apply = manual: nothing happens until you run: seamless update")
	}
	say("(a reboot with shutdown -r, as unattended-upgrades does, is the seamless update too)")
}

func runApply(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("apply", "[--boot DIR]",
		`Run by seamless-apply.service (apply = now: started by APT's hook;
apply = HH:MM: by seamless-apply.timer). It waits until apt and dpkg have
released their locks and holds them, then, if an installed kernel is newer
than the running one, does what 'seamless update --yes' does. With nothing
pending it does nothing.`, stdout)
	boot := fs.String("boot", "/boot", "`DIR` holding the kernels")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	ctx := context.Background()
	release, err := holdPackageLocks(ctx, stdout)
	if err != nil {
		return err
	}
	defer release()
	if _, err := trigger.Pending(*boot); errors.Is(err, trigger.ErrNoPending) {
		fmt.Fprintf(stdout, "nothing to apply: %v\n", err)
		return nil
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return err
	}
	return update.Update(ctx, update.Options{Boot: *boot, Config: cfg, Out: stdout})
}

// holdPackageLocks waits for apt, dpkg, dnf and rpm to be done and holds
// their locks.
func holdPackageLocks(ctx context.Context, stdout io.Writer) (func(), error) {
	return trigger.HoldPackageLocks(ctx, func(holder string) {
		fmt.Fprintf(stdout, "waiting for %s to finish (package manager lock)\n", holder)
	})
}

func runCancel(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("cancel", "",
		`Withdraw an update that is armed or scheduled but has not started: the
loaded kernel is unloaded, seamless-apply.timer stopped, and a reboot is a
plain reboot again.`, stdout)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in, err := update.Cancel(ctx)
	if err != nil {
		return err
	}
	timer, err := trigger.Unschedule(ctx)
	if err != nil {
		return err
	}
	switch {
	case in != nil:
		fmt.Fprintf(stdout, "withdrawn: the update %s -> %s\n", in.From, in.Kernel.Release)
	case timer:
		fmt.Fprintf(stdout, "withdrawn: %s\n", trigger.ApplyTimer)
	default:
		fmt.Fprintln(stdout, "no update is armed or scheduled")
	}
	return nil
}
