/*
 * common.h: the workload protocol shared by every C workload of the
 * round-trip suite (see README.md beside this file).
 *
 * A workload is started as `NAME STOPFILE` with stdout and stderr sent to a
 * log file. It prints, line-buffered:
 *
 *   READY                                   once, when all its state is built
 *   INFO ...                                free-form facts (optional)
 *   TICK <n> pid=P tids=T1,T2 nonce=HEX usr1=K [more key=value]
 *                                           every ~20 ms, n = previous n + 1
 *   FAIL <what>                             on any mismatch, then exit 1
 *   DONE ok                                 after the stop file appeared and
 *                                           a last full verification passed
 *
 * The nonce is drawn at start and kept only in memory: a restart from
 * scratch prints a new nonce (and a second READY), so the harness sees it.
 * Every check that fails prints exactly one FAIL line naming what differs.
 */
#ifndef SEAMLESS_WORKLOAD_COMMON_H
#define SEAMLESS_WORKLOAD_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Process-wide protocol state; lives in ordinary memory on purpose. */
static char wl_stop_path[4096];
static uint64_t wl_nonce;
static pid_t wl_pid;
static uint64_t wl_tick;
static volatile sig_atomic_t wl_usr1_count;
static char wl_role[64] = "";
static __thread int64_t wl_last_mono_ns; /* per thread: each thread checks its own clock readings */

/* wl_fail prints "FAIL [role pid] what" and exits 1 at once. */
static __attribute__((unused)) void wl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static __attribute__((unused)) void wl_fail(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof buf, "FAIL [%s%spid %ld] ", wl_role, wl_role[0] ? " " : "",
		     (long)syscall(SYS_getpid));
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof buf - n - 2, fmt, ap);
	va_end(ap);
	strcat(buf, "\n");
	/* One write(2) so that lines from several processes never interleave. */
	if (write(STDOUT_FILENO, buf, strlen(buf)) < 0) {
		/* nothing left to report to */
	}
	_exit(1);
}

/*
 * wl_settle_root, when a workload of several processes sets it to its root
 * PID, makes a failed check in any other process wait 300 ms before it
 * reports: when the harness kills the tree after a --leave-running
 * checkpoint, a child may see its parent, or what its parent held, go
 * away; it must not report that as a failure, and it is killed in the
 * meantime. A real difference is still there 300 ms later.
 */
static pid_t wl_settle_root;

static __attribute__((unused)) void wl_settle_before_fail(void)
{
	struct timespec ts = { 0, 300000000L };

	if (wl_settle_root != 0 && (pid_t)syscall(SYS_getpid) != wl_settle_root)
		nanosleep(&ts, NULL);
}

#define WL_CHECK(cond, ...)                        \
	do {                                       \
		if (!(cond)) {                     \
			wl_settle_before_fail();   \
			wl_fail(__VA_ARGS__);      \
		}                                  \
	} while (0)

/* wl_say writes one whole line with a single write(2). */
static __attribute__((unused)) void wl_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static __attribute__((unused)) void wl_say(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf - 2, fmt, ap);
	va_end(ap);
	n = strlen(buf);
	buf[n++] = '\n';
	for (size_t off = 0; off < n;) {
		ssize_t w = write(STDOUT_FILENO, buf + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(3);
		off += (size_t)w;
	}
}

static __attribute__((unused)) pid_t wl_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static __attribute__((unused)) int64_t wl_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* wl_check_clock fails if CLOCK_MONOTONIC ever runs backwards. */
static __attribute__((unused)) void wl_check_clock(void)
{
	int64_t now = wl_mono_ns();

	WL_CHECK(now >= wl_last_mono_ns,
		 "CLOCK_MONOTONIC went backwards by %lld ns (a reboot needs a time namespace offset)",
		 (long long)(wl_last_mono_ns - now));
	wl_last_mono_ns = now;
}

/*
 * wl_sleep_ms sleeps with nanosleep(2), resuming after EINTR with the
 * remaining time, and checks that a sleep reported complete really lasted.
 */
