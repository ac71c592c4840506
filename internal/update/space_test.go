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
		{"small image in RAM", "auto", 100 * MiB, 60 * MiB, space{mem: 4 * GiB, disk: 70 * GiB}, "ram", "576.0 MiB of memory, 4.0 GiB available"},
		{"too big for RAM goes to disk", "auto", 3 * GiB, 60 * MiB, space{mem: 4 * GiB, disk: 70 * GiB}, "disk", "70.0 GiB free"},
		{"disk store, room on disk whatever /run has", "disk", 100 * MiB, 60 * MiB, space{mem: 4 * GiB, disk: 74 * GiB}, "disk", "176.5 MiB needed"},
		{"disk store, disk full", "disk", 1 * GiB, 60 * MiB, space{mem: 4 * GiB, disk: 500 * MiB}, "", "does not fit"},
		{"ram store, too big", "ram", 3 * GiB, 60 * MiB, space{mem: 4 * GiB, disk: 70 * GiB}, "", "does not fit in memory"},
		{"fits nowhere", "auto", 3 * GiB, 60 * MiB, space{mem: 4 * GiB, disk: 1 * GiB}, "", "fits neither"},
		{"kmod store: 60% of memory, which RAM cannot hold", "kmod", 2400 * MiB, 60 * MiB, space{mem: 3500 * MiB, disk: 70 * GiB, movable: 3 * GiB}, "kmod", "written once into 2.7 GiB"},
		{"kmod store, not enough movable memory", "kmod", 300 * MiB, 60 * MiB, space{mem: 1300 * MiB, disk: 70 * GiB, movable: 128 * MiB}, "ram", "only 128.0 MiB of movable memory can be taken (boot with movablecore="},
		{"kmod store, module missing: as auto, and why", "kmod", 100 * MiB, 60 * MiB, space{mem: 4 * GiB, disk: 70 * GiB, kmod: "no seamlessmem module built for kernel 6.1.0-50-amd64"}, "ram", "kmod store unavailable: no seamlessmem module built for kernel 6.1.0-50-amd64; ram ("},
		{"kmod store, module refused, too big for RAM: disk", "kmod", 3 * GiB, 60 * MiB, space{mem: 4 * GiB, disk: 70 * GiB, kmod: "the kernel refused it"}, "disk", "refused it; disk in"},
		{"kmod store, not enough memory for the blocks", "kmod", 3900 * MiB, 60 * MiB, space{mem: 4 * GiB, disk: 70 * GiB, movable: -1}, "disk", "needs 4.3 GiB of memory blocks, 4.0 GiB available; disk in"},
		{"ZONE_MOVABLE: the kernel's copy must fit outside it (lab: OOM kill)", "kmod", 300 * MiB, 12 * MiB, space{mem: 1400 * MiB, kernelMem: 250 * MiB, disk: 70 * GiB, kmod: "no seamlessmem module built for kernel 6.1.0-56-amd64"}, "disk", "must come from memory outside ZONE_MOVABLE: 250.0 MiB available there"},
		{"ZONE_MOVABLE with room outside it", "auto", 300 * MiB, 12 * MiB, space{mem: 1400 * MiB, kernelMem: 700 * MiB, disk: 70 * GiB}, "ram", "held twice"},
		{"initrd counts twice", "auto", 1 * GiB, 1 * GiB, space{mem: 4*GiB + 200*MiB, disk: 70 * GiB}, "disk", "4.2 GiB of memory"},
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

// TestPeakUse: the peak is the first sample less the lowest.
func TestPeakUse(t *testing.T) {
	st := &Status{}
	if st.PeakUse() != 0 {
		t.Error("no samples: a peak")
	}
	st.Memory = []MemSample{{"start", 1000}, {"image written", 700}, {"lowest", 400}, {"kernel loaded", 900}}
	if got := st.PeakUse(); got != 600 {
		t.Errorf("PeakUse = %d, want 600", got)
	}
}
