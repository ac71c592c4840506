package lab

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

//go:embed scenarios/*.json
var builtinScenarios embed.FS

// Scenario is one lab experiment: steps run in order, each at a named phase,
// either a shell script in the guest or a built-in host action, then
// expectations checked against what was measured. See docs/lab.md.
type Scenario struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Guest is the guest distribution (bookworm, trixie; default bookworm).
	Guest string `json:"guest,omitempty"`
	// NoInstall leaves the seamless package on the payload disk
	// (/mnt/lab/debs) without installing it: the scenario does.
	NoInstall bool      `json:"no_install,omitempty"`
	Timeout   Duration  `json:"timeout"` // whole scenario, boot included (default 10m)
	Memcached Memcached `json:"memcached"`
	Probe     ProbeOpts `json:"probe"`
	Steps     []Step    `json:"steps"`
	// PayloadScript is a bash script of the repository (a path relative
	// to its root) that the host runs while it builds the payload, with
	// the payload's directory as its argument: what it writes there is in
	// the guest's /mnt/lab. For what a scenario needs beyond the image:
	// packages it installs, files it unpacks.
	PayloadScript string `json:"payload_script,omitempty"`
	// Holds are connections from the host to services of the guest, opened
	// by holds-start and used again by holds-check (see holds.go); each
	// one's port is forwarded under its name.
	Holds []Hold `json:"holds,omitempty"`
	// MemoryMB is the guest's RAM in this scenario (default: the guest's,
	// 2048): a service holding gigabytes needs more.
	MemoryMB int `json:"memory_mb,omitempty"`
	// LowMemoryMB caps the guest's RAM below 4 GiB (QEMU's
	// max-ram-below-4g); the rest lies above 4 GiB. Only memory above 4 GiB
	// (ZONE_NORMAL) can become ZONE_MOVABLE, which the kmod store takes.
	LowMemoryMB int    `json:"low_memory_mb,omitempty"`
	Expect      Expect `json:"expect"`
}

// Memcached is the data set of the memcached-fill and memcached-count actions.
type Memcached struct {
	Keys      int `json:"keys"`       // default 100000
	ValueSize int `json:"value_size"` // bytes per value, default 64
}

// ProbeOpts tunes the host client started by probe-start.
type ProbeOpts struct {
	IntervalMS int `json:"interval_ms"` // between requests, default 50
	StallMS    int `json:"stall_ms"`    // slower answers count as an outage, default 500
}

// Step is one step of a scenario: exactly one of Guest and Host is set.
type Step struct {
	Phase string `json:"phase"`
	// Guest is a /bin/sh script run as root in the guest.
	Guest string `json:"guest,omitempty"`
	// Host is a built-in action: memcached-fill, memcached-count,
	// probe-start, probe-stop, wait-memcached, sleep, serial-contains.
	Host string `json:"host,omitempty"`
	// Timeout bounds the step (default 2m).
	Timeout Duration `json:"timeout,omitempty"`
	// Reboots says the guest script restarts the guest (reboot, kexec): the
	// lab then waits for a new boot and records the kernel it runs.
	Reboots bool `json:"reboots,omitempty"`
	// AllowFail accepts a non-zero exit status of the guest script.
	AllowFail bool `json:"allow_fail,omitempty"`
	// Save keeps the script's trimmed stdout in the report under this name.
	Save string `json:"save,omitempty"`
	// Duration is the length of a sleep action.
	Duration Duration `json:"duration,omitempty"`
	// Match is what serial-contains looks for in the run's serial
	// console: what a boot printed before it had a journal.
	Match string `json:"match,omitempty"`
}

