package restore

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inet"
)

// holdPoll is how often a held tree's routes are looked up: a lookup is
// one datagram socket per peer, and the tree runs within holdPoll of its
// network coming up.
const holdPoll = 10 * time.Millisecond

// holdForNetwork returns once this network namespace reaches, from each
// connection's own address, every peer of tree's TCP connections to other
// hosts (the peers inet.Wakes names), or once wait has passed. The tree is
// complete and stopped meanwhile. A service that ran before the new
// kernel's network is up would see what it never saw before the update:
// its connects and datagrams to other hosts refused at once (ENETUNREACH),
// while its restored connections could not move a byte anyway. It reports
// whether it waited at all and the peers still unreached at the end.
func holdForNetwork(tree *image.Tree, wait time.Duration) (bool, []netip.Addr, error) {
	pending := inet.ByPath(inet.Wakes(tree))
	deadline := time.Now().Add(wait)
	waited := false
	for {
		for p, ws := range pending {
			ok, err := ws[0].Routed()
			if err != nil {
				return waited, nil, fmt.Errorf("hold for the network: %w", err)
			}
			if ok {
				delete(pending, p)
			}
		}
		if len(pending) == 0 || !time.Now().Before(deadline) {
			break
		}
		waited = true
		time.Sleep(holdPoll)
	}
	var unreached []netip.Addr
	for p := range pending {
		if !slices.Contains(unreached, p.Peer) {
			unreached = append(unreached, p.Peer)
		}
	}
	slices.SortFunc(unreached, netip.Addr.Compare)
	return waited, unreached, nil
}

// unreachedWarning says that the tree runs without reaching some peers.
func unreachedWarning(peers []netip.Addr, wait time.Duration) string {
	names := make([]string, len(peers))
	for i, p := range peers {
		names[i] = p.String()
	}
	return fmt.Sprintf("still no route to %s after %s: the tree runs without it (its connections wait for the network, and their peers are woken once it is up)",
		strings.Join(names, ", "), wait)
}
