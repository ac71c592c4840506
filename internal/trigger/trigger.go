// Package trigger connects seamless to the package manager.
//
// A kernel package runs the hooks in /etc/kernel/postinst.d from inside
// dpkg, under its lock: seamless's hook only notes the new kernel (Note)
// and sets Debian's reboot-required flag. When dpkg is done, APT's
// DPkg::Post-Invoke hook takes the notes (TakeNotes) and acts as
// seamless.conf's "apply =" says; whatever starts the update itself first
// waits until apt and dpkg have released their locks (HoldPackageLocks), so
// that an update never interrupts a package run.
package trigger

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/kernel"
)

// RebootRequired is Debian's flag that a reboot is needed; the packages
// that caused it are listed in RebootRequired + ".pkgs". A variable so
// that tests can move it.
var RebootRequired = "/run/reboot-required"

// notesFile lists, one per line, the kernel releases installed since the
// APT hook last looked. It is in the run directory, lost at the next boot,
// as the notes should be.
func notesFile() string { return filepath.Join(contract.RunDir, "installed-kernels") }

// Note records that package pkg installed kernel release, for the APT hook
// to act on when dpkg is done. When release is newer than the running
// kernel it also sets the reboot-required flag (as Debian's
// notify-reboot-required does) and lists pkg in the flag's .pkgs file: a
// newer kernel is only in use after a reboot, or a seamless update.
func Note(release, pkg, running string) error {
	if release == "" || strings.ContainsAny(release, "/\n") {
		return fmt.Errorf("note kernel: bad release %q", release)
	}
	if err := os.MkdirAll(contract.RunDir, 0o700); err != nil {
		return fmt.Errorf("note kernel %s: %w", release, err)
	}
	f, err := os.OpenFile(notesFile(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("note kernel %s: %w", release, err)
	}
	_, err = fmt.Fprintln(f, release)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("note kernel %s: %w", release, err)
	}
	if kernel.CompareVersions(release, running) <= 0 {
		return nil
	}
	if pkg == "" {
		pkg = "linux-image-" + release
	}
	return SetRebootRequired(pkg)
}

// SetRebootRequired creates the reboot-required flag if it is missing and
// adds pkg to its .pkgs list if it is not there yet.
func SetRebootRequired(pkg string) error {
	if _, err := os.Stat(RebootRequired); os.IsNotExist(err) {
		if err := os.WriteFile(RebootRequired, []byte("*** System restart required ***\n"), 0o644); err != nil {
			return fmt.Errorf("set %s: %w", RebootRequired, err)
		}
	}
	pkgs := RebootRequired + ".pkgs"
	if b, err := os.ReadFile(pkgs); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if l == pkg {
				return nil
			}
		}
	}
	f, err := os.OpenFile(pkgs, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("set %s: %w", pkgs, err)
	}
	_, err = fmt.Fprintln(f, pkg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("set %s: %w", pkgs, err)
	}
	return nil
}

// TakeNotes returns the kernel releases noted since the last call, each
// once, and forgets them.
func TakeNotes() ([]string, error) {
	// Renamed first: a kernel noted while we read goes into a new file and
	// is seen next time.
	taken := notesFile() + ".taken"
	if err := os.Rename(notesFile(), taken); err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("take kernel notes: %w", err)
	}
	defer os.Remove(taken)
	f, err := os.Open(taken)
	if err != nil {
		return nil, fmt.Errorf("take kernel notes: %w", err)
	}
	defer f.Close()
	var out []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if r := strings.TrimSpace(sc.Text()); r != "" && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out, sc.Err()
}

// InChroot tells whether this process runs in a chroot (a debootstrap, an
// image build), where the running kernel and systemd are the host's and
// none of the machine's business: "/" is not init's root. Without /proc
// it cannot tell, and says yes.
func InChroot() bool {
	var root, init syscall.Stat_t
	if syscall.Stat("/", &root) != nil || syscall.Stat("/proc/1/root", &init) != nil {
		return true
	}
	return root.Dev != init.Dev || root.Ino != init.Ino
}

// Booted tells whether the machine runs systemd (sd_booted(3)).
func Booted() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// NextAt returns the next time, after now, that the local clock reads
// hour:minute.
func NextAt(now time.Time, hour, minute int) time.Time {
	t := time.Date(now.Year(), now.Month(), now.Day(), hour, minute, 0, 0, now.Location())
	if !t.After(now) {
		t = time.Date(now.Year(), now.Month(), now.Day()+1, hour, minute, 0, 0, now.Location())
	}
	return t
}

// ErrNoPending is returned by Pending when no installed kernel is newer than
// the running one.
var ErrNoPending = kernel.ErrNoNewer

// Pending returns the kernel a seamless update would switch to: the newest
// installed in boot, if it is newer than the running one.
func Pending(boot string) (kernel.Kernel, error) {
	k, err := kernel.Pick(boot, "", "", kernel.Running())
	if err != nil && !errors.Is(err, kernel.ErrNoNewer) {
		return k, fmt.Errorf("find the pending kernel: %w", err)
	}
	return k, err
}
