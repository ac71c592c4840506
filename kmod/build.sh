#!/bin/sh
# Builds seamlessmem against every set of kernel headers found, into
# kmod/build/RELEASE/seamlessmem.ko: what `make kmod` runs. DKMS does the
# same on users' machines, for each kernel they install.
#
#   KMOD_HEADERS  directory holding linux-headers-* trees (default /usr/src)
#   KMOD_OUT      where the modules go (default kmod/build)
set -eu
src=$(cd "$(dirname "$0")" && pwd)
out=${KMOD_OUT:-$src/build}
roots=${KMOD_HEADERS:-/usr/src}
status=0
found=0
for kdir in "$roots"/linux-headers-*; do
	# The architecture trees carry Module.symvers; the -common ones do not.
	[ -f "$kdir/Module.symvers" ] || continue
	found=$((found + 1))
	rel=${kdir##*/linux-headers-}
	# The compiler the kernel was built with (gcc-12 for bookworm's, gcc-14
	# for trixie's): a module must be built with the same.
	cc=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\([^ ]*\) .*/\1/p' "$kdir/.config")
	if [ -n "$cc" ] && ! command -v "$cc" >/dev/null 2>&1; then
		echo "kmod: $rel: skipped: its compiler, $cc, is not installed"
		continue
	fi
	if grep -q '^CONFIG_DEBUG_INFO_BTF_MODULES=y' "$kdir/.config" && ! command -v pahole >/dev/null 2>&1; then
		echo "kmod: $rel: skipped: its modules carry BTF, made by pahole (install dwarves)"
		continue
	fi
	b=$(mktemp -d)
	cp "$src"/*.c "$src"/*.h "$src"/Kbuild "$b"/
	if make -s -C "$kdir" M="$b" modules >"$b/log" 2>&1; then
		mkdir -p "$out/$rel"
		cp "$b/seamlessmem.ko" "$out/$rel/"
		echo "kmod: $rel: $out/$rel/seamlessmem.ko"
	else
		echo "kmod: $rel: build failed:"
		tail -n 20 "$b/log"
		status=1
	fi
	rm -rf "$b"
done
if [ "$found" -eq 0 ]; then
	echo "kmod: no kernel headers in $roots (install linux-headers-$(uname -r), or set KMOD_HEADERS)"
fi
exit $status
