package dbusapi

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// Client calls the service, as unprivileged `seamless plan/update/status`
// do (the way systemctl talks to systemd).
type Client struct {
	Conn *dbus.Conn
	// Interactive lets polkit ask the user to authenticate (through the
	// session's agent, or a text agent the caller started).
	Interactive bool
}

func (c Client) obj() dbus.BusObject { return c.Conn.Object(BusName, Path) }

// call calls one of the interface's methods. It builds the message itself:
// godbus's Object.Call drops the ALLOW_INTERACTIVE_AUTHORIZATION flag,
// which tells polkit that it may ask the user.
func (c Client) call(ctx context.Context, method string, args ...any) *dbus.Call {
	msg := &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:        dbus.MakeVariant(Path),
		dbus.FieldDestination: dbus.MakeVariant(BusName),
		dbus.FieldInterface:   dbus.MakeVariant(Interface),
		dbus.FieldMember:      dbus.MakeVariant(method),
	}, Body: args}
	if c.Interactive {
		msg.Flags = dbus.FlagAllowInteractiveAuthorization
	}
	if len(args) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(args...))
	}
	return <-c.Conn.SendWithContext(ctx, msg, make(chan *dbus.Call, 1)).Done
}

// Plan calls the Plan method.
func (c Client) Plan(ctx context.Context) ([]Verdict, error) {
	var v []Verdict
	if err := c.call(ctx, "Plan").Store(&v); err != nil {
		return nil, fmt.Errorf("%s.Plan: %w", BusName, err)
	}
	return v, nil
}

// Properties reads every property of the interface.
func (c Client) Properties(ctx context.Context) (map[string]dbus.Variant, error) {
	var m map[string]dbus.Variant
	if err := c.obj().CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, Interface).Store(&m); err != nil {
		return nil, fmt.Errorf("%s properties: %w", BusName, err)
	}
	return m, nil
}

// Update calls the Update method and follows its signals: progress is
// called for each Progress signal; it returns when UpdateFinished comes,
// with an error unless the result is switching or checked.
func (c Client) Update(ctx context.Context, o UpdateOptions, progress func(phase string, fraction float64, message string)) (string, error) {
	// Subscribe before the call: the first signals may come before its
	// reply.
	rule := []dbus.MatchOption{dbus.WithMatchSender(BusName), dbus.WithMatchObjectPath(Path), dbus.WithMatchInterface(Interface)}
	if err := c.Conn.AddMatchSignalContext(ctx, rule...); err != nil {
		return "", fmt.Errorf("subscribe to %s's signals: %w", BusName, err)
	}
	defer c.Conn.RemoveMatchSignalContext(context.Background(), rule...)
	signals := make(chan *dbus.Signal, 64)
	c.Conn.Signal(signals)
	defer c.Conn.RemoveSignal(signals)
	if err := c.call(ctx, "Update", o.Variants()).Err; err != nil {
		return "", fmt.Errorf("%s.Update: %w", BusName, err)
	}
	// Anyone may emit a signal with this path and interface: only the
	// name's owner is heard.
	var owner string
	if err := c.Conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, BusName).Store(&owner); err != nil {
		return "", fmt.Errorf("owner of %s: %w", BusName, err)
	}
	for {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case sig, ok := <-signals:
			if !ok {
				return "", fmt.Errorf("lost the connection to the bus")
			}
			if sig.Sender != owner {
				continue
			}
			switch sig.Name {
			case Interface + ".Progress":
				var phase, msg string
				var frac float64
				if dbus.Store(sig.Body, &phase, &frac, &msg) == nil && progress != nil {
					progress(phase, frac, msg)
				}
			case Interface + ".UpdateFinished":
				var result, msg string
				if err := dbus.Store(sig.Body, &result, &msg); err != nil {
					return "", fmt.Errorf("UpdateFinished: %w", err)
				}
				if result != ResultSwitching && result != ResultChecked {
					return result, fmt.Errorf("update %s: %s", result, msg)
				}
				return result, nil
			}
		}
	}
}

// Cancel calls the Cancel method.
func (c Client) Cancel(ctx context.Context) error {
	if err := c.call(ctx, "Cancel").Err; err != nil {
		return fmt.Errorf("%s.Cancel: %w", BusName, err)
	}
	return nil
}
