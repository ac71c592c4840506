package restored

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"

	"github.com/seamless-linux/seamless/internal/contract"
)

// systemdRunning reports whether systemd manages this system (as
// sd_booted(3) tells): then systemd, not the image, says which cgroup and
// which user a unit has.
var systemdRunning = func() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// unitFacts is what authorises an anchor: the cgroup of the unit it
// restores and the user the unit runs as, and who said so.
type unitFacts struct {
	cgroup, user, source string
}

// facts finds the cgroup and user of unit u. With systemd running, it asks
// systemd itself, on its private socket (no bus daemon needed, root only),
// and also checks that systemd counts process pid as u's. Without systemd
// (tests), the image's record of the unit is all there is. authorize asks
// only when the record does not vouch for the asker (recordVouches).
func facts(u *contract.UnitState, pid int) (unitFacts, error) {
	if !systemdRunning() {
		if u.Start.ControlGroup == "" {
			return unitFacts{}, fmt.Errorf("the image does not record %s's cgroup and systemd is not running to tell it", u.Unit)
		}
		return unitFacts{cgroup: u.Start.ControlGroup, user: u.Start.User, source: "the image"}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := sd.NewSystemdConnectionContext(ctx)
	if err != nil {
		return unitFacts{}, fmt.Errorf("ask systemd about process %d: %w", pid, err)
	}
	defer conn.Close()
	name, err := conn.GetUnitNameByPID(ctx, uint32(pid))
	if err != nil {
		return unitFacts{}, fmt.Errorf("ask systemd which unit process %d belongs to: %w", pid, err)
	}
	if name != u.Unit {
		return unitFacts{}, fmt.Errorf("systemd counts process %d as %s's, not %s's", pid, name, u.Unit)
	}
	// Two properties, not all of them: systemd is starting the rest of
	// the boot meanwhile, and the whole set of a service took it seconds
	// to send under emulation.
	f := unitFacts{source: "systemd"}
	for _, p := range []struct {
		name string
		to   *string
	}{{"ControlGroup", &f.cgroup}, {"User", &f.user}} {
		prop, err := conn.GetServicePropertyContext(ctx, u.Unit, p.name)
		if err != nil {
			return unitFacts{}, fmt.Errorf("ask systemd about %s's %s: %w", u.Unit, p.name, err)
		}
		*p.to, _ = prop.Value.Value().(string)
	}
	if f.cgroup == "" {
		return unitFacts{}, fmt.Errorf("systemd knows no cgroup of %s", u.Unit)
	}
	return f, nil
}

// authorize decides whether the pinned peer may have unit u restored: it
// must be a process of the unit's very cgroup (the full path: a cgroup of
// the same name elsewhere, in a user's own subtree, is another one),
// running as the unit's user, and still alive once all is checked. It
// returns the unit's cgroup, and whether the peer is a process of the unit
// (even if refused: then the unit's own anchor was refused).
func (d *daemon) authorize(u *contract.UnitState, p *peer) (cg string, inUnit bool, err error) {
	cg, err = d.cgroupOf(p.pid)
	if err != nil {
		return "", false, err
	}
	if recordVouches(u, cg, p.uid) {
		fmt.Fprintf(d.opts.Log, "%s: the image's record vouches for process %d (its cgroup and user): systemd not asked\n", u.Unit, p.pid)
		if !p.alive() {
			return "", false, fmt.Errorf("process %d exited while it was checked", p.pid)
		}
		return cg, true, nil
	}
	asked := time.Now()
	f, err := facts(u, p.pid)
	if err != nil {
		// Whoever is in the cgroup the image recorded is the unit's own
		// process (only systemd puts processes there): it is refused, but
		// the unit must not wait for the daemon's timeout.
		return "", u.Start.ControlGroup != "" && cg == u.Start.ControlGroup && p.alive(), err
	}
	fmt.Fprintf(d.opts.Log, "%s: %s told the unit's cgroup and user in %d ms\n", u.Unit, f.source, time.Since(asked).Milliseconds())
	if cg != f.cgroup {
		return "", false, fmt.Errorf("process %d is in cgroup %s, not in %s (%s's, says %s): it may not restore it", p.pid, cg, f.cgroup, u.Unit, f.source)
	}
	if !p.alive() {
		return "", false, fmt.Errorf("process %d exited while it was checked", p.pid)
	}
	uid, err := lookupUID(f.user)
	if err != nil {
		return cg, true, fmt.Errorf("%s's user: %w", u.Unit, err)
	}
	if p.uid != uid {
		return cg, true, fmt.Errorf("process %d runs as uid %d, but %s runs as uid %d (says %s): it may not restore it", p.pid, p.uid, u.Unit, uid, f.source)
	}
	return cg, true, nil
}

// recordVouches reports whether the image's record of unit u alone
// authorises a process in cgroup cg running as uid, without asking systemd
// (which answers slowly while the rest of the boot starts: 0.9-3 s under
// emulation, in the restore's critical path). systemd recorded the unit's
// cgroup and user at checkpoint; the kernel says the asker's cgroup, and
// only root (systemd) places a process in a unit's cgroup, whose path names
// the unit. When either differs (the update changed the unit's User= or
// Slice=), systemd's word decides, as before.
func recordVouches(u *contract.UnitState, cg string, uid int) bool {
	if u.Start.ControlGroup == "" || cg != u.Start.ControlGroup {
		return false
	}
	want, err := lookupUID(u.Start.User)
	return err == nil && uid == want
}

// lookupUID resolves a unit's User= in the real root ("" is root).
func lookupUID(name string) (int, error) {
	if name == "" {
		return 0, nil
	}
	if uid, err := strconv.Atoi(name); err == nil {
		return uid, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, fmt.Errorf("user %q: %w (a DynamicUser= unit cannot be restored)", name, err)
	}
	return strconv.Atoi(u.Uid)
}
