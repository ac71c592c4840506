package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/seamless-linux/seamless/internal/anchor"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/generator"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inet"
	"github.com/seamless-linux/seamless/internal/netlock"
	"github.com/seamless-linux/seamless/internal/restored"
	"github.com/seamless-linux/seamless/internal/units"
)

// GeneratorName is the name systemd runs the generator by: a link to this
// binary in /usr/lib/systemd/system-generators.
const GeneratorName = "seamless-generator"

func runStage1(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("stage1", "[--root DIR]",
		`Run by the initramfs. When the kernel command line carries seamless.image=,
verify the image, keep its files open, reserve every PID and TID it needs
and start the restore daemon (@seamless-restored), which lives on in the
real root. Without --root (init-top) it handles an image in RAM; with the
real root mounted at --root (init-bottom) an image on disk. A normal boot
costs one read of /proc/cmdline. It never fails: services start cold.`, stdout)
	root := fs.String("root", "", "where the real root is mounted")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	restored.Stage1(*root, stderr)
	return nil
}

func runSettleBoot(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("settle-boot", "",
		`Run at every boot by seamless-checkpoint.service. When the last update handed
its image over but this boot's kernel command line names no image (the
machine came up through the firmware or another boot entry), record its
carried units as started cold, as this boot started them, and remove its
disk image, which nothing will read. Otherwise it does nothing.`, stdout)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	return restored.SettleNotBooted(string(cmdline), "/", stderr)
}

func runRestored(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("restored", "--image IMAGE [--root DIR] [--timeout D] [--restore-timeout D]",
		`The restore daemon, started by 'seamless stage1' in the initramfs with fd 3
a pipe for its readiness. IMAGE is the value of seamless.image=: a directory,
or disk:PATH for an image in the disk store of the real root mounted at DIR,
used (and removed) only if PATH is directly in the disk-dir of DIR's
seamless.conf, reached without a symlink and owned by root. Not meant to be
run by hand.`, stdout)
	img := fs.String("image", "", "the `IMAGE` handed over by the old kernel (seamless.image=)")
	root := fs.String("root", "/", "where the real root is mounted, for a disk:PATH image")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to wait for the units' anchors")
	restoreTimeout := fs.Duration("restore-timeout", restored.DefaultRestoreTimeout, "how long one unit's restore may take before it is killed and the unit starts cold")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *img == "" {
		return fmt.Errorf("%w: need --image IMAGE", errUsage)
	}
	opts := restored.Options{Image: *img, Root: *root, Timeout: *timeout, RestoreTimeout: *restoreTimeout,
		Log: restored.LineWriter{W: stderr, Prefix: "seamless-restored: "}}
	if ready := os.NewFile(3, "ready"); ready != nil {
		if _, err := ready.Stat(); err == nil {
			opts.Ready = ready
		}
	}
	return restored.Run(opts)
}

func runAnchor(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("anchor", "--unit UNIT [--type TYPE] [--pid-file FILE] [--path PATH -- ARGV...] | --prepare --unit UNIT",
		`The ExecStart of a unit restored after a seamless update (written by
seamless-generator). It asks the restore daemon to rebuild the unit's
processes inside this unit, then tells systemd their main PID. If the
restore fails it starts the service cold: PATH with ARGV, as TYPE says,
once the targets of --cold-after are reached.
When a restore may run beside it, or the daemon ended without settling the
unit, it exits with status 171, which the drop-in's RestartForceExitStatus=
turns into a restart of the unit. With --prepare (the drop-in's
ExecStartPre, as root) it settles a unit that the daemon left unsettled:
what is left in the unit is killed, its network lock removed, and it is
recorded as started cold. --prepare always exits 0.`, stdout)
	unit := fs.String("unit", "", "the unit being restored")
	prepare := fs.Bool("prepare", false, "settle the unit if the restore daemon ended without doing so")
	var st units.Start
	fs.StringVar(&st.Type, "type", "simple", "the unit's own Type=, for a cold start")
	fs.StringVar(&st.PIDFile, "pid-file", "", "the unit's own PIDFile=, for a cold start")
	fs.StringVar(&st.Path, "path", "", "the unit's own ExecStart= program, for a cold start")
	timeout := fs.Duration("timeout", restored.DefaultRestoreTimeout+2*time.Minute, "how long to wait for the restore daemon's answer")
	coldAfter := fs.String("cold-after", "", "targets (comma-separated) a cold start waits for: those this boot's copy of the unit no longer waits for")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	st.Argv = fs.Args()
	if *unit == "" {
		return fmt.Errorf("%w: need --unit UNIT", errUsage)
	}
	if *prepare {
		// A failed ExecStartPre would fail the unit: the anchor decides.
		if err := anchor.Prepare(*unit, stderr); err != nil {
			fmt.Fprintf(stderr, "seamless: %s: %v\n", *unit, err)
		}
		return nil
	}
	o := anchor.Options{Unit: *unit, Start: st, Timeout: *timeout, Log: stderr}
	if *coldAfter != "" {
		o.ColdAfter = strings.Split(*coldAfter, ",")
	}
	err := anchor.Run(o)
	if errors.Is(err, anchor.ErrUncertain) {
		fmt.Fprintf(stderr, "seamless: %s: %v: exiting with %d for systemd to restart the unit\n", *unit, err, anchor.ExitUncertain)
		os.Exit(anchor.ExitUncertain)
	}
	return err
}

func runGenerator(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(stdout, `Usage: %s NORMAL_DIR [EARLY_DIR LATE_DIR]

The systemd generator (systemd.generator(7)): when this boot restores units
carried by a seamless update, write a drop-in for each into NORMAL_DIR that
makes 'seamless anchor' its ExecStart, and into EARLY_DIR a copy of its unit
file that no longer waits for network.target, network-online.target or
nss-lookup.target (the network lock holds its packets until it is
restored). Otherwise it writes nothing.
`, GeneratorName)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	exe, err := os.Executable()
	if err != nil || filepath.Base(exe) == GeneratorName {
		exe = "/usr/bin/seamless"
	}
	early := ""
	if len(args) > 1 {
		early = args[1]
	}
	done, err := generator.Generate(args[0], early, exe)
	for _, u := range done {
		fmt.Fprintf(stderr, "seamless-generator: %s will be restored\n", u)
	}
	return err
}

func runNetlock(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("netlock", "lock|unlock",
		`Run by seamless-netlock.service early in the boot of the new kernel.
'lock' installs the network lock of every tree the restore daemon waits
for: inbound packets of their TCP connections and listening ports are
dropped, not reset, until each tree is restored (the restore removes its
lock; a unit started cold has its lock removed). 'unlock' removes every
seamless lock (the table inet seamless).`, stdout)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (pos[0] != "lock" && pos[0] != "unlock") {
		return fmt.Errorf("%w: need lock or unlock", errUsage)
	}
	if pos[0] == "unlock" {
		return netlock.RemoveAll(nil)
	}
	st, err := contract.ReadState()
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, u := range st.Units {
		if u.State != contract.Pending {
			continue
		}
		for _, t := range u.Trees {
			im, err := image.OpenHeld(t.Dir)
			if err != nil {
				return fmt.Errorf("%s: %w", u.Unit, err)
			}
			locks, err := inet.Lock(im.Tree, nil)
			im.Close()
			for _, l := range locks {
				fmt.Fprintf(stdout, "%s: network lock %s in place\n", u.Unit, l.Name())
				l.Release()
			}
			if err != nil {
				return fmt.Errorf("%s: %w", u.Unit, err)
			}
		}
	}
	return nil
}
