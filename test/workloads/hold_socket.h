/*
 * hold_socket.h: the body of the hold_*socket workloads. Each holds one
 * socket of a kind seamless does not carry on fd 40 (HOLD_FAMILY,
 * HOLD_TYPE, HOLD_PROTOCOL, named HOLD_NAME): a checkpoint must be refused
 * with fd 40 and the kind named, and leave the process running and
 * untraced. Every tick checks that fd 40 is still that socket (SO_DOMAIN,
 * SO_TYPE, SO_PROTOCOL, and its inode).
 */
#include "common.h"

#include <sched.h>
#include <sys/socket.h>

#define HELD_FD 40

static ino_t held_ino;

static int sockopt(int opt)
{
	int v = -1;
	socklen_t l = sizeof v;

	WL_CHECK(getsockopt(HELD_FD, SOL_SOCKET, opt, &v, &l) == 0, "getsockopt %d on fd %d: %s", opt, HELD_FD,
		 strerror(errno));
	return v;
}

static void check_fd(void)
{
	struct stat st;

	WL_CHECK(fstat(HELD_FD, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == held_ino,
		 "fd %d is no longer the %s socket", HELD_FD, HOLD_NAME);
	WL_CHECK(sockopt(SO_DOMAIN) == HOLD_FAMILY && sockopt(SO_TYPE) == HOLD_TYPE &&
			 sockopt(SO_PROTOCOL) == HOLD_PROTOCOL,
		 "fd %d: family %d type %d protocol %d", HELD_FD, sockopt(SO_DOMAIN), sockopt(SO_TYPE),
		 sockopt(SO_PROTOCOL));
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = wl_usr1_counter };
	struct stat st;
	int fd;

	wl_init(argc, argv, "hold_socket");
	sigaction(SIGUSR1, &sa, NULL);
	HOLD_SETUP();
	fd = socket(HOLD_FAMILY, HOLD_TYPE | SOCK_CLOEXEC, HOLD_PROTOCOL);
	WL_CHECK(fd >= 0, "socket %s: %s", HOLD_NAME, strerror(errno));
	WL_CHECK(dup2(fd, HELD_FD) == HELD_FD, "dup2: %s", strerror(errno));
	close(fd);
	WL_CHECK(fstat(HELD_FD, &st) == 0, "fstat: %s", strerror(errno));
	held_ino = st.st_ino;
	check_fd();
	wl_say("INFO fd=%d resource=%s", HELD_FD, HOLD_NAME);
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
