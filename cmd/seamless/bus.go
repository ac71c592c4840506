package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/bytesize"
	"github.com/seamless-linux/seamless/internal/dbusapi"
)

func runDBusService(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("dbus-service", "[--idle-exit D]",
		`The system-bus API (`+dbusapi.BusName+`), run by seamless-dbus.service
when a program calls it. See docs/dbus.md.`, stdout)
	idle := fs.Duration("idle-exit", 5*time.Minute, "exit after this long without calls or updates (0: never)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return fmt.Errorf("connect to the system bus: %w", err)
	}
	defer conn.Close()
	svc, err := dbusapi.Export(conn, dbusapi.System{Conn: conn, ConfigPath: configPath, Boot: "/boot"}, dbusapi.Polkit{Conn: conn}, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return dbusapi.Serve(ctx, conn, svc, *idle)
}

// viaBus reports whether a command must go through the system-bus API:
// only root reads every process and loads kernels; everyone else asks the
// service, which asks polkit (as systemctl asks systemd).
func viaBus() bool { return os.Geteuid() != 0 }

// busClient connects to the system bus. On a terminal it lets polkit ask
// for a password, through a text agent it starts (as systemctl does).
func busClient() (dbusapi.Client, func(), error) {
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return dbusapi.Client{}, nil, fmt.Errorf("not root, and the system bus is out of reach (%w): run seamless as root", err)
	}
	c := dbusapi.Client{Conn: conn}
	stopAgent := func() {}
	if _, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS); err == nil {
		c.Interactive = true
		stopAgent = startPolkitAgent()
	}
	return c, func() { stopAgent(); conn.Close() }, nil
}

// startPolkitAgent starts pkttyagent for this process, if installed, and
// waits until it is registered.
func startPolkitAgent() func() {
	path, err := exec.LookPath("pkttyagent")
	if err != nil {
		return func() {}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return func() {}
	}
	cmd := exec.Command(path, "--notify-fd", "3", "--fallback", "--process", fmt.Sprint(os.Getpid()))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return func() {}
	}
	w.Close()
	// The agent closes the pipe once it is registered.
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, r); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	r.Close()
	return func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
}

// busError turns the service's errors into what a user reads.
func busError(err error) error {
	var e dbus.Error
	if !errors.As(err, &e) {
		return err
	}
	msg := ""
	if len(e.Body) > 0 {
		msg, _ = e.Body[0].(string)
	}
	switch e.Name {
	case dbusapi.ErrAccessDenied, dbusapi.ErrInteractiveAuthNeed:
		return fmt.Errorf("not authorized (%s): run as root, or have polkit allow it", msg)
	case "org.freedesktop.DBus.Error.ServiceUnknown":
		return fmt.Errorf("the seamless service is not installed on the system bus (%s): run as root", msg)
	}
	if msg != "" {
		return errors.New(msg)
	}
	return err
}

func planViaBus(stdout io.Writer, asJSON bool) error {
	c, done, err := busClient()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v, err := c.Plan(ctx)
	if err != nil {
		return busError(err)
	}
	if asJSON {
		return writeJSON(stdout, v)
	}
	if len(v) == 0 {
		fmt.Fprintln(stdout, "no unit is preserved: add X-SeamlessPreserve=yes to a unit's drop-in, or preserve = in "+configPath)
	}
	for _, u := range v {
		verdict := "can be carried"
		if !u.Carry {
			verdict = "cannot be carried: " + u.Reason
		}
		fmt.Fprintf(stdout, "%s (%s): %s\n", u.Unit, u.PreservedBy, verdict)
		if u.Carry {
			fmt.Fprintf(stdout, "  image about %s\n", bytesize.Format(int64(u.ImageBytes)))
		}
	}
	return nil
}

func updateViaBus(stdout io.Writer, o dbusapi.UpdateOptions) error {
	c, done, err := busClient()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	_, err = c.Update(ctx, o, func(phase string, fraction float64, message string) {
		fmt.Fprintf(stdout, "[%3.0f%%] %s: %s\n", 100*fraction, phase, message)
	})
	if errors.Is(err, context.Canceled) {
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		if cerr := c.Cancel(cctx); cerr != nil {
			return fmt.Errorf("interrupted, and the update could not be cancelled: %w", busError(cerr))
		}
		return fmt.Errorf("cancelled")
	}
	return busError(err)
}

func statusViaBus(stdout io.Writer, asJSON bool) error {
	c, done, err := busClient()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	props, err := c.Properties(ctx)
	if err != nil {
		return busError(err)
	}
	if asJSON {
		plain := map[string]any{}
		for k, v := range props {
			plain[k] = v.Value()
		}
		return writeJSON(stdout, plain)
	}
	str := func(k string) string { s, _ := props[k].Value().(string); return s }
	fmt.Fprintf(stdout, "running kernel: %s", str("RunningKernel"))
	if p := str("PendingKernel"); p != "" {
		fmt.Fprintf(stdout, " (newer installed: %s)", p)
	}
	fmt.Fprintf(stdout, "\nstate: %s\n", str("State"))
	if str("LastUpdateResult") == "" {
		fmt.Fprintln(stdout, "no update recorded")
		return nil
	}
	when := ""
	if us, ok := props["LastUpdateTimestamp"].Value().(uint64); ok && us > 0 {
		when = " (" + time.UnixMicro(int64(us)).UTC().Format(time.RFC3339) + ")"
	}
	fmt.Fprintf(stdout, "last update: %s -> %s: %s%s\n", str("LastUpdateFrom"), str("LastUpdateTo"), str("LastUpdateResult"), when)
	if e := str("LastUpdateError"); e != "" {
		fmt.Fprintf(stdout, "  error: %s\n", e)
	}
	var units []dbusapi.UnitOutcome
	if err := dbus.Store([]any{props["LastUpdateUnits"].Value()}, &units); err == nil {
		sort.Slice(units, func(i, j int) bool { return units[i].Unit < units[j].Unit })
		for _, u := range units {
			line := "  " + u.Unit + ": " + u.Outcome
			if u.MainPID > 0 {
				line += fmt.Sprintf(" (main pid %d)", u.MainPID)
			}
			if u.Reason != "" {
				line += ": " + strings.TrimSpace(u.Reason)
			}
			fmt.Fprintln(stdout, line)
		}
	}
	return nil
}
