#!/bin/sh
# seamless, stage 1 for an image in the disk store (dracut pre-pivot hook
# 00): now that the real root is mounted at $NEWROOT, start the restore
# daemon for it. For an image in RAM the cmdline hook started it already,
# and this does nothing. On a normal boot this reads /proc/cmdline and
# starts no process. Sourced by dracut: no exit here.
read -r _seamless_cmdline < /proc/cmdline
case " $_seamless_cmdline " in
*" seamless.image="*)
    if [ -x /bin/seamless-restore ]; then
        /bin/seamless-restore stage1 --root "${NEWROOT:-/sysroot}" < /dev/null > /dev/kmsg 2>&1
    fi
    ;;
esac
unset _seamless_cmdline
