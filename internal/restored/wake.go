package restored

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/seamless-linux/seamless/internal/config"
	"github.com/seamless-linux/seamless/internal/image"
	"github.com/seamless-linux/seamless/internal/inet"
)

// How the daemon waits for the network before it wakes the peers: the
// restore often ends before the new kernel's interfaces have their
// addresses, and what is sent before is lost. Polling the routes every
// wakePoll costs one datagram socket per pair of addresses, and answers
// within wakePoll of the network coming up; after wakeTimeout the peers'
// own timers are left to it.
const (
	wakePoll    = 20 * time.Millisecond
	wakeTimeout = 2 * time.Minute
)

// wakePeers prompts the peers of the TCP connections restored for unit to
// retransmit, each as soon as main's network namespace reaches it (see
// inet.Wake). It returns at once; Run waits for the wakers before it
// exits. The caller holds d.mu.
func (d *daemon) wakePeers(unit string, main int, trees []*image.Tree) {
	restored := time.Now()
	var ws []inet.Wake
	for _, t := range trees {
		ws = append(ws, inet.Wakes(t)...)
	}
	if len(ws) == 0 {
		return
	}
	mode := d.wakeMode()
	if mode == config.WakeOff {
		fmt.Fprintf(d.opts.Log, "%s: %d connection(s) restored; their peers are not woken (wake-peers = off)\n", unit, len(ws))
		return
	}
	fd, err := unix.Openat(int(d.proc.Fd()), fmt.Sprintf("%d/ns/net", main), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintf(d.opts.Log, "%s: wake the peers: network namespace of %d: %v\n", unit, main, err)
		return
	}
	ns := os.NewFile(uintptr(fd), fmt.Sprintf("/proc/%d/ns/net", main))
	d.wakers.Add(1)
	go func() {
		defer d.wakers.Done()
		defer ns.Close()
		err := inet.InNetNS(ns, func() error {
			wakeWhenRouted(ws, mode == config.WakeAll, time.Now().Add(wakeTimeout), func(line string) {
				fmt.Fprintf(d.opts.Log, "%s: %s (%d ms after the restore)\n", unit, line, time.Since(restored).Milliseconds())
			})
			return nil
		})
		if err != nil {
			fmt.Fprintf(d.opts.Log, "%s: wake the peers: %v\n", unit, err)
		}
	}()
}

// wakeMode is wake-peers from seamless.conf.
func (d *daemon) wakeMode() string { return d.config().WakePeers }

// config is seamless.conf: the real root's, which the daemon entered before
// it claimed a unit (enterRoot); the defaults when it cannot be read.
func (d *daemon) config() config.Config {
	cfg, err := config.Load(config.Path)
	if err != nil {
		fmt.Fprintf(d.opts.Log, "%v: the defaults apply\n", err)
		return config.Default()
	}
	return cfg
}

// wakeWhenRouted sends each wake once its peer is routed, until deadline,
// and reports what it did in lines for the log; every wake sent is sent
// once more inet.WakeAgain after the last (a wake can be lost).
func wakeWhenRouted(ws []inet.Wake, icmp bool, deadline time.Time, report func(string)) {
	var sent []inet.Wake
	var last time.Time
	byPath := inet.ByPath(ws)
	for len(byPath) > 0 {
		for p, pws := range byPath {
			ok, err := pws[0].Routed()
			if err != nil {
				report(fmt.Sprintf("peer %s not woken: %v", p.Peer, err))
				delete(byPath, p)
				continue
			}
			if !ok {
				continue
			}
			var failed []string
			for _, w := range pws {
				if err := w.Send(icmp); err != nil {
					failed = append(failed, err.Error())
				}
			}
			sent, last = append(sent, pws...), time.Now()
			report(wakeLine(p.Peer, pws, icmp, failed))
			delete(byPath, p)
		}
		if len(byPath) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for p, pws := range byPath {
				report(fmt.Sprintf("peer %s of %d connection(s) not woken: no route to it from %s", p.Peer, len(pws), p.Local))
			}
			break
		}
		time.Sleep(wakePoll)
	}
	if len(sent) == 0 {
		return
	}
	time.Sleep(time.Until(last.Add(inet.WakeAgain)))
	for _, w := range sent {
		// The first send's line said what failed; a repeat that fails
		// leaves things as they were.
		_ = w.Send(icmp)
	}
}

// wakeLine says what was sent to one peer.
func wakeLine(peer netip.Addr, ws []inet.Wake, icmp bool, failed []string) string {
	how := "duplicate acknowledgements"
	if icmp {
		how += " and ICMP errors"
	}
	names := make([]string, 0, 3)
	for _, w := range ws[:min(len(ws), 3)] {
		names = append(names, w.String())
	}
	if len(ws) > 3 {
		names = append(names, fmt.Sprintf("and %d more", len(ws)-3))
	}
	line := fmt.Sprintf("woke peer %s (%s) of %d connection(s): %s", peer, how, len(ws), strings.Join(names, ", "))
	if len(failed) > 0 {
		line += fmt.Sprintf("; %d failed: %s", len(failed), Bound(failed[0]))
	}
	return line
}
