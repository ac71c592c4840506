package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seamless-linux/seamless/internal/precheck"
	"github.com/seamless-linux/seamless/internal/units"
	"github.com/seamless-linux/seamless/internal/update"
)

func TestWritePending(t *testing.T) {
	memcached := update.UnitPlan{Unit: units.Unit{Name: "memcached.service"}, Carry: true,
		Report: &precheck.Report{Processes: []precheck.Process{{PID: 312, Comm: "memcached"}}, ImageBytes: 21 << 20}}
	redis := update.UnitPlan{Unit: units.Unit{Name: "redis-server.service"}, Reason: "pid 400 (redis-server) fd 9: an io_uring instance"}
	at := time.Date(2026, 12, 5, 3, 30, 0, 0, time.UTC)
	base := pendingNote{Running: "6.1.0-47-amd64", Kernel: "6.1.0-50-amd64", Plans: []update.UnitPlan{memcached, redis}, Apply: "manual"}
	with := func(f func(*pendingNote)) pendingNote { n := base; f(&n); return n }
	tests := []struct {
		name string
		note pendingNote
		want []string
		not  []string
	}{
		{"manual", base, []string{
			"seamless: kernel 6.1.0-50-amd64 is installed; this system runs 6.1.0-47-amd64\n",
			"carried:       memcached.service (1 process, about 21.0 MiB)",
			"restarts cold: redis-server.service: pid 400 (redis-server) fd 9: an io_uring instance",
			"every other service restarts, as in a reboot",
			"apply = manual: nothing happens until you run: seamless update\n",
			"shutdown -r",
		}, []string{"seamless-apply"}},
		{"now", with(func(n *pendingNote) { n.Apply = "now" }), []string{
			"apply = now: the update starts once apt and dpkg are done (journalctl -u seamless-apply.service)",
		}, []string{"nothing happens"}},
		{"window", with(func(n *pendingNote) { n.Apply = "03:30"; n.Next = at }), []string{
			"apply = 03:30: seamless-apply.timer applies it at Sat 2026-12-05 03:30 UTC; to apply it now: seamless update",
		}, nil},
		{"dnf, now", with(func(n *pendingNote) { n.Apply = "now"; n.Manager = "dnf and rpm" }), []string{
			"apply = now: the update starts once dnf and rpm are done",
		}, []string{"apt"}},
		{"dry run", with(func(n *pendingNote) { n.Apply = "now"; n.DryRun = true }), []string{
			"carried:       memcached.service", "dry run: the update is not armed; apply = now is not acted on",
		}, []string{"the update starts", "shutdown -r"}},
		{"nothing preserved", with(func(n *pendingNote) { n.Plans = nil }), []string{
			"no service is preserved", "every service restarts, as in a reboot",
		}, []string{"carried:"}},
		{"cannot arm", with(func(n *pendingNote) {
			n.Apply = "now"
			n.ArmErr = errors.New("kexec is disabled (kernel.kexec_load_disabled=1)")
		}), []string{
			"a seamless update is not possible now: kexec is disabled", "a reboot applies the new kernel",
		}, []string{"apply = now", "shutdown -r"}},
		{"timer failed", with(func(n *pendingNote) {
			n.Apply = "03:30"
			n.ScheduleErr = errors.New("start seamless-apply.timer: failed")
		}), []string{
			"apply = 03:30 failed: start seamless-apply.timer: failed", "apply it with: seamless update",
		}, nil},
	}
	for _, tt := range tests {
		var b strings.Builder
		writePending(&b, tt.note)
		for _, w := range tt.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: message lacks %q:\n%s", tt.name, w, b.String())
			}
		}
		for _, w := range tt.not {
			if strings.Contains(b.String(), w) {
				t.Errorf("%s: message has %q:\n%s", tt.name, w, b.String())
			}
		}
		for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
			if !strings.HasPrefix(l, "seamless: ") {
				t.Errorf("%s: line %q does not say it is seamless's", tt.name, l)
			}
		}
	}
}

func TestTriggerCommands(t *testing.T) {
	run := t.TempDir()
	env := append(os.Environ(), "SEAMLESS_RUN_DIR="+run)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"kernel-installed"}, exitUsage, "need the kernel VERSION"},
		{[]string{"kernel-removed", "a", "b", "c"}, exitUsage, "need the kernel VERSION"},
		{[]string{"apt-hook", "extra"}, exitOK, ""}, // positional arguments are ignored: apt passes none
		{[]string{"apply", "--help"}, exitOK, "seamless-apply.service"},
		{[]string{"cancel", "--help"}, exitOK, "Withdraw"},
	}
	for _, tt := range tests {
		out, errs, code := seamlessEnv(t, env, tt.args...)
		if code != tt.code || !strings.Contains(out+errs, tt.want) {
			t.Errorf("seamless %v: exit %d, output %q; want exit %d mentioning %q", tt.args, code, out+errs, tt.code, tt.want)
		}
	}
	// After every dpkg run without a new kernel the APT hook is silent.
	if out, errs, code := seamlessEnv(t, env, "apt-hook"); code != 0 || out+errs != "" {
		t.Errorf("apt-hook without notes: exit %d, output %q; want silence", code, out+errs)
	}
}

// dnf-hook: silent without a kernel, nothing done for another installroot,
// the kernel named in test mode, and never a word on stdout (dnf5 reads it).
func TestDnfHook(t *testing.T) {
	run := t.TempDir()
	root := t.TempDir()
	const rel = "999.1.0-1.fc99.x86_64"
	for _, f := range []string{"boot/vmlinuz-" + rel, "boot/initramfs-" + rel + ".img"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644)
	}
	env := append(os.Environ(), "SEAMLESS_RUN_DIR="+run)
	tests := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"another installroot", env, []string{"dnf-hook", "--installroot=" + root, "kernel-core-" + rel},
			[]string{"seamless: dnf installed kernel-core-" + rel, "installed into " + root + ", not into this system: nothing to do"}},
		{"test mode", env, []string{"dnf-hook", "--installroot=" + root, "--dry-run"},
			[]string{"seamless: dry run (installroot " + root + ")", "seamless: kernel " + rel + " is installed; this system runs", "seamless: dry run: the update is not armed"}},
		{"test mode from dnf's environment", append(env, "SEAMLESS_HOOK_DRY_RUN=1"), []string{"dnf-hook", "--installroot=" + root},
			[]string{"seamless: kernel " + rel + " is installed"}},
	}
	for _, tt := range tests {
		out, errs, code := seamlessEnv(t, tt.env, tt.args...)
		if code != 0 || out != "" {
			t.Errorf("%s: exit %d, stdout %q; want 0 and nothing on stdout", tt.name, code, out)
		}
		for _, w := range tt.want {
			if !strings.Contains(errs, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", tt.name, w, errs)
			}
		}
	}
}

// The man page names every command (a dash is "\-" in roff).
func TestManPageCoversCommands(t *testing.T) {
	b, err := os.ReadFile("../../packaging/seamless.8")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commands {
		if name := strings.ReplaceAll(c.name, "-", `\-`); !strings.Contains(string(b), ".B "+name) {
			t.Errorf("packaging/seamless.8 does not describe %q", c.name)
		}
	}
}
