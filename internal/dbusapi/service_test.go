package dbusapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/seamless-linux/seamless/internal/logind"
)

// fakeBackend is the machine behind the service in these tests: what the
// service does with it is recorded. Inhibitors are checked through the
// real logind client against the fake logind on the test bus, as
// update.Update checks them on the system bus.
type fakeBackend struct {
	bus *dbus.Conn

	mu      sync.Mutex
	snap    Snapshot
	updates []UpdateOptions
	hold    chan struct{} // if set, Update waits on it (or a cancel) after "planned"
}

func (b *fakeBackend) Plan(ctx context.Context) ([]Verdict, error) {
	return []Verdict{
		{Unit: "memcached.service", Carry: true, PreservedBy: "/etc/systemd/system/memcached.service.d/seamless.conf", ImageBytes: 20 << 20},
		{Unit: "postgresql@15-main.service", Carry: false, Reason: "pid 900 fd 7: AIO ring (io_setup) is not supported", PreservedBy: "seamless.conf"},
	}, nil
}

func (b *fakeBackend) Update(ctx context.Context, o UpdateOptions, progress func(string, float64, string)) error {
	b.mu.Lock()
	b.updates = append(b.updates, o)
	hold := b.hold
	b.mu.Unlock()
	if o.Kernel == "9.9.9" {
		return fmt.Errorf("%w: kernel 9.9.9 is not installed", ErrNoNewerKernel)
	}
	progress("kernel", 0.1, "update 6.1.0-47-amd64 -> 6.1.0-50-amd64")
	if !o.IgnoreInhibitors {
		var inh *logind.InhibitedError
		if err := logind.CheckShutdown(ctx, b.bus); errors.As(err, &inh) {
			return fmt.Errorf("%w: %v", ErrBlocked, err)
		} else if err != nil {
			return err
		}
	}
	progress("inhibitors", 0.2, "no shutdown inhibitor blocks the update")
	progress("kexec-load", 0.5, "kernel loaded")
	progress("plan", 0.7, "1 units carried, 1 stopped")
	progress("planned", 0.9, "ready")
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if o.DryRun {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	progress("switching", 1, "switching to 6.1.0-50-amd64")
	return nil
}

func (b *fakeBackend) Snapshot(ctx context.Context) Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.snap
}

func (b *fakeBackend) calls() []UpdateOptions {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]UpdateOptions{}, b.updates...)
}

// world is a private bus with the service, a fake polkit and a fake logind.
type world struct {
	bus     *testBus
	root    *dbus.Conn // a root client
	polkit  *fakePolkit
	logind  *fakeLogind
	backend *fakeBackend
	service *Service
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{bus: startBus(t)}
	w.polkit = startPolkit(t, w.bus)
	w.logind = startLogind(t, w.bus)
	svc := w.bus.connect(t)
	w.backend = &fakeBackend{bus: svc, snap: Snapshot{RunningKernel: "6.1.0-47-amd64", PendingKernel: "6.1.0-50-amd64", State: StateIdle}}
	var err error
	if w.service, err = Export(svc, w.backend, Polkit{Conn: svc}, io.Discard); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, svc, w.service, 0) }()
	t.Cleanup(func() { cancel(); <-done })
	w.root = w.bus.connect(t)
	waitFor(t, "the service's name", func() bool {
		var has bool
		w.root.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, BusName).Store(&has)
		return has
	})
	return w
}

// signals subscribes c to the service's signals.
func signals(t *testing.T, c *dbus.Conn) <-chan *dbus.Signal {
	t.Helper()
	if err := c.AddMatchSignal(dbus.WithMatchSender(BusName), dbus.WithMatchObjectPath(Path)); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 256)
	c.Signal(ch)
	return ch
}

// next returns the next signal named name (other signals are skipped).
func next(t *testing.T, ch <-chan *dbus.Signal, name string) *dbus.Signal {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s := <-ch:
			if s.Name == name {
				return s
			}
		case <-timeout:
			t.Fatalf("no %s signal", name)
		}
	}
}

func errName(err error) string {
	var e dbus.Error
	if errors.As(err, &e) {
		return e.Name
	}
	return fmt.Sprintf("(not a D-Bus error: %v)", err)
}

