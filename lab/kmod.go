package lab

// The kmod store's scenario (seamless-update-kmod) builds the seamlessmem
// module in the guest through DKMS, as users get it: DKMS and the running
// kernel's headers are installed in the image, and the newer kernel's
// headers are kept as packages beside its image package, so that installing
// them runs the kernel's own DKMS hook (/etc/kernel/header_postinst.d/dkms).
// Kept in this file so that the image's base configuration stays in
// config.go.
func init() {
	DefaultPackages = append(DefaultPackages, "dkms", "linux-headers-"+KernelRelease(BootKernel),
		"linux-headers-6.1.0-50-common=6.1.176-1")
	DefaultExtraKernels = append(DefaultExtraKernels, "linux-headers-6.1.0-50-amd64=6.1.176-1")
}
