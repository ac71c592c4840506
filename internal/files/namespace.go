package files

import (
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/proc"
)

// Namespace files: like pidfds (pidfd.go), they describe kernel objects
// that belong to processes, and are carried when those processes are the
// tree's own, which the restore recreates, and refused otherwise.

// KindNamespace is a namespace file (/proc/PID/ns/NAME) of a process of
// the tree.
const KindNamespace = "namespace"

var namespaceKind = &kind{name: KindNamespace, record: func() image.FileRecord { return new(Namespace) },
	is:    func(_ *Scope, d *desc) bool { return d.plainFile() && d.fsType() == unix.NSFS_MAGIC },
	check: checkNamespace, dump: dumpNamespace, open: openNamespace}

// Namespace is the record of a namespace file: the namespace's
// /proc/PID/ns entry (net, pid_for_children, ...) and a process of the
// tree in it.
type Namespace struct {
	Type string `json:"type"`
	PID  int    `json:"pid"`
}

// Validate has nothing to check on its own (see Link).
func (*Namespace) Validate(*image.Checker) error { return nil }

// Link checks that the entry is one and its process is in the tree.
func (n *Namespace) Link(l *image.Links) error {
	if !slices.Contains(nsEntries, n.Type) || !l.Process(n.PID) {
		return fmt.Errorf("namespace %q of process %d, which is not in the tree", n.Type, n.PID)
	}
	return nil
}

// nsEntries are the entries of /proc/PID/ns.
var nsEntries = []string{"cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time",
	"time_for_children", "user", "uts"}

// namespaceOf finds a process of s (the holder first) in the namespace
// that link ("net:[4026531840]") names, and the /proc/PID/ns entry of it.
func namespaceOf(s *Scope, holder int, link string) (int, string, bool) {
	for _, pid := range append([]int{holder}, s.PIDs...) {
		for _, e := range nsEntries {
			if l, err := os.Readlink(proc.Path(pid, "ns", e)); err == nil && l == link {
				return pid, e, true
			}
		}
	}
	return 0, "", false
}

// checkNamespace refuses a namespace that no process of the scope is in.
func checkNamespace(s *Scope, d *desc) error {
	if _, _, ok := namespaceOf(s, d.pid, d.link); !ok {
		return fmt.Errorf("namespace file %s (of a namespace that no process of the tree is in)", d.link)
	}
	return nil
}

// dumpNamespace records a process of the tree in the namespace, and which
// of its /proc/PID/ns entries names it.
func dumpNamespace(d *Dumper, ds *desc, f *image.File) error {
	pid, e, ok := namespaceOf(d.Scope, ds.pid, ds.link)
	if !ok {
		return checkNamespace(d.Scope, ds)
	}
	f.Record = &Namespace{Type: e, PID: pid}
	return nil
}

// openNamespace opens the namespace that the restored process Namespace.PID is in:
// the tree is restored into the restorer's (the unit's) namespaces.
func openNamespace(_ *Opener, f *image.File) (*os.File, error) {
	n := recordOf[Namespace](f)
	return os.OpenFile(proc.Path(n.PID, "ns", n.Type), unix.O_RDONLY|unix.O_CLOEXEC, 0)
}
