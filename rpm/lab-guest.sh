#!/bin/bash
# Run in the lab's trixie guest by the scenario dnf-hook-trixie, from the
# payload that rpm/lab-payload.sh made (/mnt/lab/rpm): real dnf installs
# the test kernel-core into an installroot from a local repository, with
# the hooks of seamless's RPM package, in test mode (SEAMLESS_HOOK_DRY_RUN=1),
# while memcached runs opted in under the guest's systemd. The hook must name
# the kernel and memcached as carried, and nothing may be armed or loaded.
#   guest.sh install-dnf4   trixie's dnf 4 from the payload's APT repository
#   guest.sh dnf4           dnf 4, on the guest itself
#   guest.sh dnf5           sid's dnf5, in the sid root as a chroot that sees
#                           the guest's /proc, /sys, /dev, /run (systemd's bus)
#                           and unit directories
set -euo pipefail
lab=${SEAMLESS_LAB_RPM:-/mnt/lab/rpm} # another place: to try it outside the lab
kver=7.9.1-100.fc99.x86_64
running=$(uname -r)
fail() { echo "guest.sh: FAIL: $*" >&2; exit 1; }
expect() { # FILE PATTERN...: each pattern is in a line of FILE
	local f=$1; shift
	for p in "$@"; do grep -qF -- "$p" "$f" || fail "no line '$p' in dnf's output"; done
}
# The hook's lines, then the lines every test-mode run must have.
check_hook() { # FILE INSTALLROOT
	echo "-- the hook's lines in dnf's output:"
	grep '^seamless:' "$1" || true
	expect "$1" "seamless: dry run (installroot $2): nothing is armed, loaded or started" \
		"seamless: kernel $kver is installed; this system runs $running" \
		"seamless:   carried:       memcached.service (1 process, about" \
		"seamless: dry run: the update is not armed"
	[ ! -e /run/seamless/intent.json ] || fail "an update is armed: $(cat /run/seamless/intent.json)"
	[ "$(cat /sys/kernel/kexec_loaded)" = 0 ] || fail "a kexec kernel is loaded"
	echo "-- nothing armed (no /run/seamless/intent.json), no kexec kernel loaded (/sys/kernel/kexec_loaded 0)"
}

case ${1:-} in
install-dnf4)
	echo "deb [trusted=yes] file:$lab/dnf4 ./" > /etc/apt/sources.list.d/lab-dnf4.list
	apt-get update -q -o Dir::Etc::sourcelist=sources.list.d/lab-dnf4.list -o Dir::Etc::sourceparts=- \
		-o APT::Get::List-Cleanup=0 > /var/log/lab-dnf4.log 2>&1 || { tail /var/log/lab-dnf4.log; fail "apt-get update"; }
	apt-get install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends dnf >> /var/log/lab-dnf4.log 2>&1 ||
		{ tail -20 /var/log/lab-dnf4.log; fail "apt-get install dnf"; }
	grep -c '^Setting up' /var/log/lab-dnf4.log | sed 's/$/ packages set up by apt-get install dnf/'
	dpkg-query -W -f '${Package} ${Version}\n' dnf python3-dnf python3-libdnf libsolv1 librpm10
	;;
