// Package units finds the systemd units that opted in to be carried across
// kernel updates, and their processes.
//
// A unit opts in with "X-SeamlessPreserve=yes" in its unit file or in a
// drop-in (systemd ignores X- keys, so any section works; [Service] is the
// convention), or by being listed under "preserve" in seamless.conf.
package units

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	sd "github.com/coreos/go-systemd/v22/dbus"
)

// SearchPath is where systemd looks for units, most important first.
var SearchPath = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

// Unit is a preserved unit and its runtime state.
type Unit struct {
	Name string `json:"name"`
	// Why says what opted it in (a drop-in's path, or seamless.conf).
	Why          string `json:"why"`
	Active       string `json:"active_state"`
	MainPID      int    `json:"main_pid"`
	ControlGroup string `json:"control_group"`
	// PIDs are the processes of its cgroup.
	PIDs []int `json:"pids"`
	// Start is how systemd starts it.
	Start Start `json:"start"`
}

// StartFile is the name, in a unit's image directory, of its Start.
const StartFile = "unit.json"

// Start is how systemd starts a service. It travels with the service's
// image, so that the new kernel can start the service cold, as its unit
// says, when the restore fails.
type Start struct {
	// Type is the unit's Type= (simple, exec, forking, notify, ...).
	Type string `json:"type"`
	// Path and Argv are its first ExecStart= command (argv[0] may differ
	// from the path).
	Path string   `json:"path"`
	Argv []string `json:"argv"`
	// PIDFile is its PIDFile=, if any.
	PIDFile string `json:"pid_file,omitempty"`
	// MainPID is its main process at checkpoint.
	MainPID int `json:"main_pid,omitempty"`
	// ControlGroup is its cgroup (v2 path), as systemd placed it: the new
	// kernel's restore daemon serves only a process of this very cgroup.
	ControlGroup string `json:"control_group,omitempty"`
	// User is its User= ("" for root): the anchor that asks for its
	// restore must run as this user.
	User string `json:"user,omitempty"`
	// NoExecPaths is its NoExecPaths= (Debian's redis-server.service:
	// "/"): the anchor that replaces its ExecStart= must be let through.
	NoExecPaths []string `json:"no_exec_paths,omitempty"`
}

// Query asks systemd, over D-Bus, for the state of the named units.
func Query(ctx context.Context, names map[string]string) ([]Unit, error) {
	conn, err := sd.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd: %w", err)
	}
	defer conn.Close()
	var out []Unit
	keys := make([]string, 0, len(names))
	for n := range names {
		keys = append(keys, n)
	}
	sort.Strings(keys)
	for _, n := range keys {
		u := Unit{Name: n, Why: names[n]}
		props, err := conn.GetUnitTypePropertiesContext(ctx, n, "Service")
		if err == nil {
			if v, ok := props["MainPID"].(uint32); ok {
				u.MainPID = int(v)
			}
			if v, ok := props["ControlGroup"].(string); ok {
				u.ControlGroup = v
			}
			u.Start = startOf(props)
			u.Start.MainPID = u.MainPID
			u.Start.ControlGroup = u.ControlGroup
		}
		if p, err := conn.GetUnitPropertyContext(ctx, n, "ActiveState"); err == nil {
			u.Active = strings.Trim(p.Value.String(), `"`)
		}
		if u.ControlGroup != "" {
			u.PIDs, _ = CgroupPIDs(u.ControlGroup)
		}
		out = append(out, u)
	}
	return out, nil
}

// CgroupRoot finds the mount point of the cgroup v2 hierarchy.
func CgroupRoot() (string, error) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == "cgroup2" {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("no cgroup v2 hierarchy is mounted")
}

// CgroupV2 returns the cgroup v2 path in the contents of a /proc/PID/cgroup
// file (its "0::PATH" line), or "" if it has none.
func CgroupV2(procCgroup string) string {
	for _, line := range strings.Split(procCgroup, "\n") {
		if cg, ok := strings.CutPrefix(line, "0::"); ok {
			return cg
		}
	}
	return ""
}

// CgroupDir is the directory of a unit's cgroup.
func CgroupDir(cg string) (string, error) {
	root, err := CgroupRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, cg), nil
}

// CgroupPIDs lists the processes of a cgroup and its children.
func CgroupPIDs(cg string) ([]int, error) {
	dir, err := CgroupDir(cg)
	if err != nil {
		return nil, err
	}
	return DirPIDs(dir)
}

// DirPIDs lists the processes of the cgroup directory dir and the cgroups
// below it.
func DirPIDs(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	sort.Ints(pids)
	return pids, err
}

// startOf reads Type=, PIDFile= and the first ExecStart= command from a
// service's D-Bus properties. ExecStart is a(sasbttttuii): the path, the
// argv, then what systemd knows of its last run.
func startOf(props map[string]any) Start {
	var st Start
	st.Type, _ = props["Type"].(string)
	st.PIDFile, _ = props["PIDFile"].(string)
	st.User, _ = props["User"].(string)
	st.NoExecPaths, _ = props["NoExecPaths"].([]string)
	cmds, _ := props["ExecStart"].([][]any)
	if len(cmds) > 0 && len(cmds[0]) >= 2 {
		st.Path, _ = cmds[0][0].(string)
		st.Argv, _ = cmds[0][1].([]string)
	}
	return st
}
