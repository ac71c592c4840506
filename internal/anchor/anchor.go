// Package anchor is the ExecStart of a unit being restored after a
// seamless update. It runs where the unit's processes ran: inside the
// unit's cgroup and sandbox (mount namespace, user, capabilities), asks the
// restore daemon to rebuild the unit's processes there with their PIDs,
// hands over the unit's new journal stream, and tells systemd the restored
// main PID. If the restore fails, it starts the unit cold, as its unit file
// says, so that a service is never left dead, and never runs twice.
package anchor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/restored"
	"github.com/seamless-linux/seamless/internal/units"
)

// ExitUncertain is the anchor's exit status when it must not start the
// service cold: a restore of its unit may have run, or may still run,
// beside it (the daemon took the request and went away), or the daemon
// ended before it settled the unit (its network lock is still in place).
// The anchor cannot end either (a restored tree may be root's, the lock is
// root's; the anchor runs as the unit's user). The generated drop-in lists
// the status in RestartForceExitStatus=: systemd stops the unit (its
// KillMode= kills what it kills) and starts it again, whatever its
// Restart= says; the drop-in's ExecStartPre (Prepare, as root) then kills
// what is left in the unit and settles it as started cold, and the next
// anchor starts the service cold. 150-199 are the exit statuses the LSB
// leaves to applications.
const ExitUncertain = 171

// ErrUncertain is wrapped by Run's error when the anchor must exit with
// ExitUncertain.
var ErrUncertain = errors.New("the unit must be settled before a cold start")

// What can come of asking the daemon, besides a restored main PID.
var (
	// errRefused: the daemon answered that it did not restore the unit;
	// it leaves nothing of a restore behind such an answer, removes the
	// unit's lock, and records why.
	errRefused = errors.New("the restore daemon did not restore it")
	// errLost: the daemon took the request and went away or fell silent:
	// it may have restored the unit, or be restoring it.
	errLost = errors.New("lost the restore daemon")
	// errNoDaemon: no daemon listens (it ended, or never started).
	errNoDaemon = restored.ErrNoDaemon
)

// Options describe the unit.
type Options struct {
	Unit string
	// Start is how the unit starts without seamless: the cold start.
	Start units.Start
	// Timeout bounds the wait for the daemon's answer; it must exceed the
	// daemon's own bound on a restore.
	Timeout time.Duration
	// Log is the unit's journal stream.
	Log io.Writer
	// ColdAfter are the targets the unit's own file orders it after but
	// this boot's copy does not (see package generator): a cold start
	// waits for them.
	ColdAfter []string
}

// Run restores the unit or starts it cold. On a cold start of a simple or
// notify service it does not return: it becomes the service. It starts the
// service cold only when nothing of a restore can run beside it and the
// unit is settled; otherwise it returns an error wrapping ErrUncertain.
func Run(o Options) error {
	if o.Log == nil {
		o.Log = io.Discard
	}
	// The journal's time of this line is when the unit's sandbox was up
	// and the anchor running (see the daemon's "asked by" line).
	fmt.Fprintf(o.Log, "seamless: %s: asking the restore daemon\n", o.Unit)
	main, err := ask(o.Unit, o.Timeout)
	if err == nil {
		if err = notify(fmt.Sprintf("MAINPID=%d\nREADY=1\nSTATUS=restored by seamless with its PIDs", main)); err == nil {
			fmt.Fprintf(o.Log, "seamless: %s restored, main pid %d\n", o.Unit, main)
			return nil
		}
		// systemd did not hear of the restored process: it would think
		// the unit dead and start it again next to it. The anchor ends it
		// if it may (same user); the restart settles the rest.
		kerr := unix.Kill(main, unix.SIGKILL)
		return fmt.Errorf("%w: systemd was not told of the restored main pid %d (%v; killed: %v)", ErrUncertain, main, err, kerr)
	}
	record := false // the daemon, or the settling, recorded the outcome
	switch {
	case errors.Is(err, errLost):
		return fmt.Errorf("%w: %v", ErrUncertain, err)
	case errors.Is(err, errNoDaemon):
		// The daemon ended. If it had not settled the unit, its lock (and
		// perhaps a half-done restore) is still there.
		st, known := settled(o.Unit)
		if st != "" {
			return fmt.Errorf("%w: %v, and it left %s %s", ErrUncertain, err, o.Unit, st)
		}
		record = !known
	}
	if others, cerr := othersInUnit(); cerr != nil {
		fmt.Fprintf(o.Log, "seamless: %s: cannot read the unit's cgroup (%v)\n", o.Unit, cerr)
	} else if len(others) > 0 {
		return fmt.Errorf("%w: %v, and processes %v are in the unit", ErrUncertain, err, others)
	}
	fmt.Fprintf(o.Log, "seamless: %s could not be restored (%v): starting it cold\n", o.Unit, err)
	if record {
		// Best effort: a sandbox may keep the anchor from writing.
		if rerr := contract.RecordRestore(restored.Release(), []contract.UnitOutcome{{Unit: o.Unit, Outcome: contract.Cold, Reason: restored.Bound(err.Error())}}); rerr != nil {
			fmt.Fprintf(o.Log, "seamless: %s: the cold start is not in the update's record: %v\n", o.Unit, rerr)
		}
	}
	waitTargets(o.ColdAfter, o.Log)
	return ColdStart(o.Start, o.Log)
}

