#!/bin/bash
# The payload of the lab scenario dnf-hook-trixie (its "payload_script"):
# run on the host by seamless-lab while it builds the run's payload, it
# writes into PAYLOAD/rpm what the guest needs to run real dnf against
# real systemd, none of which is in the lab's trixie image:
#   repo/              a local RPM repository: this checkout's package
#                      (rpm/build-rpm.sh), the test kernel-core and test-base
#   dnf4/              a flat APT repository with Debian trixie's dnf 4 and
#                      all it needs (the guest's apt takes what it lacks)
#   sid-root.tar.zst   the Debian sid root of rpm/check.sh, with dnf5
#   guest.sh           what the scenario's steps run (rpm/lab-guest.sh)
# The two Debian parts are made once, in the cache of rpm/check.sh.
#   rpm/lab-payload.sh PAYLOAD
set -euo pipefail
out=${1:?usage: rpm/lab-payload.sh PAYLOAD}/rpm
src=$(cd "$(dirname "$0")/.." && pwd)
cache=${SEAMLESS_RPM_CHECK_CACHE:-/var/cache/seamless-rpm-check}
# shellcheck source=rpm/lib.sh
source "$src/rpm/lib.sh"
for tool in rpmbuild:rpm createrepo_c:createrepo-c apt-ftparchive:apt-utils debootstrap:debootstrap zstd:zstd; do
	command -v "${tool%%:*}" >/dev/null || { echo "lab-payload.sh: ${tool%%:*} is missing: apt-get install ${tool#*:}" >&2; exit 1; }
done
work=$(mktemp -d /tmp/seamless-lab-rpm.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

bash "$src/rpm/build-rpm.sh" "$work/rpm" >/dev/null
rpm_test_repo "$work/rpm" "$work"
mv "$work/repo" "$out/repo"

debs=$(rpm_trixie_dnf_debs "$cache")
cp -a "$debs" "$out/dnf4"

sid=$(rpm_sid_root "$cache")
# What a chroot does not need: apt's downloads and lists, documentation.
tar -C "$sid" --zstd -cf "$out/sid-root.tar.zst" \
	--exclude=./var/cache/apt/archives/'*.deb' --exclude=./var/lib/apt/lists/'*' \
	--exclude=./usr/share/doc --exclude=./usr/share/locale --exclude=./usr/share/man \
	--exclude=./check --exclude=./proc/'*' --exclude=./sys/'*' --exclude=./dev/'*' .

install -m 0755 "$src/rpm/lab-guest.sh" "$out/guest.sh"
du -sh "$out"/*
