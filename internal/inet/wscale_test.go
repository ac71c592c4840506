package inet

import (
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// TestRestoreWithoutWindowScaling restores connections whose peer did not
// negotiate window scaling (as QEMU's user network, and stacks that strip
// the option, do not): the restored socket must advertise its window
// unscaled. connect() in repair mode gives the socket the scale it would
// have offered; unless the restore says otherwise, its window field is
// shifted by it, and the peer, which reads it unscaled, sees a window a
// hundredth of the real one.
func TestRestoreWithoutWindowScaling(t *testing.T) {
	needRoot(t)
	for _, family := range []int{4, 6} {
		t.Run("ipv"+strconv.Itoa(family), func(t *testing.T) {
			l := newLab(t)
			if out, err := exec.Command("ip", "netns", "exec", l.b, "sysctl", "-qw", "net.ipv4.tcp_window_scaling=0").CombinedOutput(); err != nil {
				t.Fatalf("sysctl: %v: %s", err, out)
			}
			srv, c, r := l.echoing(t, family, 7020)
			before := tcpInfoOf(t, c).Snd_wnd
			img := l.checkpoint(t, srv.Process.Pid)
			srv.Wait()
			for _, sk := range imageSockets(t, img) {
				if tc := sk.Inet.TCP; tc != nil && tc.WScale {
					t.Fatalf("%s: window scaling negotiated (%d/%d); the test wants a connection without", describe(sk), tc.SndWscale, tc.RcvWscale)
				}
			}
			l.restore(t, img)
			if err := echo(c, r, "after", time.Now().Add(10*time.Second)); err != nil {
				t.Fatal(err)
			}
			after := tcpInfoOf(t, c).Snd_wnd
			t.Logf("peer's send window: %d before, %d after the restore", before, after)
			if after < before/2 {
				t.Errorf("peer's send window %d after the restore, %d before: the restored socket scales a window its peer reads unscaled", after, before)
			}
		})
	}
}
