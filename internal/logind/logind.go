// Package logind asks systemd-logind which inhibitors hold off a shutdown:
// a seamless update is a shutdown of the old kernel, and a program that
// took a blocking shutdown inhibitor (systemd-inhibit --what=shutdown)
// must be able to stop it, exactly as it stops `systemctl reboot`.
package logind

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/godbus/dbus/v5"
)

// Where logind lives on the system bus.
const (
	BusName   = "org.freedesktop.login1"
	Path      = "/org/freedesktop/login1"
	Interface = "org.freedesktop.login1.Manager"
)

// Inhibitor is one inhibitor lock, as ListInhibitors reports it.
type Inhibitor struct {
	What string // colon-separated: shutdown, sleep, idle, ...
	Who  string
	Why  string
	Mode string // block, delay or block-weak
	UID  uint32
	PID  uint32
}

func (i Inhibitor) String() string {
	return fmt.Sprintf("%q (pid %d, uid %d) inhibits %s: %s", i.Who, i.PID, i.UID, i.What, i.Why)
}

// Blocks reports whether i stops a shutdown: a "block" lock on "shutdown".
// Delay locks only delay it, and logind waits for them by itself.
func (i Inhibitor) Blocks() bool {
	return i.Mode == "block" && slices.Contains(strings.Split(i.What, ":"), "shutdown")
}

// ShutdownBlockers returns the inhibitors that block a shutdown now.
func ShutdownBlockers(ctx context.Context, conn *dbus.Conn) ([]Inhibitor, error) {
	var list []Inhibitor
	obj := conn.Object(BusName, Path)
	if err := obj.CallWithContext(ctx, Interface+".ListInhibitors", 0).Store(&list); err != nil {
		var derr dbus.Error
		if errors.As(err, &derr) && derr.Name == "org.freedesktop.DBus.Error.ServiceUnknown" {
			return nil, nil // no logind on this system: nobody can hold an inhibitor
		}
		return nil, fmt.Errorf("list logind's inhibitors: %w", err)
	}
	var out []Inhibitor
	for _, i := range list {
		if i.Blocks() {
			out = append(out, i)
		}
	}
	return out, nil
}

// InhibitedError is returned when inhibitors block an update.
type InhibitedError struct{ Blockers []Inhibitor }

func (e *InhibitedError) Error() string {
	var s []string
	for _, b := range e.Blockers {
		s = append(s, b.String())
	}
	return "the update is blocked by a shutdown inhibitor: " + strings.Join(s, "; ") +
		" (ask to ignore inhibitors to go ahead anyway)"
}

// CheckShutdown returns an *InhibitedError when a blocking shutdown
// inhibitor is held, nil when none is.
func CheckShutdown(ctx context.Context, conn *dbus.Conn) error {
	b, err := ShutdownBlockers(ctx, conn)
	if err != nil {
		return err
	}
	if len(b) > 0 {
		return &InhibitedError{Blockers: b}
	}
	return nil
}
