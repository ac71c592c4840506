#!/bin/sh
# firstboot.sh: run once in the guest, booted directly (QEMU -kernel), while
# the lab image is built. It installs the real boot loader on the real disk,
# which the build chroot cannot do (there is no /dev/vda there). From then on
# the guest boots like a server: SeaBIOS -> GRUB (MBR) -> /boot/vmlinuz-*.
set -eu
echo 'grub-pc grub-pc/install_devices multiselect /dev/vda' | debconf-set-selections
grub-install --target=i386-pc /dev/vda
update-initramfs -u -k "$(uname -r)" # MODULES=dep, now that the root device is known
update-grub
grep -q "vmlinuz-$(uname -r)" /boot/grub/grub.cfg
systemctl is-active memcached.service qemu-guest-agent.service systemd-networkd.service
sync
