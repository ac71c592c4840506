# Shared by rpm/check.sh and rpm/lab-payload.sh (sourced, bash): the local
# RPM repository of the dnf tests and the Debian roots that hold real dnf.
# Each function fails the script (set -e) with a message on stderr.

# rpm_test_repo RPMDIR WORK: WORK/repo becomes a local RPM repository
# (createrepo_c) with the package built by `make rpm` in RPMDIR, the test
# kernel-core and test-base (rpm/test/*.spec, built in WORK/top).
rpm_test_repo() {
	local rpmdir=$1 work=$2 src spec
	src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	mkdir -p "$work/repo" "$work/top"
	for spec in kernel-core test-base; do
		rpmbuild -bb --quiet --define "_topdir $work/top" "$src/rpm/test/$spec.spec" >/dev/null
	done
	cp "$work"/top/RPMS/*/*.rpm "$rpmdir"/seamless-*.rpm "$work/repo/"
	createrepo_c -q "$work/repo"
}

# rpm_sid_root CACHE: prints CACHE/sid-root, a Debian sid root with dnf5
# (bookworm and trixie have none), built once with debootstrap.
rpm_sid_root() {
	local cache=$1 sid=$1/sid-root
	if [ ! -x "$sid/usr/bin/dnf5" ]; then
		mkdir -p "$cache"
		rm -rf "$sid.tmp"
		debootstrap --variant=minbase --include=dnf5,libdnf5-2,createrepo-c,rpm sid "$sid.tmp" http://deb.debian.org/debian > "$cache/debootstrap.log" 2>&1 ||
			{ tail -5 "$cache/debootstrap.log" >&2; echo "rpm: debootstrap of sid with dnf5 failed (log: $cache/debootstrap.log)" >&2; return 1; }
		mv "$sid.tmp" "$sid"
	fi
	echo "$sid"
}

# rpm_trixie_dnf_debs CACHE: prints CACHE/trixie-dnf, a directory of the
# .deb files of Debian trixie's dnf 4 and everything it needs down to a
# minimal base system (debootstrap --download-only, once), with the
# Packages and Release files of a flat APT repository.
rpm_trixie_dnf_debs() {
	local cache=$1 dir=$1/trixie-dnf
	if [ ! -s "$dir/Release" ]; then
		mkdir -p "$cache"
		rm -rf "$dir.tmp" "$dir"
		debootstrap --download-only --variant=minbase --include=dnf trixie "$dir.tmp" http://deb.debian.org/debian > "$cache/debootstrap-trixie.log" 2>&1 ||
			{ tail -5 "$cache/debootstrap-trixie.log" >&2; echo "rpm: debootstrap --download-only of trixie with dnf failed (log: $cache/debootstrap-trixie.log)" >&2; return 1; }
		mkdir -p "$dir"
		mv "$dir.tmp"/var/cache/apt/archives/*.deb "$dir/"
		rm -rf "$dir.tmp"
		(cd "$dir" && apt-ftparchive packages . > Packages &&
			apt-ftparchive -o APT::FTPArchive::Release::Origin=Debian -o APT::FTPArchive::Release::Suite=trixie release . > Release.tmp) >/dev/null
		mv "$dir/Release.tmp" "$dir/Release"
	fi
	echo "$dir"
}
