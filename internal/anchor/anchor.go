// Package anchor is the ExecStart of a unit being restored after a
// seamless update. It runs where the unit's processes ran: inside the
// unit's cgroup and sandbox (mount namespace, user, capabilities), asks the
// restore daemon to rebuild the unit's processes there with their PIDs,
// hands over the unit's new journal stream, and tells systemd the restored
// main PID. If the restore fails, it starts the unit cold, as its unit file
// says, so that a service is never left dead.
package anchor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/restored"
	"github.com/seamless-linux/seamless/internal/units"
	"github.com/seamless-linux/seamless/internal/update"
)

// ExitUncertain is the anchor's exit status when it cannot tell whether a
// restore of its unit ran, or still runs, beside it, and cannot end it (the
// restored processes may be root's, the anchor runs as the unit's user).
// The generated drop-in lists it in RestartForceExitStatus=: systemd stops
// the unit, killing what its KillMode= kills, runs the drop-in's
// ExecStopPost (Reap, as root) for what KillMode= spares, and starts the
// unit again, whatever its Restart= says; the next anchor finds the unit
// empty and the daemon gone, and starts the service cold. 150-199 are the
// exit statuses the LSB leaves to applications.
const ExitUncertain = 171

// ErrUncertain is wrapped by Run's error when the anchor must exit with
// ExitUncertain.
var ErrUncertain = errors.New("cannot tell whether a restore runs beside this anchor")

// errRefused is the daemon's answer that it did not restore the unit: it
// leaves nothing of a restore behind such an answer, and records it.
var errRefused = errors.New("the restore daemon did not restore it")

// errLost is a daemon that took the request and then went away or fell
// silent: it may have restored the unit, or be restoring it.
var errLost = errors.New("lost the restore daemon")

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
}

// Run restores the unit or starts it cold. On a cold start of a simple or
// notify service it does not return: it becomes the service. It starts the
// service cold only when nothing of a restore can be running beside it;
// otherwise it returns an error wrapping ErrUncertain.
func Run(o Options) error {
	if o.Log == nil {
		o.Log = io.Discard
	}
	main, err := ask(o.Unit, o.Timeout)
	if err == nil {
		if err = notify(fmt.Sprintf("MAINPID=%d\nREADY=1\nSTATUS=restored by seamless with its PIDs", main)); err == nil {
			fmt.Fprintf(o.Log, "seamless: %s restored, main pid %d\n", o.Unit, main)
			return nil
		}
		// systemd did not hear of the restored process: it would think the
		// unit dead and start it again next to it.
		if kerr := syscall.Kill(main, syscall.SIGKILL); kerr != nil {
			return fmt.Errorf("%w: systemd was not told of the restored main pid %d (%v), and it could not be killed (%v)", ErrUncertain, main, err, kerr)
		}
		err = fmt.Errorf("tell systemd: %w", err)
	}
	wait := time.Duration(0)
	if errors.Is(err, errLost) {
		// The restorer dies with the daemon, and a tree it had not let run
		// yet dies with the restorer: give them a moment to go.
		wait = 10 * time.Second
	}
	others, cerr := othersInUnit(wait)
	switch {
	case cerr != nil && errors.Is(err, errLost):
		return fmt.Errorf("%w: %v, and the unit's cgroup cannot be read: %v", ErrUncertain, err, cerr)
	case cerr != nil:
		// The daemon answered (or was never there): it leaves nothing
		// behind a refusal.
		fmt.Fprintf(o.Log, "seamless: %s: cannot read the unit's cgroup (%v)\n", o.Unit, cerr)
	case len(others) > 0:
		return fmt.Errorf("%w: %v, and processes %v are in the unit", ErrUncertain, err, others)
	}
	fmt.Fprintf(o.Log, "seamless: %s could not be restored (%v): starting it cold\n", o.Unit, err)
	if !errors.Is(err, errRefused) {
		// The daemon recorded its refusals; anything else, the anchor
		// records, best effort (a sandbox may keep it from writing).
		update.RecordRestore(restored.Release(), []update.UnitOutcome{{Unit: o.Unit, Outcome: restored.Cold, Reason: restored.Bound(err.Error())}})
	}
	return ColdStart(o.Start, o.Log)
}

