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
		{"kmod store: 60% of memory, which RAM cannot hold", "kmod", 2400 * MiB, 60 * MiB, space{mem: 3500 * MiB, disk: 70 * GiB, movable: 3 * GiB}, "kmod", "moved, part by part, out of the services into 2.7 GiB"},
		{"kmod store, not enough movable memory: as auto", "kmod", 300 * MiB, 60 * MiB, space{mem: 1300 * MiB, disk: 70 * GiB, movable: 128 * MiB}, "disk", "only 128.0 MiB of movable memory can be taken (boot with movablecore="},
		{"kmod store, not enough movable memory, disk full: ram", "kmod", 300 * MiB, 60 * MiB, space{mem: 1300 * MiB, disk: 100 * MiB, movable: 128 * MiB}, "ram", "only 128.0 MiB of movable memory can be taken (boot with movablecore="},
		{"kmod store, module missing: as auto, and why", "kmod", 100 * MiB, 60 * MiB, space{mem: 4 * GiB, disk: 70 * GiB, kmod: "no seamlessmem module built for kernel 6.1.0-50-amd64"}, "disk", "kmod store unavailable: no seamlessmem module built for kernel 6.1.0-50-amd64; disk in"},
		{"kmod store, module refused, disk off the root: ram", "kmod", 100 * MiB, 60 * MiB, space{mem: 4 * GiB, disk: 70 * GiB, offRoot: "not on the root file system", kmod: "the kernel refused it"}, "ram", "refused it; ram ("},
		{"kmod store, not enough memory beside the services'", "kmod", 3900 * MiB, 60 * MiB, space{mem: 280 * MiB, disk: 70 * GiB, movable: -1}, "disk", "needs 292.0 MiB available besides the services' memory, 280.0 MiB available; disk in"},
		{"kmod store: an image as large as available memory moves", "kmod", 3900 * MiB, 60 * MiB, space{mem: 4 * GiB, disk: 70 * GiB, movable: -1}, "kmod", "moved, part by part"},
		{"kmod store fits nowhere else", "kmod", 3 * GiB, 60 * MiB, space{mem: 4 * GiB, disk: 1 * GiB, kmod: "the kernel refused it"}, "", "kmod store unavailable: the kernel refused it; the image fits neither"},
		{"auto never picks kmod", "auto", 100 * MiB, 60 * MiB, space{mem: 4 * GiB, disk: 100 * MiB, movable: 3 * GiB}, "ram", "ram ("},
		{"ZONE_MOVABLE: the kernel's copy must fit outside it (lab: OOM kill)", "kmod", 300 * MiB, 12 * MiB, space{mem: 1400 * MiB, kernelMem: 250 * MiB, disk: 100 * MiB, kmod: "no seamlessmem module built for kernel 6.1.0-56-amd64"}, "", "must come from memory outside ZONE_MOVABLE: 250.0 MiB available there"},
		{"ZONE_MOVABLE: ram store refused", "ram", 300 * MiB, 12 * MiB, space{mem: 1400 * MiB, kernelMem: 250 * MiB, disk: 70 * GiB}, "", "must come from memory outside ZONE_MOVABLE"},
		{"ZONE_MOVABLE with room outside it", "auto", 300 * MiB, 12 * MiB, space{mem: 1400 * MiB, kernelMem: 700 * MiB, disk: 100 * MiB}, "ram", "held twice"},
	}
	for _, tt := range tests {
		tt.sp.diskPath = "/var/lib/seamless/images"
		if tt.sp.kernelMem == 0 {
			tt.sp.kernelMem = -1 // no ZONE_MOVABLE
		}
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
