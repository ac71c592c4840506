#!/bin/sh
# seamless, stage 1 (dracut cmdline hook 00): before udev starts and anything
# else takes PIDs, reserve the PIDs of the services carried by a seamless
# update and start the restore daemon, for an image in RAM. On a normal boot
# this reads /proc/cmdline and starts no process.
#
# dracut sources its hooks (in dracut-cmdline.service under systemd, in
# /init without): no exit here, and the variables are cleaned up. The daemon
# survives the hook either way: it leaves the service's cgroup (KillMode=
# process already spares it), and both systemd's switch-root (which spares
# argv[0] '@' processes) and switch_root without systemd (which kills
# nothing) leave it running.
read -r _seamless_cmdline < /proc/cmdline
case " $_seamless_cmdline " in
*" seamless.image="*)
    if [ -x /bin/seamless-restore ]; then
        /bin/seamless-restore stage1 < /dev/null > /dev/kmsg 2>&1
    fi
    ;;
esac
unset _seamless_cmdline
