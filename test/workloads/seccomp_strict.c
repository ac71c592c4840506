/*
 * seccomp_strict.c: a thread in seccomp strict mode, which seamless cannot
 * restore: a checkpoint must be refused, naming the thread, and leave the
 * process running and untraced.
 *
 * The "strict" thread enters SECCOMP_MODE_STRICT and from then on may only
 * read, write and exit: it echoes every byte the main thread sends through
 * one pipe back through another. Every tick the main thread sends a byte
 * and waits for its echo, so a strict thread that was disturbed (killed for
 * a forbidden call, or left stopped) is a FAIL.
 */
#include "common.h"

#include <linux/seccomp.h>
#include <pthread.h>

static int to_strict[2], from_strict[2];
static pid_t strict_tid;

static void *strict_main(void *arg)
{
	char c;

	(void)arg;
	strict_tid = wl_gettid();
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0) != 0)
		wl_fail("PR_SET_SECCOMP strict: %s", strerror(errno));
	/* Only read, write, exit and rt_sigreturn from here: no libc beyond them. */
	for (;;) {
		if (read(to_strict[0], &c, 1) != 1 || c == '\n' || write(from_strict[1], &c, 1) != 1)
			syscall(SYS_exit, 0);
	}
	return NULL;
}

/* echo sends one byte to the strict thread and checks it comes back. */
static void echo(char c)
{
	char back = 0;
	ssize_t n;

	WL_CHECK(write(to_strict[1], &c, 1) == 1, "write to the strict thread: %s", strerror(errno));
	do
		n = read(from_strict[0], &back, 1);
	while (n < 0 && errno == EINTR);
	WL_CHECK(n == 1 && back == c, "the strict thread echoed %zd bytes (%d), want %d", n, back, c);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	pthread_t th;
	char tids[32], status[4096], path[64];

	wl_init(argc, argv, "seccomp_strict");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	WL_CHECK(pipe(to_strict) == 0 && pipe(from_strict) == 0, "pipe: %s", strerror(errno));
	/* The strict thread blocks every signal: a handler running on it would
	 * make calls that strict mode punishes with SIGKILL. */
	{
		sigset_t all, old;

		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		WL_CHECK(pthread_create(&th, NULL, strict_main, NULL) == 0, "pthread_create");
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	echo('x');
	snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)strict_tid);
	WL_CHECK(wl_read_file(path, status, sizeof status) > 0 && strstr(status, "\nSeccomp:\t1\n") != NULL,
		 "the strict thread is not in seccomp strict mode");
	snprintf(tids, sizeof tids, "%d,%d", (int)wl_pid, (int)strict_tid);
	wl_say("INFO strict thread %d", (int)strict_tid);
	wl_say("READY");
	for (;;) {
		wl_check_pid();
		echo((char)('a' + wl_tick % 26));
		if (wl_stop_requested())
			break;
		wl_print_tick(tids, NULL);
		wl_sleep_ms(20);
	}
	WL_CHECK(write(to_strict[1], "\n", 1) == 1, "write: %s", strerror(errno));
	WL_CHECK(pthread_join(th, NULL) == 0, "pthread_join");
	wl_say("DONE ok");
	return 0;
}
