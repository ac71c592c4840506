package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/bytesize"
	"github.com/seamless-linux/seamless/internal/config"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/dbusapi"
	"github.com/seamless-linux/seamless/internal/trigger"
	"github.com/seamless-linux/seamless/internal/update"
)

const configPath = config.Path

func runPlan(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("plan", "[UNIT...] [--json]",
		`For each preserved unit (X-SeamlessPreserve=yes in a drop-in, or listed
under "preserve" in `+configPath+`), or for the units named, tell whether it
can be checkpointed now and, if not, exactly why: which process, which
descriptor or mapping, which resource. Nothing is stopped.`, stdout)
	asJSON := fs.Bool("json", false, "print the plan as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if viaBus() {
		if len(pos) > 0 {
			return fmt.Errorf("%w: only root can plan named units; others get the plan of the preserved units", errUsage)
		}
		return planViaBus(stdout, *asJSON)
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plans, err := update.Plan(ctx, cfg, pos)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, plans)
	}
	if len(plans) == 0 {
		fmt.Fprintln(stdout, "no unit is preserved: add X-SeamlessPreserve=yes to a unit's drop-in, or preserve = in "+configPath)
		return nil
	}
	for _, p := range plans {
		verdict := "can be carried"
		if !p.Carry {
			verdict = "cannot be carried: " + p.Reason
		}
		fmt.Fprintf(stdout, "%s (%s): %s\n", p.Name, p.Why, verdict)
		if p.Report == nil {
			continue
		}
		for _, pr := range p.Report.Processes {
			fmt.Fprintf(stdout, "  pid %d %s, %d threads\n", pr.PID, pr.Comm, pr.Threads)
		}
		var kinds []string
		for k, n := range p.Report.Resources {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
		}
		slices.Sort(kinds)
		fmt.Fprintf(stdout, "  resources: %s; image about %s\n", strings.Join(kinds, " "), bytesize.Format(p.Report.ImageBytes))
		for _, e := range p.Report.External {
			fmt.Fprintf(stdout, "  external: %s\n", e)
		}
		for _, e := range p.Report.Closed {
			fmt.Fprintf(stdout, "  comes back closed: %s\n", e)
		}
		for _, pr := range p.Report.Problems {
			fmt.Fprintf(stdout, "  problem: %s\n", pr)
		}
	}
	if cfg.Store == "kmod" {
		fmt.Fprintln(stdout, update.KmodPlan("/boot"))
	}
	return nil
}

func runUpdate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("update", "[--kernel VERSION|PATH] [--initrd PATH] [--append ARGS] [--yes] [--dry-run] [--ignore-inhibitors]",
		`Switch to a newer kernel with kexec, carrying the preserved services: pick
the target (default: the newest installed kernel, with its initrd), build its
command line from the running one, check that the update can work (plan,
memory for the image, Secure Boot and kexec settings, a test load of the
kernel), then start kexec.target. The services are checkpointed while the
system shuts down and restored under the new kernel. If anything fails
before the point of no return, the services are stopped as a reboot would
stop them and the machine still comes up on the new kernel.

Like 'systemctl reboot', it is refused while a program holds a blocking
shutdown inhibitor (systemd-inhibit --what=shutdown), unless
--ignore-inhibitors is given. Run by another user than root, it asks the
system-bus service, and polkit decides (action
io.github.seamless_linux.seamless1.update).`, stdout)
	kern := fs.String("kernel", "", "target kernel `VERSION` (as in /boot/vmlinuz-VERSION) or image PATH")
	initrd := fs.String("initrd", "", "initrd `PATH` (default: the kernel's own)")
	appendArgs := fs.String("append", "", "extra kernel command line `ARGS`")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	dry := fs.Bool("dry-run", false, "run the preflight only")
	boot := fs.String("boot", "/boot", "`DIR` holding the kernels")
	ignoreInhibitors := fs.Bool("ignore-inhibitors", false, "go ahead although a program holds a blocking shutdown inhibitor")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected %q", errUsage, pos[0])
	}
	if viaBus() {
		if *initrd != "" || *appendArgs != "" || *boot != "/boot" || strings.Contains(*kern, "/") {
			return fmt.Errorf("%w: --initrd, --append, --boot and a kernel path are for root only", errUsage)
		}
		return updateViaBus(stdout, dbusapi.UpdateOptions{Kernel: *kern, DryRun: *dry, IgnoreInhibitors: *ignoreInhibitors})
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return err
	}
	o := update.Options{Kernel: *kern, Initrd: *initrd, Append: *appendArgs, Boot: *boot, Config: cfg, Out: stdout, DryRun: *dry, IgnoreInhibitors: *ignoreInhibitors}
	if !*dry {
		// A kexec in the middle of a package run would leave dpkg's work
		// half done: wait for apt and dpkg, and keep them out.
		release, err := holdPackageLocks(context.Background(), stdout)
		if err != nil {
			return err
		}
		defer release()
	}
	if !*yes {
		o.Confirm = func(q string) bool {
			fmt.Fprintf(stdout, "%s [y/N] ", q)
			line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
			return strings.HasPrefix(strings.ToLower(strings.TrimSpace(line)), "y")
		}
	}
	return update.Update(context.Background(), o)
}

func runStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", "[--json]", `Show the pending or last update: kernels, the outcome for each unit, the
image, and the time of each phase.`, stdout)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if viaBus() {
		// The update's records are root's: others read the service's
		// properties, or, with no service to ask, the public part of this
		// boot's restore.
		err := statusViaBus(stdout, *asJSON)
		if err == nil {
			return nil
		}
		fmt.Fprintf(stderr, "seamless: status over D-Bus: %v; showing what this user may read\n", err)
	}
	in, err := contract.ReadIntent()
	private := errors.Is(err, os.ErrPermission)
	if err != nil && !private {
		return err
	}
	st, err := contract.ReadStatus()
	if errors.Is(err, os.ErrPermission) {
		private, err = true, nil
	}
	if err != nil {
		return err
	}
	live, _ := contract.ReadState() // this boot's restore, if any
	if *asJSON {
		return writeJSON(stdout, map[string]any{"pending": in, "last": st, "restore": live})
	}
	switch {
	case in != nil && in.Armed:
		fmt.Fprintf(stdout, "armed: update %s -> %s carrying %s (on the next kexec: seamless update, shutdown -r)\n", in.From, in.Kernel.Release, strings.Join(in.Units, " "))
	case in != nil:
		fmt.Fprintf(stdout, "pending: update %s -> %s carrying %s\n", in.From, in.Kernel.Release, strings.Join(in.Units, " "))
	default:
		if k, err := trigger.Pending("/boot"); err == nil {
			fmt.Fprintf(stdout, "newer kernel installed: %s (apply it with: seamless update)\n", k.Release)
		}
	}
	if private {
		fmt.Fprintln(stdout, "the update's records are readable by root only")
	} else if st == nil {
		fmt.Fprintln(stdout, "no update recorded")
	} else {
		fmt.Fprintf(stdout, "last update: %s -> %s: %s (%s)\n", st.From, st.To, st.State, st.Updated.Format(time.RFC3339))
		if st.Error != "" {
			fmt.Fprintf(stdout, "  error: %s\n", st.Error)
		}
		if st.Image != "" {
			fmt.Fprintf(stdout, "  image: %s in %s store, %s\n", st.Image, st.Store, bytesize.Format(st.Bytes))
		}
		for _, u := range st.Units {
			line := fmt.Sprintf("  %s: %s", u.Unit, u.Outcome)
			if u.Processes > 0 {
				line += fmt.Sprintf(" (%s, %s, checkpoint %d ms", bytesize.Count(u.Processes, "process", "processes"), bytesize.Format(u.Bytes), u.DumpMs)
				if u.Moved > 0 {
					line += fmt.Sprintf(" (%s moved out of its processes)", bytesize.Format(u.Moved))
				}
				if u.MainPID > 0 {
					line += fmt.Sprintf(", restore %d ms, main pid %d", u.RestoreMs, u.MainPID)
				}
				line += ")"
			}
			if u.Reason != "" {
				line += ": " + u.Reason
			}
			fmt.Fprintln(stdout, line)
			for _, w := range u.Warnings {
				fmt.Fprintf(stdout, "    warning: %s\n", w)
			}
		}
		for _, p := range st.Phases {
			fmt.Fprintf(stdout, "  phase %s: %d ms\n", p.Name, p.Ms)
		}
		if len(st.Memory) > 0 {
			var at []string
			for _, m := range st.Memory {
				at = append(at, fmt.Sprintf("%s %d MiB", m.At, m.Available>>20))
			}
			fmt.Fprintf(stdout, "  memory available: %s; peak use %d MiB\n", strings.Join(at, ", "), st.PeakUse()>>20)
		}
	}
	if live != nil {
		run := "ended"
		// EPERM: the daemon is root's and runs (status run by a user).
		if err := unix.Kill(live.Daemon, 0); err == nil || err == unix.EPERM {
			run = "running"
		}
		fmt.Fprintf(stdout, "restore in this boot: daemon %d %s, image %s\n", live.Daemon, run, live.Image)
		if live.Error != "" {
			fmt.Fprintf(stdout, "  image refused: %s\n", live.Error)
		}
		for _, u := range live.Units {
			line := fmt.Sprintf("  %s: %s", u.Unit, u.State)
			if run == "ended" && u.Waiting() {
				line += " when the restore daemon ended (the unit started cold)"
			}
			if u.MainPID > 0 {
				line += fmt.Sprintf(" (main pid %d, %d ms)", u.MainPID, u.RestoreMs)
			}
			if u.Reason != "" {
				line += ": " + u.Reason
			}
			fmt.Fprintln(stdout, line)
			for _, w := range u.Warnings {
				fmt.Fprintf(stdout, "    warning: %s\n", w)
			}
		}
	}
	return nil
}

func runShutdownCheckpoint(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("shutdown-checkpoint", "", `Run by seamless-checkpoint.service when it stops: if an update is pending,
checkpoint the carried units and hand the image to the new kernel.`, stdout)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	return update.ShutdownCheckpoint(stderr)
}
