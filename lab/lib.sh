#!/bin/bash
# lab/lib.sh: shared by lab/demo.sh and lab/ci.sh (sourced, not run).
# Installs the host tools the lab needs and builds the seamless-lab command.

LAB_CACHE=${SEAMLESS_LAB_CACHE:-/var/cache/seamless-lab}
LAB_BIN="$LAB_CACHE/bin/seamless-lab"

lab_log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
lab_die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

lab_require_root() {
	[ "$(id -u)" -eq 0 ] || lab_die "the lab needs root (debootstrap, chroot, mount): run as root"
}

# lab_install_deps installs only the missing host tools (apt-get update once).
lab_install_deps() {
	local -A pkg_of=(
		[qemu-system-x86_64]=qemu-system-x86 [qemu-img]=qemu-utils
		[debootstrap]=debootstrap [mkfs.ext4]=e2fsprogs [sfdisk]=fdisk
		[unshare]=util-linux [chroot]=coreutils
		[dpkg-buildpackage]=dpkg-dev [dh]=debhelper [dh_dkms]=dh-dkms
		[rpmbuild]=rpm [createrepo_c]=createrepo-c [apt-ftparchive]=apt-utils [zstd]=zstd
	)
	local missing=() cmd
	for cmd in "${!pkg_of[@]}"; do
		command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_of[$cmd]}")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		command -v apt-get >/dev/null 2>&1 || lab_die "missing ${missing[*]} and no apt-get to install them"
		lab_log "installing host packages: ${missing[*]}"
		apt-get update -q >/dev/null || lab_die "apt-get update failed"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
			|| lab_die "apt-get install ${missing[*]} failed"
	fi
	command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] \
		|| lab_die "Go is not installed (the module needs Go >= 1.26; see https://go.dev/dl/)"
	command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"
	[ -e /dev/kvm ] && lab_log "note: /dev/kvm exists but the lab uses TCG only (KVM hangs on these machines)"
	return 0
}

# lab_build_tool builds seamless-lab from this checkout into the cache.
lab_build_tool() {
	mkdir -p "$LAB_CACHE/bin"
	chmod 0700 "$LAB_CACHE"
	lab_log "building seamless-lab"
	go build -o "$LAB_BIN" ./lab/cmd/seamless-lab || lab_die "go build ./lab/cmd/seamless-lab failed"
	# The guest gets the seamless package, whose build is offline: the
	# modules must be in the module cache first.
	go mod download || lab_die "go mod download failed"
}
