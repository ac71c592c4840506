package contract

import (
	"strings"
	"testing"
)

func TestImageParam(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cmdline string
		want    Image
		err     string // "" when the value parses
	}{
		{"RAM", "root=/dev/vda1 seamless.image=/seamless/image quiet", RAM(), ""},
		{"disk", "seamless.image=disk:/var/lib/seamless/images/20260101T000000Z", Disk("/var/lib/seamless/images/20260101T000000Z"), ""},
		{"the last one counts", "seamless.image=/etc seamless.image=/seamless/image", RAM(), ""},
		{"elsewhere in the initramfs", "seamless.image=/etc", Image{}, "is not where the RAM store puts an image"},
		{"dot-dot", "seamless.image=/seamless/image/..", Image{}, "is not where the RAM store puts an image"},
		{"relative", "seamless.image=seamless/image", Image{}, "is not where the RAM store puts an image"},
		{"disk without a path", "seamless.image=disk:", Image{}, "names no image directory"},
		{"kmod", "memmap=0x10000000$0x60000000 seamless.image=kmod:0x70000000,1", Kmod(0x70000000, 1), ""},
		{"kmod without an address", "seamless.image=kmod:", Image{}, "names no seamlessmem index"},
		{"kmod at 0", "seamless.image=kmod:0,1", Image{}, "names no seamlessmem index"},
		{"kmod, not a number", "seamless.image=kmod:zz,1", Image{}, "names no seamlessmem index"},
		{"kmod without its reservations", "seamless.image=kmod:0x70000000", Image{}, "names no seamlessmem index"},
		{"kmod with no reservation", "seamless.image=kmod:0x70000000,0", Image{}, "names no seamlessmem index"},
		{"kmod with too many", "seamless.image=kmod:0x70000000,65", Image{}, "names no seamlessmem index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := ImageFromCmdline(tc.cmdline)
			got, err := ParseBootImage(v)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseBootImage(%q) = %v, %v; want an error saying %q", v, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseBootImage(%q) = %v, %v; want %v", v, got, err, tc.want)
			}
			// What the old kernel writes is what the new kernel reads.
			if back := ImageFromCmdline("quiet " + got.Param()); back != v {
				t.Errorf("%v.Param() reads back as %q, want %q", got, back, v)
			}
		})
	}
	// The daemon's --image may name any directory.
	if img, err := ParseImage("/tmp/image"); err != nil || img != (Image{Path: "/tmp/image"}) {
		t.Errorf("ParseImage(/tmp/image) = %v, %v", img, err)
	}
	if _, err := ParseImage(""); err == nil {
		t.Error("ParseImage accepted no image")
	}
	if v := ImageFromCmdline("root=/dev/vda1 seamless.imagex=/seamless/image"); v != "" {
		t.Errorf("a normal boot's command line names image %q", v)
	}
}

// TestWithoutKmodReservations: a kmod-store update's reservations go with
// its seamless.image=; the user's own memmap= stay (the image parameter
// itself is kernel.Cmdline's to drop).
func TestWithoutKmodReservations(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"its own", "root=/dev/vda1 memmap=64M$0x100000000 ro memmap=0x8000000$0x70000000 memmap=0x10000000$0x50000000 seamless.image=kmod:0x70000000,2",
			"root=/dev/vda1 memmap=64M$0x100000000 ro seamless.image=kmod:0x70000000,2"},
		// The user's memmap= right before the update's own stays.
		{"the user's just before", "root=/dev/vda1 memmap=4G!12G memmap=64M$0x100000000 memmap=0x8000000$0x70000000 seamless.image=kmod:0x70000000,1",
			"root=/dev/vda1 memmap=4G!12G memmap=64M$0x100000000 seamless.image=kmod:0x70000000,1"},
		// Only the memmap=SIZE$ADDR form is the update's.
		{"not a reservation", "memmap=4G!12G seamless.image=kmod:0x70000000,1", "memmap=4G!12G seamless.image=kmod:0x70000000,1"},
		// An image in RAM or on disk reserved nothing: the memmap= before
		// it is the user's.
		{"RAM", "root=/dev/vda1 memmap=64M$0x100000000 seamless.image=/seamless/image", "root=/dev/vda1 memmap=64M$0x100000000 seamless.image=/seamless/image"},
		// A value that does not say how many: none is dropped.
		{"malformed", "memmap=64M$0x100000000 seamless.image=kmod:0x70000000", "memmap=64M$0x100000000 seamless.image=kmod:0x70000000"},
	} {
		if got := WithoutKmodReservations(tc.in); got != tc.want {
			t.Errorf("%s: WithoutKmodReservations = %q, want %q", tc.name, got, tc.want)
		}
	}
}
