package image

import "fmt"

// FileNamespace is a namespace file (/proc/PID/ns/NAME) of a process of
// the tree.
const FileNamespace = "namespace"

// Namespace is the namespace a namespace file is: its /proc/PID/ns entry
// (net, pid_for_children, ...) and a process of the tree in it.
type Namespace struct {
	Type string `json:"type"`
	PID  int    `json:"pid"`
}

// nsEntries are the /proc/PID/ns entries a namespace file may be.
var nsEntries = map[string]bool{"cgroup": true, "ipc": true, "mnt": true, "net": true, "pid": true,
	"pid_for_children": true, "time": true, "time_for_children": true, "user": true, "uts": true}

func validateNamespace(f *File, _ *checker) error { return need(f.Namespace, "namespace") }

func linkNamespace(f *File, l *links) error {
	if n := f.Namespace; !nsEntries[n.Type] || l.procs[n.PID] == nil {
		return fmt.Errorf("namespace %q of process %d, which is not in the tree", n.Type, n.PID)
	}
	return nil
}
