#!/bin/bash
# build-root.sh: builds the Debian bookworm root file system of the seamless lab guest.
#
# Run by `seamless-lab build` as root inside a private mount namespace
# (unshare -m --propagation private), so every mount below disappears when
# the script exits, whatever happens. It only writes under $ROOT and $DEBCACHE.
#
# Inputs (environment, all required):
#   ROOT             empty directory that becomes the guest's /
#   DEBCACHE         persistent .deb cache shared by debootstrap and apt
#   MIRROR           Debian archive, e.g. http://deb.debian.org/debian
#   SECURITY_MIRROR  Debian security archive, e.g. http://deb.debian.org/debian-security
#   PACKAGES         space-separated packages installed in the guest
#   BOOT_KERNEL      "package=version" of the kernel the guest boots
#   EXTRA_KERNELS    space-separated "package=version" kept as .deb in /root/kernels
#
# Every change to this file changes the image hash and rebuilds the image.
set -euo pipefail

: "${ROOT:?}" "${DEBCACHE:?}" "${MIRROR:?}" "${SECURITY_MIRROR:?}"
: "${PACKAGES:?}" "${BOOT_KERNEL:?}" "${EXTRA_KERNELS:?}"

log() { printf '[build-root] %s\n' "$*"; }
die() { printf '[build-root] ERROR: %s\n' "$*" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 LANG=C.UTF-8
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 LANG=C.UTF-8 "$@"; }

mkdir -p "$DEBCACHE/partial"

# 1. Minimal base system. Packages come from the persistent cache when present.
if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
	log "debootstrap bookworm (minbase) from $MIRROR"
	debootstrap --variant=minbase --cache-dir="$DEBCACHE" bookworm "$ROOT" "$MIRROR" \
		|| die "debootstrap failed (mirror $MIRROR unreachable?)"
fi

# 2. Mounts for the chroot (private namespace: no cleanup needed).
mount -t proc proc "$ROOT/proc"
mount -t sysfs sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount --bind /dev/pts "$ROOT/dev/pts"
mount --bind "$DEBCACHE" "$ROOT/var/cache/apt/archives"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"

# Services must not start inside the build chroot.
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
chmod 0755 "$ROOT/usr/sbin/policy-rc.d"

# 3. APT sources: what a bookworm server has. The guest itself has no route
# to the archive (QEMU restrict=on): kernels are installed from /root/kernels.
rm -f "$ROOT/etc/apt/sources.list"
cat > "$ROOT/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
log "apt-get update (guest sources)"
in_root apt-get -q update || die "apt-get update failed in the guest root"

# 4. Debconf answers for packages that ask questions.
in_root debconf-set-selections <<'EOF'
kexec-tools kexec-tools/load_kexec boolean false
kexec-tools kexec-tools/use_grub_config boolean false
grub-pc grub-pc/install_devices multiselect
grub-pc grub-pc/install_devices_empty boolean true
EOF

