package restored

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/netlock"
)

// Settle ends, for unit, a restore that the daemon left unsettled: the
// daemon ended (it was killed, it crashed) while the unit was pending or
// being restored, or it hangs. Nothing else would then remove the unit's
// network lock (its listening ports would drop every packet), nor kill a
// tree the daemon restored but could not hand over, nor record the
// outcome. It runs as root in the unit's cgroup cg, before the unit's
// anchor (the drop-in's ExecStartPre=+): it kills a daemon that listens
// but does not answer (see PingWait), kills the other processes of cg,
// removes the unit's locks and records the unit as started cold, for the
// anchor to start it cold. While the daemon answers, or once it has
// settled the unit, it does nothing.
func Settle(unit, cg string, log io.Writer) error {
	answers, hung := ProbeDaemon()
	if answers {
		return nil
	}
	why := "the restore daemon ended before it restored the unit"
	if hung > 0 {
		// A hung daemon is left to its other units unless it holds this one.
		if st, err := contract.ReadState(); err != nil || st.Unit(unit) == nil || !st.Unit(unit).Waiting() {
			return nil
		}
		if err := killHung(hung); err != nil {
			return fmt.Errorf("the restore daemon does not answer: %w", err)
		}
		why = fmt.Sprintf("the restore daemon (pid %d) did not answer for %s and was killed", hung, PingWait)
	}
	// Two units may settle at once: one read-modify-write at a time.
	return contract.EditState(func(st *contract.State) (bool, error) {
		u := st.Unit(unit)
		if u == nil || !u.Waiting() {
			return false, nil
		}
		var errs []error
		// The links to the files the dead daemon held lead nowhere now.
		os.RemoveAll(contract.IncomingDir())
		killed, err := KillOthers(cg, os.Getpid(), 30*time.Second)
		if err != nil {
			errs = append(errs, err)
		}
		if !netlock.Disabled() {
			for _, t := range u.Trees {
				for _, name := range t.Locks {
					// Not there if the daemon ended before
					// seamless-netlock.service installed it.
					if err := netlock.Drop(nil, name); err != nil {
						errs = append(errs, err)
					}
				}
			}
		}
		u.State, u.Reason = contract.Cold, why
		if len(killed) > 0 {
			u.Reason += fmt.Sprintf(" (what it left in the unit was killed: %v)", killed)
		}
		fmt.Fprintf(log, "seamless: %s: %s: it starts cold\n", unit, u.Reason)
		recordOutcomes(st, false, log)
		return true, errors.Join(errs...)
	})
}