// othersInUnit lists the processes of the anchor's cgroup other than the
// anchor, waiting up to wait for them to go.
func othersInUnit(wait time.Duration) ([]int, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	cg := units.CgroupV2(string(b))
	if cg == "" {
		return nil, fmt.Errorf("in no cgroup v2")
	}
	deadline := time.Now().Add(wait)
	for {
		others, err := restored.Others(cg, os.Getpid())
		if err != nil || len(others) == 0 || time.Now().After(deadline) {
			return others, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ask has the daemon restore unit and returns the main PID. While it waits
// it extends systemd's start timeout of the unit (EXTEND_TIMEOUT_USEC), up
// to timeout. An error wraps errLost if the daemon took the request and
// then gave no answer.
func ask(unit string, timeout time.Duration) (int, error) {
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: restored.SocketPath, Net: "unixpacket"})
	if err != nil {
		return 0, fmt.Errorf("reach the restore daemon: %w", err)
	}
	defer c.Close()
	if timeout > 0 {
		c.SetDeadline(time.Now().Add(timeout))
	}
	req, _ := json.Marshal(restored.Request{Unit: unit})
	if _, _, err := c.WriteMsgUnix(req, unix.UnixRights(0, 1, 2), nil); err != nil {
		return 0, fmt.Errorf("ask the restore daemon: %w", err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go extendStart(stop)
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	if err != nil {
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

// Reap runs as the unit's ExecStopPost, as root ("+"). After an anchor
// that exited with ExitUncertain (systemd says so in $EXIT_CODE and
// $EXIT_STATUS), it kills whatever is left in the unit's cgroup, which a
// KillMode= of process or none spares, so that the restart finds the unit
// empty. After anything else it does nothing.
func Reap(unit string, log io.Writer) error {
	if os.Getenv("EXIT_CODE") != "exited" || os.Getenv("EXIT_STATUS") != strconv.Itoa(ExitUncertain) {
		return nil
	}
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
	killed, err := restored.KillOthers(cg, os.Getpid(), 30*time.Second)
	if len(killed) > 0 {
		fmt.Fprintf(log, "seamless: %s: killed %v, left by a restore whose outcome its anchor could not know\n", unit, killed)
	}
	return err
}

// ColdStart starts the service as its unit would have. The anchor's unit is
// Type=notify: for a simple service it announces readiness and becomes the
// service; a notify service is exec'd and announces itself; a forking one
// runs to its fork and its PID file names the main process.
func ColdStart(st units.Start, log io.Writer) error {
	if st.Path == "" || len(st.Argv) == 0 {
		return fmt.Errorf("no ExecStart= recorded for a cold start")
	}
	switch st.Type {
	case "notify", "notify-reload":
		return syscall.Exec(st.Path, st.Argv, os.Environ())
	case "forking":
		return forking(st)
	case "oneshot":
		return fmt.Errorf("services of Type=oneshot are not carried")
	}
	if err := notify("READY=1\nSTATUS=started cold"); err != nil {
		return err
	}
	env := os.Environ()
	for i := 0; i < len(env); i++ {
		if strings.HasPrefix(env[i], "NOTIFY_SOCKET=") {
			env = append(env[:i], env[i+1:]...)
			i--
		}
	}
	return syscall.Exec(st.Path, st.Argv, env)
}

func forking(st units.Start) error {
	if st.PIDFile == "" {
		return fmt.Errorf("a Type=forking service without PIDFile= cannot be started cold by seamless")
	}
	cmd := &exec.Cmd{Path: st.Path, Args: st.Argv, Stdout: os.Stdout, Stderr: os.Stderr}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", st.Path, err)
	}
	b, err := os.ReadFile(st.PIDFile)
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("%s: %w", st.PIDFile, err)
	}
	return notify(fmt.Sprintf("MAINPID=%d\nREADY=1\nSTATUS=started cold", pid))
}
