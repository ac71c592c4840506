package lab

import "slices"

// The kmod store's scenario (seamless-update-kmod) builds the seamlessmem
// module in the guest through DKMS, as users get it: DKMS and the running
// kernel's headers are installed in the bookworm guest's image, and the
// newer kernel's headers are kept as packages beside its image package, so
// that installing them runs the kernel's own DKMS hook
// (/etc/kernel/header_postinst.d/dkms). Only the bookworm guest: the
// headers are those of its 6.1 kernels. Kept in this file so that the
// image's base configuration stays in config.go.
func init() {
	base := guests["bookworm"]
	guests["bookworm"] = func() Config {
		c := base()
		c.Packages = append(slices.Clone(c.Packages), "dkms", "linux-headers-"+KernelRelease(BootKernel),
			"linux-headers-6.1.0-50-common=6.1.176-1")
		c.ExtraKernels = append(slices.Clone(c.ExtraKernels), "linux-headers-6.1.0-50-amd64=6.1.176-1")
		return c
	}
}
