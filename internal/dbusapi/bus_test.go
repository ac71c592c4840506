package dbusapi

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/seamless-linux/seamless/internal/logind"
)

// testBus is a private dbus-daemon configured like the system bus (calls
// denied unless a policy allows them) with the project's own bus policy
// (packaging/dbus) included, so that the tests also prove that policy.
type testBus struct {
	addr string
	dir  string
}

const testBusConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <!-- the stand-ins for polkitd and logind run as root -->
  <policy user="root">
    <allow own="org.freedesktop.PolicyKit1"/>
    <allow own="org.freedesktop.login1"/>
    <allow send_destination="org.freedesktop.PolicyKit1"/>
    <allow send_destination="org.freedesktop.login1"/>
  </policy>
  <include>%s</include>
</busconfig>
`

func startBus(t *testing.T) *testBus {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (a private bus with root and unprivileged callers)")
	}
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Skip("dbus-daemon is not installed")
	}
	// World-traversable, so that the unprivileged client reaches the socket.
	dir, err := os.MkdirTemp("", "seamless-dbus-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	policy, err := filepath.Abs("../../packaging/dbus/io.github.seamless_linux.Seamless1.conf")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "bus")
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, testBusConfig, sock, policy), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--print-address")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Its complaints (it cannot raise its fd limit here) are not the test's.
	cmd.Stderr = nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("dbus-daemon did not start: %v", err)
	}
	return &testBus{addr: strings.TrimSpace(line), dir: dir}
}

// connect opens a connection to the bus as this (root) process.
func (b *testBus) connect(t *testing.T) *dbus.Conn {
	t.Helper()
	c, err := dbus.Connect(b.addr)
	if err != nil {
		t.Fatalf("connect to the test bus: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// fakePolkit stands in for polkitd: it answers CheckAuthorization as the
// shipped .policy file says for the caller it looks up on the bus (root is
// always authorised, as polkitd does), plus what the test grants, like a
// rule in /etc/polkit-1/rules.d.
type fakePolkit struct {
	conn *dbus.Conn

	mu       sync.Mutex
	active   bool            // the unprivileged caller is in an active local session
	granted  map[string]bool // actions a local rule grants
	requests []string        // "action subject-name flags"
}

func (p *fakePolkit) CheckAuthorization(subject polkitSubject, action string, details map[string]string, flags uint32, cancel string) (polkitResult, *dbus.Error) {
	name, _ := subject.Details["name"].Value().(string)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = append(p.requests, fmt.Sprintf("%s %s %s %d", action, subject.Kind, name, flags))
	if subject.Kind != "system-bus-name" {
		return polkitResult{}, dbus.NewError("org.freedesktop.PolicyKit1.Error.Failed", []any{"unexpected subject " + subject.Kind})
	}
	uid, err := CallerUID(context.Background(), p.conn, name)
	if err != nil {
		return polkitResult{}, dbus.MakeFailedError(err)
	}
	switch {
	case uid == 0, p.granted[action], action == ActionPlan && p.active:
		return polkitResult{Authorized: true, Details: map[string]string{}}, nil
	}
	// auth_admin_keep: a challenge, which only an agent can answer.
	return polkitResult{Challenge: true, Details: map[string]string{}}, nil
}

func startPolkit(t *testing.T, b *testBus) *fakePolkit {
	t.Helper()
	p := &fakePolkit{conn: b.connect(t), granted: map[string]bool{}}
	if err := p.conn.Export(p, polkitPath, polkitInterface); err != nil {
		t.Fatal(err)
	}
	if r, err := p.conn.RequestName(polkitName, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own %s: %v %v", polkitName, r, err)
	}
	return p
}

// fakeLogind stands in for systemd-logind's ListInhibitors.
type fakeLogind struct {
	mu    sync.Mutex
	locks []logind.Inhibitor
}

func (l *fakeLogind) ListInhibitors() ([]logind.Inhibitor, *dbus.Error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]logind.Inhibitor{}, l.locks...), nil
}

func (l *fakeLogind) hold(i logind.Inhibitor) {
	l.mu.Lock()
	l.locks = append(l.locks, i)
	l.mu.Unlock()
}

func startLogind(t *testing.T, b *testBus) *fakeLogind {
	t.Helper()
	l := &fakeLogind{}
	c := b.connect(t)
	if err := c.Export(l, "/org/freedesktop/login1", "org.freedesktop.login1.Manager"); err != nil {
		t.Fatal(err)
	}
	if r, err := c.RequestName("org.freedesktop.login1", dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own login1: %v %v", r, err)
	}
	return l
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
