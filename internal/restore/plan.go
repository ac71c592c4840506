package restore

import (
	"errors"
	"sort"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inet"
	"github.com/seamless-linux/seamless/internal/mem"
	"github.com/seamless-linux/seamless/internal/netlock"
)

// Plan is what a restore decides from a validated tree alone, before it
// touches anything: where its restore region goes, the descriptor of its
// channel, the PIDs it needs, and the network lock of its sockets.
type Plan struct {
	// Region is the base of the restore region, free in every process.
	Region uint64
	// Channel is the descriptor number of the restore channel, above
	// every descriptor of the image.
	Channel int
	// IDs are the PIDs and TIDs the restore creates, in order.
	IDs []ID
	// Locks are the network-lock flows of the image, by chain.
	Locks map[string][]netlock.Flow
}

// ID is a PID or TID the restore needs, and what for.
type ID struct {
	ID   int
	What string // "process", "thread"
}

// MakePlan plans the restore of tree, which image.Open validated.
func MakePlan(tree *image.Tree) (*Plan, error) {
	region, err := chooseRegion(tree)
	if err != nil {
		return nil, err
	}
	locks, err := inet.ImageFlows(tree)
	if err != nil {
		return nil, err
	}
	return &Plan{Region: region, Channel: channelFD(tree), IDs: neededIDs(tree), Locks: locks}, nil
}

// neededIDs lists every PID and TID of the tree, and the PIDs of the
// helpers that recreate process groups whose leader is gone.
func neededIDs(tree *image.Tree) []ID {
	var ids []ID
	pids := map[int]bool{}
	for _, p := range tree.Processes {
		pids[p.PID] = true
	}
	helpers := map[int]bool{}
	for _, p := range tree.Processes {
		ids = append(ids, ID{p.PID, "process"})
		for _, th := range p.Threads {
			if th.TID != p.PID {
				ids = append(ids, ID{th.TID, "thread"})
			}
		}
		if g := p.PGID; !pids[g] && g != tree.Processes[0].PGID && !helpers[g] {
			helpers[g] = true // an orphaned group's helper needs this PID
			ids = append(ids, ID{g, "process group"})
		}
	}
	return ids
}

// channelFD picks the descriptor number of the restore channel: above every
// descriptor of the image, so that installing them never collides with it.
func channelFD(tree *image.Tree) int {
	n := 2
	for _, p := range tree.Processes {
		for _, d := range p.FDs {
			n = max(n, d.FD)
		}
	}
	return n + 1
}

// chooseRegion finds an address range that is free in every process of the
// image, for the restore region and the gap after it.
func chooseRegion(tree *image.Tree) (uint64, error) {
	type span struct{ lo, hi uint64 }
	var used []span
	for _, p := range tree.Processes {
		for _, m := range p.Mappings {
			used = append(used, span{m.Start, m.End})
		}
	}
	sort.Slice(used, func(i, j int) bool { return used[i].lo < used[j].lo })
	const need = RegionSize + mem.TempGap
	const guard = 1 << 20 // keep clear of stacks' guard gaps
	cand := uint64(1 << 32)
	for _, s := range used {
		if s.hi+guard <= cand {
			continue
		}
		if s.lo >= cand+need+guard {
			break
		}
		cand = (s.hi + guard + 0xffff) &^ 0xffff
	}
	if cand+need >= 1<<47 {
		return 0, errors.New("no free address range for the restore region")
	}
	return cand, nil
}
