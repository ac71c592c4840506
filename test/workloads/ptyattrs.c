/*
 * ptyattrs.c: pseudo-terminal state beyond the bytes in it. Must be started
 * as root.
 *
 *   pair     a pty whose master and slave it holds; the slave node belongs to
 *            65534:5 with mode 0600 (fchown, fchmod), as a login gives it to
 *            its user; bytes still go from the master to the slave
 *   hung up  a pty slave whose master it closed: a dead descriptor, read(2)
 *            returns end of file, write(2) and ioctl(2) fail with EIO
 *
 * Every tick it checks both: owner and mode through fstat of the slave
 * and stat of its /dev/pts path, a byte through the pair, and that the
 * hung-up descriptor is still hung up.
 */
#include "common.h"

#include <sys/ioctl.h>
#include <termios.h>

static int master, slave, dead;
static char slave_path[64];

static void setup(void)
{
	int m;

	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	WL_CHECK(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0, "posix_openpt: %s",
		 strerror(errno));
	snprintf(slave_path, sizeof slave_path, "%s", ptsname(master));
	slave = open(slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	WL_CHECK(slave >= 0, "open %s: %s", slave_path, strerror(errno));
	WL_CHECK(fchown(slave, 65534, 5) == 0 && fchmod(slave, 0600) == 0, "chown %s: %s", slave_path,
		 strerror(errno));
	{
		struct termios t;

		WL_CHECK(tcgetattr(slave, &t) == 0, "tcgetattr");
		cfmakeraw(&t);
		WL_CHECK(tcsetattr(slave, TCSANOW, &t) == 0, "tcsetattr");
	}

	m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	WL_CHECK(m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0, "posix_openpt: %s", strerror(errno));
	dead = open(ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC);
	WL_CHECK(dead >= 0, "open the second slave: %s", strerror(errno));
	close(m);
	wl_say("INFO pair %s, hung-up slave fd %d", slave_path, dead);
}

static void verify(void)
{
	struct stat st;
	struct termios t;
	char c;
	ssize_t n;

	wl_check_pid();
	WL_CHECK(fstat(slave, &st) == 0, "fstat slave: %s", strerror(errno));
	WL_CHECK(st.st_uid == 65534 && st.st_gid == 5 && (st.st_mode & 07777) == 0600,
		 "the slave belongs to %d:%d mode %o, want 65534:5 mode 600", (int)st.st_uid, (int)st.st_gid,
		 (unsigned)(st.st_mode & 07777));
	WL_CHECK(stat(slave_path, &st) == 0, "stat %s: %s", slave_path, strerror(errno));
	WL_CHECK(st.st_uid == 65534 && st.st_gid == 5 && (st.st_mode & 07777) == 0600,
		 "%s belongs to %d:%d mode %o, want 65534:5 mode 600", slave_path, (int)st.st_uid,
		 (int)st.st_gid, (unsigned)(st.st_mode & 07777));
	WL_CHECK(write(master, "x", 1) == 1, "write to the master: %s", strerror(errno));
	WL_CHECK(read(slave, &c, 1) == 1 && c == 'x', "read from the slave: %s", strerror(errno));

	errno = 0;
	WL_CHECK(tcgetattr(dead, &t) < 0 && errno == EIO, "the hung-up slave answers tcgetattr (%s)",
		 strerror(errno));
	n = read(dead, &c, 1);
	WL_CHECK(n == 0, "a read from the hung-up slave gave %zd (%s), want end of file", n,
		 strerror(errno));
	errno = 0;
	WL_CHECK(write(dead, "y", 1) < 0 && errno == EIO, "a write to the hung-up slave gave %s, want EIO",
		 strerror(errno));
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	wl_init(argc, argv, "ptyattrs");
	WL_CHECK(geteuid() == 0, "ptyattrs must be started as root");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	prctl(PR_SET_NAME, "wl-ptyattrs", 0, 0, 0);
	setup();
	verify();
	wl_say("READY");
	for (;;) {
		verify();
		if (wl_stop_requested())
			break;
		wl_print_tick(NULL, NULL);
		wl_sleep_ms(20);
	}
	verify();
	wl_say("DONE ok");
	return 0;
}