static __attribute__((unused)) void wl_sleep_ms(long ms)
{
	struct timespec req = { ms / 1000, (ms % 1000) * 1000000L }, rem;
	int64_t start = wl_mono_ns();

	for (;;) {
		rem = req;
		if (nanosleep(&req, &rem) == 0)
			break;
		WL_CHECK(errno == EINTR, "nanosleep: %s", strerror(errno));
		/* Linux reports the time left until the timer's hard expiry, which
		 * lies up to the thread's timer slack after the requested one. */
		WL_CHECK(rem.tv_sec >= 0 && rem.tv_nsec >= 0 && rem.tv_nsec < 1000000000L &&
				 rem.tv_sec * 1000000000LL + rem.tv_nsec <=
					 req.tv_sec * 1000000000LL + req.tv_nsec + (long long)prctl(PR_GET_TIMERSLACK),
			 "nanosleep EINTR remaining time %ld.%09ld exceeds request %ld.%09ld plus the timer slack",
			 (long)rem.tv_sec, rem.tv_nsec, (long)req.tv_sec, req.tv_nsec);
		req = rem;
	}
	/* Only meaningful without a clock jump; wl_check_clock catches those. */
	if (wl_mono_ns() >= start)
		WL_CHECK(wl_mono_ns() - start >= ms * 1000000LL - 1000000LL,
			 "nanosleep(%ld ms) returned after only %lld ns", ms,
			 (long long)(wl_mono_ns() - start));
	wl_check_clock();
}

/*
 * wl_tty_fail reports the failure of a process whose stdout is a terminal
 * of the workload (its FAIL line goes to stderr, which the harness reads)
 * and exits. It waits 300 ms first: when the harness kills the tree after a
 * --leave-running checkpoint (parents first), such a child sees the master
 * close or its parent go, and is killed in the meantime. A real difference
 * is still there 300 ms later.
 */
static void wl_tty_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn, unused));
static void wl_tty_fail(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;
	struct timespec settle = { 0, 300000000L };

	nanosleep(&settle, NULL);
	n = snprintf(buf, sizeof buf, "FAIL [%s pid %ld] ", wl_role, (long)syscall(SYS_getpid));
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof buf - n - 2, fmt, ap);
	va_end(ap);
	strcat(buf, "\n");
	if (write(STDERR_FILENO, buf, strlen(buf)) < 0) {
		/* nothing left to report to */
	}
	_exit(1);
}

/* WL_TTY_CHECK is WL_CHECK for a process whose stdout is a terminal. */
#define WL_TTY_CHECK(cond, ...)                \
	do {                                   \
		if (!(cond))                   \
			wl_tty_fail(__VA_ARGS__); \
	} while (0)

/* wl_wait_flag waits (up to 20 s) for another process of the workload to set
 * a flag in shared memory; what names the event for the failure message. */
static __attribute__((unused)) void wl_wait_flag(volatile int *flag, const char *what)
{
	int64_t until = wl_mono_ns() + 20000000000LL;

	while (!*flag) {
		WL_CHECK(wl_mono_ns() < until, "%s did not happen", what);
		wl_sleep_ms(2);
	}
}

/* wl_stop_requested reports whether the harness created the stop file. */
static __attribute__((unused)) int wl_stop_requested(void)
{
	struct stat st;

	if (stat(wl_stop_path, &st) == 0)
		return 1;
	WL_CHECK(errno == ENOENT, "stat stop file %s: %s", wl_stop_path, strerror(errno));
	return 0;
}

static __attribute__((unused)) void wl_usr1_counter(int sig)
{
	(void)sig;
	wl_usr1_count++;
}

/*
 * wl_init parses argv (argv[1] = stop file, made absolute so that chdir does
 * not matter), draws the incarnation nonce and records the PID.
 */
