/*
 * hold_files.c: holds one resource that seamless refuses at checkpoint,
 * chosen by the environment variable WL_HOLD, and keeps using it; the
 * refusal must name it and leave this process running and untraced.
 *
 *   proccwd   working directory in the /proc directory of a process that
 *             has exited ("/proc/N (deleted)")
 *   aio       an AIO context (io_setup)
 *   epollout  fd 40: an epoll instance watching a pipe that only a process
 *             outside the tree still holds (a grandchild whose parent
 *             exited: it was reparented out of the tree)
 *   pidfdout  fd 40: a pidfd of the parent, outside the tree
 *   nsother   fd 40: a UTS namespace file of a namespace no process is in
 *   unshare   a thread with a descriptor table of its own
 *             (unshare(CLONE_FILES))
 *   ownerout  fd 40: a pipe whose SIGIO goes to the parent, outside the tree
 *   inotifyunread
 *             fd 40: an inotify instance with an event queued that this
 *             process never reads (refused after the checkpoint's retries:
 *             queued events cannot be carried, and must still be queued)
 */
#include "common.h"

#include <linux/aio_abi.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#define HELD_FD 40

static const char *what;
static aio_context_t aio;
static pid_t outside;
static volatile pid_t thread_tid;

static void *unshared(void *arg)
{
	(void)arg;
	WL_CHECK(unshare(CLONE_FILES) == 0, "unshare(CLONE_FILES): %s", strerror(errno));
	thread_tid = wl_gettid();
	for (;;)
		pause();
	return NULL;
}

static void hold(void)
{
	if (strcmp(what, "proccwd") == 0) {
		char dir[64];
		pid_t c = fork();

		WL_CHECK(c >= 0, "fork: %s", strerror(errno));
		if (c == 0) {
			pause();
			_exit(0);
		}
		snprintf(dir, sizeof dir, "/proc/%d", (int)c);
		WL_CHECK(chdir(dir) == 0, "chdir %s: %s", dir, strerror(errno));
		kill(c, SIGKILL);
		WL_CHECK(waitpid(c, NULL, 0) == c, "waitpid: %s", strerror(errno));
	} else if (strcmp(what, "aio") == 0) {
		WL_CHECK(syscall(SYS_io_setup, 8, &aio) == 0, "io_setup: %s", strerror(errno));
	} else if (strcmp(what, "epollout") == 0) {
		int p[2], r[2], ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };
		pid_t a;

		WL_CHECK(ep >= 0 && pipe(p) == 0 && pipe(r) == 0, "epoll, pipe: %s", strerror(errno));
		WL_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0, "epoll_ctl: %s", strerror(errno));
		a = fork();
		WL_CHECK(a >= 0, "fork: %s", strerror(errno));
		if (a == 0) {
			pid_t b = fork();

			if (b == 0) {
				close(r[0]);
				b = getpid();
				if (write(r[1], &b, sizeof b) != sizeof b)
					_exit(1);
				for (;;)
					pause(); /* holds the pipe, outside the tree */
			}
			_exit(0);
		}
		WL_CHECK(waitpid(a, NULL, 0) == a, "waitpid: %s", strerror(errno));
		close(r[1]);
		WL_CHECK(read(r[0], &outside, sizeof outside) == sizeof outside, "read pid: %s", strerror(errno));
		close(r[0]);
		close(p[0]);
		close(p[1]);
		WL_CHECK(dup2(ep, HELD_FD) == HELD_FD, "dup2: %s", strerror(errno));
		close(ep);
	} else if (strcmp(what, "pidfdout") == 0) {
		int fd = (int)syscall(SYS_pidfd_open, getppid(), 0);

		WL_CHECK(fd >= 0 && dup2(fd, HELD_FD) == HELD_FD, "pidfd_open: %s", strerror(errno));
		close(fd);
	} else if (strcmp(what, "nsother") == 0) {
		int p[2], fd;
		char path[64], c;
		pid_t k;

		WL_CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
		k = fork();
		WL_CHECK(k >= 0, "fork: %s", strerror(errno));
		if (k == 0) {
			if (unshare(CLONE_NEWUTS) != 0 || write(p[1], "u", 1) != 1)
				_exit(1);
			pause();
			_exit(0);
		}
		WL_CHECK(read(p[0], &c, 1) == 1, "child did not unshare");
		snprintf(path, sizeof path, "/proc/%d/ns/uts", (int)k);
		fd = open(path, O_RDONLY);
		WL_CHECK(fd >= 0 && dup2(fd, HELD_FD) == HELD_FD, "open %s: %s", path, strerror(errno));
		close(fd);
		kill(k, SIGKILL);
		WL_CHECK(waitpid(k, NULL, 0) == k, "waitpid: %s", strerror(errno));
	} else if (strcmp(what, "ownerout") == 0) {
		int p[2];

		WL_CHECK(pipe(p) == 0 && dup2(p[0], HELD_FD) == HELD_FD, "pipe: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		WL_CHECK(fcntl(HELD_FD, F_SETOWN, getppid()) == 0, "F_SETOWN: %s", strerror(errno));
	} else if (strcmp(what, "inotifyunread") == 0) {
		int fd = inotify_init1(IN_NONBLOCK), w;

		WL_CHECK(fd >= 0 && dup2(fd, HELD_FD) == HELD_FD, "inotify_init1: %s", strerror(errno));
		close(fd);
		w = open("watched", O_CREAT | O_RDWR, 0600);
		WL_CHECK(w >= 0, "open watched: %s", strerror(errno));
		WL_CHECK(inotify_add_watch(HELD_FD, "watched", IN_MODIFY) == 1, "inotify_add_watch: %s", strerror(errno));
		WL_CHECK(write(w, "m", 1) == 1, "write watched: %s", strerror(errno));
		close(w);
	} else if (strcmp(what, "unshare") == 0) {
		pthread_t th;

		WL_CHECK(pthread_create(&th, NULL, unshared, NULL) == 0, "pthread_create");
		while (thread_tid == 0)
			wl_sleep_ms(1);
	} else {
		wl_fail("unknown WL_HOLD %s", what);
	}
}

