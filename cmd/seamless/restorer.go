package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/seamless-linux/seamless/internal/kernel"
	"github.com/seamless-linux/seamless/internal/restorer"
)

func runRestorer(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("restorer", "[--kernel RELEASE] [-o FILE]",
		`Tell whether the restorer initramfs (initrd = auto or restorer in `+configPath+`)
can boot this system into a kernel, and what it would hold: this seamless
binary as PID 1 and the modules of the root's disk and file system, found
in sysfs and in the kernel's modules.dep. With -o, write it to FILE
(root-only), e.g. to boot it by hand with seamless update --initrd FILE.
It cannot boot a root on LVM, dm-crypt, RAID or the network, nor a
separate /usr: then it says why, and exits with status 1.`, stdout)
	kern := fs.String("kernel", "", "the kernel `RELEASE` (default: the newest installed in /boot)")
	out := fs.String("o", "", "write the initramfs to `FILE`")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, pos[0])
	}
	release := *kern
	if release == "" {
		ks, err := kernel.Installed("/boot")
		if err != nil {
			return err
		}
		if len(ks) == 0 {
			return errors.New("no kernel images (vmlinuz-*) in /boot: name one with --kernel")
		}
		release = ks[0].Release
	}
	// An update boots the new kernel with the running one's command line.
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	sys := restorer.Host()
	img, err := sys.PlanBoot(release, string(cmdline))
	if err != nil {
		return fmt.Errorf("the restorer cannot boot this system into %s: %w", release, err)
	}
	fmt.Fprintf(stdout, "kernel %s: root %s (%s), %d modules from %s:\n", release, img.Root, img.FSType, len(img.Modules), img.ModDir)
	for _, m := range img.Modules {
		fmt.Fprintf(stdout, "  %s\n", m)
	}
	custom, err := sys.Customized()
	if err != nil {
		return err
	}
	if custom != "" {
		fmt.Fprintf(stdout, "initrd = auto boots the kernel's own initrd instead: the distribution's initramfs is configured here (%s)\n", custom)
	}
	if *out == "" {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := restorer.WriteFile(*out, img, exe); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}
