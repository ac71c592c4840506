package anchor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"golang.org/x/sys/unix"
)

// TargetWait bounds how long a cold start waits for the targets its unit
// was no longer ordered after: past it the service starts anyway, as it
// would in a boot whose network never comes up.
var TargetWait = 3 * time.Minute

// targetPoll is how often the targets' states are read.
const targetPoll = 200 * time.Millisecond

// waitTargets waits until no target is about to start: each is active, or
// has no start job (After= orders a unit only after what is started). A restored unit no
// longer waits for the network (the generator takes network.target and
// the like out of its order), but a cold start is the service's own start:
// it may need its address configured or a name resolved, as in any boot.
// When systemd cannot be asked (a sandbox without the system bus), the
// service starts at once, and the journal says so.
func waitTargets(targets []string, log io.Writer) {
	if len(targets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), TargetWait)
	defer cancel()
	conn, err := systemBus(ctx)
	if err != nil {
		fmt.Fprintf(log, "seamless: cannot ask systemd whether %v are reached (%v): starting now\n", targets, err)
		return
	}
	defer conn.Close()
	for _, t := range targets {
		for {
			props, err := conn.GetUnitPropertiesContext(ctx, t)
			if err != nil {
				fmt.Fprintf(log, "seamless: %s: %v: starting without waiting for it\n", t, err)
				break
			}
			if !starting(props) {
				break
			}
			select {
			case <-ctx.Done():
				fmt.Fprintf(log, "seamless: %s is not reached after %v: starting anyway\n", t, TargetWait)
				return
			case <-time.After(targetPoll):
			}
		}
	}
}

// systemBus connects to the system bus, waiting for it while its socket is
// not there yet: a unit that no longer waits for basic.target can start
// before dbus.socket listens (sockets.target comes before basic.target).
// Any other error (a sandbox that denies the bus) is returned at once.
func systemBus(ctx context.Context) (*sd.Conn, error) {
	for {
		conn, err := sd.NewSystemConnectionContext(ctx)
		if err == nil || !(errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED)) {
			return conn, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the system bus is not up after %v: %w", TargetWait, err)
		case <-time.After(targetPoll):
		}
	}
}

// starting reports whether a unit's properties show it inactive with a job
// queued: it will start, and what is ordered after it waits.
func starting(props map[string]any) bool {
	if s, _ := props["ActiveState"].(string); s == "active" {
		return false
	}
	job, _ := props["Job"].([]any)
	if len(job) == 0 {
		return false
	}
	id, _ := job[0].(uint32)
	return id != 0
}
