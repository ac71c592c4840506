#!/bin/sh
# Install a built seamless into a root file system (default /): the binary,
# the systemd units and generator, the initramfs-tools scripts, the dracut
# module, the kernel and APT hooks, the default configuration, the man page
# and the documentation. debian/rules builds the Debian package's tree
# with it; on other systems it is the install from source.
# Both initramfs integrations are always installed: each is inert unless
# its generator runs, and a system that switches from one to the other
# (Debian's dracut replaces initramfs-tools) finds its own in place.
#
#   packaging/install.sh BINARY [DESTDIR]
#
# UNITDIR (default /lib/systemd/system) and GENERATORDIR (default
# /lib/systemd/system-generators) move the systemd files; on a merged-/usr
# system both paths reach /usr/lib. PYTHON_SITELIB (default Debian's
# /usr/lib/python3/dist-packages) is where dnf4's plugin goes.
# /var/lib/seamless is not created: seamless makes it, root-only, when it
# first writes there.
set -eu
bin=$1
dest=${2:-}
unitdir=${UNITDIR:-/lib/systemd/system}
gendir=${GENERATORDIR:-/lib/systemd/system-generators}
pysitelib=${PYTHON_SITELIB:-/usr/lib/python3/dist-packages}
src=$(cd "$(dirname "$0")/.." && pwd)
install -D -m 0755 "$bin" "$dest/usr/bin/seamless"
for u in seamless-checkpoint.service seamless-netlock.service seamless-dbus.service \
	kexec-update.target kexec-update.service seamless-apply.service seamless-apply.timer; do
	install -D -m 0644 "$src/units/$u" "$dest$unitdir/$u"
done
# The generator is the same binary, called by its name.
install -d -m 0755 "$dest$gendir"
ln -sf /usr/bin/seamless "$dest$gendir/seamless-generator"
it="$src/initramfs/initramfs-tools"
install -D -m 0755 "$it/hooks/seamless" "$dest/usr/share/initramfs-tools/hooks/seamless"
install -D -m 0755 "$it/scripts/init-top/seamless" "$dest/usr/share/initramfs-tools/scripts/init-top/seamless"
install -D -m 0755 "$it/scripts/init-bottom/seamless" "$dest/usr/share/initramfs-tools/scripts/init-bottom/seamless"
dm="$dest/usr/lib/dracut/modules.d/90seamless"
for f in module-setup.sh seamless-stage1.sh seamless-stage1-root.sh; do
	install -D -m 0755 "$src/dracut/90seamless/$f" "$dm/$f"
done
# The system-bus API: bus policy, activation, introspection, polkit actions.
name=io.github.seamless_linux.Seamless1
install -D -m 0644 "$src/packaging/dbus/$name.conf" "$dest/usr/share/dbus-1/system.d/$name.conf"
install -D -m 0644 "$src/packaging/dbus/$name.service" "$dest/usr/share/dbus-1/system-services/$name.service"
install -D -m 0644 "$src/internal/dbusapi/$name.xml" "$dest/usr/share/dbus-1/interfaces/$name.xml"
install -D -m 0644 "$src/packaging/polkit/io.github.seamless_linux.seamless1.policy" \
	"$dest/usr/share/polkit-1/actions/io.github.seamless_linux.seamless1.policy"
# The package manager's hooks: the kernel's (inside dpkg: they only take
# notes) and APT's (after dpkg: it acts).
install -D -m 0755 "$src/packaging/hooks/kernel-postinst" "$dest/etc/kernel/postinst.d/seamless"
install -D -m 0755 "$src/packaging/hooks/kernel-postrm" "$dest/etc/kernel/postrm.d/seamless"
if [ -n "$dest" ] || [ -d /etc/apt/apt.conf.d ]; then # APT systems, and packages
	install -D -m 0644 "$src/packaging/hooks/apt.conf" "$dest/etc/apt/apt.conf.d/70seamless"
fi
# kernel-install's (Fedora, RHEL: it only takes notes) and dnf's (after the
# transaction: it acts): dnf5's actions file, dnf4's plugin and its
# configuration. Both packages carry every hook; each is inert where its
# package manager is missing.
install -D -m 0755 "$src/packaging/hooks/95-seamless.install" "$dest/usr/lib/kernel/install.d/95-seamless.install"
install -D -m 0644 "$src/packaging/dnf/seamless.actions" "$dest/etc/dnf/libdnf5-plugins/actions.d/seamless.actions"
install -D -m 0644 "$src/packaging/dnf/seamless.py" "$dest$pysitelib/dnf-plugins/seamless.py"
install -D -m 0644 "$src/packaging/dnf/seamless.conf" "$dest/etc/dnf/plugins/seamless.conf"
if [ ! -e "$dest/etc/seamless/seamless.conf" ]; then
	install -D -m 0644 "$src/packaging/seamless.conf" "$dest/etc/seamless/seamless.conf"
fi
install -D -m 0644 "$src/packaging/seamless.8" "$dest/usr/share/man/man8/seamless.8"
install -d -m 0755 "$dest/usr/share/doc/seamless"
install -m 0644 "$src/README.md" "$src"/docs/*.md "$dest/usr/share/doc/seamless/"
