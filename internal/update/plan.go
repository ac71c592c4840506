package update

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"

	sd "github.com/coreos/go-systemd/v22/dbus"

	"github.com/seamless-linux/seamless/internal/config"
	"github.com/seamless-linux/seamless/internal/precheck"
	"github.com/seamless-linux/seamless/internal/units"
)

// UnitPlan is the verdict for one preserved unit.
type UnitPlan struct {
	units.Unit
	Report *precheck.Report `json:"report,omitempty"`
	// Carry says whether the unit would be carried now.
	Carry  bool   `json:"carry"`
	Reason string `json:"reason,omitempty"`
}

// Preserved returns the units that opted in, by drop-in or configuration,
// limited to only when it is not empty.
func Preserved(ctx context.Context, cfg config.Config, only []string) (map[string]string, error) {
	conn, err := sd.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd: %w", err)
	}
	defer conn.Close()
	names, err := units.OptedIn(ctx, units.Systemd{Conn: conn}, units.SearchPath)
	if err != nil {
		return nil, err
	}
	for _, n := range cfg.Preserve {
		if _, ok := names[n]; !ok {
			names[n] = "seamless.conf"
		}
	}
	if len(only) > 0 {
		sel := map[string]string{}
		for _, n := range only {
			if filepath.Ext(n) == "" {
				n += ".service"
			}
			why, ok := names[n]
			if !ok {
				why = "named on the command line (it has not opted in)"
			}
			sel[n] = why
		}
		names = sel
	}
	return names, nil
}

// Plan checks every preserved unit.
func Plan(ctx context.Context, cfg config.Config, only []string) ([]UnitPlan, error) {
	names, err := Preserved(ctx, cfg, only)
	if err != nil {
		return nil, err
	}
	us, err := units.Query(ctx, names)
	if err != nil {
		return nil, err
	}
	var out []UnitPlan
	for _, u := range us {
		p := UnitPlan{Unit: u}
		switch {
		case u.Active != "active":
			p.Reason = fmt.Sprintf("not running (%s)", u.Active)
		case len(u.PIDs) == 0:
			p.Reason = "no processes in its cgroup"
		case coldStartProblem(u.Start) != "":
			p.Reason = coldStartProblem(u.Start)
		default:
			p.Report = precheck.Check(u.PIDs)
			p.Carry = p.Report.OK()
			if !p.Carry {
				p.Reason = p.Report.Problems[0].String()
			}
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// coldStartProblem says why the new kernel could not start the unit cold
// if its restore failed, or "" if it can: a carried unit is restored or
// started cold, never left dead.
func coldStartProblem(st units.Start) string {
	switch {
	case st.Type == "oneshot":
		return "Type=oneshot units are not carried: their anchor could not start them cold"
	case st.Type == "forking" && st.PIDFile == "":
		return "Type=forking without PIDFile= is not carried: a cold start could not find the main process"
	case st.Path == "":
		return "no ExecStart= known for a cold start"
	}
	return ""
}
