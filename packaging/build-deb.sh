#!/bin/bash
# Build the Debian package from this checkout, as it is (uncommitted changes
# included), out of the tree: the source is copied to OUTDIR/src and built
# there with dpkg-buildpackage, so that the checkout gets no build
# products. The package lands in OUTDIR: seamless_VERSION_amd64.deb (with
# its .buildinfo and .changes).
#   packaging/build-deb.sh OUTDIR
# Needs debhelper and dpkg-dev, Go >= 1.26, and the modules in the Go
# module cache (`go mod download`); the build itself is offline.
set -euo pipefail
out=${1:?usage: packaging/build-deb.sh OUTDIR}
src=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/src"
mkdir -p "$out/src"
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	# The files git knows about (those still there), and new ones it does
	# not ignore.
	(cd "$src" && git ls-files -z --cached --others --exclude-standard) |
		(cd "$src" && while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done) |
		(cd "$src" && xargs -0 -r cp --parents -P -t "$out/src")
else # a source tarball
	(cd "$src" && tar -c --exclude=./bin --exclude=./build .) | tar -x -C "$out/src"
fi
[ -f "$out/src/debian/rules" ] || { echo "build-deb.sh: $src has no debian/rules" >&2; exit 1; }
# Go's build cache of the builder keeps a rebuild short.
GOCACHE=${GOCACHE:-$(go env GOCACHE 2>/dev/null || true)}
[ -n "$GOCACHE" ] && export GOCACHE
(cd "$out/src" && dpkg-buildpackage -b -us -uc --no-sign >"$out/build.log" 2>&1) || {
	tail -30 "$out/build.log" >&2
	echo "build-deb.sh: dpkg-buildpackage failed (log: $out/build.log)" >&2
	exit 1
}
rm -rf "$out/src"
ls "$out"/seamless_*_amd64.deb
