package netlock

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
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

// tableExists reports whether the lock table is in the namespace ns.
func tableExists(t *testing.T, ns *os.File) bool {
	t.Helper()
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == TableName {
			return true
		}
	}
	return false
}

// TestRemoveDropsTheEmptyTable: the table inet seamless goes with its last
// chain, and stays while another checkpoint's chain is in it (issue 10
// finding 11: an empty table stayed behind after every run).
func TestRemoveDropsTheEmptyTable(t *testing.T) {
	ns := newNetns(t)
	a, err := Open(ns, NewName())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(ns, NewName())
	if err != nil {
		t.Fatal(err)
	}
	bName := b.Name()
	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
	names, err := List(ns)
	if err != nil || !slices.Equal(names, []string{bName}) || !tableExists(t, ns) {
		t.Fatalf("after removing one of two locks: chains %v (%v), want [%s] in the table", names, err, bName)
	}
	if err := b.Remove(); err != nil {
		t.Fatal(err)
	}
	if tableExists(t, ns) {
		t.Fatal("the empty table inet seamless stays after its last lock was removed")
	}
}

// TestTableDeletionWaitsForItsGeneration: a deletion of the table decided
// on a ruleset that changed since (another checkpoint added its chain) is
// refused by the kernel, and that chain stays.
func TestTableDeletionWaitsForItsGeneration(t *testing.T) {
	ns := newNetns(t)
	if _, err := Open(ns, NewName()); err != nil {
		t.Fatal(err)
	}
	c := dialNetfilter(t, ns)
	gen, err := generation(c)
	if err != nil {
		t.Fatal(err)
	}
	other, err := Open(ns, NewName())
	if err != nil {
		t.Fatal(err)
	}
	if err := deleteTableAt(c, gen); !errors.Is(err, unix.ERESTART) {
		t.Fatalf("deleting the table at an old generation: %v, want ERESTART", err)
	}
	if names, _ := List(ns); !slices.Contains(names, other.Name()) {
		t.Fatalf("the other checkpoint's chain is gone: %v", names)
	}
	if gen, err = generation(c); err != nil {
		t.Fatal(err)
	}
	if err := deleteTableAt(c, gen); err != nil || tableExists(t, ns) {
		t.Fatalf("deleting the table at the current generation: %v", err)
	}
}

// TestUnavailable: the errors of a kernel without nftables (nfnetlink or
// nf_tables not loaded), bare or explained, mean that no lock can exist;
// the others do not.
func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("socket: %w", unix.EPROTONOSUPPORT), true},
		{explain(fmt.Errorf("socket: %w", unix.EPROTONOSUPPORT)), true},
		{unix.EAFNOSUPPORT, true},
		{unix.EOPNOTSUPP, true},
		{errors.New("netlink receive: protocol not supported"), true},
		{unix.EPERM, false},
		{unix.ENOENT, false},
	} {
		if got := unavailable(tc.err); got != tc.want {
			t.Errorf("unavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestDropWhatIsNotThere: dropping a lock that was never installed (a unit
// given up before seamless-netlock.service ran) changes nothing in the
// ruleset, and a lock that is there goes with its table.
func TestDropWhatIsNotThere(t *testing.T) {
	ns := newNetns(t)
	c := dialNetfilter(t, ns)
	before, err := generation(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := Drop(ns, NewName()); err != nil {
		t.Fatalf("dropping a lock that is not there: %v", err)
	}
	if after, err := generation(c); err != nil || after != before || tableExists(t, ns) {
		t.Fatalf("dropping a lock that is not there changed the ruleset (generation %d to %d, %v)", before, after, err)
	}
	l, err := Open(ns, NewName())
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	if err := Drop(ns, l.Name()); err != nil || tableExists(t, ns) {
		t.Fatalf("Drop of an installed lock: %v; want it gone with its table", err)
	}
}

// dialNetfilter opens a netfilter netlink socket in the network namespace
// ns, closed when the test ends.
func dialNetfilter(t *testing.T, ns *os.File) *netlink.Conn {
	t.Helper()
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(ns.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