func TestIntrospectionDescribesWhatIsServed(t *testing.T) {
	w := newWorld(t)
	var xml string
	if err := w.root.Object(BusName, Path).Call("org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&xml); err != nil {
		t.Fatal(err)
	}
	var props map[string]dbus.Variant
	if err := w.root.Object(BusName, Path).Call("org.freedesktop.DBus.Properties.GetAll", 0, Interface).Store(&props); err != nil {
		t.Fatal(err)
	}
	// A decoded variant's signature is rebuilt from its value (an empty
	// array of structs would show as "av"): the types come from the
	// service's own values, the names from what the bus returned.
	values := w.service.values()
	for name := range props {
		want := fmt.Sprintf(`<property name="%s" type="%s"`, name, dbus.SignatureOf(values[name]))
		if !strings.Contains(xml, want) {
			t.Errorf("introspection lacks %s", want)
		}
	}
	if n := strings.Count(xml, "<property "); n != len(props) {
		t.Errorf("introspection describes %d properties, the service has %d", n, len(props))
	}
	for _, m := range []string{`<method name="Plan">`, `<method name="Update">`, `<method name="Cancel"/>`, `<signal name="Progress">`, `<signal name="UpdateFinished">`} {
		if !strings.Contains(xml, m) {
			t.Errorf("introspection lacks %s", m)
		}
	}
}

func TestPropertiesFollowTheMachine(t *testing.T) {
	w := newWorld(t)
	obj := w.root.Object(BusName, Path)
	get := func(name string) any {
		v, err := obj.GetProperty(Interface + "." + name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return v.Value()
	}
	if got := get("RunningKernel"); got != "6.1.0-47-amd64" {
		t.Errorf("RunningKernel %v", got)
	}
	if got := get("PendingKernel"); got != "6.1.0-50-amd64" {
		t.Errorf("PendingKernel %v", got)
	}
	if got := get("State"); got != StateIdle {
		t.Errorf("State %v", got)
	}
	if err := w.root.AddMatchSignal(dbus.WithMatchSender(BusName), dbus.WithMatchInterface("org.freedesktop.DBus.Properties")); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 64)
	w.root.Signal(ch)
	// The new kernel is up and the restore daemon recorded its outcome.
	w.backend.mu.Lock()
	w.backend.snap = Snapshot{RunningKernel: "6.1.0-47-amd64", State: StateIdle, Last: LastUpdate{
		From: "6.1.0-47-amd64", To: "6.1.0-50-amd64", Result: "restored", Timestamp: 1,
		Units: []UnitOutcome{{Unit: "memcached.service", Outcome: "restored", MainPID: 312}}}}
	w.backend.mu.Unlock()
	w.service.Refresh(context.Background())
	changed := map[string]dbus.Variant{}
	for len(changed) < 6 {
		s := next(t, ch, "org.freedesktop.DBus.Properties.PropertiesChanged")
		for k, v := range s.Body[1].(map[string]dbus.Variant) {
			changed[k] = v
		}
	}
	if got := changed["LastUpdateResult"].Value(); got != "restored" {
		t.Errorf("LastUpdateResult changed to %v", got)
	}
	if _, ok := changed["RunningKernel"]; ok {
		t.Errorf("RunningKernel announced as changed")
	}
	var units []UnitOutcome
	if err := dbus.Store([]any{changed["LastUpdateUnits"].Value()}, &units); err != nil || len(units) != 1 || units[0].MainPID != 312 {
		t.Errorf("LastUpdateUnits %v (%v)", changed["LastUpdateUnits"], err)
	}
	if got := get("PendingKernel"); got != "" {
		t.Errorf("PendingKernel %v after the update", got)
	}
}

func TestRootUpdateSignalsPhasesInOrder(t *testing.T) {
	w := newWorld(t)
	ch := signals(t, w.root)
	if err := w.root.Object(BusName, Path).Call(Interface+".Update", 0, map[string]dbus.Variant{}).Err; err != nil {
		t.Fatal(err)
	}
	var phases []string
	for {
		s := next(t, ch, Interface+".Progress")
		phases = append(phases, s.Body[0].(string))
		if s.Body[0] == "switching" {
			break
		}
	}
	want := []string{"kernel", "inhibitors", "kexec-load", "plan", "planned", "switching"}
	if !slices.Equal(phases, want) {
		t.Errorf("phases %v, want %v", phases, want)
	}
	fin := next(t, ch, Interface+".UpdateFinished")
	if fin.Body[0] != ResultSwitching {
		t.Errorf("UpdateFinished %v", fin.Body)
	}
	// The polkit check was made for the caller's bus name, not trusted.
	w.polkit.mu.Lock()
	reqs := w.polkit.requests
	w.polkit.mu.Unlock()
	if len(reqs) != 1 || !strings.HasPrefix(reqs[0], ActionUpdate+" system-bus-name "+w.root.Names()[0]+" ") {
		t.Errorf("polkit was asked %q", reqs)
	}
}

