package main

import (
	"os"
	"strings"
	"testing"

	"github.com/seamless-linux/seamless/internal/contract"
)

// TestStage1NormalBoot: the initramfs scripts run `seamless-restore
// stage1` on every boot and leave the command line to it; on a boot
// without the image parameter it must exit 0 at once, writing nothing
// (its output goes to the kernel log).
func TestStage1NormalBoot(t *testing.T) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		t.Skip(err)
	}
	if contract.ImageFromCmdline(string(b)) != "" {
		t.Skip("this machine booted with an image to restore")
	}
	for _, args := range [][]string{{"stage1"}, {"stage1", "--root", t.TempDir()}} {
		var out, errs strings.Builder
		if rc := run(args, &out, &errs); rc != 0 || out.Len() != 0 || errs.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 0 and nothing", args, rc, out.String(), errs.String())
		}
	}
}
