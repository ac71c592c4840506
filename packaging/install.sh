#!/bin/sh
# Install a built seamless into a root file system (default /): the binary,
# the systemd units and generator, the initramfs-tools scripts, the dracut
# module and the default configuration. Used by the lab and by packagers.
# Both initramfs integrations are always installed: each is inert unless
# its generator runs, and a system that switches from one to the other
# (Debian's dracut replaces initramfs-tools) finds its own in place.
#   packaging/install.sh BINARY [DESTDIR]
set -eu
bin=$1
dest=${2:-}
src=$(cd "$(dirname "$0")/.." && pwd)
install -D -m 0755 "$bin" "$dest/usr/bin/seamless"
for u in seamless-checkpoint.service seamless-netlock.service seamless-dbus.service; do
	install -D -m 0644 "$src/units/$u" "$dest/lib/systemd/system/$u"
done
# The generator is the same binary, called by its name.
install -d -m 0755 "$dest/lib/systemd/system-generators"
ln -sf /usr/bin/seamless "$dest/lib/systemd/system-generators/seamless-generator"
it="$src/initramfs/initramfs-tools"
install -D -m 0755 "$it/hooks/seamless" "$dest/usr/share/initramfs-tools/hooks/seamless"
install -D -m 0755 "$it/scripts/init-top/seamless" "$dest/usr/share/initramfs-tools/scripts/init-top/seamless"
install -D -m 0755 "$it/scripts/init-bottom/seamless" "$dest/usr/share/initramfs-tools/scripts/init-bottom/seamless"
dm="$dest/usr/lib/dracut/modules.d/90seamless"
for f in module-setup.sh seamless-stage1.sh seamless-stage1-root.sh; do
	install -D -m 0755 "$src/initramfs/dracut/90seamless/$f" "$dm/$f"
done
# The system-bus API: bus policy, activation, introspection, polkit actions.
name=io.github.seamless_linux.Seamless1
install -D -m 0644 "$src/packaging/dbus/$name.conf" "$dest/usr/share/dbus-1/system.d/$name.conf"
install -D -m 0644 "$src/packaging/dbus/$name.service" "$dest/usr/share/dbus-1/system-services/$name.service"
install -D -m 0644 "$src/internal/dbusapi/$name.xml" "$dest/usr/share/dbus-1/interfaces/$name.xml"
install -D -m 0644 "$src/packaging/polkit/io.github.seamless_linux.seamless1.policy" \
	"$dest/usr/share/polkit-1/actions/io.github.seamless_linux.seamless1.policy"
if [ ! -e "$dest/etc/seamless/seamless.conf" ]; then
	install -D -m 0644 "$src/packaging/seamless.conf" "$dest/etc/seamless/seamless.conf"
fi
install -d -m 0700 "$dest/var/lib/seamless"
