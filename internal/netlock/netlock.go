// Package netlock is the network lock: between a checkpoint and the
// restore, the inbound packets of the preserved TCP connections, listening
// ports and UDP sockets are dropped (not answered with a reset or an ICMP
// error), so that peers retransmit and clients retry their SYNs.
//
// The lock lives in the kernel, in the nftables table "inet seamless" of the
// sockets' network namespace, so it outlives the checkpointer. Each
// checkpoint owns one base chain of that table (hook prerouting, priority
// raw, before connection tracking), named after the checkpoint
// ("lock-<hex>"); its first rule accepts packets carrying Mark (those that
// the restorer injects itself), the others drop the locked flows. Removing
// the lock is deleting the chain; the table goes with its last chain, and
// never while another checkpoint's chain is in it (see table.go). An
// operator removes every stale lock with
//
//	nft delete table inet seamless
//
// Setting SEAMLESS_NETLOCK=none in the environment disables the lock (for
// kernels without nf_tables and for tests): peers may then see resets
// during the gap.
package netlock

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is the nftables table (family inet) that holds every lock.
const TableName = "seamless"

// Mark is the packet mark (SO_MARK) that passes the lock: the restorer
// injects packets (a peer's FIN, queued UDP datagrams) carrying it.
const Mark = 0x5ea1e55

// Disabled reports whether the lock is turned off (SEAMLESS_NETLOCK=none).
func Disabled() bool { return os.Getenv("SEAMLESS_NETLOCK") == "none" }

// NewName returns a fresh chain name for one checkpoint.
func NewName() string {
	var b [6]byte
	rand.Read(b[:])
	return "lock-" + hex.EncodeToString(b[:])
}

// Flow is one locked endpoint: inbound packets of protocol Proto (TCP or
// UDP) sent to Local from Peer are dropped. An unspecified Local address
// matches any local address; a zero Peer matches any peer. SYNOnly drops
// only connection requests (for listening sockets, whose port may carry
// connections that are not locked).
type Flow struct {
	Proto   int
	Local   netip.AddrPort
	Peer    netip.AddrPort
	SYNOnly bool
	// AnyFamily makes an unspecified Local address match IPv4 too (a
	// dual-stack IPv6 socket).
	AnyFamily bool
}

func (f Flow) String() string {
	p := "tcp"
	if f.Proto == unix.IPPROTO_UDP {
		p = "udp"
	}
	s := p + " to " + f.Local.String()
	if f.Peer.IsValid() {
		s += " from " + f.Peer.String()
	}
	if f.SYNOnly {
		s += " (SYN)"
	}
	return s
}

// Lock is one checkpoint's chain in one network namespace.
type Lock struct {
	ns    *os.File // the namespace, held open for the lock's lifetime
	conn  *nftables.Conn
	table *nftables.Table
	chain *nftables.Chain
}

// Open returns the lock chain called name in the network namespace netns
// (an open /proc/PID/ns/net; nil for the caller's own), creating the table
// and the chain if they do not exist. Existing rules are kept.
func Open(netns *os.File, name string) (*Lock, error) {
	ns, err := holdNetns(netns)
	if err != nil {
		return nil, err
	}
	conn, err := dial(ns)
	if err != nil {
		ns.Close()
		return nil, err
	}
	l := &Lock{ns: ns, conn: conn, table: &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}}
	policy := nftables.ChainPolicyAccept
	l.chain = &nftables.Chain{
		Name:     name,
		Table:    l.table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookPrerouting,
		Priority: nftables.ChainPriorityRaw,
		Policy:   &policy,
	}
	conn.AddTable(l.table)
	conn.AddChain(l.chain)
	if err := conn.Flush(); err != nil {
		ns.Close()
		return nil, explain(err)
	}
	return l, nil
}

// holdNetns returns a descriptor of its own for the network namespace netns,
// or for the calling thread's when netns is nil: every later operation of
// the lock then reaches the same namespace, whatever thread runs it.
func holdNetns(netns *os.File) (*os.File, error) {
	if netns == nil {
		f, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			return nil, fmt.Errorf("network namespace: %w", err)
		}
		return f, nil
	}
	fd, err := unix.FcntlInt(netns.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("network namespace: %w", err)
	}
	return os.NewFile(uintptr(fd), netns.Name()), nil
}

// Name is the chain's name.
func (l *Lock) Name() string { return l.chain.Name }

// Add drops the inbound packets of flows, at once (one netlink batch).
func (l *Lock) Add(flows ...Flow) error {
	for _, f := range flows {
		for _, r := range rules(f) {
			l.conn.AddRule(&nftables.Rule{Table: l.table, Chain: l.chain, Exprs: r})
		}
	}
	if err := l.conn.Flush(); err != nil {
		return fmt.Errorf("network lock %s: add %d flows: %w", l.chain.Name, len(flows), explain(err))
	}
	return nil
}

