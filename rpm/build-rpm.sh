#!/bin/bash
# Build the RPM package from this checkout, as it is (uncommitted changes
# included), out of the tree: a tarball of the files git knows (and new
# ones it does not ignore) is built with rpmbuild in OUTDIR/rpmbuild. The
# package lands in OUTDIR: seamless-VERSION-1.x86_64.rpm.
#   rpm/build-rpm.sh OUTDIR
# Needs rpm (rpmbuild), Go >= 1.26 and the modules in the Go module cache
# (`go mod download`); the build itself is offline. On a system whose rpm
# database does not know Go (Debian), BuildRequires cannot be checked:
# --nodeps.
set -euo pipefail
out=${1:?usage: rpm/build-rpm.sh OUTDIR}
src=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
version=$(sed -n 's/^Version: *//p' "$src/rpm/seamless.spec")
deb=$(sed -n '1s/^seamless (\([^)]*\)).*/\1/p' "$src/debian/changelog")
[ "$version" = "$deb" ] || { echo "build-rpm.sh: rpm/seamless.spec says $version, debian/changelog $deb" >&2; exit 1; }
top=$out/rpmbuild
rm -rf "$top"
mkdir -p "$top"/{SOURCES,SPECS,BUILD,RPMS,SRPMS} "$top/tree/seamless-$version"
(cd "$src" && git ls-files -z --cached --others --exclude-standard) |
	(cd "$src" && while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done) |
	(cd "$src" && xargs -0 -r cp --parents -P -t "$top/tree/seamless-$version")
tar -C "$top/tree" -czf "$top/SOURCES/seamless-$version.tar.gz" "seamless-$version"
rm -rf "$top/tree"
cp "$src/rpm/seamless.spec" "$top/SPECS/"
nodeps=
rpm -q golang >/dev/null 2>&1 || nodeps=--nodeps
GOCACHE=${GOCACHE:-$(go env GOCACHE 2>/dev/null || true)}
GOMODCACHE=${GOMODCACHE:-$(go env GOMODCACHE 2>/dev/null || true)}
export GOCACHE GOMODCACHE
PATH=$PATH:/usr/local/go/bin rpmbuild -bb $nodeps --define "_topdir $top" "$top/SPECS/seamless.spec" >"$out/build.log" 2>&1 || {
	tail -30 "$out/build.log" >&2
	echo "build-rpm.sh: rpmbuild failed (log: $out/build.log)" >&2
	exit 1
}
mv "$top"/RPMS/*/seamless-*.rpm "$out/"
rm -rf "$top"
ls "$out"/seamless-*.rpm
