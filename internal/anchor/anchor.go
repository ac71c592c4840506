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
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/restored"
	"github.com/seamless-linux/seamless/internal/units"
	"github.com/seamless-linux/seamless/internal/update"
)

// Options describe the unit.
type Options struct {
	Unit string
	// Start is how the unit starts without seamless: the cold start.
	Start units.Start
	// Timeout bounds the restore.
	Timeout time.Duration
	// Log is the unit's journal stream.
	Log io.Writer
}

// Run restores the unit or starts it cold. On a cold start of a simple or
// notify service it does not return: it becomes the service.
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
		syscall.Kill(main, syscall.SIGKILL)
		err = fmt.Errorf("tell systemd: %w", err)
	}
	fmt.Fprintf(o.Log, "seamless: %s could not be restored (%v): starting it cold\n", o.Unit, err)
	// Best effort: the daemon records the outcomes, unless it is gone; a
	// sandbox may keep the anchor from writing the record at all.
	update.RecordRestore(restored.Release(), []update.UnitOutcome{{Unit: o.Unit, Outcome: restored.Cold, Reason: err.Error()}})
	return ColdStart(o.Start, o.Log)
}

// ask has the daemon restore unit and returns the main PID.
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
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("the restore daemon went away")
		}
		return 0, fmt.Errorf("restore daemon: %w", err)
	}
	var r restored.Reply
	if err := json.Unmarshal(buf[:n], &r); err != nil {
		return 0, fmt.Errorf("restore daemon's answer: %w", err)
	}
	if r.Error != "" {
		return 0, errors.New(r.Error)
	}
	if r.MainPID <= 0 {
		return 0, fmt.Errorf("restore daemon answered no pid")
	}
	return r.MainPID, nil
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
