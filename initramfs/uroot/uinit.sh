#!/bbin/gosh
# shellcheck shell=sh
# seamless restorer initramfs (initramfs/uroot): the boot script, run by
# /init (PID 1) under u-root's gosh once /proc, /sys, /dev and /run are
# mounted. It must leave the real root mounted at $NEWROOT (/newroot) and
# exit 0; /init then moves /dev, /proc, /sys and /run into it and switches
# root to its /sbin/init (or init=). If it fails, /init opens a rescue shell.

# One kernel log record per message (gosh's echo writes the newline apart).
log() { printf '%s\n' "seamless-uinit: $*" >/dev/kmsg; }

# Stage 1 first, before anything else takes PIDs (kernel modules start
# kernel threads): for an image in RAM it reserves the PIDs and starts the
# restore daemon. On a normal boot it reads /proc/cmdline and returns.
/bin/seamless-restore stage1 >/dev/kmsg 2>&1

# Kernel modules, in the order of /etc/seamless/modules (dependencies
# first): the drivers of the root device and its file system, unless they
# are built into the kernel.
if [ -f /etc/seamless/modules ]; then
	while read -r m; do
		[ -n "$m" ] && insmod "/lib/modules/$m" >/dev/kmsg 2>&1
	done </etc/seamless/modules
fi

read -r cmdline </proc/cmdline
root=""
fstype=""
flags=""
ro="-r"
delay="30s"
for arg in $cmdline; do
	case "$arg" in
	root=*) root="${arg#root=}" ;;
	rootfstype=*) fstype="${arg#rootfstype=}" ;;
	rootflags=*) flags="${arg#rootflags=}" ;;
	rootdelay=*) delay="${arg#rootdelay=}s" ;;
	rw) ro="" ;;
	ro) ro="-r" ;;
	esac
done
if [ -z "$root" ]; then
	log "no root= on the kernel command line"
	exit 1
fi

# The device: /dev/NAME, LABEL= or UUID= (no udev here: findroot reads
# the superblocks), and its file system type unless rootfstype= says.
found="$(/bin/findroot "$root" "$delay")"
if [ -z "$found" ]; then
	log "root=$root not found"
	exit 1
fi
# shellcheck disable=SC2086 # "DEVICE TYPE": two words
set -- $found
dev="$1"
[ -z "$fstype" ] && fstype="$2"
[ "$fstype" = "auto" ] && fstype=""

mkdir -p "$NEWROOT"
set -- $ro
[ -n "$fstype" ] && set -- "$@" -t "$fstype"
[ -n "$flags" ] && set -- "$@" -o "$flags"
if ! mount "$@" "$dev" "$NEWROOT"; then
	log "cannot mount $dev on $NEWROOT"
	exit 1
fi
log "mounted $dev (${fstype:-auto}) on $NEWROOT"

# Stage 1 for an image in the disk store, now that the real root is
# mounted (nothing to do if the first call started the daemon).
/bin/seamless-restore stage1 --root "$NEWROOT" >/dev/kmsg 2>&1
exit 0
