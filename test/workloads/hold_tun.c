/*
 * hold_tun.c: holds /dev/net/tun (a character device, 10:200) open on fd
 * 40, which seamless does not support (only memory devices and terminals
 * are): a checkpoint must be refused with fd 40 and the device named, and
 * leave this process running and untraced. Every tick checks that fd 40 is
 * still that device, open read-write, and that it answers TUNGETFEATURES.
 */
#include "common.h"

#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>

#define HELD_FD 40

static unsigned int features;

static void check_fd(void)
{
	struct stat st;
	unsigned int f = 0;

	WL_CHECK(fstat(HELD_FD, &st) == 0, "fstat fd %d: %s", HELD_FD, strerror(errno));
	WL_CHECK(S_ISCHR(st.st_mode) && major(st.st_rdev) == 10 && minor(st.st_rdev) == 200,
		 "fd %d is no longer /dev/net/tun (mode %#o rdev %u:%u)", HELD_FD, st.st_mode,
		 major(st.st_rdev), minor(st.st_rdev));
	WL_CHECK((fcntl(HELD_FD, F_GETFL) & O_ACCMODE) == O_RDWR, "fd %d is not O_RDWR", HELD_FD);
	WL_CHECK(ioctl(HELD_FD, TUNGETFEATURES, &f) == 0 && f == features,
		 "TUNGETFEATURES = %#x (%s), was %#x", f, strerror(errno), features);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = wl_usr1_counter };
	int fd;

	wl_init(argc, argv, "hold_tun");
	sigaction(SIGUSR1, &sa, NULL);
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	WL_CHECK(fd >= 0, "open /dev/net/tun: %s", strerror(errno));
	WL_CHECK(dup2(fd, HELD_FD) == HELD_FD, "dup2: %s", strerror(errno));
	close(fd);
	WL_CHECK(ioctl(HELD_FD, TUNGETFEATURES, &features) == 0, "TUNGETFEATURES: %s", strerror(errno));
	check_fd();
	wl_say("INFO fd=%d resource=/dev/net/tun", HELD_FD);
	wl_say("READY");
	for (;;) {
		wl_check_pid();
		check_fd();
		if (wl_stop_requested())
			break;
		wl_print_tick(NULL, NULL);
		wl_sleep_ms(20);
	}
	wl_say("DONE ok");
	return 0;
}
