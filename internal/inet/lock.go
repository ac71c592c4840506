package inet

import (
	"fmt"
	"os"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/netlock"
)

// ImageFlows returns the image's network-lock flows by lock name.
func ImageFlows(tree *image.Tree) (map[string][]netlock.Flow, error) {
	byLock := map[string][]netlock.Flow{}
	for _, f := range tree.Files {
		s := f.Socket()
		if s == nil || s.Inet == nil || s.Inet.Lock == "" {
			continue
		}
		fl, err := flows(s, s.Inet)
		if err != nil {
			return nil, fmt.Errorf("file %d: %w", f.ID, err)
		}
		byLock[s.Inet.Lock] = append(byLock[s.Inet.Lock], fl...)
	}
	return byLock, nil
}

// Lock installs (or replaces, atomically) the network lock of an image in
// the network namespace netns (nil: the caller's). The boot-time netlock
// service calls it on the new kernel before the network is up; the restore
// calls it again (it is idempotent).
func Lock(tree *image.Tree, netns *os.File) ([]*netlock.Lock, error) {
	if netlock.Disabled() {
		return nil, nil
	}
	byLock, err := ImageFlows(tree)
	if err != nil {
		return nil, err
	}
	var locks []*netlock.Lock
	for name, fl := range byLock {
		l, err := netlock.Open(netns, name)
		if err != nil {
			return locks, fmt.Errorf("network lock: %w", err)
		}
		locks = append(locks, l)
		if err := l.Replace(fl); err != nil {
			return locks, err
		}
	}
	return locks, nil
}

// lock makes sure the image's lock is in place in the namespace where the
// sockets are rebuilt.
func (o *Opener) lock() error {
	if o.tree == nil {
		return nil
	}
	var ns *os.File
	if o.NetNS != "" {
		var err error
		if ns, err = os.Open(o.NetNS); err != nil {
			return fmt.Errorf("network namespace: %w", err)
		}
		defer ns.Close()
	}
	locks, err := Lock(o.tree, ns)
	for _, l := range locks {
		o.locks[l.Name()] = l
	}
	return err
}
