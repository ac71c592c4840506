// Package generator is seamless's systemd generator. When this boot
// restores services carried across a kernel update, it gives each of their
// units a runtime drop-in whose ExecStart is the anchor (see package
// anchor): the unit keeps its own sandboxing, User=, RuntimeDirectory= and
// ExecStartPre=, and its processes come back inside them instead of
// starting anew. Without a pending restore it writes nothing.
package generator

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/seamless-linux/seamless/internal/anchor"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/restored"
	"github.com/seamless-linux/seamless/internal/units"
)

// NetlockUnit holds the network lock until the restores are done; the
// generator pulls it in before the network comes up.
const NetlockUnit = "seamless-netlock.service"

// UnitDir is where the package installs its units.
var UnitDir = "/lib/systemd/system"

// DropIn is the name of the generated drop-in in each restored unit's .d
// directory: late in the order, so that it overrides the unit's ExecStart.
const DropIn = "zz-seamless-restore.conf"

// Generate writes the drop-ins into dir, the generator's "normal" output
// directory, for every unit the restore daemon waits for, and into early,
// its "early" one (if not ""), the units' files without their wait for the
// network (see EarlyUnit). exe is the seamless binary the anchor runs.
func Generate(dir, early, exe string) ([]string, error) {
	st, err := contract.ReadState()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var done []string
	for _, u := range st.Units {
		if u.State != contract.Pending {
			continue
		}
		d := filepath.Join(dir, u.Unit+".d")
		if err := os.MkdirAll(d, 0o755); err != nil {
			return done, err
		}
		wait := restored.DefaultRestoreTimeout
		if st.RestoreTimeoutMs > 0 {
			wait = time.Duration(st.RestoreTimeoutMs) * time.Millisecond
		}
		// Without its early copy the unit waits for the network as it
		// always did: slower, not wrong.
		var text string
		var coldAfter []string
		if early != "" {
			if text, coldAfter, err = EarlyUnit(u.Unit); err != nil {
				fmt.Fprintf(os.Stderr, "seamless-generator: %s keeps its order: %v\n", u.Unit, err)
			}
		}
		if err := os.WriteFile(filepath.Join(d, DropIn), []byte(DropInText(u.Unit, exe, u.Start, wait+AnchorMargin, coldAfter)), 0o644); err != nil {
			return done, err
		}
		done = append(done, u.Unit)
		if text != "" {
			if err := os.MkdirAll(early, 0o755); err != nil {
				return done, err
			}
			if err := os.WriteFile(filepath.Join(early, u.Unit), []byte(text), 0o644); err != nil {
				return done, err
			}
		}
	}
	// Every unit the image carries starts in this boot, enabled or not:
	// it was running, and its anchor is what restores it (or starts it
	// cold). Without a start it would wait, neither restored nor cold.
	if len(done) > 0 {
		wants := filepath.Join(dir, "multi-user.target.wants")
		if err := os.MkdirAll(wants, 0o755); err != nil {
			return done, err
		}
		for _, u := range done {
			link := filepath.Join(wants, u)
			os.Remove(link)
			if err := os.Symlink(filepath.Join(UnitDir, u), link); err != nil {
				return done, err
			}
		}
	}
	if len(done) > 0 {
		wants := filepath.Join(dir, "network-pre.target.wants")
		if err := os.MkdirAll(wants, 0o755); err != nil {
			return done, err
		}
		link := filepath.Join(wants, NetlockUnit)
		os.Remove(link)
		if err := os.Symlink(filepath.Join(UnitDir, NetlockUnit), link); err != nil {
			return done, err
		}
	}
	return done, nil
}

// AnchorMargin is how much longer than the daemon's bound on a restore an
// anchor waits for the daemon's answer: a daemon that says nothing by then
// is stuck or gone.
const AnchorMargin = 2 * time.Minute

// DropInText is the drop-in for unit. The anchor is the unit's only
// ExecStart, Type=notify so that the unit becomes active when the anchor
// names the restored main process; PIDFile= is cleared because the PID
// comes from the anchor. The cold start's command is given to the anchor,
// with how long it waits for the daemon.
//
// An anchor that must not start the service cold (a restore may run beside
// it, or the daemon died before it settled the unit) exits with
// anchor.ExitUncertain: RestartForceExitStatus= has systemd stop the unit
// (its KillMode= kills what it kills) and start it again, whatever its
// Restart= says. The ExecStartPre, with full privileges ("+"; "-": it never
// fails the unit), settles the unit first if the daemon is gone: what is
// left in it (which KillMode=process or none spares) is killed and its
// network lock removed. The next anchor starts the service cold.
//
// coldAfter are the targets the unit no longer waits for in this boot (see
// EarlyUnit): a cold start waits for them.
func DropInText(unit, exe string, st units.Start, wait time.Duration, coldAfter []string) string {
	args := []string{exe, "anchor", "--unit", unit, "--timeout", wait.String()}
	if len(coldAfter) > 0 {
		args = append(args, "--cold-after", strings.Join(coldAfter, ","))
	}
	if st.Type != "" {
		args = append(args, "--type", st.Type)
	}
	if st.PIDFile != "" {
		args = append(args, "--pid-file", st.PIDFile)
	}
	if st.Path != "" {
		args = append(args, "--path", st.Path, "--")
		args = append(args, st.Argv...)
	}
	text := fmt.Sprintf(`# Generated by seamless-generator: this boot restores %s from the image of
# a seamless kernel update. The anchor asks the restore daemon to rebuild the
# unit's processes inside this unit; if that fails, it starts the service cold.
# The network lock is in place before (the unit may not wait for the network).
[Unit]
After=`+NetlockUnit+`
[Service]
Type=notify
NotifyAccess=all
PIDFile=
ExecStartPre=-+%s
ExecStart=
ExecStart=%s
RestartForceExitStatus=%d
`, unit, quoteAll([]string{exe, "anchor", "--prepare", "--unit", unit}), quoteAll(args), anchor.ExitUncertain)
	// A unit that may execute nothing but its own program (NoExecPaths=/
	// with ExecPaths=) must be able to execute the anchor. Only then: an
	// ExecPaths= alone would give the unit a mount namespace it did not
	// have.
	if len(st.NoExecPaths) > 0 {
		text += "ExecPaths=" + Quote(exe) + "\n"
	}
	return text
}

func quoteAll(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}

// Quote writes one argument of an ExecStart= line: in double quotes, with
// backslashes and quotes escaped and '%' doubled (systemd's specifiers).
// A '$' is left alone: systemd expands environment variables in the
// original command too.
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '%':
			b.WriteString("%%")
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
