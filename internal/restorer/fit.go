package restorer

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/seamless-linux/seamless/internal/contract"
)

// distroOnlyOptions are kernel command-line options that only a
// distribution's initramfs acts on: booted without it, the system would
// miss what they ask for (network configuration, a root over the network,
// dracut's rd.* settings, initramfs-tools' boot script or break points,
// its crypt options). The restorer acts on root=, rootfstype=, rootflags=,
// rootdelay=, ro, rw and init= alone.
var distroOnlyOptions = []string{"ip", "nfsroot", "boot", "break", "cryptopts", "rd.*", "netroot", "iscsi_*"}

// CheckCmdline says why the restorer cannot boot a kernel with cmdline:
// its root= is of a form the restorer's PID 1 cannot find, or it asks the
// initramfs for something the restorer does not do.
func CheckCmdline(cmdline string) error {
	root := ""
	for _, f := range strings.Fields(cmdline) {
		k, v, _ := strings.Cut(f, "=")
		if k == "root" {
			root = v
		}
		for _, o := range distroOnlyOptions {
			if pre, ok := strings.CutSuffix(o, "*"); ok && strings.HasPrefix(k, pre) || k == o {
				return fmt.Errorf("the command line asks the initramfs for %s, which only the distribution's acts on", f)
			}
		}
	}
	return contract.RestorerRootSpec(root)
}

// PlanBoot is Plan for an update that boots release with cmdline: the
// command line must be one the restorer can boot (CheckCmdline) too.
func (s System) PlanBoot(release, cmdline string) (*Image, error) {
	if err := CheckCmdline(cmdline); err != nil {
		return nil, err
	}
	return s.Plan(release)
}

// Customized says how the administrator has configured the
// distribution's initramfs beyond the packages' defaults ("" when not):
// scripts or hooks of initramfs-tools in /etc, modules listed for it, or
// settings of dracut in /etc. A restorer would boot without them, so
// initrd = auto leaves such a system to the initramfs that was
// configured; initrd = restorer is the administrator's explicit choice.
func (s System) Customized() (string, error) {
	itools := filepath.Join(s.Etc, "initramfs-tools")
	for _, dir := range []string{filepath.Join(itools, "scripts"), filepath.Join(itools, "hooks")} {
		found, err := firstFile(dir)
		if err != nil {
			return "", err
		}
		if found != "" {
			return "initramfs-tools runs " + found, nil
		}
	}
	lists := []string{filepath.Join(itools, "modules"), filepath.Join(s.Etc, "dracut.conf")}
	confs, err := filepath.Glob(filepath.Join(s.Etc, "dracut.conf.d", "*.conf"))
	if err != nil {
		return "", err
	}
	for _, p := range append(lists, confs...) {
		line, err := firstSetting(p)
		if err != nil {
			return "", err
		}
		if line != "" {
			return fmt.Sprintf("%s sets %q", p, line), nil
		}
	}
	return "", nil
}

// firstFile is the first file (not directory) below dir, "" when there
// is none or dir does not exist.
func firstFile(dir string) (string, error) {
	var found string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if !d.IsDir() {
			found = p
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("look for initramfs customizations: %w", err)
	}
	return found, nil
}

// firstSetting is the first line of the file at p that is neither blank
// nor a comment, "" when there is none or no such file.
func firstSetting(p string) (string, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look for initramfs customizations: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			return line, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("look for initramfs customizations: %s: %w", p, err)
	}
	return "", nil
}
