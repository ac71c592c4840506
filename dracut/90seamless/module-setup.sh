#!/bin/bash
# seamless dracut module: every initramfs built for a kernel carries the
# seamless binary (as /bin/seamless-restore) and two hooks that start the
# restore daemon when the kernel command line says seamless.image=.
#
#   cmdline 00    seamless-stage1.sh       image in RAM: the earliest hook
#                                          dracut has, before udev
#   pre-pivot 00  seamless-stage1-root.sh  image on disk: the real root is
#                                          mounted at $NEWROOT
#
# Installed as /usr/lib/dracut/modules.d/90seamless by packaging/install.sh.
# shellcheck disable=SC2154 # $moddir is set by dracut

# called by dracut
check() {
    # Wherever seamless is installed, hostonly or not: on a normal boot the
    # hooks cost one read of /proc/cmdline, and no process.
    require_binaries /usr/bin/seamless || return 1
    return 0
}

# called by dracut
depends() {
    return 0
}

# called by dracut
install() {
    # A static Go binary: there are no libraries to follow.
    inst /usr/bin/seamless /bin/seamless-restore
    inst_hook cmdline 00 "$moddir/seamless-stage1.sh"
    inst_hook pre-pivot 00 "$moddir/seamless-stage1-root.sh"
}
