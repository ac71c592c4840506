#!/bin/sh
# Build the seamless restorer initramfs with u-root: for systems whose
# initramfs is made by neither initramfs-tools nor dracut. It holds
#   /init                 PID 1 (initramfs/uroot/init, Go): mounts /proc,
#                         /sys, /dev, /run, runs /bin/uinit, switches root
#   /bin/uinit            the boot script (uinit.sh, run by u-root's gosh)
#   /bin/findroot         -> /init: the device of root= (LABEL=, UUID=, /dev/)
#   /bin/seamless-restore the seamless binary (stage 1, restore daemon)
#   /bbin/*               u-root core commands: gosh mount umount mkdir
#                         insmod cat ls dmesg ps (one Go busybox)
#   /lib/modules/*.ko     the kernel modules given with -m, dependencies
#   /etc/seamless/modules first, in the order the boot script loads them
#
# Usage: initramfs/uroot/build.sh [-o OUT] [-k MODDIR [-m MODULES]] [-b SEAMLESS]
#   -o OUT      output file (default seamless-restorer.cpio.gz); gzip-
#               compressed unless OUT ends in .cpio
#   -k MODDIR   the target kernel's /lib/modules/KVER (from its package:
#               dpkg -x linux-image-KVER.deb DIR gives DIR/lib/modules/KVER)
#   -m MODULES  modules to load, by name (default: "$DEFAULT_MODULES",
#               a QEMU/KVM guest with an ext4 root on virtio-blk); their
#               dependencies are added, soft dependencies are not
#   -b SEAMLESS a built seamless binary (default: built from this tree)
# Environment: UROOT_VERSION (default: the version in go.mod).
# Needs go, and gzip, xz or zstd only for compressed input or output.
set -eu

DEFAULT_MODULES="crc32c_generic virtio_pci virtio_blk ext4"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=seamless-restorer.cpio.gz
moddir=""
modules=$DEFAULT_MODULES
bin=""
while getopts o:k:m:b:h opt; do
	case $opt in
	o) out=$OPTARG ;;
	k) moddir=$OPTARG ;;
	m) modules=$OPTARG ;;
	b) bin=$OPTARG ;;
	*) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
	esac
done
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
version=${UROOT_VERSION:-$(cd "$repo" && go list -m -f '{{.Version}}' github.com/u-root/u-root)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
stage=$tmp/stage
mkdir -p "$stage/modules" "$stage/etc" "$tmp/bin" "$tmp/ws"

echo "building seamless and /init"
if [ -z "$bin" ]; then
	bin=$tmp/seamless
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$bin" ./cmd/seamless)
fi
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$tmp/init" ./initramfs/uroot/init)
ln -s /init "$tmp/findroot"

# Kernel modules: each found by name (a '-' in a file name is a '_' in a
# module name), decompressed, after the modules it depends on.
: >"$stage/etc/modules"
modfile() {
	find "$moddir/kernel" -name "$1.ko*" -o -name "$(echo "$1" | tr _ -).ko*" | head -n 1
}
unpack() {
	case $1 in
	*.ko) cat "$1" ;;
	*.ko.xz) xz -dc "$1" ;;
	*.ko.zst) zstd -dc "$1" ;;
	*.ko.gz) gzip -dc "$1" ;;
	esac
}
addmod() {
	grep -qx "$1.ko" "$stage/etc/modules" && return 0
	f=$(modfile "$1")
	if [ -z "$f" ]; then
		if grep -q "/$1.ko" "$moddir/modules.builtin" 2>/dev/null; then
			return 0 # built into the kernel
		fi
		echo "module $1 not found in $moddir" >&2
		exit 1
	fi
	unpack "$f" >"$tmp/$1.ko"
	for d in $(tr '\0' '\n' <"$tmp/$1.ko" | sed -n 's/^depends=//p' | tr , ' '); do
		addmod "$d"
	done
	mv "$tmp/$1.ko" "$stage/modules/$1.ko"
	echo "$1.ko" >>"$stage/etc/modules"
}
if [ -n "$moddir" ]; then
	for m in $modules; do
		addmod "$(echo "$m" | tr - _)"
	done
	echo "modules: $(tr '\n' ' ' <"$stage/etc/modules")"
fi

# u-root, and its commands, from a throwaway module of their own: the
# commands' dependencies stay out of this repository's go.mod.
echo "building u-root $version"
cmds=""
for c in gosh mount umount mkdir insmod cat ls dmesg ps; do
	cmds="$cmds github.com/u-root/u-root/cmds/core/$c"
done
(
	cd "$tmp/ws"
	go mod init seamless-restorer >/dev/null 2>&1
	# shellcheck disable=SC2046 # one word per package
	go get "github.com/u-root/u-root@$version" $(for p in $cmds; do echo "$p@$version"; done) 2>"$tmp/go-get.log" ||
		{ cat "$tmp/go-get.log" >&2; exit 1; }
	GOBIN=$tmp/bin go install "github.com/u-root/u-root@$version"
	# shellcheck disable=SC2086
	"$tmp/bin/u-root" -o "$tmp/initramfs.cpio" \
		-initcmd= -uinitcmd= -defaultsh=gosh \
		-files "$tmp/init:init" \
		-files "$tmp/findroot:bin/findroot" \
		-files "$here/uinit.sh:bin/uinit" \
		-files "$bin:bin/seamless-restore" \
		-files "$stage/etc/modules:etc/seamless/modules" \
		-files "$stage/modules:lib/modules" \
		$cmds
)
case $out in
*.cpio) cp "$tmp/initramfs.cpio" "$out" ;;
*) gzip -9n <"$tmp/initramfs.cpio" >"$out" ;;
esac
echo "wrote $out ($(wc -c <"$out") bytes)"