// settled returns "" if this boot's restore (its public state) leaves
// nothing to settle for unit (not carried, restored or started cold, no
// restore at all), else the unit's state; and whether the state could be
// read.
func settled(unit string) (string, bool) {
	st, err := contract.ReadState()
	if err != nil {
		return "", false // no restore in this boot, or a sandbox hides it
	}
	if u := st.Unit(unit); u != nil && u.Waiting() {
		return u.State, true
	}
	return "", true
}

// othersInUnit lists the processes of the anchor's cgroup other than the
// anchor.
func othersInUnit() ([]int, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	cg := units.CgroupV2(string(b))
	if cg == "" {
		return nil, fmt.Errorf("in no cgroup v2")
	}
	return restored.Others(cg, os.Getpid())
}

// ask has the daemon restore unit and returns the main PID. While it waits
// it extends systemd's start timeout of the unit (EXTEND_TIMEOUT_USEC), up
// to timeout. Its error wraps errRefused, errLost or errNoDaemon.
func ask(unit string, timeout time.Duration) (int, error) {
	c, err := restored.DialDaemon()
	if errors.Is(err, errNoDaemon) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("%w: reach it: %v", errNoDaemon, err)
	}
	defer c.Close()
	if timeout > 0 {
		c.SetDeadline(time.Now().Add(timeout))
	}
	req, _ := json.Marshal(restored.Request{Unit: unit})
	if _, _, err := c.WriteMsgUnix(req, unix.UnixRights(0, 1, 2), nil); err != nil {
		return 0, fmt.Errorf("%w: ask it: %v", errLost, err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go extendStart(stop)
	hung := make(chan struct{})
	go watchDaemon(c, stop, hung)
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	if err != nil {
		select {
		case <-hung:
			return 0, fmt.Errorf("%w: it answers nothing, not even a ping within %s (stopped or hung)", errLost, restored.PingWait)
		default:
		}
		if errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("%w: it went away during the restore", errLost)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, fmt.Errorf("%w: no answer within %s", errLost, timeout)
		}
		return 0, fmt.Errorf("%w: %v", errLost, err)
	}
	var r restored.Reply
	if err := json.Unmarshal(buf[:n], &r); err != nil {
		return 0, fmt.Errorf("%w: its answer: %v", errLost, err)
	}
	if r.Error != "" {
		return 0, fmt.Errorf("%w: %s", errRefused, r.Error)
	}
	if r.MainPID <= 0 {
		return 0, fmt.Errorf("%w: it answered no pid", errLost)
	}
	return r.MainPID, nil
}

// PingEvery is how often the anchor, while it waits for its answer, checks
// that the daemon still answers at all.
var PingEvery = 30 * time.Second

// watchDaemon pings the daemon every PingEvery until stop. If a ping goes
// unanswered (restored.PingWait), the daemon is stopped or hung and would
// leave the anchor waiting until its timeout: it closes hung and c, so that
// the anchor gives up now; the restart's settling then kills the daemon.
func watchDaemon(c *net.UnixConn, stop, hung chan struct{}) {
	t := time.NewTicker(PingEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if answers, pid := restored.ProbeDaemon(); !answers && pid > 0 {
				close(hung)
				c.Close()
				return
			}
		}
	}
}

// extendStart keeps systemd's start timeout (TimeoutStartSec=) from
// ending the unit while the daemon restores it, until stop.
func extendStart(stop chan struct{}) {
	const every = 10 * time.Second
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			send(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", (3 * every).Microseconds()))
		}
	}
}

// Prepare runs before the anchor, as root (the drop-in's ExecStartPre=+).
// If the daemon ended without settling the unit (it died), Prepare settles
// it: it kills what is left in the unit's cgroup (a restored tree that the
// unit's KillMode= spared, a restore cut short), removes the unit's
// network lock and records the unit as started cold, for the anchor to
// start it cold. Otherwise it does nothing.
func Prepare(unit string, log io.Writer) error {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return err
	}
	cg := units.CgroupV2(string(b))
	if path.Base(cg) == ".control" { // Delegate=: control processes run below the unit
		cg = path.Dir(cg)
	}
	// systemd escapes a few unit names in cgroup paths with a leading '_'.
	if base := path.Base(cg); base != unit && base != "_"+unit {
		return fmt.Errorf("in cgroup %q, not in %s's", cg, unit)
	}
	return restored.Settle(unit, cg, log)
}
