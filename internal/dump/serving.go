package dump

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/files"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inet"
	"github.com/seamless-linux/seamless/internal/proc"
)

// DrainTimeout bounds how long CloseDoor lets a tree accept the
// connections that were waiting when the door closed.
var DrainTimeout = 5 * time.Second

// PendingRetries and PendingWait are how often, and how far apart,
// CheckpointRetrying tries again a checkpoint that found something the
// tree had still to take in: connections waiting to be accepted, inotify
// events not read.
var (
	PendingRetries = 50
	PendingWait    = 100 * time.Millisecond
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
// because the tree had something still to take in that cannot be carried:
// a listener's connections waiting to be accepted (a handshake completed
// after the door closed), inotify events not yet read. Each failed attempt
// lets the tree run again, so that it takes them in. With a Cgroup, each
// attempt freezes it anew, so that it starts from one instant.
//
// The image directory, when it does not exist, is made once for all
// attempts (and removed again if they all fail): made anew by each, it
// would queue an event each time on an inotify watch of its parent, which
// the tree could never read before the next attempt stopped it.
func CheckpointRetrying(opts Options) (res *Result, err error) {
	if _, serr := os.Lstat(opts.Dir); opts.Dir != "" && errors.Is(serr, fs.ErrNotExist) {
		made, merr := image.MakeDir(opts.Dir)
		if merr != nil {
			return nil, merr
		}
		defer func() {
			if err != nil {
				for i := len(made) - 1; i >= 0; i-- {
					unix.Rmdir(made[i])
				}
			}
		}()
	}
	for attempt := 0; attempt < PendingRetries; attempt++ {
		if attempt > 0 {
			time.Sleep(PendingWait)
		}
		res, err = Checkpoint(opts)
		if !errors.Is(err, inet.ErrPendingAccept) && !errors.Is(err, files.ErrUnreadEvents) {
			return res, err
		}
	}
	return nil, fmt.Errorf("%w (still so after %d attempts %v apart)", err, PendingRetries, PendingWait)
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
