package restored

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seamless-linux/seamless/internal/contract"
)

// TestSettleNotBooted: an update handed over, then a boot without its
// image: the carried units are recorded as started cold, and the disk
// image that nothing will read is removed; nothing happens on the update's
// own boot, after an update that ended, or to a directory the record
// names outside the disk directory.
func TestSettleNotBooted(t *testing.T) {
	const img = testImages + "/20260101T000000Z"
	for _, tc := range []struct {
		name, cmdline, state, store, image string
		settled, removed                   bool
		err                                string
	}{
		{name: "firmware reboot, disk store", cmdline: "root=UUID=1 ro", state: contract.UpdateHandedOver, store: "disk", image: img, settled: true, removed: true},
		{name: "the update's own boot", cmdline: "root=UUID=1 ro " + contract.Disk(img).Param(), state: contract.UpdateHandedOver, store: "disk", image: img},
		{name: "an update that ended", cmdline: "root=UUID=1 ro", state: contract.UpdateRestored, store: "disk", image: img},
		{name: "firmware reboot, RAM store", cmdline: "root=UUID=1", state: contract.UpdateHandedOver, store: "ram", image: contract.RAMImage, settled: true},
		{name: "a record naming another directory", cmdline: "root=UUID=1", state: contract.UpdateHandedOver, store: "disk", image: "/home/user", settled: true, err: "its disk image stays"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeRoot(t)
			t.Cleanup(contract.SetDirs(t.TempDir(), t.TempDir()))
			err := contract.WriteStatus(&contract.Status{State: tc.state, From: "6.1.0-47-amd64", To: "6.1.0-50-amd64", Store: tc.store, Image: tc.image,
				Units: []contract.UnitOutcome{{Unit: "a.service", Outcome: contract.Carried}, {Unit: "b.service", Outcome: contract.Stopped}}})
			if err != nil {
				t.Fatal(err)
			}
			err = SettleNotBooted(tc.cmdline, root, io.Discard)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("got %v, want %q", err, tc.err)
			}
			st, err := contract.ReadStatus()
			if err != nil {
				t.Fatal(err)
			}
			a, b := st.Units[0], st.Units[1]
			if settled := st.State == contract.UpdateCold && a.Outcome == contract.Cold && a.Reason == NotBootedReason; settled != tc.settled {
				t.Fatalf("state %q, a.service %q (%s): settled %v, want %v", st.State, a.Outcome, a.Reason, settled, tc.settled)
			}
			if b.Outcome != contract.Stopped {
				t.Fatalf("b.service, not carried, became %q", b.Outcome)
			}
			_, serr := os.Stat(filepath.Join(root, img))
			if removed := os.IsNotExist(serr); removed != tc.removed {
				t.Fatalf("image removed: %v, want %v", removed, tc.removed)
			}
			homeIntact(t, root)
		})
	}
}
