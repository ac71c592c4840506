package dump

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/seamless-linux/seamless/internal/inet"
	"github.com/seamless-linux/seamless/internal/proc"
)

// DrainTimeout bounds how long CloseDoor lets a tree accept the
// connections that were waiting when the door closed.
var DrainTimeout = 5 * time.Second

// AcceptRetries and AcceptWait are how often, and how far apart,
// CheckpointRetrying tries again a checkpoint that found connections
// waiting to be accepted.
var (
	AcceptRetries = 50
	AcceptWait    = 100 * time.Millisecond
)

// CloseDoor prepares running processes that may serve TCP clients for
// their checkpoint: new connection requests to their listeners are
// dropped (inet.Door), and they run until they have accepted what was
// queued. The caller checkpoints them (CheckpointRetrying), then calls the
// Door's Open. A listener still busy at DrainTimeout is reported to log,
// not refused: the checkpoint retries.
func CloseDoor(pids []int, log io.Writer) (*inet.Door, error) {
	door, err := inet.CloseDoor(pids)
	if err != nil {
		return nil, err
	}
	if err := door.Drain(DrainTimeout); err != nil {
		if !errors.Is(err, inet.ErrBusy) {
			door.Open()
			return nil, err
		}
		if log != nil {
			fmt.Fprintf(log, "seamless: %v\n", err)
		}
	}
	return door, nil
}

// CheckpointRetrying is Checkpoint, tried again for a while when it fails
// because a listener had connections waiting to be accepted (a handshake
// completed after the door closed): each failed attempt lets the tree run
// again, so that it accepts them. With a Cgroup, each attempt freezes it
// anew, so that it starts from one instant.
func CheckpointRetrying(opts Options) (*Result, error) {
	var err error
	for attempt := 0; attempt < AcceptRetries; attempt++ {
		if attempt > 0 {
			time.Sleep(AcceptWait)
		}
		var res *Result
		res, err = Checkpoint(opts)
		if !errors.Is(err, inet.ErrPendingAccept) {
			return res, err
		}
	}
	return nil, err
}

// Tree lists root and its descendants as they are now (the tree is
// running: it may change before it is stopped).
func Tree(root int) []int {
	out := []int{root}
	for i := 0; i < len(out); i++ {
		kids, _ := proc.Children(out[i])
		out = append(out, kids...)
	}
	return out
}
