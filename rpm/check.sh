#!/bin/bash
# The RPM package's acceptance test (make rpm-check, run by make test):
# real dnf4 (this Debian's dnf) and real dnf5 (Debian sid's, in a root of
# its own: bookworm and trixie have no dnf5) install the package built by
# `make rpm` into an empty installroot from a local repository, then a test
# kernel-core (rpm/test/kernel-core.spec) in the same transaction way a
# user's `dnf upgrade` would; seamless's hook runs in test mode
# (SEAMLESS_HOOK_DRY_RUN=1: nothing armed, loaded or started) and must say
# which kernel it found and what it would carry. Root.
#   rpm/check.sh RPMDIR
set -euo pipefail
rpmdir=$(cd "${1:?usage: rpm/check.sh RPMDIR}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=rpm/lib.sh
source "$src/rpm/lib.sh"
cache=${SEAMLESS_RPM_CHECK_CACHE:-/var/cache/seamless-rpm-check}
kver=7.9.1-100.fc99.x86_64
work=$(mktemp -d /tmp/seamless-rpm-check.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "rpm-check: FAIL: $*" >&2; exit 1; }
expect() { # FILE PATTERN...: each pattern is a line of FILE
	local f=$1; shift
	for p in "$@"; do grep -qF -- "$p" "$f" || { cat "$f" >&2; fail "no line '$p' in the output above"; }; done
}

# The repository: the package and the test kernel.
rpm_test_repo "$rpmdir" "$work"

# dnf4 on this host.
r4=$work/root4
dnf4() {
	dnf -y -q --installroot="$r4" --releasever=99 --setopt=reposdir=/dev/null \
		--repofrompath=local,"file://$work/repo" --setopt=local.gpgcheck=0 \
		--setopt=tsflags=noscripts --setopt=install_weak_deps=0 "$@"
}
dnf4 install test-base seamless >/dev/null 2>"$work/dnf4-seamless.err" || { cat "$work/dnf4-seamless.err"; fail "dnf4 could not install seamless"; }
rpm --root "$r4" -q seamless >/dev/null || fail "dnf4: seamless is not in the installroot's rpm database"
for f in usr/bin/seamless usr/lib/kernel/install.d/95-seamless.install etc/dnf/libdnf5-plugins/actions.d/seamless.actions \
	usr/lib/dracut/modules.d/90seamless/module-setup.sh etc/seamless/seamless.conf; do
	[ -e "$r4/$f" ] || fail "dnf4: /$f is not installed"
done
plugin=$(cd "$r4" && ls -d usr/lib/python3*/*-packages/dnf-plugins | head -1)
# The plugin as the package installed it; its configuration names the
# installroot's binary (the host has no /usr/bin/seamless).
mkdir -p "$work/pluginconf"
printf '[main]\nenabled = 1\ncommand = %s\n' "$r4/usr/bin/seamless" > "$work/pluginconf/seamless.conf"
SEAMLESS_HOOK_DRY_RUN=1 dnf4 --setopt=pluginpath="$r4/$plugin" --setopt=pluginconfpath="$work/pluginconf" \
	install kernel-core > "$work/dnf4.out" 2>&1 || { cat "$work/dnf4.out"; fail "dnf4 could not install kernel-core"; }
echo "== dnf4 (dry run)"; grep '^seamless' "$work/dnf4.out" || true
expect "$work/dnf4.out" "seamless: dnf installed kernel-core-$kver" \
	"seamless: dry run (installroot $r4): nothing is armed, loaded or started" \
	"seamless: kernel $kver is installed; this system runs $(uname -r)" \
	"seamless: dry run: the update is not armed"
# Not in test mode: an installroot's kernel is not this system's.
dnf4 --setopt=pluginpath="$r4/$plugin" --setopt=pluginconfpath="$work/pluginconf" reinstall kernel-core > "$work/dnf4b.out" 2>&1 || { cat "$work/dnf4b.out"; fail "dnf4 reinstall"; }
expect "$work/dnf4b.out" "seamless: the kernel was installed into $r4, not into this system: nothing to do"

# dnf5 in Debian sid's root (built once; dnf5 5.4 and its actions plugin).
sid=$(rpm_sid_root "$cache") || fail "no sid root with dnf5"
rm -rf "$sid/check" "$sid/run/seamless" "$sid"/run/reboot-required* && mkdir -p "$sid/check" && cp -a "$work/repo" "$sid/check/repo"
r5=/check/root5
cat > "$sid/check/run.sh" <<EOS
set -e
dnf5() { command dnf5 -y -q --installroot=$r5 --releasever=99 --setopt=reposdir=/dev/null --use-host-config \
	--repofrompath=local,file:///check/repo --setopt=local.gpgcheck=0 --setopt=tsflags=noscripts --setopt=install_weak_deps=0 "\$@"; }
dnf5 install test-base seamless
rpm --root $r5 -q seamless
# dnf5's actions plugin reads the package's actions file; its command,
# /usr/bin/seamless, is the package's binary.
cp $r5/etc/dnf/libdnf5-plugins/actions.d/seamless.actions /etc/dnf/libdnf5-plugins/actions.d/
install -m 0755 $r5/usr/bin/seamless /usr/bin/seamless
# kernel-install's plugin, as the package installed it, for the kernel
# dnf5 is about to install (Fedora's kernel-core runs kernel-install from
# its scriptlets; an installroot runs none): it notes the kernel.
mkdir -p /run
$r5/usr/lib/kernel/install.d/95-seamless.install add $kver /tmp/entry $r5/boot/vmlinuz-$kver
SEAMLESS_HOOK_DRY_RUN=1 dnf5 install kernel-core
EOS
# The chroot's shell is PID 1 of a PID namespace of its own: to seamless the
# root is init's (not a chroot), so that the kernel-install plugin's note is
# taken.
unshare -m -p -f --propagation private sh -c "mount -t proc proc '$sid/proc' && exec chroot '$sid' bash /check/run.sh" > "$work/dnf5.out" 2>&1 ||
	{ cat "$work/dnf5.out"; fail "dnf5 in $sid"; }
echo "== dnf5 (dry run)"; grep '^seamless' "$work/dnf5.out" || true
expect "$work/dnf5.out" "seamless: kernel $kver noted; seamless acts once the package manager is done" \
	"seamless: dnf installed $kver" \
	"seamless: dry run (installroot $r5): nothing is armed, loaded or started" \
	"seamless: kernel $kver is installed; this system runs $(uname -r)" \
	"seamless: dry run: the update is not armed"
rm -rf "$sid/check" "$sid/usr/bin/seamless" "$sid/etc/dnf/libdnf5-plugins/actions.d/seamless.actions" "$sid/run/seamless" "$sid"/run/reboot-required*
echo "rpm-check: ok (dnf4 $(dnf --version | head -1), dnf5 $(chroot "$sid" dnf5 --version | head -1 | awk '{print $3}'))"
