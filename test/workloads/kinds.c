/*
 * kinds.c: holds one descriptor of the kind named by the environment
 * variable WL_KIND (the names of internal/files.Kinds) at fd 40, for
 * TestKindsAgree: `seamless plan`, the checkpoint and the restore must all
 * accept it, and the restored fd 40 must be of the same kind. Every tick
 * checks that fd 40 is still open. WL_PATH names the terminal of kind
 * "terminal" (a pty slave whose master the test holds).
 */
#include "common.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <termios.h>

#define HELD_FD 40

/* pty makes a pty pair at fds 41 (master) and 42 (slave), the slave this
 * session leader's controlling terminal. */
static void pty(void)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY), s;

	WL_CHECK(m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0, "posix_openpt: %s", strerror(errno));
	s = open(ptsname(m), O_RDWR);
	WL_CHECK(s >= 0 && ioctl(s, TIOCSCTTY, 0) == 0, "open the slave as controlling terminal: %s", strerror(errno));
	WL_CHECK(dup2(m, 41) == 41 && dup2(s, 42) == 42, "dup2: %s", strerror(errno));
	close(m);
	close(s);
}

static int open_kind(const char *k)
{
	int fd = -1;

	if (strcmp(k, "regular") == 0) {
		fd = open("file", O_RDWR | O_CREAT, 0644);
	} else if (strcmp(k, "directory") == 0) {
		fd = open(".", O_RDONLY | O_DIRECTORY);
	} else if (strcmp(k, "device") == 0) {
		fd = open("/dev/null", O_RDWR);
	} else if (strcmp(k, "terminal") == 0) {
		WL_CHECK(getenv("WL_PATH") != NULL, "WL_PATH is not set");
		fd = open(getenv("WL_PATH"), O_RDWR | O_NOCTTY);
	} else if (strcmp(k, "pty-master") == 0) {
		pty();
		fd = dup(41);
	} else if (strcmp(k, "pty-slave") == 0) {
		pty();
		fd = dup(42);
	} else if (strcmp(k, "dev-tty") == 0) {
		pty();
		fd = open("/dev/tty", O_RDWR);
	} else if (strcmp(k, "pipe") == 0) {
		int p[2];

		WL_CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
		fd = p[0];
		WL_CHECK(dup2(p[1], 41) == 41, "dup2: %s", strerror(errno));
	} else if (strcmp(k, "fifo") == 0) {
		WL_CHECK(mkfifo("fifo", 0600) == 0, "mkfifo: %s", strerror(errno));
		fd = open("fifo", O_RDWR);
	} else if (strcmp(k, "memfd") == 0) {
		fd = memfd_create("kinds", 0);
	} else if (strcmp(k, "eventfd") == 0) {
		fd = eventfd(3, 0);
	} else if (strcmp(k, "epoll") == 0) {
		struct epoll_event ev = { .events = EPOLLIN };

		WL_CHECK(dup2(eventfd(0, 0), 41) == 41, "eventfd: %s", strerror(errno));
		fd = epoll_create1(0);
		WL_CHECK(fd >= 0 && epoll_ctl(fd, EPOLL_CTL_ADD, 41, &ev) == 0, "epoll: %s", strerror(errno));
	} else if (strcmp(k, "socket") == 0) {
		int sv[2];

		WL_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair: %s", strerror(errno));
		fd = sv[0];
		WL_CHECK(dup2(sv[1], 41) == 41, "dup2: %s", strerror(errno));
	} else if (strcmp(k, "signalfd") == 0) {
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, SIGUSR2);
		fd = signalfd(-1, &set, 0);
	} else if (strcmp(k, "timerfd") == 0) {
		struct itimerspec its = { { 1, 0 }, { 1, 0 } };

		fd = timerfd_create(CLOCK_MONOTONIC, 0);
		WL_CHECK(fd >= 0 && timerfd_settime(fd, 0, &its, NULL) == 0, "timerfd: %s", strerror(errno));
	} else if (strcmp(k, "inotify") == 0) {
		fd = inotify_init1(IN_NONBLOCK);
		WL_CHECK(fd >= 0 && inotify_add_watch(fd, ".", IN_CREATE) == 1, "inotify: %s", strerror(errno));
	} else if (strcmp(k, "namespace") == 0) {
		fd = open("/proc/self/ns/net", O_RDONLY);
	} else if (strcmp(k, "pidfd") == 0) {
		fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	} else if (strcmp(k, "path") == 0) {
		fd = open(".", O_PATH);
	} else if (strcmp(k, "hung-up-terminal") == 0) {
		/* A pty slave whose master is closed: hung up. */
		int m = posix_openpt(O_RDWR | O_NOCTTY);

		WL_CHECK(m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0, "posix_openpt: %s", strerror(errno));
		fd = open(ptsname(m), O_RDWR | O_NOCTTY);
		close(m);
	} else {
		wl_fail("unknown WL_KIND %s: kinds.c must hold every kind of internal/files.Kinds", k);
	}
	WL_CHECK(fd >= 0, "open a descriptor of kind %s: %s", k, strerror(errno));
	return fd;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = wl_usr1_counter, .sa_flags = SA_RESTART };
	const char *k = getenv("WL_KIND");
	int fd;

	wl_init(argc, argv, "kinds");
	sigaction(SIGUSR1, &sa, NULL);
	WL_CHECK(k != NULL, "WL_KIND is not set");
	fd = open_kind(k);
	WL_CHECK(dup2(fd, HELD_FD) == HELD_FD, "dup2: %s", strerror(errno));
	if (fd != HELD_FD)
		close(fd);
	wl_say("INFO fd=%d kind=%s", HELD_FD, k);
	wl_say("READY");
	for (;;) {
		wl_check_pid();
		WL_CHECK(fcntl(HELD_FD, F_GETFD) >= 0, "fd %d is closed", HELD_FD);
		if (strcmp(k, "inotify") == 0) {
			/* Take the events in, as a service watching a directory
			 * does: a checkpoint waits for unread ones (files are
			 * created here, the image among them). */
			char ev[4096];

			while (read(HELD_FD, ev, sizeof ev) > 0)
				;
			WL_CHECK(errno == EAGAIN, "read inotify: %s", strerror(errno));
		}
		if (wl_stop_requested())
			break;
		wl_print_tick(NULL, NULL);
		wl_sleep_ms(20);
	}
	wl_say("DONE ok");
	return 0;
}
