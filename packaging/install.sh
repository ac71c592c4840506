#!/bin/sh
# Install a built seamless into a root file system (default /): the binary,
# the systemd unit, the initramfs-tools scripts and the default
# configuration. Used by the lab and by packagers.
#   packaging/install.sh BINARY [DESTDIR]
set -eu
bin=$1
dest=${2:-}
src=$(cd "$(dirname "$0")/.." && pwd)
install -D -m 0755 "$bin" "$dest/usr/bin/seamless"
install -D -m 0644 "$src/units/seamless-checkpoint.service" "$dest/lib/systemd/system/seamless-checkpoint.service"
install -D -m 0755 "$src/initramfs/initramfs-tools/hooks/seamless" "$dest/usr/share/initramfs-tools/hooks/seamless"
install -D -m 0755 "$src/initramfs/initramfs-tools/scripts/init-bottom/seamless" "$dest/usr/share/initramfs-tools/scripts/init-bottom/seamless"
if [ ! -e "$dest/etc/seamless/seamless.conf" ]; then
	install -D -m 0644 "$src/packaging/seamless.conf" "$dest/etc/seamless/seamless.conf"
fi
install -d -m 0700 "$dest/var/lib/seamless"
