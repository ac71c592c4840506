package units

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/coreos/go-systemd/v22/unit"
)

// PreserveKey is the setting a unit opts in with, in its unit file or a
// drop-in: systemd ignores X- keys, so any section works ([Service] by
// convention).
const PreserveKey = "X-SeamlessPreserve"

// Files are the files that make up a loaded unit, as systemd itself
// resolved them: the unit file, then its drop-ins in the order systemd
// applies them (the unit's own, its template's, prefix and type-wide
// drop-ins, with a drop-in of /etc masking one of the same name in /usr).
type Files struct {
	// ID is the unit's own name when the name asked for is an alias of
	// it (redis.service for redis-server.service), or "".
	ID       string
	Fragment string
	DropIns  []string
}

// Decide reads PreserveKey in the files of a unit, in order: the last
// setting wins, as for any systemd setting, and an empty value resets it.
// It returns whether the unit opted in and the file that decided it.
func Decide(f Files) (bool, string, error) {
	on, by := false, ""
	for _, p := range append([]string{f.Fragment}, f.DropIns...) {
		if p == "" || p == "/dev/null" {
			continue
		}
		set, value, err := readPreserve(p)
		if err != nil {
			return false, "", err
		}
		if !set {
			continue
		}
		on, by = value, p
	}
	if !on {
		by = ""
	}
	return on, by, nil
}

// readPreserve returns the last PreserveKey setting of one unit file.
func readPreserve(path string) (set, on bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) || os.IsPermission(err) {
			return false, false, nil
		}
		return false, false, err
	}
	defer f.Close()
	opts, err := unit.DeserializeOptions(f)
	if err != nil {
		return false, false, fmt.Errorf("%s: %w", path, err)
	}
	for _, o := range opts {
		if o.Name != PreserveKey {
			continue
		}
		set = true
		v, ok := Boolean(o.Value)
		on = ok && v // "no", or "" which resets it
	}
	return set, on, nil
}

// Boolean parses a unit file's boolean as systemd does (yes/no, true/false,
// on/off, 1/0, y/n, t/f, any case); ok is false for anything else,
// including "", which resets a setting to its default.
func Boolean(s string) (v, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes", "true", "on", "1", "y", "t":
		return true, true
	case "no", "false", "off", "0", "n", "f":
		return false, true
	}
	return false, false
}

// UnitFiles asks systemd for the files of the loaded services: every one
// it has loaded (running or not) and the ones named, which it loads.
type UnitFiles interface {
	Services(ctx context.Context) ([]string, error)
	Files(ctx context.Context, unit string) (Files, error)
}

// OptedIn returns the services that opted in, mapped to the file that
// decided it. The candidates are the services systemd has loaded and the
// ones a unit directory names (a stopped service that nothing references
// is not loaded): for each, systemd says which files make it up, so the
// drop-in rules are systemd's own.
func OptedIn(ctx context.Context, sys UnitFiles, search []string) (map[string]string, error) {
	names := map[string]bool{}
	loaded, err := sys.Services(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range loaded {
		names[n] = true
	}
	for _, n := range mentioned(search) {
		names[n] = true
	}
	out := map[string]string{}
	for n := range names {
		f, err := sys.Files(ctx, n)
		if err != nil {
			return nil, err
		}
		on, by, err := Decide(f)
		if err != nil {
			return nil, err
		}
		// An alias (a symlink in a unit directory, such as Debian's
		// sshd.service) is the same unit under another name: one entry.
		if f.ID != "" {
			n = f.ID
		}
		if on {
			out[n] = by
		}
	}
	return out, nil
}

// mentioned lists the services that have a unit file or drop-in directory
// of their own name in a unit directory and mention PreserveKey there:
// systemd may not have loaded them. Templates, prefix and type-wide
// drop-ins only apply to units systemd knows, which Services lists.
func mentioned(search []string) []string {
	seen := map[string]bool{}
	for _, dir := range search {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			name := strings.TrimSuffix(e.Name(), ".d")
			if !strings.HasSuffix(name, ".service") || strings.HasSuffix(name, "@.service") ||
				strings.HasSuffix(name, "-.service") || name == "service" {
				continue
			}
			seen[name] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Systemd is UnitFiles over systemd's D-Bus API.
type Systemd struct{ Conn *sd.Conn }

// Services implements UnitFiles.
func (s Systemd) Services(ctx context.Context) ([]string, error) {
	list, err := s.Conn.ListUnitsByPatternsContext(ctx, nil, []string{"*.service"})
	if err != nil {
		return nil, fmt.Errorf("list systemd's services: %w", err)
	}
	var out []string
	for _, u := range list {
		if u.LoadState != "not-found" && u.LoadState != "masked" {
			out = append(out, u.Name)
		}
	}
	return out, nil
}

// Files implements UnitFiles.
func (s Systemd) Files(ctx context.Context, unit string) (Files, error) {
	props, err := s.Conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return Files{}, fmt.Errorf("%s: %w", unit, err)
	}
	if st, _ := props["LoadState"].(string); st == "not-found" || st == "masked" {
		return Files{}, nil
	}
	f := Files{}
	if id, _ := props["Id"].(string); id != unit {
		f.ID = id
	}
	f.Fragment, _ = props["FragmentPath"].(string)
	f.DropIns, _ = props["DropInPaths"].([]string)
	return f, nil
}