// Expect lists the checks made at the end; zero values are not checked.
type Expect struct {
	KernelBefore         string `json:"kernel_before,omitempty"`          // uname -r at the first boot
	KernelAfter          string `json:"kernel_after,omitempty"`           // uname -r at the end
	VersionAfterContains string `json:"version_after_contains,omitempty"` // in /proc/version at the end
	MinKeysAfter         *int   `json:"min_keys_after,omitempty"`
	ConnectionSurvived   *bool  `json:"connection_survived,omitempty"`
	MaxGapMS             int64  `json:"max_gap_ms,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("90s", "5m").
type Duration struct{ time.Duration }

// UnmarshalJSON parses "90s"-style strings.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"90s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q: %w", s, err)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

var hostActions = map[string]bool{
	"memcached-fill": true, "memcached-count": true, "probe-start": true,
	"probe-stop": true, "wait-memcached": true, "sleep": true, "holds-start": true, "holds-check": true,
	"serial-contains": true,
}

// ParseScenario decodes and validates a scenario; unknown fields are errors.
func ParseScenario(b []byte) (*Scenario, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("parse scenario: %w", err)
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *Scenario) validate() error {
	if s.Name == "" {
		return errors.New("scenario: name is required")
	}
	if len(s.Steps) == 0 {
		return fmt.Errorf("scenario %s: no steps", s.Name)
	}
	if _, err := ConfigFor(s.Guest); err != nil {
		return fmt.Errorf("scenario %s: %w", s.Name, err)
	}
	if p := s.PayloadScript; p != "" && (path.IsAbs(p) || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../")) {
		return fmt.Errorf("scenario %s: payload_script %q: want a clean path inside the repository (rpm/lab-payload.sh)", s.Name, p)
	}
	if s.Timeout.Duration == 0 {
		s.Timeout.Duration = 10 * time.Minute
	}
	if s.Memcached.Keys == 0 {
		s.Memcached.Keys = 100000
	}
	if s.Memcached.ValueSize == 0 {
		s.Memcached.ValueSize = 64
	}
	for _, h := range s.Holds {
		if h.Name == "" || h.Name == "memcached" || h.Port <= 0 || h.Port > 65535 || !holdKinds[h.Kind] {
			return fmt.Errorf("scenario %s: hold %q: needs a name other than memcached, a port and a kind (http, redis-subscribe, postgres-transaction, ssh-shell)", s.Name, h.Name)
		}
	}
	probing := false
	for i := range s.Steps {
		st := &s.Steps[i]
		where := fmt.Sprintf("scenario %s, step %d (phase %q)", s.Name, i+1, st.Phase)
		if st.Phase == "" {
			return fmt.Errorf("%s: phase is required", where)
		}
		if (st.Guest == "") == (st.Host == "") {
			return fmt.Errorf("%s: exactly one of \"guest\" and \"host\" must be set", where)
		}
		if st.Host != "" && !hostActions[st.Host] {
			return fmt.Errorf("%s: unknown host action %q (known: %s)", where, st.Host, strings.Join(HostActions(), ", "))
		}
		if st.Host != "" && (st.Reboots || st.AllowFail || st.Save != "") {
			return fmt.Errorf("%s: reboots, allow_fail and save apply to guest steps only", where)
		}
		if st.Host == "sleep" && st.Duration.Duration <= 0 {
			return fmt.Errorf("%s: sleep needs a duration", where)
		}
		switch st.Host {
		case "probe-start":
			if probing {
				return fmt.Errorf("%s: probe already started", where)
			}
			probing = true
		case "probe-stop":
			if !probing {
				return fmt.Errorf("%s: probe-stop without probe-start", where)
			}
			probing = false
		}
		if st.Timeout.Duration == 0 {
			st.Timeout.Duration = 2 * time.Minute
		}
	}
	return nil
}

// HostActions lists the built-in host actions.
func HostActions() []string {
	var a []string
	for k := range hostActions {
		a = append(a, k)
	}
	sort.Strings(a)
	return a
}

// BuiltinScenarios lists the names of the scenarios shipped in lab/scenarios.
func BuiltinScenarios() []string {
	ents, _ := builtinScenarios.ReadDir("scenarios")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	return names
}

// LoadScenario loads a scenario by file path (anything containing "/" or
// ending in .json) or by the name of a built-in scenario.
func LoadScenario(ref string) (*Scenario, error) {
	var b []byte
	var err error
	if strings.Contains(ref, "/") || strings.HasSuffix(ref, ".json") {
		b, err = os.ReadFile(ref)
	} else {
		b, err = builtinScenarios.ReadFile(path.Join("scenarios", ref+".json"))
		if err != nil {
			err = fmt.Errorf("no built-in scenario %q (built-in: %s)", ref, strings.Join(BuiltinScenarios(), ", "))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load scenario: %w", err)
	}
	s, err := ParseScenario(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return s, nil
}
