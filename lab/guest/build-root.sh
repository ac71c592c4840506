#!/bin/bash
# build-root.sh: builds the Debian root file system of a seamless lab guest
# (bookworm or trixie).
#
# Run by `seamless-lab build` as root inside a private mount namespace
# (unshare -m --propagation private), so every mount below disappears when
# the script exits, whatever happens. It only writes under $ROOT and $DEBCACHE.
#
# Inputs (environment, all required):
#   ROOT             empty directory that becomes the guest's /
#   DEBCACHE         persistent .deb cache shared by debootstrap and apt
#   SUITE            the Debian release: bookworm, trixie
#   MIRROR           Debian archive, e.g. http://deb.debian.org/debian
#   SECURITY_MIRROR  Debian security archive, e.g. http://deb.debian.org/debian-security
#   PACKAGES         space-separated packages installed in the guest
#   BOOT_KERNEL      "package=version" of the kernel the guest boots
#   EXTRA_KERNELS    space-separated "package=version" kept as .deb in /root/kernels
#   KERNEL_META      "linux-image-amd64=version" installed with the boot kernel
#   REPOS            local APT repositories, one per line:
#                    NAME|ORIGIN|LABEL|SUITE|NOTAUTOMATIC(0/1)|package=version ...
#
# Every change to this file changes the image hash and rebuilds the image.
set -euo pipefail

: "${ROOT:?}" "${DEBCACHE:?}" "${SUITE:?}" "${MIRROR:?}" "${SECURITY_MIRROR:?}"
: "${PACKAGES:?}" "${BOOT_KERNEL:?}" "${EXTRA_KERNELS:?}" "${KERNEL_META:?}"
REPOS=${REPOS:-}

log() { printf '[build-root] %s\n' "$*"; }
die() { printf '[build-root] ERROR: %s\n' "$*" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 LANG=C.UTF-8
in_root() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 LANG=C.UTF-8 "$@"; }

mkdir -p "$DEBCACHE/partial"

# 1. Minimal base system. Packages come from the persistent cache when present.
if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
	log "debootstrap $SUITE (minbase) from $MIRROR"
	debootstrap --variant=minbase --cache-dir="$DEBCACHE" "$SUITE" "$ROOT" "$MIRROR" \
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

