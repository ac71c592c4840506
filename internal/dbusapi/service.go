package dbusapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/godbus/dbus/v5/prop"
)

// Backend is what the service needs from the machine: the plan, the update
// itself, and a look at the update's state on disk.
type Backend interface {
	Plan(ctx context.Context) ([]Verdict, error)
	// Update checks and starts an update, telling progress as it goes; it
	// returns once the system is going down (or the checks are done, for a
	// dry run). A cancelled ctx stops it before the point of no return.
	Update(ctx context.Context, o UpdateOptions, progress func(phase string, fraction float64, message string)) error
	// Snapshot reads the state that other processes leave: a pending
	// intent, the record of the last update, this boot's restore.
	Snapshot(ctx context.Context) Snapshot
}

// Snapshot is the state of updates as the machine shows it.
type Snapshot struct {
	RunningKernel, PendingKernel string
	// State is derived from the files and units (idle, checkpointing,
	// switching, restoring); the service itself knows when it is planning.
	State string
	Last  LastUpdate
}

// LastUpdate is the record of the last update, as the properties show it.
type LastUpdate struct {
	From, To, Result, Error string
	Timestamp               uint64 // microseconds since the epoch
	Units                   []UnitOutcome
}

// Sentinel errors a Backend returns so that the service can answer with the
// right D-Bus error.
var (
	ErrNoNewerKernel = errors.New("no newer kernel")
	ErrBlocked       = errors.New("blocked by an inhibitor")
)

// Service is the object /io/github/seamless_linux/Seamless1.
type Service struct {
	conn    *dbus.Conn
	backend Backend
	auth    Authorizer
	props   *prop.Properties
	log     io.Writer

	mu       sync.Mutex
	updating bool               // an Update call's checks are running
	switched bool               // that update passed the point of no return
	cancel   context.CancelFunc // cancels the running update
	last     time.Time          // the last call or update, for the idle exit
	snap     Snapshot
}

// Export puts the service on conn at Path. It does not take the bus name:
// the caller does, once the object is there to answer.
func Export(conn *dbus.Conn, b Backend, auth Authorizer, log io.Writer) (*Service, error) {
	if log == nil {
		log = io.Discard
	}
	s := &Service{conn: conn, backend: b, auth: auth, log: log, last: time.Now()}
	s.snap = b.Snapshot(context.Background())
	var err error
	if s.props, err = prop.Export(conn, Path, s.propMap()); err != nil {
		return nil, fmt.Errorf("export properties: %w", err)
	}
	if err := conn.Export(methods{s}, Path, Interface); err != nil {
		return nil, fmt.Errorf("export %s: %w", Interface, err)
	}
	if err := conn.Export(introspect.Introspectable(introspection()), Path, "org.freedesktop.DBus.Introspectable"); err != nil {
		return nil, fmt.Errorf("export introspection: %w", err)
	}
	return s, nil
}

const peerIntrospection = `
	<interface name="org.freedesktop.DBus.Peer">
		<method name="Ping"/>
		<method name="GetMachineId">
			<arg name="machine_uuid" type="s" direction="out"/>
		</method>
	</interface>
`

// introspection is the interface's description with the standard
// interfaces the object also implements.
func introspection() string {
	std := prop.IntrospectDataString + introspect.IntrospectDataString + peerIntrospection
	i := strings.LastIndex(Introspection, "</node>")
	if i < 0 {
		return Introspection
	}
	return Introspection[:i] + std + Introspection[i:]
}

