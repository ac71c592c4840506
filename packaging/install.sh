#!/bin/sh
# Install a built seamless into a root file system (default /): the binary,
# the systemd units and generator, the initramfs-tools scripts and the
# default configuration. Used by the lab and by packagers.
#   packaging/install.sh BINARY [DESTDIR]
set -eu
bin=$1
dest=${2:-}
src=$(cd "$(dirname "$0")/.." && pwd)
install -D -m 0755 "$bin" "$dest/usr/bin/seamless"
for u in seamless-checkpoint.service seamless-netlock.service; do
	install -D -m 0644 "$src/units/$u" "$dest/lib/systemd/system/$u"
done
# The generator is the same binary, called by its name.
install -d -m 0755 "$dest/lib/systemd/system-generators"
ln -sf /usr/bin/seamless "$dest/lib/systemd/system-generators/seamless-generator"
it="$src/initramfs/initramfs-tools"
install -D -m 0755 "$it/hooks/seamless" "$dest/usr/share/initramfs-tools/hooks/seamless"
install -D -m 0755 "$it/scripts/init-top/seamless" "$dest/usr/share/initramfs-tools/scripts/init-top/seamless"
install -D -m 0755 "$it/scripts/init-bottom/seamless" "$dest/usr/share/initramfs-tools/scripts/init-bottom/seamless"
if [ ! -e "$dest/etc/seamless/seamless.conf" ]; then
	install -D -m 0644 "$src/packaging/seamless.conf" "$dest/etc/seamless/seamless.conf"
fi
install -d -m 0700 "$dest/var/lib/seamless"