func TestInhibitorBlocksUnlessIgnored(t *testing.T) {
	w := newWorld(t)
	w.logind.hold(logind.Inhibitor{What: "shutdown:sleep", Who: "backup-job", Why: "writing the nightly backup", Mode: "block", UID: 1000, PID: 4242})
	w.logind.hold(logind.Inhibitor{What: "shutdown", Who: "NetworkManager", Why: "delay", Mode: "delay", UID: 0, PID: 7})
	obj := w.root.Object(BusName, Path)
	err := obj.Call(Interface+".Update", 0, map[string]dbus.Variant{}).Err
	if errName(err) != ErrInhibited || !strings.Contains(err.Error(), "backup-job") || strings.Contains(err.Error(), "NetworkManager") {
		t.Fatalf("Update with a blocking inhibitor: %v (%s)", err, errName(err))
	}
	ch := signals(t, w.root)
	if err := obj.Call(Interface+".Update", 0, map[string]dbus.Variant{OptIgnoreInhibitors: dbus.MakeVariant(true)}).Err; err != nil {
		t.Fatalf("Update ignoring inhibitors: %v", err)
	}
	if fin := next(t, ch, Interface+".UpdateFinished"); fin.Body[0] != ResultSwitching {
		t.Errorf("UpdateFinished %v", fin.Body)
	}
}

func TestUpdateRefusals(t *testing.T) {
	w := newWorld(t)
	obj := w.root.Object(BusName, Path)
	cases := []struct {
		name string
		opts map[string]dbus.Variant
		want string
	}{
		{"unknown option", map[string]dbus.Variant{"reboot": dbus.MakeVariant(true)}, ErrInvalidOption},
		{"wrong type", map[string]dbus.Variant{OptDryRun: dbus.MakeVariant("yes")}, ErrInvalidOption},
		{"no such kernel", map[string]dbus.Variant{OptKernel: dbus.MakeVariant("9.9.9")}, ErrNoKernel},
	}
	for _, c := range cases {
		if err := obj.Call(Interface+".Update", 0, c.opts).Err; errName(err) != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
}

func TestCancelBeforeThePointOfNoReturn(t *testing.T) {
	w := newWorld(t)
	w.backend.hold = make(chan struct{})
	obj := w.root.Object(BusName, Path)
	ch := signals(t, w.root)
	if err := obj.Call(Interface+".Cancel", 0).Err; errName(err) != ErrNotRunning {
		t.Errorf("Cancel with nothing running: %v", err)
	}
	if err := obj.Call(Interface+".Update", 0, map[string]dbus.Variant{}).Err; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "State planned", func() bool {
		v, _ := obj.GetProperty(Interface + ".State")
		return v.Value() == StatePlanned
	})
	if err := obj.Call(Interface+".Update", 0, map[string]dbus.Variant{}).Err; errName(err) != ErrBusy {
		t.Errorf("a second Update: %v, want %s", err, ErrBusy)
	}
	if err := obj.Call(Interface+".Cancel", 0).Err; err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if fin := next(t, ch, Interface+".UpdateFinished"); fin.Body[0] != ResultCancelled {
		t.Errorf("UpdateFinished %v", fin.Body)
	}
	waitFor(t, "State idle", func() bool {
		v, _ := obj.GetProperty(Interface + ".State")
		return v.Value() == StateIdle
	})
	// Once switching, it is too late.
	w.backend.mu.Lock()
	w.backend.snap.State = StateSwitching
	w.backend.mu.Unlock()
	w.service.Refresh(context.Background())
	if err := obj.Call(Interface+".Cancel", 0).Err; errName(err) != ErrTooLate {
		t.Errorf("Cancel while switching: %v", err)
	}
}

