#!/bin/sh
# seamless, stage 1 (dracut cmdline hook 00): before udev starts and anything
# else takes PIDs, reserve the PIDs of the services carried by a seamless
# update and start the restore daemon, for an image in RAM. Only the binary
# reads the kernel command line (internal/contract knows seamless.image=):
# on a normal boot it reads /proc/cmdline and exits at once, silently.
#
# dracut sources its hooks (in dracut-cmdline.service under systemd, in
# /init without): no exit here. The daemon survives the hook either way:
# it leaves the service's cgroup (KillMode=process already spares it), and
# both systemd's switch-root (which spares argv[0] '@' processes) and
# switch_root without systemd (which kills nothing) leave it running.
if [ -x /bin/seamless-restore ]; then
    /bin/seamless-restore stage1 < /dev/null > /dev/kmsg 2>&1
fi
