/*
 * sigio.c: descriptor status flags and signal-driven I/O (run as root for
 * O_NOATIME on a file it does not own).
 *
 * - A pipe whose read end has O_ASYNC, F_SETOWN to the process and
 *   F_SETSIG SIGRTMIN+4: each byte written raises SIGRTMIN+4 with si_fd
 *   naming that read end (the worker thread blocks the signal, so the main
 *   thread takes it).
 * - A pipe whose read end has O_ASYNC and F_SETOWN_EX F_OWNER_TID to the
 *   worker thread, with the default SIGIO: each byte raises SIGIO in that
 *   very thread.
 * - A file opened O_RDONLY|O_NOATIME and another with O_APPEND.
 * Every tick checks F_GETFL, F_GETOWN_EX and F_GETSIG, and that the
 * signals still come.
 */
#include "common.h"

#include <pthread.h>

static int a_r, a_w, b_r, b_w, noatime_fd, append_fd;
static volatile uint64_t a_sigs, b_sigs, wrong_thread;
static volatile int a_si_fd = -1;
static volatile pid_t worker_tid;
static volatile int stopping;

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	a_si_fd = si->si_fd;
	a_sigs++;
}

static void on_io(int sig)
{
	(void)sig;
	if (wl_gettid() != worker_tid)
		wrong_thread++;
	b_sigs++;
}

static void *worker(void *arg)
{
	sigset_t set;

	(void)arg;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 4);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	worker_tid = wl_gettid();
	while (!stopping)
		wl_sleep_ms(5);
	return NULL;
}

static void check_owner(int fd, int type, pid_t pid, int sig, const char *what)
{
	struct f_owner_ex own;
	int fl = fcntl(fd, F_GETFL);

	WL_CHECK(fl >= 0 && (fl & O_ASYNC), "%s: O_ASYNC is off (flags %#o)", what, fl);
	WL_CHECK(fcntl(fd, F_GETOWN_EX, &own) == 0 && own.type == type && own.pid == pid,
		 "%s: owner %d/%d, want %d/%d", what, own.type, own.pid, type, (int)pid);
	WL_CHECK(fcntl(fd, F_GETSIG) == sig, "%s: F_GETSIG %d, want %d", what, fcntl(fd, F_GETSIG), sig);
}

static void verify(void)
{
	char c = 'x';
	uint64_t before;
	int64_t until;

	check_owner(a_r, F_OWNER_PID, wl_pid, SIGRTMIN + 4, "pipe A");
	check_owner(b_r, F_OWNER_TID, worker_tid, 0, "pipe B");
	WL_CHECK((fcntl(noatime_fd, F_GETFL) & (O_ACCMODE | O_NOATIME)) == (O_RDONLY | O_NOATIME),
		 "O_NOATIME file: flags %#o", fcntl(noatime_fd, F_GETFL));
	WL_CHECK((fcntl(append_fd, F_GETFL) & (O_ACCMODE | O_APPEND)) == (O_WRONLY | O_APPEND),
		 "O_APPEND file: flags %#o", fcntl(append_fd, F_GETFL));

	before = a_sigs;
	WL_CHECK(write(a_w, &c, 1) == 1, "write A: %s", strerror(errno));
	WL_CHECK(a_sigs > before, "no SIGRTMIN+4 for a write to pipe A");
	WL_CHECK(a_si_fd == a_r, "SIGRTMIN+4 names fd %d, want %d", a_si_fd, a_r);
	WL_CHECK(read(a_r, &c, 1) == 1, "read A: %s", strerror(errno));

	before = b_sigs;
	WL_CHECK(write(b_w, &c, 1) == 1, "write B: %s", strerror(errno));
	until = wl_mono_ns() + 10000000000LL;
	while (b_sigs == before) {
		WL_CHECK(wl_mono_ns() < until, "no SIGIO in the worker thread for a write to pipe B");
		wl_sleep_ms(1);
	}
	WL_CHECK(wrong_thread == 0, "SIGIO of pipe B reached another thread than the worker");
	WL_CHECK(read(b_r, &c, 1) == 1, "read B: %s", strerror(errno));
}

static void async(int fd, int type, pid_t pid, int sig)
{
	struct f_owner_ex own = { .type = type, .pid = pid };

	WL_CHECK(fcntl(fd, F_SETOWN_EX, &own) == 0, "F_SETOWN_EX: %s", strerror(errno));
	WL_CHECK(fcntl(fd, F_SETSIG, sig) == 0, "F_SETSIG: %s", strerror(errno));
	WL_CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC) == 0, "O_ASYNC: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	pthread_t th;
	int p[2];
	char tids[64];

	wl_init(argc, argv, "sigio");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	sa.sa_handler = on_io;
	WL_CHECK(sigaction(SIGIO, &sa, NULL) == 0, "sigaction");
	sa.sa_sigaction = on_rt;
	sa.sa_flags = SA_RESTART | SA_SIGINFO;
	WL_CHECK(sigaction(SIGRTMIN + 4, &sa, NULL) == 0, "sigaction");
	WL_CHECK(pthread_create(&th, NULL, worker, NULL) == 0, "pthread_create");
	while (worker_tid == 0)
		wl_sleep_ms(1);
	{
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, SIGIO);
		pthread_sigmask(SIG_BLOCK, &set, NULL); /* only the worker takes SIGIO */
	}

	WL_CHECK(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0, "pipe: %s", strerror(errno));
	a_r = p[0];
	a_w = p[1];
	async(a_r, F_OWNER_PID, wl_pid, SIGRTMIN + 4);
	WL_CHECK(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0, "pipe: %s", strerror(errno));
	b_r = p[0];
	b_w = p[1];
	async(b_r, F_OWNER_TID, worker_tid, 0);

	{
		int fd = open("data", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		WL_CHECK(fd >= 0 && write(fd, "data", 4) == 4 && fchown(fd, 1234, 1234) == 0, "data: %s", strerror(errno));
		close(fd);
	}
	noatime_fd = open("data", O_RDONLY | O_NOATIME | O_CLOEXEC);
	append_fd = open("data", O_WRONLY | O_APPEND | O_CLOEXEC);
	WL_CHECK(noatime_fd >= 0 && append_fd >= 0, "open data: %s", strerror(errno));

	snprintf(tids, sizeof tids, "%d,%d", (int)wl_pid, (int)worker_tid);
	verify();
	wl_say("READY");
	for (;;) {
		char extra[96];

		verify();
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra, "sigs=%" PRIu64 ",%" PRIu64, a_sigs, b_sigs);
		wl_print_tick(tids, extra);
		wl_sleep_ms(20);
	}
	verify();
	stopping = 1;
	pthread_join(th, NULL);
	wl_say("DONE ok");
	return 0;
}