// TestUnprivilegedCaller runs a client as nobody: without a grant, Update
// is refused and nothing happens; Plan works for an active session; a
// local polkit rule granting the update action lets it through.
func TestUnprivilegedCaller(t *testing.T) {
	w := newWorld(t)
	run := func(method string, interactive bool) clientResult {
		t.Helper()
		return runAsNobody(t, w.bus, method, interactive)
	}
	if r := run("Update", false); r.Error != ErrInteractiveAuthNeed {
		t.Errorf("nobody's Update: %+v", r)
	}
	if r := run("Update", true); r.Error != ErrAccessDenied && r.Error != ErrInteractiveAuthNeed {
		t.Errorf("nobody's interactive Update with no agent: %+v", r)
	}
	if n := len(w.backend.calls()); n != 0 {
		t.Fatalf("a refused caller started %d updates", n)
	}
	if r := run("Plan", false); r.Error != ErrInteractiveAuthNeed {
		t.Errorf("nobody's Plan outside an active session: %+v", r)
	}
	w.polkit.mu.Lock()
	w.polkit.active = true
	w.polkit.mu.Unlock()
	if r := run("Plan", false); r.Error != "" || r.Units != 2 {
		t.Errorf("nobody's Plan in an active session: %+v", r)
	}
	w.polkit.mu.Lock()
	w.polkit.granted[ActionUpdate] = true
	w.polkit.mu.Unlock()
	if r := run("Update", false); r.Error != "" || r.Result != ResultSwitching {
		t.Errorf("nobody's Update with a granting rule: %+v", r)
	}
	if n := len(w.backend.calls()); n != 1 {
		t.Errorf("%d updates after the granted call", n)
	}
	// The interactive flag reached polkit as AllowUserInteraction.
	w.polkit.mu.Lock()
	defer w.polkit.mu.Unlock()
	if !slices.ContainsFunc(w.polkit.requests, func(r string) bool { return strings.HasPrefix(r, ActionUpdate) && strings.HasSuffix(r, " 1") }) {
		t.Errorf("no interactive request reached polkit: %q", w.polkit.requests)
	}
}

// clientResult is what the unprivileged client process reports.
type clientResult struct {
	Error  string
	Units  int
	Result string
}

const clientEnv = "SEAMLESS_DBUS_TEST_CLIENT"

// runAsNobody runs this test binary as uid/gid 65534, as a client.
func runAsNobody(t *testing.T, b *testBus, method string, interactive bool) clientResult {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(b.dir, "client.test")
	if _, err := os.Stat(exe); err != nil {
		data, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(exe, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = []string{clientEnv + "=" + method, "SEAMLESS_DBUS_TEST_BUS=" + b.addr, fmt.Sprintf("SEAMLESS_DBUS_TEST_INTERACTIVE=%v", interactive)}
	cmd.Dir = b.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client as nobody: %v\n%s%s", err, out, stderr.String())
	}
	var r clientResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	return r
}

// TestMain turns the test binary into the unprivileged client when asked.
func TestMain(m *testing.M) {
	if method := os.Getenv(clientEnv); method != "" {
		os.Exit(client(method))
	}
	os.Exit(m.Run())
}

func client(method string) int {
	conn, err := dbus.Connect(os.Getenv("SEAMLESS_DBUS_TEST_BUS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	c := Client{Conn: conn, Interactive: os.Getenv("SEAMLESS_DBUS_TEST_INTERACTIVE") == "true"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var r clientResult
	switch method {
	case "Plan":
		v, err := c.Plan(ctx)
		r.Units, r.Error = len(v), errNameOrEmpty(err)
	case "Update":
		res, err := c.Update(ctx, UpdateOptions{}, nil)
		r.Result, r.Error = res, errNameOrEmpty(err)
	}
	json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

func errNameOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return errName(err)
}

// TestArmedUpdateIsTakenOver: an update that APT's hook armed for the next
// reboot shows as State armed, and Update applies it now; a switching
// machine still refuses a second update.
func TestArmedUpdateIsTakenOver(t *testing.T) {
	w := newWorld(t)
	obj := w.root.Object(BusName, Path)
	for _, c := range []struct {
		state, want string
	}{
		{StateSwitching, ErrBusy},
		{StateArmed, ""},
	} {
		w.backend.mu.Lock()
		w.backend.snap.State = c.state
		w.backend.mu.Unlock()
		w.service.Refresh(context.Background())
		if v, err := obj.GetProperty(Interface + ".State"); err != nil || v.Value() != c.state {
			t.Fatalf("State %v, %v; want %s", v, err, c.state)
		}
		err := obj.Call(Interface+".Update", 0, map[string]dbus.Variant{}).Err
		if (c.want == "" && err != nil) || (c.want != "" && errName(err) != c.want) {
			t.Errorf("Update while %s: %v, want %q", c.state, err, c.want)
		}
	}
}

// TestPublishAfterTheBusIsGone: a change published once the service's
// connection is closed (the service stopping while an update still
// reports progress) is dropped, not a panic.
func TestPublishAfterTheBusIsGone(t *testing.T) {
	w := newWorld(t)
	w.backend.bus.Close()
	w.backend.mu.Lock()
	w.backend.snap.State = StateArmed
	w.backend.mu.Unlock()
	w.service.Refresh(context.Background())
}