static __attribute__((unused)) void wl_init(int argc, char **argv, const char *role)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2) {
		fprintf(stderr, "usage: %s STOPFILE\n", argv[0]);
		exit(2);
	}
	if (argv[1][0] == '/') {
		snprintf(wl_stop_path, sizeof wl_stop_path, "%s", argv[1]);
	} else {
		char cwd[2048];

		WL_CHECK(getcwd(cwd, sizeof cwd) != NULL, "getcwd: %s", strerror(errno));
		snprintf(wl_stop_path, sizeof wl_stop_path, "%s/%s", cwd, argv[1]);
	}
	snprintf(wl_role, sizeof wl_role, "%s", role);
	while (wl_nonce == 0)
		WL_CHECK(getrandom(&wl_nonce, sizeof wl_nonce, 0) == sizeof wl_nonce,
			 "getrandom: %s", strerror(errno));
	wl_pid = (pid_t)syscall(SYS_getpid);
	wl_last_mono_ns = wl_mono_ns();
}

/* wl_check_pid verifies that the process still has the PID it started with. */
static __attribute__((unused)) void wl_check_pid(void)
{
	pid_t now = (pid_t)syscall(SYS_getpid);

	WL_CHECK(now == wl_pid, "getpid() = %d, was %d", (int)now, (int)wl_pid);
}

/*
 * wl_print_tick prints the next TICK line. tids is a comma-separated list (or
 * NULL for the PID alone), extra is appended verbatim (or NULL).
 */
static __attribute__((unused)) void wl_print_tick(const char *tids, const char *extra)
{
	char own[32];
	uint64_t n = ++wl_tick;

	if (tids == NULL) {
		snprintf(own, sizeof own, "%d", (int)wl_pid);
		tids = own;
	}
	wl_say("TICK %" PRIu64 " pid=%d tids=%s nonce=%016" PRIx64 " usr1=%d%s%s", n, (int)wl_pid,
	       tids, wl_nonce, (int)wl_usr1_count, extra ? " " : "", extra ? extra : "");
}

/* wl_mix is a cheap 64-bit hash used to derive memory patterns. */
static __attribute__((unused)) inline uint64_t wl_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* wl_read_file reads a whole (small) file into buf, NUL-terminated; returns its length. */
static __attribute__((unused)) ssize_t wl_read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;

	if (fd < 0)
		return -1;
	while (n + 1 < size) {
		ssize_t r = read(fd, buf + n, size - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = 0;
	return (ssize_t)n;
}

/* wl_write_all writes a whole buffer to fd at its current offset. */
static __attribute__((unused)) void wl_write_all(int fd, const void *buf, size_t n, const char *what)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		WL_CHECK(w > 0, "write %s: %s", what, w < 0 ? strerror(errno) : "short");
		p += w;
		n -= (size_t)w;
	}
}

/* wl_vma_flags copies the VmFlags of the smaps entry holding addr. */
static __attribute__((unused)) void wl_vma_flags(const void *addr, char *out, size_t size)
{
	static char smaps[1 << 18];
	ssize_t n = wl_read_file("/proc/self/smaps", smaps, sizeof smaps);
	int in = 0;

	WL_CHECK(n > 0 && (size_t)n < sizeof smaps - 1, "read /proc/self/smaps (%zd bytes)", n);
	out[0] = 0;
	for (char *line = strtok(smaps, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned long s, e;
		char c;

		if (sscanf(line, "%lx-%lx %c", &s, &e, &c) == 3) { /* a mapping's header line */
			in = (unsigned long)addr >= s && (unsigned long)addr < e;
			continue;
		}
		if (in && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(out, size, "%s", line + 8);
			return;
		}
	}
	wl_fail("no smaps entry for %p", addr);
}

/* wl_has_flag reports whether the VmFlags list flags holds flag. */
static __attribute__((unused)) int wl_has_flag(const char *flags, const char *flag)
{
	size_t l = strlen(flag);

	for (const char *p = flags; (p = strstr(p, flag)) != NULL; p += l)
		if ((p == flags || p[-1] == ' ') && (p[l] == ' ' || p[l] == 0))
			return 1;
	return 0;
}

#endif