# 5. Packages and the boot kernel (exact version: a missing version fails here).
for spec in $BOOT_KERNEL $EXTRA_KERNELS; do
	pkg=${spec%%=*} ver=${spec#*=}
	avail=$(in_root apt-cache madison "$pkg" | awk -v v="$ver" '$3 == v {print $3; exit}')
	[ -n "$avail" ] || die "package $pkg version $ver is not in the archive; available: $(in_root apt-cache madison "$pkg" | awk '{print $3}' | tr '\n' ' ')"
done
log "installing packages: $PACKAGES $BOOT_KERNEL"
# shellcheck disable=SC2086
in_root apt-get -q -y -o Dpkg::Use-Pty=0 --no-install-recommends install $PACKAGES "$BOOT_KERNEL" \
	|| die "apt-get install failed in the guest root"

# 6. Newer kernels as packages, ready for `apt-get install ./…deb` in the guest.
mkdir -p "$ROOT/root/kernels"
for spec in $EXTRA_KERNELS; do
	pkg=${spec%%=*} ver=${spec#*=}
	deb="${pkg}_${ver//:/%3a}_amd64.deb"
	if [ ! -s "$DEBCACHE/$deb" ]; then
		log "downloading $pkg $ver"
		in_root sh -c "cd /var/cache/apt/archives && apt-get -q download '$pkg=$ver'" \
			|| die "apt-get download $pkg=$ver failed"
	fi
	[ -s "$DEBCACHE/$deb" ] || die "expected $deb after download"
	cp "$DEBCACHE/$deb" "$ROOT/root/kernels/$deb"
done
ls -l "$ROOT/root/kernels"

# 7. Configuration of the guest.
log "configuring the guest"
echo seamless-lab > "$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tseamless-lab\n' > "$ROOT/etc/hosts"
echo 'LABEL=seamless-root / ext4 errors=remount-ro 0 1' > "$ROOT/etc/fstab"
printf 'nameserver 10.0.2.3\n' > "$ROOT/etc/resolv.conf"
in_root passwd -d root >/dev/null # lab only: root login on the serial console

# Network: QEMU user-mode networking, static address (no DHCP wait at boot).
mkdir -p "$ROOT/etc/systemd/network"
cat > "$ROOT/etc/systemd/network/10-lab.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
DNS=10.0.2.3
EOF
in_root systemctl enable systemd-networkd.service >/dev/null

# memcached: reachable through the QEMU port forward, room for the test keys.
sed -i -e 's/^-l 127.0.0.1.*/-l 0.0.0.0/' -e 's/^-m 64$/-m 1024/' "$ROOT/etc/memcached.conf"
grep -q '^-l 0.0.0.0' "$ROOT/etc/memcached.conf" || die "could not configure memcached listen address"

# kexec-tools must not turn normal reboots into kexec (reboot-cold needs real reboots).
sed -i 's/^LOAD_KEXEC=.*/LOAD_KEXEC=false/' "$ROOT/etc/default/kexec"

# GRUB: serial console, no menu delay. grub-install runs on the first boot,
# where /dev/vda exists.
cat > "$ROOT/etc/default/grub" <<'EOF'
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0,115200n8"
GRUB_TERMINAL=serial
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUB_DISABLE_RECOVERY=true
EOF

# initramfs: MODULES=dep instead of Debian's default "most". Under TCG every
# fork+exec costs ~25 ms and mkinitramfs with "most" takes ~9 minutes (with
# "dep" about one): the chroot cannot detect its root device, so the boot
# kernel's initrd is built with "most" here and rebuilt with "dep" on the
# first boot (firstboot.sh); the kernels installed later in the guest get "dep".
sed -i 's/^MODULES=.*/MODULES=dep/' "$ROOT/etc/initramfs-tools/initramfs.conf"
grep -q '^MODULES=dep' "$ROOT/etc/initramfs-tools/initramfs.conf" || die "could not set MODULES=dep"

# Fewer timers and no waiting for "online": faster, quieter boots under TCG.
# e2scrub_reap cleans up LVM snapshots (there is no LVM) and costs ~15 s per boot under TCG.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
	e2scrub_reap.service systemd-networkd-wait-online.service; do
	in_root systemctl mask "$unit" >/dev/null 2>&1 || true
done

# 8. Clean up: no policy-rc.d, a manifest of what is installed, and no package
# lists: the guest is offline (QEMU restrict=on), so apt must not try the
# archive. `apt-get install ./x.deb` then resolves against what is installed.
rm -f "$ROOT/usr/sbin/policy-rc.d"
rm -rf "$ROOT"/var/lib/apt/lists/*
mkdir -p "$ROOT/var/lib/apt/lists/partial"
in_root dpkg-query -W -f '${Package} ${Version}\n' > "$ROOT/root/manifest.txt"
umount "$ROOT/var/cache/apt/archives" # the persistent cache stays outside the image
log "guest root ready: $(du -sh --exclude=proc --exclude=sys --exclude=dev "$ROOT" | cut -f1)"
