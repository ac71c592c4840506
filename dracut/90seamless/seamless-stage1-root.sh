#!/bin/sh
# seamless, stage 1 for an image in the disk store (dracut pre-pivot hook
# 00): now that the real root is mounted at $NEWROOT, start the restore
# daemon for it. For an image in RAM the cmdline hook started it already,
# and this does nothing. Only the binary reads the kernel command line
# (internal/contract knows seamless.image=): on a normal boot it reads
# /proc/cmdline and exits at once, silently. Sourced by dracut: no exit
# here.
if [ -x /bin/seamless-restore ]; then
    /bin/seamless-restore stage1 --root "${NEWROOT:-/sysroot}" < /dev/null > /dev/kmsg 2>&1
fi
