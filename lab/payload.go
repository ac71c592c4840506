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

// BuildPayload builds the project's Debian package (packaging/build-deb.sh)
// into runDir/payload/debs and its binaries into runDir/payload/bin, and
// writes them as a small ext4 image. The guest installs the package, as
// users get it; the binaries are for the u-root initramfs and the test
// programs. A command that does not build is skipped with a warning (the
// lab must keep working while the project is under construction); a
// package that does not build fails the run. It returns the image path and
// a note per part. With script (a bash script of repo), the script is run
// with the payload's directory and what it writes there travels along; its
// failure fails the run.
func BuildPayload(ctx context.Context, repo, runDir, script string, out io.Writer) (string, []string, error) {
	dir := filepath.Join(runDir, "payload")
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", nil, fmt.Errorf("create payload dir: %w", err)
	}
	var notes []string
	if note, err := buildDeb(ctx, repo, runDir, filepath.Join(dir, "debs"), out); err != nil {
		return "", notes, err
	} else if note != "" {
		notes = append(notes, note)
	}
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
	// packaging/install.sh installs the D-Bus interface file from
	// internal/dbusapi; kmod/ is the module's DKMS source.
	for _, d := range []string{"units", "initramfs", "dracut", "packaging", "kmod", "internal/dbusapi"} {
		if _, err := os.Stat(filepath.Join(repo, d)); err != nil {
			continue // not written yet: the lab works without it
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, d)), 0o755); err != nil {
			return "", notes, fmt.Errorf("payload: %w", err)
		}
		cp := exec.CommandContext(ctx, "cp", "-a", filepath.Join(repo, d), filepath.Join(dir, d))
		if b, err := cp.CombinedOutput(); err != nil {
			return "", notes, fmt.Errorf("copy %s into the payload: %w: %s", d, err, b)
		}
	}
	if script != "" {
		t0 := time.Now()
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(repo, script), dir)
		cmd.Dir = repo
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", notes, fmt.Errorf("payload script %s: %w: %s", script, err, lastLines(string(b), 15))
		}
		logf(out, "ran the payload script %s (%.0f s)", script, time.Since(t0).Seconds())
		notes = append(notes, script+": ran")
	}
	size, err := payloadSize(dir)
	if err != nil {
		return "", notes, err
	}
	img := filepath.Join(runDir, "payload.img")
	mk := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-L", payloadLabel, "-d", dir, img, fmt.Sprintf("%dM", size))
	if b, err := mk.CombinedOutput(); err != nil {
		return "", notes, fmt.Errorf("make payload image: %w: %s", err, b)
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", notes, fmt.Errorf("remove payload dir: %w", err)
	}
	return img, notes, nil
}

// payloadSize is the size in MiB of an ext4 file system that holds dir: at
// least 256 MiB, else the files' size with a quarter and 64 MiB to spare
// (inodes, block rounding, the journal-less metadata).
func payloadSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			total += fi.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of the payload: %w", err)
	}
	return max(256, total/(1<<20)*5/4+64), nil
}

// installPayload is run in the guest after the first boot. The seamless
// package is installed with apt, as a user installs it (its postinst
// rebuilds the initramfs of the installed kernels), unless noInstall: then
// the scenario installs it from /mnt/lab/debs. A payload without a package
// (a checkout from before debian/) falls back to packaging/install.sh.
func installPayload(noInstall bool) string {
	install := "1"
	if noInstall {
		install = ""
	}
	return `set -e
install_pkg=` + install + `
mkdir -p /mnt/lab
mountpoint -q /mnt/lab || mount -o ro LABEL=` + payloadLabel + ` /mnt/lab
deb=$(ls /mnt/lab/debs/seamless_*.deb 2>/dev/null | head -1 || true)
for f in /mnt/lab/bin/*; do
	[ -f "$f" ] || continue
	# The package's /usr/bin/seamless is the one to use.
	[ -n "$deb" ] && [ "$(basename "$f")" = seamless ] && continue
	install -m 0755 "$f" /usr/local/bin/
	echo "installed /usr/local/bin/$(basename "$f")"
done
if [ -n "$deb" ] && [ -z "$install_pkg" ]; then
	echo "the scenario installs $deb itself"
elif [ -n "$deb" ]; then
	t0=$(date +%s)
	apt-get install -y -q -o Dpkg::Use-Pty=0 "$deb" > /var/log/lab-install-seamless.log 2>&1 || { tail -20 /var/log/lab-install-seamless.log; exit 1; }
	echo "installed $(dpkg-query -W -f '${Package} ${Version}' seamless) with apt-get in $(( $(date +%s) - t0 )) s"
elif [ -x /mnt/lab/packaging/install.sh ] && [ -x /usr/local/bin/seamless ]; then
	sh /mnt/lab/packaging/install.sh /usr/local/bin/seamless
	systemctl daemon-reload
	echo "installed the seamless units, initramfs scripts and configuration"
fi`
}

// buildDeb builds the repository's Debian package with
// packaging/build-deb.sh into runDir/deb and copies the .deb into dst. A
// repository without debian/ (from before the package) builds none.
func buildDeb(ctx context.Context, repo, runDir, dst string, out io.Writer) (string, error) {
	script := filepath.Join(repo, "packaging", "build-deb.sh")
	if _, err := os.Stat(filepath.Join(repo, "debian", "rules")); err != nil {
		return "", nil
	}
	for _, tool := range []string{"dpkg-buildpackage", "dh", "dh_dkms"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("the lab installs the seamless package, and building it needs %s (apt-get install debhelper dpkg-dev dh-dkms): %w", tool, err)
		}
	}
	t0 := time.Now()
	outDir := filepath.Join(runDir, "deb")
	cmd := exec.CommandContext(ctx, "bash", script, outDir)
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the seamless package (log: %s/build.log): %w: %s", outDir, err, lastLines(string(b), 15))
	}
	debs, _ := filepath.Glob(filepath.Join(outDir, "seamless_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("build the seamless package: %d .deb files in %s, want 1", len(debs), outDir)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", err
	}
	// seamless-dkms rides along, for the scenarios that install it.
	dkms, _ := filepath.Glob(filepath.Join(outDir, "seamless-dkms_*.deb"))
	for _, deb := range append(debs, dkms...) {
		if err := copyFile(deb, filepath.Join(dst, filepath.Base(deb))); err != nil {
			return "", fmt.Errorf("copy the package into the payload: %w", err)
		}
	}
	logf(out, "built %s (%.0f s)", filepath.Base(debs[0]), time.Since(t0).Seconds())
	return "debian: built " + filepath.Base(debs[0]), nil
}
