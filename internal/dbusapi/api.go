// Package dbusapi is seamless's system-bus API: a desktop updater (GNOME
// Software, KDE Discover, PackageKit's offline updates) or any program
// asks which services would survive a kernel update, starts one, follows
// its progress and reads the outcome after the new kernel is up. Every
// call is authorised by polkit against the caller's bus name; unprivileged
// `seamless plan/update/status` are clients of it.
//
// The interface is described by io.github.seamless_linux.Seamless1.xml,
// which is served as its introspection data and installed under
// /usr/share/dbus-1/interfaces.
package dbusapi

import (
	_ "embed"

	"github.com/godbus/dbus/v5"
)

// Names on the system bus. The project lives at github.com/seamless-linux:
// its reverse-DNS name is io.github.seamless_linux, the interface is
// versioned.
const (
	BusName   = "io.github.seamless_linux.Seamless1"
	Path      = dbus.ObjectPath("/io/github/seamless_linux/Seamless1")
	Interface = "io.github.seamless_linux.Seamless1"
)

// polkit actions (packaging/polkit/io.github.seamless_linux.seamless1.policy).
const (
	ActionPlan   = "io.github.seamless_linux.seamless1.plan"
	ActionUpdate = "io.github.seamless_linux.seamless1.update"
)

// Errors returned by the interface's methods.
const (
	ErrBusy          = Interface + ".Error.Busy"
	ErrInhibited     = Interface + ".Error.Inhibited"
	ErrNoKernel      = Interface + ".Error.NoKernel"
	ErrInvalidOption = Interface + ".Error.InvalidOption"
	ErrTooLate       = Interface + ".Error.TooLate"
	ErrNotRunning    = Interface + ".Error.NotRunning"
	ErrFailed        = Interface + ".Error.Failed"
	// The bus's own errors for refused calls.
	ErrAccessDenied        = "org.freedesktop.DBus.Error.AccessDenied"
	ErrInteractiveAuthNeed = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
)

// States of the State property.
const (
	StateIdle          = "idle"
	StateArmed         = "armed"
	StatePlanned       = "planned"
	StateCheckpointing = "checkpointing"
	StateSwitching     = "switching"
	StateRestoring     = "restoring"
)

// Results of the UpdateFinished signal.
const (
	ResultSwitching = "switching"
	ResultChecked   = "checked"
	ResultCancelled = "cancelled"
	ResultFailed    = "failed"
)

// Options of the Update method.
const (
	OptKernel           = "kernel"
	OptDryRun           = "dry-run"
	OptIgnoreInhibitors = "ignore-inhibitors"
)

// Introspection is the interface's description, served by Introspect.
//
//go:embed io.github.seamless_linux.Seamless1.xml
var Introspection string

// Verdict is one unit of the Plan method's answer, D-Bus type (sbsst).
type Verdict struct {
	Unit        string
	Carry       bool
	Reason      string
	PreservedBy string
	ImageBytes  uint64
}

// UnitOutcome is one element of the LastUpdateUnits property, D-Bus type
// (ssus).
type UnitOutcome struct {
	Unit    string
	Outcome string
	MainPID uint32
	Reason  string
}

// UpdateOptions are the decoded options of the Update method.
type UpdateOptions struct {
	Kernel           string
	DryRun           bool
	IgnoreInhibitors bool
}

// ParseOptions decodes Update's a{sv}: unknown keys and wrong types are
// refused, so that a typo is not silently an update with defaults.
func ParseOptions(in map[string]dbus.Variant) (UpdateOptions, *dbus.Error) {
	var o UpdateOptions
	for k, v := range in {
		var ok bool
		switch k {
		case OptKernel:
			o.Kernel, ok = v.Value().(string)
		case OptDryRun:
			o.DryRun, ok = v.Value().(bool)
		case OptIgnoreInhibitors:
			o.IgnoreInhibitors, ok = v.Value().(bool)
		default:
			return o, dbus.NewError(ErrInvalidOption, []any{"unknown option " + k})
		}
		if !ok {
			return o, dbus.NewError(ErrInvalidOption, []any{"option " + k + " has type " + v.Signature().String()})
		}
	}
	return o, nil
}

// Variants encodes o as Update's a{sv}, leaving out what is at its default.
func (o UpdateOptions) Variants() map[string]dbus.Variant {
	m := map[string]dbus.Variant{}
	if o.Kernel != "" {
		m[OptKernel] = dbus.MakeVariant(o.Kernel)
	}
	if o.DryRun {
		m[OptDryRun] = dbus.MakeVariant(true)
	}
	if o.IgnoreInhibitors {
		m[OptIgnoreInhibitors] = dbus.MakeVariant(true)
	}
	return m
}