dnf4)
	r4=/var/tmp/dnf4-root
	rm -rf "$r4" /var/tmp/dnf4-pluginconf
	dnf4() {
		dnf -y -q --installroot="$r4" --releasever=99 --setopt=reposdir=/dev/null \
			--repofrompath=local,"file://$lab/repo" --setopt=local.gpgcheck=0 \
			--setopt=tsflags=noscripts --setopt=install_weak_deps=0 "$@"
	}
	echo "-- dnf $(dnf --version | head -1): dnf install test-base seamless (the RPM) into $r4"
	dnf4 install test-base seamless > /tmp/dnf4-seamless.out 2>&1 || { cat /tmp/dnf4-seamless.out; fail "dnf could not install seamless"; }
	dnf4 list --installed seamless | grep '^seamless'
	# dnf's plugin as the RPM installed it; its configuration names the
	# RPM's binary.
	plugin=$(cd "$r4" && ls -d usr/lib/python3*/*-packages/dnf-plugins)
	[ -f "$r4/$plugin/seamless.py" ] || fail "no $plugin/seamless.py in $r4"
	mkdir -p /var/tmp/dnf4-pluginconf
	printf '[main]\nenabled = 1\ncommand = %s\n' "$r4/usr/bin/seamless" > /var/tmp/dnf4-pluginconf/seamless.conf
	echo "-- SEAMLESS_HOOK_DRY_RUN=1 dnf install kernel-core, with the RPM's plugin ($r4/$plugin/seamless.py)"
	SEAMLESS_HOOK_DRY_RUN=1 dnf4 --setopt=pluginpath="$r4/$plugin" --setopt=pluginconfpath=/var/tmp/dnf4-pluginconf \
		install kernel-core > /tmp/dnf4.out 2>&1 || { cat /tmp/dnf4.out; fail "dnf could not install kernel-core"; }
	dnf4 list --installed kernel-core | grep '^kernel-core'
	check_hook /tmp/dnf4.out "$r4"
	expect /tmp/dnf4.out "seamless: dnf installed kernel-core-$kver"
	;;
dnf5)
	sid=/var/tmp/sid-root r5=/check/root5
	rm -rf "$sid" && mkdir -p "$sid"
	tar -C "$sid" --zstd -xf "$lab/sid-root.tar.zst"
	mkdir -p "$sid/check" "$sid/etc/systemd/system" "$sid/usr/lib/systemd/system"
	cp -a "$lab/repo" "$sid/check/repo"
	cat > "$sid/check/run.sh" <<EOS
set -e
dnf5() { command dnf5 -y -q --installroot=$r5 --releasever=99 --setopt=reposdir=/dev/null --use-host-config \
	--repofrompath=local,file:///check/repo --setopt=local.gpgcheck=0 --setopt=tsflags=noscripts --setopt=install_weak_deps=0 "\$@"; }
echo "-- dnf5 \$(dnf5 --version | head -1 | awk '{print \$3}') (Debian sid's, in a chroot): dnf5 install test-base seamless (the RPM) into $r5"
dnf5 install test-base seamless > /tmp/dnf5-seamless.out 2>&1 || { cat /tmp/dnf5-seamless.out; exit 1; }
rpm --root $r5 -q seamless
# dnf5's actions plugin reads the RPM's actions file; its command,
# /usr/bin/seamless, is the RPM's binary, and its configuration the RPM's.
cp $r5/etc/dnf/libdnf5-plugins/actions.d/seamless.actions /etc/dnf/libdnf5-plugins/actions.d/
install -m 0755 $r5/usr/bin/seamless /usr/bin/seamless
mkdir -p /etc/seamless && cp $r5/etc/seamless/seamless.conf /etc/seamless/
echo "-- SEAMLESS_HOOK_DRY_RUN=1 dnf5 install kernel-core, with the RPM's actions file"
SEAMLESS_HOOK_DRY_RUN=1 dnf5 install kernel-core
rpm --root $r5 -q kernel-core
EOS
	# A mount namespace of its own: the mounts go away with it. The hook
	# talks to the guest's systemd over the system bus in /run and reads
	# the units' files and processes, as on the guest itself.
	unshare -m --propagation private sh -c "
		mount --rbind /proc '$sid/proc' && mount --rbind /sys '$sid/sys' && mount --rbind /dev '$sid/dev' &&
		mount --bind /run '$sid/run' && mount --bind /etc/systemd/system '$sid/etc/systemd/system' &&
		mount --bind /usr/lib/systemd/system '$sid/usr/lib/systemd/system' &&
		exec chroot '$sid' bash /check/run.sh" > /tmp/dnf5.out 2>&1 || { cat /tmp/dnf5.out; fail "dnf5 in $sid"; }
	grep -E '^-- |^seamless-|^kernel-core-' /tmp/dnf5.out
	check_hook /tmp/dnf5.out "$r5"
	rm -rf "$sid"
	;;
*)
	echo "usage: guest.sh install-dnf4|dnf4|dnf5" >&2
	exit 2
	;;
esac