/* still checks that the resource is there and works. */
static void still(void)
{
	if (strcmp(what, "aio") == 0) {
		struct io_event ev;
		struct timespec zero = { 0, 0 };

		WL_CHECK(syscall(SYS_io_getevents, aio, 0, 1, &ev, &zero) == 0, "io_getevents: %s", strerror(errno));
	} else if (strcmp(what, "epollout") == 0) {
		struct epoll_event ev;

		WL_CHECK(epoll_wait(HELD_FD, &ev, 1, 0) == 0, "epoll_wait: %s", strerror(errno));
	} else if (strcmp(what, "pidfdout") == 0) {
		WL_CHECK(syscall(SYS_pidfd_send_signal, HELD_FD, 0, NULL, 0) == 0, "pidfd: %s", strerror(errno));
	} else if (strcmp(what, "nsother") == 0) {
		struct stat st;

		WL_CHECK(fstat(HELD_FD, &st) == 0, "fstat: %s", strerror(errno));
	} else if (strcmp(what, "ownerout") == 0) {
		WL_CHECK(fcntl(HELD_FD, F_GETOWN) == getppid(), "the owner of fd %d changed", HELD_FD);
	} else if (strcmp(what, "inotifyunread") == 0) {
		int n = 0;

		WL_CHECK(ioctl(HELD_FD, FIONREAD, &n) == 0 && n == (int)sizeof(struct inotify_event),
			 "the unread inotify event is gone: %d bytes queued", n);
	} else if (strcmp(what, "proccwd") == 0) {
		char buf[64];

		WL_CHECK(getcwd(buf, sizeof buf) == NULL, "getcwd in a dead process's /proc directory worked");
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = wl_usr1_counter, .sa_flags = SA_RESTART };

	wl_init(argc, argv, "hold_files");
	sigaction(SIGUSR1, &sa, NULL);
	what = getenv("WL_HOLD");
	WL_CHECK(what != NULL, "WL_HOLD is not set");
	hold();
	wl_say("INFO resource=%s", what);
	wl_say("READY");
	for (;;) {
		wl_check_pid();
		still();
		if (wl_stop_requested())
			break;
		wl_print_tick(NULL, NULL);
		wl_sleep_ms(20);
	}
	if (outside > 0)
		kill(outside, SIGKILL);
	wl_say("DONE ok");
	return 0;
}