// Serve takes the bus name and keeps the properties current until ctx
// ends, or until the service was idle for idleExit (0: never): a
// bus-activated service is started again by the next call.
func Serve(ctx context.Context, conn *dbus.Conn, s *Service, idleExit time.Duration) error {
	reply, err := conn.RequestName(BusName, dbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("request %s: %w", BusName, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner {
		return fmt.Errorf("the name %s is taken: is another seamless service running?", BusName)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		s.Refresh(ctx)
		if idleExit > 0 && s.idleFor() > idleExit {
			fmt.Fprintf(s.log, "idle for %s: exiting (the bus starts the service again when it is needed)\n", idleExit)
			return nil
		}
	}
}

// idleFor is how long nothing happened: no call, no update in flight, no
// update going on elsewhere.
func (s *Service) idleFor() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.updating || !quiet(s.snap.State) {
		return 0
	}
	return time.Since(s.last)
}

func (s *Service) touch() {
	s.mu.Lock()
	s.last = time.Now()
	s.mu.Unlock()
}

// quiet reports whether, in state st, nothing is under way: idle, or an
// update armed for the next reboot.
func quiet(st string) bool { return st == StateIdle || st == StateArmed }

// state is the State property: the service's own update first, then what
// the machine shows.
func (s *Service) state() string {
	switch {
	case s.switched:
		return StateSwitching
	case s.updating:
		return StatePlanned
	}
	return s.snap.State
}

func (s *Service) propMap() prop.Map {
	p := func(v any) *prop.Prop { return &prop.Prop{Value: v, Emit: prop.EmitTrue} }
	values := s.values()
	m := map[string]*prop.Prop{}
	for k, v := range values {
		m[k] = p(v)
	}
	m["RunningKernel"].Emit = prop.EmitConst
	return prop.Map{Interface: m}
}

// values are the current property values. The caller holds s.mu or runs
// before the service is exported.
func (s *Service) values() map[string]any {
	units := s.snap.Last.Units
	if units == nil {
		units = []UnitOutcome{}
	}
	return map[string]any{
		"RunningKernel":       s.snap.RunningKernel,
		"PendingKernel":       s.snap.PendingKernel,
		"State":               s.state(),
		"LastUpdateFrom":      s.snap.Last.From,
		"LastUpdateTo":        s.snap.Last.To,
		"LastUpdateResult":    s.snap.Last.Result,
		"LastUpdateTimestamp": s.snap.Last.Timestamp,
		"LastUpdateError":     s.snap.Last.Error,
		"LastUpdateUnits":     units,
	}
}

// Refresh reads the machine's state again and announces what changed.
func (s *Service) Refresh(ctx context.Context) {
	snap := s.backend.Snapshot(ctx)
	s.mu.Lock()
	s.snap = snap
	s.publish()
	s.mu.Unlock()
}

// publish sets the properties that changed; PropertiesChanged goes out for
// each. The caller holds s.mu.
func (s *Service) publish() {
	for name, v := range s.values() {
		old, err := s.props.Get(Interface, name)
		if err == nil && equal(old.Value(), v) {
			continue
		}
		s.setProp(name, v)
	}
}

// setProp is props.SetMust, which also emits PropertiesChanged and panics
// when that fails: once the bus connection is closed (the service going
// away while an update still reports progress) nobody is left to tell,
// and the change is dropped. Any other failure still panics: an invalid
// property is this package's bug.
func (s *Service) setProp(name string, v any) {
	defer func() {
		if r := recover(); r != nil && s.conn.Connected() {
			panic(r)
		}
	}()
	s.props.SetMust(Interface, name, v)
}

func equal(a, b any) bool {
	return dbus.MakeVariant(a).String() == dbus.MakeVariant(b).String()
}

// methods are the interface's methods, kept apart from Service so that
// only they are exported on the bus.
type methods struct{ s *Service }

func interactive(msg dbus.Message) bool {
	return msg.Flags&dbus.FlagAllowInteractiveAuthorization != 0
}

func sender(msg dbus.Message) string {
	v, _ := msg.Headers[dbus.FieldSender].Value().(string)
	return v
}

// Plan implements the Plan method.
func (m methods) Plan(msg dbus.Message) ([]Verdict, *dbus.Error) {
	s := m.s
	s.touch()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.auth.Authorize(ctx, sender(msg), ActionPlan, interactive(msg)); err != nil {
		return nil, err
	}
	v, err := s.backend.Plan(ctx)
	if err != nil {
		return nil, dbus.NewError(ErrFailed, []any{err.Error()})
	}
	if v == nil {
		v = []Verdict{}
	}
	return v, nil
}

// Update implements the Update method: the checks that refuse at once run
// before it returns, the rest after, reported by signals.
func (m methods) Update(msg dbus.Message, options map[string]dbus.Variant) *dbus.Error {
	s := m.s
	s.touch()
	o, derr := ParseOptions(options)
	if derr != nil {
		return derr
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.auth.Authorize(ctx, sender(msg), ActionUpdate, interactive(msg)); err != nil {
		cancel()
		return err
	}
	s.mu.Lock()
	if s.updating || s.switched {
		s.mu.Unlock()
		cancel()
		return dbus.NewError(ErrBusy, []any{"an update is already in progress"})
	}
	// An armed update is taken over: Update applies it now.
	if st := s.snap.State; !quiet(st) && st != StateRestoring {
		s.mu.Unlock()
		cancel()
		return dbus.NewError(ErrBusy, []any{"an update is already in progress (" + st + ")"})
	}
	s.updating, s.cancel = true, cancel
	s.publish()
	s.mu.Unlock()
	fmt.Fprintf(s.log, "update requested by %s: %+v\n", sender(msg), o)

	first := make(chan error, 1)
	go s.run(ctx, o, first)
	// Wait for the first step, so that the refusals that need no long
	// work (no such kernel, an inhibitor) are the call's own error.
	select {
	case err := <-first:
		if err != nil {
			return toDBus(err)
		}
	case <-time.After(30 * time.Second):
	}
	return nil
}

// run carries out an update; first receives the outcome of its first step
// (or of the whole update, if it ends earlier).
func (s *Service) run(ctx context.Context, o UpdateOptions, first chan<- error) {
	var once sync.Once
	deliver := func(err error) { once.Do(func() { first <- err }) }
	progress := func(phase string, fraction float64, message string) {
		s.mu.Lock()
		if phase == StateSwitching { // update.PhaseSwitching
			s.switched = true
		}
		s.last = time.Now()
		s.publish()
		s.mu.Unlock()
		s.conn.Emit(Path, Interface+".Progress", phase, fraction, message)
		if phase != "kernel" { // past update.PhaseKernel
			deliver(nil)
		}
	}
	err := s.backend.Update(ctx, o, progress)
	s.mu.Lock()
	switched := s.switched
	s.updating, s.cancel = false, nil
	s.last = time.Now()
	s.publish()
	s.mu.Unlock()

	result, message := ResultSwitching, "the system goes down into the new kernel"
	switch {
	case errors.Is(err, context.Canceled) && !switched:
		result, message = ResultCancelled, "cancelled"
	case err != nil:
		result, message = ResultFailed, err.Error()
	case o.DryRun:
		result, message = ResultChecked, "the update can be made"
	}
	fmt.Fprintf(s.log, "update: %s: %s\n", result, message)
	deliver(err)
	s.conn.Emit(Path, Interface+".UpdateFinished", result, message)
}

// Cancel implements the Cancel method.
func (m methods) Cancel(msg dbus.Message) *dbus.Error {
	s := m.s
	s.touch()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.auth.Authorize(ctx, sender(msg), ActionUpdate, interactive(msg)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.switched || s.snap.State == StateSwitching || s.snap.State == StateCheckpointing:
		return dbus.NewError(ErrTooLate, []any{"the update is past its point of no return: the system is going down"})
	case !s.updating:
		return dbus.NewError(ErrNotRunning, []any{"no update is in progress"})
	}
	s.cancel()
	return nil
}

// toDBus maps a backend error to the interface's errors.
func toDBus(err error) *dbus.Error {
	name := ErrFailed
	switch {
	case errors.Is(err, ErrNoNewerKernel):
		name = ErrNoKernel
	case errors.Is(err, ErrBlocked):
		name = ErrInhibited
	case errors.Is(err, context.Canceled):
		name = ErrFailed
	}
	return dbus.NewError(name, []any{err.Error()})
}
