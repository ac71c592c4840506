package dbusapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// Authorizer decides whether the sender of a call may perform an action.
type Authorizer interface {
	// Authorize returns nil when the caller may, or the D-Bus error to
	// answer it with. interactive is the call's
	// ALLOW_INTERACTIVE_AUTHORIZATION flag.
	Authorize(ctx context.Context, sender, action string, interactive bool) *dbus.Error
}

// Polkit asks polkit's authority on the bus, the way systemd's own services
// do: the subject is the caller's unique bus name (polkit looks up its
// process and user from the bus itself), never something the caller says
// about itself. Where polkit is not installed, only callers the bus knows
// as root are allowed.
type Polkit struct {
	Conn *dbus.Conn
}

const (
	polkitName      = "org.freedesktop.PolicyKit1"
	polkitPath      = dbus.ObjectPath("/org/freedesktop/PolicyKit1/Authority")
	polkitInterface = "org.freedesktop.PolicyKit1.Authority"
	// polkitAllowUserInteraction is CheckAuthorizationFlags' only flag.
	polkitAllowUserInteraction = uint32(1)
)

// polkitSubject is polkit's (sa{sv}) subject.
type polkitSubject struct {
	Kind    string
	Details map[string]dbus.Variant
}

// polkitResult is polkit's (bba{ss}) authorization result.
type polkitResult struct {
	Authorized bool
	Challenge  bool
	Details    map[string]string
}

// Authorize implements Authorizer.
func (p Polkit) Authorize(ctx context.Context, sender, action string, interactive bool) *dbus.Error {
	subject := polkitSubject{Kind: "system-bus-name", Details: map[string]dbus.Variant{"name": dbus.MakeVariant(sender)}}
	flags := uint32(0)
	if interactive {
		flags = polkitAllowUserInteraction
	}
	var res polkitResult
	err := p.Conn.Object(polkitName, polkitPath).CallWithContext(ctx, polkitInterface+".CheckAuthorization", 0,
		subject, action, map[string]string{}, flags, "").Store(&res)
	var derr dbus.Error
	switch {
	case errors.As(err, &derr) && derr.Name == "org.freedesktop.DBus.Error.ServiceUnknown":
		return p.rootOnly(ctx, sender, action)
	case err != nil:
		return dbus.NewError(ErrAccessDenied, []any{fmt.Sprintf("%s: polkit could not be asked: %v", action, err)})
	case res.Authorized:
		return nil
	case res.Challenge && !interactive:
		return dbus.NewError(ErrInteractiveAuthNeed, []any{fmt.Sprintf("%s needs authentication: call with interactive authorization allowed (e.g. busctl --allow-interactive-authorization=yes, or from a session with a polkit agent)", action)})
	}
	return dbus.NewError(ErrAccessDenied, []any{fmt.Sprintf("not authorized for %s", action)})
}

// rootOnly allows the callers that the bus daemon knows as uid 0.
func (p Polkit) rootOnly(ctx context.Context, sender, action string) *dbus.Error {
	uid, err := CallerUID(ctx, p.Conn, sender)
	if err != nil {
		return dbus.NewError(ErrAccessDenied, []any{err.Error()})
	}
	if uid != 0 {
		return dbus.NewError(ErrAccessDenied, []any{fmt.Sprintf("not authorized for %s: polkit is not installed, only root may", action)})
	}
	return nil
}

// CallerUID asks the bus daemon for the uid of the process that owns a bus
// name.
func CallerUID(ctx context.Context, conn *dbus.Conn, sender string) (uint32, error) {
	var uid uint32
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionUnixUser", 0, sender).Store(&uid); err != nil {
		return 0, fmt.Errorf("uid of %s: %w", sender, err)
	}
	return uid, nil
}