// Replace atomically replaces the chain's rules with the mark rule and
// flows (used by the restorer, which may run on a kernel where the lock
// does not exist yet, or on the same kernel where it does).
func (l *Lock) Replace(flows []Flow) error {
	l.conn.FlushChain(l.chain)
	l.conn.AddRule(&nftables.Rule{Table: l.table, Chain: l.chain, Exprs: markRule()})
	return l.Add(flows...)
}

// Init adds the rule that lets marked packets through; call it once on a
// new chain, before Add.
func (l *Lock) Init() error {
	l.conn.AddRule(&nftables.Rule{Table: l.table, Chain: l.chain, Exprs: markRule()})
	if err := l.conn.Flush(); err != nil {
		return fmt.Errorf("network lock %s: %w", l.chain.Name, explain(err))
	}
	return nil
}

// Release closes the Lock's descriptors and leaves the chain in the kernel
// (the checkpoint's exit: the restore removes it).
func (l *Lock) Release() { l.ns.Close() }

// Drop removes the lock chain called name from the network namespace netns
// (nil: the caller's) if it is there, as Remove does. Unlike Open it never
// creates the table or the chain: a lock that was never installed, or a
// kernel without nftables (where none can be), leaves nothing to do.
func Drop(netns *os.File, name string) error {
	names, err := List(netns)
	if err != nil {
		if unavailable(err) {
			return nil
		}
		return fmt.Errorf("network lock %s: %w", name, err)
	}
	if !slices.Contains(names, name) {
		return nil
	}
	l, err := Open(netns, name)
	if err != nil {
		return fmt.Errorf("network lock %s: %w", name, err)
	}
	return l.Remove()
}

// Remove deletes the chain: the flows are no longer dropped. The table goes
// with its last chain, never while another lock's chain is in it.
func (l *Lock) Remove() error {
	defer l.ns.Close()
	l.conn.DelChain(l.chain)
	if err := l.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove network lock %s: %w", l.chain.Name, explain(err))
	}
	return removeTableIfEmpty(l.ns)
}

// RemoveAll deletes the whole table (every lock) in the network namespace
// netns (nil: the caller's): the operator's way out of a stale lock.
func RemoveAll(netns *os.File) error {
	conn, err := dial(netns)
	if err != nil {
		return err
	}
	conn.DelTable(&nftables.Table{Name: TableName, Family: nftables.TableFamilyINet})
	if err := conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove table inet %s: %w", TableName, explain(err))
	}
	return nil
}

// List returns the names of the lock chains present in the network
// namespace netns (nil: the caller's).
func List(netns *os.File) ([]string, error) {
	conn, err := dial(netns)
	if err != nil {
		return nil, err
	}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, explain(err)
	}
	var names []string
	for _, c := range chains {
		if c.Table != nil && c.Table.Name == TableName {
			names = append(names, c.Name)
		}
	}
	return names, nil
}

// dial returns an nftables connection to the network namespace netns (nil:
// the caller's) once probe found the netfilter netlink family.
func dial(netns *os.File) (*nftables.Conn, error) {
	if err := probe(); err != nil {
		return nil, err
	}
	var opts []nftables.ConnOption
	if netns != nil {
		opts = append(opts, nftables.WithNetNSFd(int(netns.Fd())))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return nil, explain(err)
	}
	return conn, nil
}

// probe opens and closes a netlink socket of the netfilter family, so
// that a kernel without it (nfnetlink not loaded yet, as in an initramfs)
// is named before any table is asked for. mdlayher/socket before v0.6.0
// turned that failure, for a socket made in a given network namespace,
// into a nil connection whose first use panicked (found in the lab); it
// now returns the error, and the probe stays the one place that says so.
// The family, once registered, is in every network namespace, so the
// caller's answers for all.
func probe() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return explain(os.NewSyscallError("socket", err))
	}
	unix.Close(fd)
	return nil
}

// unavailable reports whether err says that the kernel has no nftables.
func unavailable(err error) bool {
	return errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) ||
		errors.Is(err, unix.EOPNOTSUPP) || strings.Contains(err.Error(), "protocol not supported")
}

// explain turns the errors of a kernel without nf_tables into a message
// that says so and names the way out.
func explain(err error) error {
	if unavailable(err) {
		return fmt.Errorf("nf_tables is not available in this kernel (%w): load nf_tables (modprobe nf_tables) or set SEAMLESS_NETLOCK=none to go without the network lock (peers may then see resets)", err)
	}
	return err
}

// markRule accepts packets that carry Mark.
func markRule() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: host32(Mark)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}