# 3. APT sources: what a server of this release has. The guest itself has
# no route to the archive (QEMU restrict=on): kernels are installed from
# /root/kernels and from the local repositories in /srv/lab-repo.
rm -f "$ROOT/etc/apt/sources.list"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -e "$ROOT$keyring" ] || keyring=/usr/share/keyrings/debian-archive-keyring.pgp
cat > "$ROOT/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates $SUITE-backports
Components: main
Signed-By: $keyring

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: $keyring
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
# The kernel meta-package as a server installed from this release has it.
# Debian's archive keeps only the newest version of it: when the boot
# kernel's is gone, an equivalent one (same name, version and dependency)
# is made here, so that a newer one upgrades the kernel as on a server.
meta_pkg=${KERNEL_META%%=*} meta_ver=${KERNEL_META#*=}
meta_install=$KERNEL_META
if [ -z "$(in_root apt-cache madison "$meta_pkg" | awk -v v="$meta_ver" '$3 == v {print $3; exit}')" ]; then
	log "$meta_pkg $meta_ver is no longer in the archive: making an equivalent one"
	boot_pkg=${BOOT_KERNEL%%=*} boot_ver=${BOOT_KERNEL#*=}
	rm -rf "$ROOT/tmp/meta" && mkdir -p "$ROOT/tmp/meta/DEBIAN"
	cat > "$ROOT/tmp/meta/DEBIAN/control" <<EOF
Package: $meta_pkg
Version: $meta_ver
Architecture: amd64
Maintainer: seamless lab <lab@seamless.invalid>
Depends: $boot_pkg (= $boot_ver)
Section: kernel
Priority: optional
Description: Linux for 64-bit PCs (meta-package), remade by the seamless lab
 Debian's archive keeps only the newest version of this meta-package; the
 lab guest runs an older kernel and needs the version that came with it.
EOF
	in_root dpkg-deb --build /tmp/meta /tmp/meta.deb >/dev/null
	meta_install=/tmp/meta.deb
fi
log "installing packages: $PACKAGES $BOOT_KERNEL $KERNEL_META"
# shellcheck disable=SC2086
in_root apt-get -q -y -o Dpkg::Use-Pty=0 --no-install-recommends install $PACKAGES "$BOOT_KERNEL" "$meta_install" \
	|| die "apt-get install failed in the guest root"
rm -rf "$ROOT/tmp/meta" "$ROOT/tmp/meta.deb"
in_root dpkg-query -W -f '${Version}' "$meta_pkg" | grep -qx "$meta_ver" || die "$meta_pkg $meta_ver is not installed"

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

# 6b. Local APT repositories: the packages named and what apt needs besides
# to install them on this guest (from a simulated install), real Debian
# packages, with the Release fields of the archive they come from.
# A package also kept in /root/kernels is a hard link to it.
while IFS='|' read -r name origin label suite notauto specs; do
	[ -n "$name" ] || continue
	repo="$ROOT/srv/lab-repo/$name"
	mkdir -p "$repo"
	log "local repository $name ($suite): $specs"
	# A backports archive is taken as users take it: -t SUITE, which also
	# brings what the packages need from there (linux-base for 7.3).
	target=()
	[ "$notauto" = 1 ] && target=(-t "$suite")
	# shellcheck disable=SC2086
	closure=$(in_root apt-get -s -q -o Debug::NoLocking=1 "${target[@]}" install $specs \
		| awk '$1 == "Inst" { v = ($3 ~ /^\[/) ? $4 : $3; sub(/^\(/, "", v); print $2 "=" v }') \
		|| die "repository $name: apt cannot install $specs on this guest"
	[ -n "$closure" ] || die "repository $name: apt would install nothing for $specs"
	for spec in $closure; do
		pkg=${spec%%=*} ver=${spec#*=}
		deb=$(cd "$DEBCACHE" && ls "${pkg}_${ver//:/%3a}"_*.deb 2>/dev/null | head -1 || true)
		if [ -z "$deb" ]; then
			in_root sh -c "cd /var/cache/apt/archives && apt-get -q download '$pkg=$ver'" \
				|| die "apt-get download $pkg=$ver failed"
			deb=$(cd "$DEBCACHE" && ls "${pkg}_${ver//:/%3a}"_*.deb | head -1)
		fi
		[ -s "$DEBCACHE/$deb" ] || die "expected ${pkg}_${ver} after download"
		if [ -e "$ROOT/root/kernels/$deb" ]; then
			ln -f "$ROOT/root/kernels/$deb" "$repo/$deb"
		else
			cp "$DEBCACHE/$deb" "$repo/$deb"
		fi
	done
	in_root sh -c "cd /srv/lab-repo/$name && apt-ftparchive packages . > Packages" || die "apt-ftparchive packages ($name)"
	in_root apt-ftparchive -o "APT::FTPArchive::Release::Origin=$origin" -o "APT::FTPArchive::Release::Label=$label" \
		-o "APT::FTPArchive::Release::Suite=$suite" -o "APT::FTPArchive::Release::Codename=$suite" \
		release "/srv/lab-repo/$name" > "$repo/Release.tmp" || die "apt-ftparchive release ($name)"
	if [ "$notauto" = 1 ]; then
		printf 'NotAutomatic: yes\nButAutomaticUpgrades: yes\n' >> "$repo/Release.tmp"
	fi
	mv "$repo/Release.tmp" "$repo/Release"
	ls -l "$repo"
done <<< "$REPOS"

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
sed -i -e 's/^-l 127.0.0.1.*/-l 0.0.0.0/' -e '/^-l ::1/d' -e 's/^-m 64$/-m 1024/' "$ROOT/etc/memcached.conf"
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
# unattended-upgrades.service only waits at shutdown for an InstallOnShutdown
# (not used): its Python costs seconds per boot under TCG; the scenario that
# runs unattended-upgrade runs it by hand, as apt-daily-upgrade.service would.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
	e2scrub_reap.service systemd-networkd-wait-online.service unattended-upgrades.service \
	dpkg-db-backup.timer; do
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
