package restored

import (
	"fmt"
	"os"
	"time"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/image"
)

// restoreUnit rebuilds every process tree of unit inside the cgroup and
// namespaces of the anchor p (whose request came at asked), and returns the
// main PID and the unit's cgroup; the unit stays restoring until the anchor
// has the answer (see handedOver). A caller that may not restore the unit
// is refused, and the unit stays pending for its own anchor; any other failure leaves nothing
// of the restore behind and the unit to start cold.
func (d *daemon) restoreUnit(unit string, p *peer, fds []*os.File, asked time.Time) (int, string, error) {
	u, cg, err := d.claim(unit, p)
	if err != nil {
		return 0, "", err
	}
	start := time.Now()
	// When the anchor asked and how long the checks took (pinning the
	// asker, waiting for the image's verdict, entering the real root,
	// asking systemd about the asker) tell the boot's share of the pause
	// from the restore's.
	fmt.Fprintf(d.opts.Log, "%s: asked by process %d, checked in %d ms (pinned in %d ms)\n", unit, p.pid, start.Sub(asked).Milliseconds(), p.pinned.Milliseconds())
	main, err := d.restoreTrees(u, p, cg, fds)
	d.mu.Lock()
	defer d.mu.Unlock()
	u.RestoreMs = time.Since(start).Milliseconds()
	if err != nil {
		d.giveUp(u, err.Error())
		d.settled()
		return 0, "", err
	}
	return main, cg, nil
}

// handedOver ends a restore whose answer was sent to the anchor: restored
// if the anchor took it, else killed (the anchor cannot tell systemd of
// the restored process, which must not stay next to the cold start that
// follows) and started cold.
func (d *daemon) handedOver(unit, cg string, p *peer, main int, sent error) {
	if sent != nil {
		d.abandon(unit, cg, p, fmt.Sprintf("its anchor went away before it heard the main pid (%v)", sent))
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.state.Unit(unit)
	u.State, u.MainPID = contract.Restored, main
	// The restore removed the lock in the unit's network namespace; the
	// boot-time lock is in the daemon's, which differs for a unit with
	// PrivateNetwork=.
	trees := make([]*image.Tree, 0, len(u.Trees))
	for _, t := range u.Trees {
		tree := d.trees[t.Dir]
		trees = append(trees, tree)
		if err := guard(d.opts.Log, "unlock "+unit, func() error { return unlock(tree) }); err != nil {
			fmt.Fprintf(d.opts.Log, "%s: %v\n", unit, err)
		}
	}
	fmt.Fprintf(d.opts.Log, "%s: restored in %d ms, main pid %d\n", unit, u.RestoreMs, main)
	d.wakePeers(unit, main, trees)
	d.settled()
}

// settled writes the state and the outcomes once a unit has its final
// state, and tells whoever waits for it. The caller holds d.mu.
func (d *daemon) settled() {
	d.writeState()
	recordOutcomes(&d.state, false, d.opts.Log)
	d.cond.Broadcast()
	d.finished()
}

// claim checks that unit waits for a restore and that p may ask for it,
// and marks it restoring. A unit being restored for another anchor (one
// that went away) is waited for: its outcome is the answer.
func (d *daemon) claim(unit string, p *peer) (*contract.UnitState, string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.state.Unit(unit)
	if u == nil {
		return nil, "", fmt.Errorf("%s: %w: it was not carried", unit, errNotPending)
	}
	// A unit's memory is verified while the system boots (see verify):
	// nothing is restored before its image passed.
	for u.State == contract.Restoring || (u.State == contract.Pending && !d.checked(unit)) {
		d.cond.Wait()
	}
	if u.State != contract.Pending {
		return nil, "", fmt.Errorf("%s: %w: it is %s", unit, errNotPending, u.State)
	}
	if err := d.enterRoot(); err != nil {
		d.giveUp(u, err.Error())
		d.settled()
		return nil, "", err
	}
	if err := d.verdicts[unit]; err != nil {
		d.giveUp(u, err.Error())
		d.settled()
		return nil, "", fmt.Errorf("%s: image refused: %w", unit, err)
	}
	cg, inUnit, err := d.authorize(u, p)
	if err != nil {
		fmt.Fprintf(d.opts.Log, "%s: refused process %d (uid %d): %s\n", unit, p.pid, p.uid, Bound(err.Error()))
		if inUnit {
			// The unit's own process was refused: its anchor starts the
			// service cold, which must not wait for the lock and PIDs to
			// be released at the daemon's timeout.
			d.giveUp(u, err.Error())
			d.settled()
		}
		return nil, "", err
	}
	u.State = contract.Restoring
	d.writeState()
	return u, cg, nil
}

// checked reports whether the verification of unit's image is done. The
// caller holds d.mu.
func (d *daemon) checked(unit string) bool {
	_, ok := d.verdicts[unit]
	return ok
}

// abandon ends a unit restored for an anchor that went away before it
// could name the restored process to systemd: the unit's processes other
// than the anchor (if it still runs) are killed and the unit starts cold.
func (d *daemon) abandon(unit, cg string, p *peer, reason string) {
	spare := 0
	if p != nil && p.alive() {
		spare = p.pid
	}
	killed, err := KillOthers(cg, spare, 30*time.Second)
	fmt.Fprintf(d.opts.Log, "%s: %s: killed %v\n", unit, reason, killed)
	if err != nil {
		fmt.Fprintf(d.opts.Log, "%s: %v\n", unit, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if u := d.state.Unit(unit); u != nil {
		d.giveUp(u, reason)
		d.settled()
	}
}

// finished closes done once no unit waits any more.
func (d *daemon) finished() {
	if d.pending() == 0 {
		select {
		case <-d.done:
		default:
			close(d.done)
		}
	}
}

// restoreTrees restores the unit's trees, within the restore timeout. On
// failure (an error, the timeout, a panic), everything the restore put in
// the unit's cgroup is killed, the anchor spared, before the unit is
// given up: the cold start must be the only copy.
func (d *daemon) restoreTrees(u *contract.UnitState, p *peer, cg string, fds []*os.File) (int, error) {
	main := 0
	err := guard(d.opts.Log, "restore "+u.Unit, func() error {
		deadline := time.Now().Add(d.opts.RestoreTimeout)
		for _, t := range u.Trees {
			d.pids.Release(t.IDs)
			root, warnings, err := d.runRestorer(t, p.pid, cg, fds, deadline)
			u.Warnings = append(u.Warnings, warnings...)
			if err != nil {
				return fmt.Errorf("restore of pid %d: %w", t.Root, err)
			}
			if main == 0 || root == u.Start.MainPID {
				main = root
			}
		}
		return nil
	})
	if err == nil {
		return main, nil
	}
	spare := 0
	if p.alive() {
		spare = p.pid
	}
	killed, kerr := KillOthers(cg, spare, 30*time.Second)
	if len(killed) > 0 {
		fmt.Fprintf(d.opts.Log, "%s: killed what the failed restore left in %s: %v\n", u.Unit, cg, killed)
	}
	if kerr != nil {
		return 0, fmt.Errorf("%w; and %v", err, kerr)
	}
	return 0, err
}
