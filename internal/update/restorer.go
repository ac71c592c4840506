package update

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/seamless-linux/seamless/internal/bytesize"
	"github.com/seamless-linux/seamless/internal/config"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/restorer"
)

// restorerSystem is where the restorer's plan looks; tests move it.
var restorerSystem = restorer.Host()

// restorerFor builds the restorer initramfs that boots release with
// cmdline when cfg chooses it, and says what it holds; when it does not
// boot the update it returns "" and says why the kernel's own initrd does
// (nothing when cfg chose the distribution's).
func restorerFor(cfg config.Config, release, cmdline string) (path, what, why string) {
	switch cfg.Initrd {
	case config.InitrdDistro:
		return "", "", ""
	case config.InitrdAuto:
		custom, err := restorerSystem.Customized()
		if err != nil {
			return "", "", err.Error()
		}
		if custom != "" {
			return "", "", "the distribution's initramfs is configured here (" + custom + ")"
		}
	}
	path, what, err := buildRestorer(release, cmdline)
	if err != nil {
		return "", "", err.Error()
	}
	return path, what, ""
}

// buildRestorer builds the restorer initramfs that boots release with
// cmdline into the run directory (root-only, and gone with the kexec) and
// returns its path and what it holds, or why this system cannot boot with it. It holds this
// very binary, so the image always matches the seamless that checkpoints.
func buildRestorer(release, cmdline string) (path, what string, err error) {
	img, err := restorerSystem.PlanBoot(release, cmdline)
	if err != nil {
		return "", "", err
	}
	exe, err := os.Executable()
	if err != nil {
		return "", "", fmt.Errorf("find the seamless binary: %w", err)
	}
	if err := os.MkdirAll(contract.RunDir, 0o700); err != nil {
		return "", "", err
	}
	path = filepath.Join(contract.RunDir, "restorer-"+release+".img")
	if err := restorer.WriteFile(path, img, exe); err != nil {
		return "", "", err
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", "", err
	}
	return path, fmt.Sprintf("%s, %d modules, root %s (%s)", bytesize.Format(st.Size()), len(img.Modules), img.Root, img.FSType), nil
}
