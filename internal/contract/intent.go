package contract

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/seamless-linux/seamless/internal/kernel"
	"github.com/seamless-linux/seamless/internal/units"
)

// Intent is what `seamless update` leaves for the checkpoint at shutdown.
type Intent struct {
	From    string        `json:"from"`
	Kernel  kernel.Kernel `json:"kernel"`
	Cmdline string        `json:"cmdline"`
	Units   []string      `json:"units"`
	// Cgroups are the carried units' cgroups (paths below the cgroup v2
	// root): the checkpoint at shutdown must not depend on D-Bus.
	Cgroups map[string]string `json:"cgroups"`
	// Start says how each carried unit is started, for a cold start on the
	// new kernel if its restore fails.
	Start map[string]units.Start `json:"start,omitempty"`
	// Stopped are the preserved units that cannot be carried, with why:
	// the shutdown stops them as a reboot would.
	Stopped map[string]string `json:"stopped,omitempty"`
	Store   string            `json:"store"`
	// ImageBytes is the plan's estimate of the image (the kmod store
	// takes memory for it before the checkpoint).
	ImageBytes int64     `json:"image_bytes,omitempty"`
	DiskDir    string    `json:"disk_dir,omitempty"`
	Requested  time.Time `json:"requested"`
	// Armed says that `seamless update` did not start the shutdown: the
	// checkpoint runs only if the shutdown turns out to be a kexec.
	Armed bool `json:"armed,omitempty"`
	// InitrdKmod says that Kernel.Initrd holds the seamlessmem module
	// built for the kernel (the restorer initramfs under store = kmod):
	// the kmod store then loads that initrd as it is.
	InitrdKmod bool `json:"initrd_kmod,omitempty"`
}

// WriteIntent records in as the pending update (root's alone).
func WriteIntent(in *Intent) error {
	if err := os.MkdirAll(filepath.Dir(IntentPath()), 0o700); err != nil {
		return fmt.Errorf("record the intent: %w", err)
	}
	return writeJSON(IntentPath(), in, 0o600)
}

// ReadIntent returns the pending intent, or nil when there is none.
func ReadIntent() (*Intent, error) { return readRecord[Intent](IntentPath()) }

// RemoveIntent withdraws the pending intent; no intent is no error.
func RemoveIntent() error {
	if err := os.Remove(IntentPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
