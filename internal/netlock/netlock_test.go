package netlock

import (
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// inNewNetns runs the test body's lock operations against a fresh network
// namespace, returned as an open file.
func newNetns(t *testing.T) *os.File {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		t.Skipf("unshare: %v", err)
	}
	ns, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

func TestLockLifecycle(t *testing.T) {
	ns := newNetns(t)
	name := NewName()
	l, err := Open(ns, name)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	flows := []Flow{
		{Proto: unix.IPPROTO_TCP, Local: netip.MustParseAddrPort("10.0.0.1:80"), Peer: netip.MustParseAddrPort("10.0.0.2:5000")},
		{Proto: unix.IPPROTO_TCP, Local: netip.MustParseAddrPort("[::]:80"), SYNOnly: true, AnyFamily: true},
		{Proto: unix.IPPROTO_UDP, Local: netip.MustParseAddrPort("[fd00::1]:53")},
		{Proto: unix.IPPROTO_TCP, Local: netip.MustParseAddrPort("[::ffff:10.0.0.1]:81"), Peer: netip.MustParseAddrPort("[::ffff:10.0.0.3]:6000")},
	}
	if err := l.Init(); err != nil {
		t.Fatal(err)
	}
	if err := l.Add(flows...); err != nil {
		t.Fatal(err)
	}
	rules, err := l.conn.GetRules(l.table, l.chain)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 6 { // mark + 1 + 2 + 1 + 1
		t.Errorf("got %d rules, want 6", len(rules))
	}
	if err := l.Replace(flows[:1]); err != nil {
		t.Fatal(err)
	}
	if rules, _ = l.conn.GetRules(l.table, l.chain); len(rules) != 2 {
		t.Errorf("after replace: %d rules, want 2", len(rules))
	}
	names, err := List(ns)
	if err != nil || !slices.Contains(names, name) {
		t.Fatalf("list = %v, %v; want %s", names, err, name)
	}
	if err := l.Remove(); err != nil {
		t.Fatal(err)
	}
	if names, _ = List(ns); slices.Contains(names, name) {
		t.Errorf("chain %s still present after Remove", name)
	}
	if err := RemoveAll(ns); err != nil {
		t.Fatal(err)
	}
}
