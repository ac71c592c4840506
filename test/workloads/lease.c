/*
 * lease.c: file leases (F_SETLEASE), run as root.
 *
 * - "rlease" open read-only with a read lease, "wlease" open read-only
 *   with a write lease; both with F_SETSIG SIGRTMIN+5. Every tick checks
 *   F_GETLEASE, F_GETSIG and the LEASE lines of /proc/locks.
 * - At the end, the leases must still work: a child's non-blocking open
 *   for writing of "rlease", and for reading of "wlease", fail with
 *   EWOULDBLOCK and break the lease, which raises SIGRTMIN+5 here with
 *   si_fd naming the leased descriptor; once the lease is given up, the
 *   open succeeds.
 */
#include "common.h"

#include <sys/wait.h>

static int rfd, wfd;
static volatile int last_si_fd = -1;
static volatile uint64_t lease_sigs;

static void on_lease(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	last_si_fd = si->si_fd;
	lease_sigs++;
}

static int lease_lines(void)
{
	char buf[8192], want[64];
	int n = 0;

	WL_CHECK(wl_read_file("/proc/locks", buf, sizeof buf) >= 0, "read /proc/locks");
	snprintf(want, sizeof want, "LEASE  ACTIVE    ");
	for (char *p = buf; (p = strstr(p, want)) != NULL; p++) {
		char *eol = strchr(p, '\n');
		char pid[16];

		snprintf(pid, sizeof pid, " %d ", (int)wl_pid);
		if (eol && memmem(p, (size_t)(eol - p), pid, strlen(pid)))
			n++;
	}
	return n;
}

/* active_leases is lease_lines once it reads 2, or its last count after
 * 50 tries over about 50 ms: a line of /proc/locks may be missing from
 * one read while the list changes (under load the make test run saw "lists
 * 2 ... want 2": the count and the message's second read disagreed).
 * F_GETLEASE above is the authority; a lease really gone stays gone. */
static int active_leases(void)
{
	int n = 0;

	for (int i = 0; i < 50; i++) {
		n = lease_lines();
		if (n == 2)
			break;
		wl_sleep_ms(1);
	}
	return n;
}

static void verify(void)
{
	int n;

	WL_CHECK(fcntl(rfd, F_GETLEASE) == F_RDLCK, "rlease: F_GETLEASE %d, want F_RDLCK", fcntl(rfd, F_GETLEASE));
	WL_CHECK(fcntl(wfd, F_GETLEASE) == F_WRLCK, "wlease: F_GETLEASE %d, want F_WRLCK", fcntl(wfd, F_GETLEASE));
	WL_CHECK(fcntl(rfd, F_GETSIG) == SIGRTMIN + 5 && fcntl(wfd, F_GETSIG) == SIGRTMIN + 5, "F_GETSIG");
	n = active_leases();
	WL_CHECK(n == 2, "/proc/locks lists %d active leases of this process, want 2", n);
}

/* breaks opens name with flags in a child: it must fail with EWOULDBLOCK,
 * and the lease on fd must be reported with SIGRTMIN+5. */
static void breaks(const char *name, int flags, int fd)
{
	pid_t c;
	int status;
	uint64_t before = lease_sigs;
	int64_t until = wl_mono_ns() + 10000000000LL;

	c = fork();
	WL_CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0) {
		int r = open(name, flags | O_NONBLOCK | O_CLOEXEC);

		_exit(r < 0 && errno == EWOULDBLOCK ? 0 : 1);
	}
	WL_CHECK(waitpid(c, &status, 0) == c && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "opening %s did not fail with EWOULDBLOCK: the lease is gone", name);
	while (lease_sigs == before) {
		WL_CHECK(wl_mono_ns() < until, "no SIGRTMIN+5 for the broken lease on %s", name);
		wl_sleep_ms(1);
	}
	WL_CHECK(last_si_fd == fd, "the lease break of %s names fd %d, want %d", name, last_si_fd, fd);
	WL_CHECK(fcntl(fd, F_SETLEASE, F_UNLCK) == 0, "give up the lease: %s", strerror(errno));
	{
		int r = open(name, flags | O_NONBLOCK | O_CLOEXEC);

		WL_CHECK(r >= 0, "open %s after the lease was given up: %s", name, strerror(errno));
		close(r);
	}
}

static int leased(const char *name, int type)
{
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	WL_CHECK(fd >= 0 && write(fd, name, strlen(name)) > 0 && close(fd) == 0, "create %s: %s", name, strerror(errno));
	fd = open(name, O_RDONLY | O_CLOEXEC);
	WL_CHECK(fd >= 0, "open %s: %s", name, strerror(errno));
	WL_CHECK(fcntl(fd, F_SETSIG, SIGRTMIN + 5) == 0, "F_SETSIG: %s", strerror(errno));
	WL_CHECK(fcntl(fd, F_SETLEASE, type) == 0, "F_SETLEASE %s: %s", name, strerror(errno));
	return fd;
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	wl_init(argc, argv, "lease");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	sa.sa_sigaction = on_lease;
	sa.sa_flags = SA_RESTART | SA_SIGINFO;
	WL_CHECK(sigaction(SIGRTMIN + 5, &sa, NULL) == 0, "sigaction");
	rfd = leased("rlease", F_RDLCK);
	wfd = leased("wlease", F_WRLCK);

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
	breaks("rlease", O_WRONLY, rfd);
	breaks("wlease", O_RDONLY, wfd);
	wl_say("DONE ok");
	return 0;
}
