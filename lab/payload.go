package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// payloadLabel is the ext4 label of the per-run payload disk; the guest
// mounts it read-only at /mnt/lab.
const payloadLabel = "lab-payload"

// FindRepo walks up from dir to the root of the seamless module.
func FindRepo(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/seamless-linux/seamless\n") {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no seamless repository (go.mod) above %s", dir)
		}
	}
}

// BuildPayload builds the project's binaries for the guest into
// runDir/payload/bin and writes them as a small ext4 image. A command that
// does not build is skipped with a warning: the lab must keep working while
// the project is under construction. It returns the image path and a note
// per binary. With urootKernel (a kernel package), the u-root restorer
// initramfs for that kernel is built into the payload too.
func BuildPayload(ctx context.Context, repo, runDir, urootKernel string, out io.Writer) (string, []string, error) {
	dir := filepath.Join(runDir, "payload")
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", nil, fmt.Errorf("create payload dir: %w", err)
	}
	var notes []string
	for _, c := range []string{"seamless", "seamlessd", "seamless-restore"} {
		pkg := "./cmd/" + c
		if _, err := os.Stat(filepath.Join(repo, "cmd", c)); err != nil {
			continue
		}
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, c), pkg)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			note := fmt.Sprintf("%s: not built (%v): %s", pkg, err, lastLines(string(b), 5))
			logf(out, "warning: %s", note)
			notes = append(notes, note)
			continue
		}
		notes = append(notes, pkg+": built")
		logf(out, "built %s for the guest", pkg)
	}
	// A Go net/http service built with the host's Go and its default
	// settings (Go 1.24 and later listen with MPTCP where the kernel has it):
	// the services scenario installs it as a unit.
	{
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, "lab-httpserver"), "./internal/inet/testdata/programs/httpserver")
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			note := fmt.Sprintf("lab-httpserver: not built (%v): %s", err, lastLines(string(b), 5))
			logf(out, "warning: %s", note)
			notes = append(notes, note)
		} else {
			notes = append(notes, "lab-httpserver: built")
		}
	}
	// Static test programs for the guest (the engine benchmark's workload).
	for _, src := range []string{"test/bench/testdata/bigmem.c"} {
		name := strings.TrimSuffix(filepath.Base(src), ".c")
		cmd := exec.CommandContext(ctx, "gcc", "-O2", "-static", "-o", filepath.Join(bin, name), src)
		cmd.Dir = repo
		if b, err := cmd.CombinedOutput(); err != nil {
			note := fmt.Sprintf("%s: not built (%v): %s", src, err, lastLines(string(b), 5))
			logf(out, "warning: %s", note)
			notes = append(notes, note)
			continue
		}
		notes = append(notes, src+": built")
	}
	// The system integration (units, initramfs scripts, configuration and
	// the script that installs them) travels with the binaries.
	for _, d := range []string{"units", "initramfs", "packaging"} {
		if _, err := os.Stat(filepath.Join(repo, d)); err != nil {
			continue // not written yet: the lab works without it
		}
		cp := exec.CommandContext(ctx, "cp", "-a", filepath.Join(repo, d), filepath.Join(dir, d))
		if b, err := cp.CombinedOutput(); err != nil {
			return "", notes, fmt.Errorf("copy %s into the payload: %w: %s", d, err, b)
		}
	}
	if urootKernel != "" {
		note, err := buildUroot(ctx, repo, dir, urootKernel, out)
		if err != nil {
			return "", notes, err
		}
		notes = append(notes, note)
	}
	img := filepath.Join(runDir, "payload.img")
	mk := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-L", payloadLabel, "-d", dir, img, "256M")
	if b, err := mk.CombinedOutput(); err != nil {
		return "", notes, fmt.Errorf("make payload image: %w: %s", err, b)
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", notes, fmt.Errorf("remove payload dir: %w", err)
	}
	return img, notes, nil
}

// installPayload is run in the guest after the first boot.
const installPayload = `set -e
mkdir -p /mnt/lab
mountpoint -q /mnt/lab || mount -o ro LABEL=` + payloadLabel + ` /mnt/lab
for f in /mnt/lab/bin/*; do
	[ -f "$f" ] || continue
	install -m 0755 "$f" /usr/local/bin/
	echo "installed /usr/local/bin/$(basename "$f")"
done
if [ -f /mnt/lab/uroot/seamless-restorer.img ]; then
	install -m 0600 /mnt/lab/uroot/seamless-restorer.img /boot/seamless-restorer.img
	echo "installed /boot/seamless-restorer.img (u-root restorer initramfs)"
fi
if [ -x /mnt/lab/packaging/install.sh ] && [ -x /usr/local/bin/seamless ]; then
	sh /mnt/lab/packaging/install.sh /usr/local/bin/seamless
	systemctl daemon-reload
	echo "installed the seamless units, initramfs scripts and configuration"
fi`

// buildUroot builds initramfs/uroot's restorer initramfs for the kernel in
// package deb, with the payload's seamless, into dir/uroot.
func buildUroot(ctx context.Context, repo, dir, deb string, out io.Writer) (string, error) {
	tmp, err := os.MkdirTemp("", "seamless-lab-uroot-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if b, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("unpack %s: %w: %s", deb, err, b)
	}
	mods, _ := filepath.Glob(filepath.Join(tmp, "lib", "modules", "*"))
	if len(mods) != 1 {
		return "", fmt.Errorf("%s: %d module trees, want 1", deb, len(mods))
	}
	if err := os.MkdirAll(filepath.Join(dir, "uroot"), 0o755); err != nil {
		return "", err
	}
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, "sh", filepath.Join(repo, "initramfs", "uroot", "build.sh"),
		"-o", filepath.Join(dir, "uroot", "seamless-restorer.img"), "-k", mods[0], "-b", filepath.Join(dir, "bin", "seamless"))
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the u-root restorer initramfs: %w: %s", err, lastLines(string(b), 10))
	}
	logf(out, "built the u-root restorer initramfs for %s (%.0f s)", filepath.Base(mods[0]), time.Since(t0).Seconds())
	return "initramfs/uroot: built for " + filepath.Base(mods[0]), nil
}
