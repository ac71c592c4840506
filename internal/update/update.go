package update

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"

	"github.com/seamless-linux/seamless/internal/config"
	"github.com/seamless-linux/seamless/internal/kernel"
	"github.com/seamless-linux/seamless/internal/kexec"
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
	// Arm prepares everything and leaves the kernel loaded, but starts
	// nothing: the next kexec of the system (kexec.target, which is what
	// `shutdown -r` starts while a kernel is loaded) is the update.
	Arm bool
}

// Update prepares and starts a seamless update: plan, preflight (kernel,
// RAM, a test load of the kernel, which also stays loaded so that a failed
// checkpoint still ends in the new kernel, as a plain reboot would), the
// intent, the shutdown ordering, and kexec.target.
func Update(ctx context.Context, o Options) error {
	say := func(format string, a ...any) { fmt.Fprintf(o.Out, format+"\n", a...) }
	from := kernel.Running()
	k, err := kernel.Pick(o.Boot, o.Kernel, o.Initrd, from)
	if err != nil {
		return err
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	cl := kernel.Cmdline(string(cmdline), o.Append)
	say("update %s -> %s", from, k.Release)
	say("  kernel %s, initrd %s", k.Image, k.Initrd)
	say("  command line: %s", cl)

	st := kexec.Probe()
	if err := st.Problem(); err != nil {
		return err
	}
	if st.SecureBoot || st.Lockdown != "none" {
		say("  Secure Boot %v, lockdown %s: the kernel must be signed by a trusted key", st.SecureBoot, st.Lockdown)
	}

	// Test-load the kernel: it must load, and stays loaded as the fallback.
	initrd, err := os.Open(k.Initrd)
	if err != nil {
		return err
	}
	err = kexec.Load(k.Image, initrd, cl)
	initrd.Close()
	if err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	say("  kexec test load: ok")
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
			say("  carry %s (%d processes, about %s)", p.Name, len(p.Report.Processes), human(p.Report.ImageBytes))
		} else {
			stopped[p.Name] = p.Reason
			say("  stop  %s: %s", p.Name, p.Reason)
		}
	}
	if len(plans) == 0 {
		say("  no unit is preserved (add X-SeamlessPreserve=yes in a drop-in, or preserve = in seamless.conf): a plain kexec")
	}
	store, err := chooseStore(o.Config, need, k.Initrd)
	if err != nil {
		kexec.Unload()
		return err
	}
	say("  image store: %s", store)

	if o.DryRun {
		return kexec.Unload()
	}
	if o.Confirm != nil && !o.Confirm(fmt.Sprintf("Switch to %s now? Services not carried are stopped.", k.Release)) {
		kexec.Unload()
		return fmt.Errorf("cancelled")
	}
	in := &Intent{From: from, Kernel: k, Cmdline: cl, Units: carry, Cgroups: cgroups, Start: start, Stopped: stopped, Store: store, DiskDir: o.Config.DiskDir, Requested: time.Now(), Armed: o.Arm}
	if err := writeJSON(intentPath(), in); err != nil {
		return fmt.Errorf("record the update: %w", err)
	}
	if !o.Arm {
		if err := saveStatus(&Status{State: "pending", From: from, To: k.Release, Store: store}); err != nil {
			return err
		}
	}
	if err := startKexec(ctx, carry, !o.Arm, say); err != nil {
		os.Remove(intentPath())
		return err
	}
	return nil
}

// chooseStore picks RAM when the image (estimated from the units' private
// memory) and the initrd fit in available memory with room to spare.
func chooseStore(cfg config.Config, need int64, initrd string) (string, error) {
	if cfg.Store == "disk" {
		return "disk", nil
	}
	avail := memAvailable()
	var ird int64
	if st, err := os.Stat(initrd); err == nil {
		ird = st.Size()
	}
	// The image is written once to /run and once into the kexec buffer.
	fits := avail == 0 || 2*need+ird+256<<20 < avail
	switch {
	case fits:
		return "ram", nil
	case cfg.Store == "ram":
		return "", fmt.Errorf("the image (about %s) does not fit in available memory (%s) and store = ram", human(need), human(avail))
	}
	return "disk", nil
}

func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// startKexec orders seamless-checkpoint.service after the carried units
// (so that at shutdown it stops, and checkpoints, before them), makes sure
// it is active, and, with start, starts kexec.target with
// replace-irreversibly.
func startKexec(ctx context.Context, carry []string, start bool, say func(string, ...any)) error {
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

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
