package update

import (
	"strings"
	"testing"

	"github.com/seamless-linux/seamless/internal/config"
)

// TestChooseStore: the store is chosen by what each step really needs, and
// the choice says so (issue 10 finding 8).
func TestChooseStore(t *testing.T) {
	const MiB, GiB = int64(1 << 20), int64(1 << 30)
	tests := []struct {
		name      string
		store     string
		need, ird int64
		sp        space
		want      string // the store, or "" for an error
		why       string // substring of the explanation or error
	}{
		{"disk first", "auto", 100 * MiB, 60 * MiB, space{mem: 4 * GiB, disk: 70 * GiB}, "disk", "70.0 GiB free"},
		{"disk full goes to RAM", "auto", 100 * MiB, 60 * MiB, space{mem: 4 * GiB, disk: 100 * MiB}, "ram", "576.0 MiB of memory, 4.0 GiB available; not on disk"},
		{"disk dir off the root goes to RAM", "auto", 100 * MiB, 60 * MiB, space{mem: 4 * GiB, disk: 70 * GiB, offRoot: "not on the root file system"}, "ram", "not on the root file system"},
		{"disk store off the root", "disk", 100 * MiB, 60 * MiB, space{mem: 4 * GiB, disk: 70 * GiB, offRoot: "not on the root file system"}, "", "store = disk, but"},
		{"ram store", "ram", 100 * MiB, 60 * MiB, space{mem: 4 * GiB, disk: 70 * GiB}, "ram", "576.0 MiB of memory"},
		{"disk store, room on disk whatever /run has", "disk", 100 * MiB, 60 * MiB, space{mem: 4 * GiB, disk: 74 * GiB}, "disk", "176.5 MiB needed"},
		{"disk store, disk full", "disk", 1 * GiB, 60 * MiB, space{mem: 4 * GiB, disk: 500 * MiB}, "", "does not fit"},
		{"ram store, too big", "ram", 3 * GiB, 60 * MiB, space{mem: 4 * GiB, disk: 70 * GiB}, "", "does not fit in memory"},
		{"fits nowhere", "auto", 3 * GiB, 60 * MiB, space{mem: 4 * GiB, disk: 1 * GiB}, "", "fits neither"},
		{"initrd counts twice", "auto", 1 * GiB, 1 * GiB, space{mem: 4*GiB + 200*MiB, disk: 1 * GiB}, "", "4.2 GiB of memory"},
	}
	for _, tt := range tests {
		tt.sp.diskPath = "/var/lib/seamless/images"
		got, why, err := chooseStore(config.Config{Store: tt.store}, tt.need, tt.ird, tt.sp)
		if err != nil {
			why = err.Error()
		}
		if got != tt.want || !strings.Contains(why, tt.why) {
			t.Errorf("%s: chooseStore = %q, %q, %v; want %q with %q", tt.name, got, why, err, tt.want, tt.why)
		}
	}
}

// TestOffRoot: a directory on the root's mount (existing or still to be
// created) is on the root; one on a mount of its own is not, and the
// answer names the mount.
func TestOffRoot(t *testing.T) {
	if got := offRoot("/var/lib/seamless-no-such-dir/images"); got != "" && !strings.Contains(got, "/var") {
		t.Errorf("offRoot of a path to be created: %q", got)
	}
	if got := offRoot("/proc/sys/seamless"); !strings.Contains(got, "/proc") || !strings.Contains(got, "is a mount of its own") {
		t.Errorf("offRoot(/proc/sys/seamless) = %q", got)
	}
	if got := offRoot("/"); got != "" {
		t.Errorf("offRoot(/) = %q", got)
	}
}
