package update

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/seamless-linux/seamless/internal/bytesize"
	"github.com/seamless-linux/seamless/internal/config"
	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/kmod"
	"github.com/seamless-linux/seamless/internal/restorer"
)

// restorerSystem is where the restorer's plan looks; tests move it.
var restorerSystem = restorer.Host()

// restorerInitrd is a restorer initramfs built for an update.
type restorerInitrd struct {
	path string
	// what says what it holds, for the update's output.
	what string
	// kmod says that it holds the seamlessmem module built for the kernel:
	// the kmod store then loads it as it is (staging.load).
	kmod bool
}

// restorerFor builds the restorer initramfs that boots release with
// cmdline when cfg chooses it; when it does not boot the update it
// returns no path and says why the kernel's own initrd does (nothing when
// cfg chose the distribution's).
func restorerFor(cfg config.Config, release, cmdline string) (r restorerInitrd, why string) {
	switch cfg.Initrd {
	case config.InitrdDistro:
		return r, ""
	case config.InitrdAuto:
		custom, err := restorerSystem.Customized()
		if err != nil {
			return r, err.Error()
		}
		if custom != "" {
			return r, "the distribution's initramfs is configured here (" + custom + ")"
		}
	}
	r, err := buildRestorer(release, cmdline, cfg.Store == "kmod")
	if err != nil {
		return r, err.Error()
	}
	return r, ""
}

// buildRestorer builds the restorer initramfs that boots release with
// cmdline into the run directory (root-only, and gone with the kexec), or
// says why this system cannot boot with it. It holds this very binary, so
// the image always matches the seamless that checkpoints, and for the
// kmod store the seamlessmem module built for release, if there is one
// (if not, the store's preflight says so and another store is taken).
func buildRestorer(release, cmdline string, kmodStore bool) (restorerInitrd, error) {
	img, err := restorerSystem.PlanBoot(release, cmdline)
	if err != nil {
		return restorerInitrd{}, err
	}
	if kmodStore {
		if ko, err := kmod.ModuleIn(restorerSystem.Modules, release); err == nil {
			img.Kmod = ko
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return restorerInitrd{}, fmt.Errorf("find the seamless binary: %w", err)
	}
	if err := os.MkdirAll(contract.RunDir, 0o700); err != nil {
		return restorerInitrd{}, err
	}
	path := filepath.Join(contract.RunDir, "restorer-"+release+".img")
	if err := restorer.WriteFile(path, img, exe); err != nil {
		return restorerInitrd{}, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return restorerInitrd{}, err
	}
	what := fmt.Sprintf("%s, %d modules, root %s (%s)", bytesize.Format(st.Size()), len(img.Modules), img.Root, img.FSType)
	if img.Kmod != "" {
		what += ", and " + filepath.Base(img.Kmod) + " for the kmod store"
	}
	return restorerInitrd{path: path, what: what, kmod: img.Kmod != ""}, nil
}
