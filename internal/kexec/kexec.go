// Package kexec loads the next kernel with kexec_file_load(2) and explains
// why the machine may refuse to: kexec disabled by sysctl, kernel lockdown,
// Secure Boot without a signed kernel.
package kexec

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Status describes whether this machine lets a kernel be replaced by kexec.
type Status struct {
	Disabled   bool   `json:"kexec_load_disabled"`
	Lockdown   string `json:"lockdown"`    // none, integrity or confidentiality
	SecureBoot bool   `json:"secure_boot"` // the firmware enforces signatures
}

// Probe reads the kexec-related settings of the running kernel.
func Probe() Status {
	var s Status
	if b, err := os.ReadFile("/proc/sys/kernel/kexec_load_disabled"); err == nil {
		s.Disabled = strings.TrimSpace(string(b)) == "1"
	}
	s.Lockdown = "none"
	if b, err := os.ReadFile("/sys/kernel/security/lockdown"); err == nil {
		s.Lockdown = lockdownMode(string(b))
	}
	// The last byte of the SecureBoot EFI variable is 1 when it is on.
	if b, err := os.ReadFile("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"); err == nil && len(b) > 0 {
		s.SecureBoot = b[len(b)-1] == 1
	}
	return s
}

// lockdownMode reads the mode the lockdown file marks as the current one
// ("none [integrity] confidentiality"); "none" when none is marked.
func lockdownMode(s string) string {
	_, rest, ok := strings.Cut(s, "[")
	if !ok {
		return "none"
	}
	mode, _, ok := strings.Cut(rest, "]")
	if !ok || mode == "" {
		return "none"
	}
	return mode
}

// Problem returns why kexec cannot be used at all, or nil.
func (s Status) Problem() error {
	if s.Disabled {
		return errors.New("kexec is disabled on this machine (kernel.kexec_load_disabled = 1, which stays set until the next reboot)")
	}
	return nil
}

// Load loads kernel, initrd (an open file, possibly a memfd holding the
// initrd with an image appended) and cmdline for the next kexec.
func Load(kernel string, initrd *os.File, cmdline string) error {
	kf, err := os.Open(kernel)
	if err != nil {
		return fmt.Errorf("kexec: %w", err)
	}
	defer kf.Close()
	ifd := -1
	flags := 0
	if initrd != nil {
		ifd = int(initrd.Fd())
	} else {
		flags |= unix.KEXEC_FILE_NO_INITRAMFS
	}
	if err := unix.KexecFileLoad(int(kf.Fd()), ifd, cmdline, flags); err != nil {
		return fmt.Errorf("kexec_file_load %s: %w%s", kernel, err, explain(err))
	}
	return nil
}

// Unload forgets a loaded kernel.
func Unload() error {
	if err := unix.KexecFileLoad(-1, -1, "", unix.KEXEC_FILE_UNLOAD); err != nil {
		return fmt.Errorf("kexec unload: %w", err)
	}
	return nil
}

// Loaded reports whether a kernel is loaded for kexec.
func Loaded() bool {
	b, err := os.ReadFile("/sys/kernel/kexec_loaded")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

func explain(err error) string {
	switch {
	case errors.Is(err, unix.EKEYREJECTED), errors.Is(err, unix.EBADMSG):
		return " (the kernel image is not signed by a key this kernel trusts; with Secure Boot or lockdown only signed kernels can be loaded)"
	case errors.Is(err, unix.EPERM):
		s := Probe()
		if s.Disabled {
			return " (kexec is disabled: kernel.kexec_load_disabled = 1)"
		}
		if s.Lockdown != "none" {
			return fmt.Sprintf(" (kernel lockdown is %q: only signed kernels can be loaded)", s.Lockdown)
		}
		return " (not permitted: run as root with CAP_SYS_BOOT)"
	case errors.Is(err, unix.ENOEXEC):
		return " (not a kernel image this kernel can load)"
	case errors.Is(err, unix.ENOMEM), errors.Is(err, unix.EADDRNOTAVAIL):
		return " (not enough memory to stage the kernel and initrd)"
	}
	return ""
}
