package update

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"

	"github.com/seamless-linux/seamless/internal/contract"
	"github.com/seamless-linux/seamless/internal/kexec"
)

// orderDropIn orders seamless-checkpoint.service after the carried units
// for the shutdown of one update; it lives in /run and ends with the boot.
var orderDropIn = "/run/systemd/system/seamless-checkpoint.service.d/50-order.conf"

// kexecQueued tells whether the system is going down for a kexec: systemd
// has a start job for kexec.target. It asks systemd on its private socket,
// which answers during shutdown when D-Bus may already be gone. When it
// cannot tell, it says no: an armed update then ends as a plain shutdown.
func kexecQueued(log io.Writer) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := sd.NewSystemdConnectionContext(ctx)
	if err != nil {
		fmt.Fprintf(log, "seamless: ask systemd for its jobs: %v\n", err)
		return false
	}
	defer conn.Close()
	jobs, err := conn.ListJobsContext(ctx)
	if err != nil {
		fmt.Fprintf(log, "seamless: ask systemd for its jobs: %v\n", err)
		return false
	}
	for _, j := range jobs {
		if j.Unit == "kexec.target" && j.JobType == "start" {
			return true
		}
	}
	return false
}

// ErrUnderWay is returned by Cancel when the shutdown of an update has begun.
var ErrUnderWay = errors.New("the update is under way (the system is going down for it): it cannot be cancelled")

// Cancel withdraws an armed update: its intent, the shutdown ordering and
// the loaded kernel. It returns the intent it withdrew, or nil when no
// update was armed.
func Cancel(ctx context.Context) (*contract.Intent, error) {
	in, err := contract.ReadIntent()
	if err != nil || in == nil {
		return nil, err
	}
	if !in.Armed {
		return nil, ErrUnderWay
	}
	if err := os.Remove(contract.IntentPath()); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("withdraw the update: %w", err)
	}
	if err := os.Remove(orderDropIn); err == nil {
		conn, err := sd.NewSystemConnectionContext(ctx)
		if err != nil {
			return in, fmt.Errorf("connect to systemd: %w", err)
		}
		defer conn.Close()
		if err := conn.ReloadContext(ctx); err != nil {
			return in, fmt.Errorf("systemd daemon-reload: %w", err)
		}
	}
	if kexec.Loaded() {
		if err := kexec.Unload(); err != nil {
			return in, fmt.Errorf("unload the kernel: %w", err)
		}
	}
	return in, nil
}
