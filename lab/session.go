package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// firstBootTimeout bounds a guest's first boot. Under TCG a boot takes
// 20-40 s on a quiet host, but several minutes when the host's two CPUs
// are busy with other work (a test suite, an image build): the bound is
// for a guest that will never boot, not for a slow one.
const firstBootTimeout = 6 * time.Minute

// NewRunDir creates a fresh run directory for name under the cache.
func NewRunDir(cfg Config, name string) (string, error) {
	runs := filepath.Join(cfg.CacheDir, "runs")
	if err := os.MkdirAll(runs, 0o700); err != nil {
		return "", fmt.Errorf("create runs dir: %w", err)
	}
	base := filepath.Join(runs, name+"-"+time.Now().Format("20060102-150405"))
	for i := 1; ; i++ {
		dir := base
		if i > 1 {
			dir = fmt.Sprintf("%s-%d", base, i)
		}
		err := os.Mkdir(dir, 0o700)
		if err == nil {
			return dir, nil
		}
		if !os.IsExist(err) || i > 100 {
			return "", fmt.Errorf("create run dir: %w", err)
		}
	}
}

// BootGuest boots a copy-on-write copy of img in runDir (the cached image is
// never modified), waits for multi-user and installs the project's build
// from opt.Repo. The returned guest (non-nil once QEMU started, even on
// error) must be stopped with g.VM.Kill().
func BootGuest(ctx context.Context, cfg Config, img *Image, runDir string, opt RunOptions) (*Guest, BootInfo, error) {
	out := opt.Out
	overlay := filepath.Join(runDir, "overlay.qcow2")
	if b, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", img.Disk, overlay).CombinedOutput(); err != nil {
		return nil, BootInfo{}, fmt.Errorf("create disk overlay: %w: %s", err, b)
	}
	payload := ""
	var notes []string
	if opt.Repo != "" {
		var err error
		if payload, notes, err = BuildPayload(ctx, opt.Repo, runDir, opt.PayloadScript, out); err != nil {
			return nil, BootInfo{}, err
		}
	}
	logf(out, "booting the guest (TCG), serial console: %s", filepath.Join(runDir, "serial.log"))
	forwards := map[string]int{"memcached": 11211}
	for name, port := range opt.Forwards {
		forwards[name] = port
	}
	vcfg := VMConfig{Dir: runDir, Disk: overlay, Payload: payload, MemoryMB: cfg.MemoryMB, CPUs: cfg.CPUs, Forwards: forwards}
	if cfg.LowMemoryMB > 0 {
		vcfg.ExtraArgs = append(vcfg.ExtraArgs, "-machine", fmt.Sprintf("pc,max-ram-below-4g=%dM", cfg.LowMemoryMB))
	}
	if opt.Capture {
		vcfg.ExtraArgs = append(vcfg.ExtraArgs, "-object", "filter-dump,id=pcap0,netdev=net0,file="+filepath.Join(runDir, "net.pcap"))
	}
	vm, err := StartVM(vcfg)
	if err != nil {
		return nil, BootInfo{}, err
	}
	g := &Guest{VM: vm, Out: out, Payload: notes}
	boot, err := g.WaitBoot(ctx, firstBootTimeout, "", time.Time{})
	if err != nil {
		return g, boot, err
	}
	if payload != "" {
		// The package's postinst rebuilds an initramfs: a minute or two under TCG.
		res, err := g.Output(ctx, installPayload(opt.NoInstall), 10*time.Minute)
		if err != nil {
			return g, boot, g.Fail("install the project's build in the guest", err)
		}
		if res != "" {
			logf(out, "%s", res)
		}
	}
	return g, boot, nil
}
