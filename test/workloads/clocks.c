/*
 * clocks.c: a process whose clocks are far from the kernel's, as a
 * process's clocks are after a kexec: CLOCK_MONOTONIC and CLOCK_BOOTTIME
 * start again near zero in a new boot, while its memory still holds
 * readings of the old kernel's.
 *
 * At start, single-threaded, it enters a time namespace of its own with
 * both clocks 1,000,000 s ahead of the kernel's (an old kernel up for
 * eleven days). Restored without its offsets, it would see time go back by
 * that much. It checks, every tick:
 *   - CLOCK_MONOTONIC never goes back (wl_check_clock) and stays above the
 *     offset;
 *   - CLOCK_BOOTTIME never goes back, and never falls behind
 *     CLOCK_MONOTONIC by more than it did before (it may gain: a pause
 *     counts in it as a suspend does);
 *   - a thread sleeping in clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)
 *     until an absolute deadline 50 ms ahead never wakes before it, and
 *     keeps waking (a deadline restored against the wrong clock would
 *     sleep for eleven days);
 *   - the main loop itself sleeps until absolute deadlines, and a
 *     pthread_cond_timedwait (a FUTEX_WAIT_BITSET with an absolute
 *     CLOCK_MONOTONIC timeout) times out, not sooner.
 *   TICK ... mono=SECONDS wakes=N
 */
#include "common.h"

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#define OFFSET_S 1000000LL
#define NS 1000000000LL

static atomic_uint_fast64_t wakes;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static int64_t last_boot_ns, least_gap_ns;
static char tids[64];

static int64_t now_ns(clockid_t id)
{
	struct timespec ts;

	WL_CHECK(clock_gettime(id, &ts) == 0, "clock_gettime(%d): %s", (int)id, strerror(errno));
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static struct timespec at(int64_t ns)
{
	struct timespec ts = { ns / NS, ns % NS };

	return ts;
}

/* sleep_until sleeps until the absolute CLOCK_MONOTONIC time t, checking
 * that it did not wake early. */
static void sleep_until(int64_t t)
{
	struct timespec ts = at(t);
	int err;

	while ((err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR)
		;
	WL_CHECK(err == 0, "clock_nanosleep: %s", strerror(err));
	WL_CHECK(now_ns(CLOCK_MONOTONIC) >= t, "an absolute sleep until %lld ns woke early", (long long)t);
}

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;) {
		sleep_until(now_ns(CLOCK_MONOTONIC) + 50 * 1000000LL);
		atomic_fetch_add(&wakes, 1);
	}
	return NULL;
}

/* enter_offset_namespace puts this (single-threaded) process in a new time
 * namespace whose clocks run OFFSET_S ahead. */
static void enter_offset_namespace(void)
{
	char off[128];
	int fd;

	WL_CHECK(unshare(CLONE_NEWTIME) == 0, "unshare(CLONE_NEWTIME): %s", strerror(errno));
	fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
	WL_CHECK(fd >= 0, "open timens_offsets: %s", strerror(errno));
	snprintf(off, sizeof off, "monotonic %lld 0\nboottime %lld 0\n", OFFSET_S, OFFSET_S);
	WL_CHECK(write(fd, off, strlen(off)) == (ssize_t)strlen(off), "write timens_offsets: %s", strerror(errno));
	close(fd);
	fd = open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
	WL_CHECK(fd >= 0, "open time_for_children: %s", strerror(errno));
	WL_CHECK(setns(fd, CLONE_NEWTIME) == 0, "setns(time): %s", strerror(errno));
	close(fd);
}

static void verify(void)
{
	int64_t mono, boot, gap;
	struct timespec ts;
	int64_t deadline;
	int err;

	wl_check_pid();
	wl_check_clock();
	mono = now_ns(CLOCK_MONOTONIC);
	boot = now_ns(CLOCK_BOOTTIME);
	WL_CHECK(mono > OFFSET_S * NS, "CLOCK_MONOTONIC is %lld s, below its offset of %lld s",
		 (long long)(mono / NS), OFFSET_S);
	WL_CHECK(boot >= last_boot_ns, "CLOCK_BOOTTIME went backwards by %lld ns", (long long)(last_boot_ns - boot));
	last_boot_ns = boot;
	gap = boot - mono;
	/* 10 ms of slack: the two readings are not simultaneous. */
	WL_CHECK(gap >= least_gap_ns - 10000000LL, "CLOCK_BOOTTIME fell behind CLOCK_MONOTONIC by %lld ns",
		 (long long)(least_gap_ns - gap));
	if (gap > least_gap_ns)
		least_gap_ns = gap;
	deadline = now_ns(CLOCK_MONOTONIC) + 2 * 1000000LL;
	ts = at(deadline);
	pthread_mutex_lock(&mu);
	do
		err = pthread_cond_timedwait(&cv, &mu, &ts);
	while (err == 0);
	pthread_mutex_unlock(&mu);
	WL_CHECK(err == ETIMEDOUT, "pthread_cond_timedwait: %s", strerror(err));
	WL_CHECK(now_ns(CLOCK_MONOTONIC) >= deadline, "pthread_cond_timedwait timed out early");
}

int main(int argc, char **argv)
{
	pthread_condattr_t ca;
	pthread_t th;
	char extra[96];
	uint64_t seen = 0;
	int64_t next, stuck_since;

	wl_init(argc, argv, "clocks");
	enter_offset_namespace();
	wl_last_mono_ns = now_ns(CLOCK_MONOTONIC);
	last_boot_ns = now_ns(CLOCK_BOOTTIME);
	least_gap_ns = last_boot_ns - wl_last_mono_ns;
	WL_CHECK(signal(SIGUSR1, wl_usr1_counter) != SIG_ERR, "signal");
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cv, &ca);
	WL_CHECK(pthread_create(&th, NULL, sleeper, NULL) == 0, "pthread_create");
	/* The sleeper's TID, for the harness's thread list. */
	while (tids[0] == 0) {
		char path[64], buf[64];
		pid_t tid = 0;
		DIR *d;
		struct dirent *e;

		snprintf(path, sizeof path, "/proc/self/task");
		d = opendir(path);
		WL_CHECK(d != NULL, "opendir");
		while ((e = readdir(d)) != NULL)
			if (atoi(e->d_name) > 0 && atoi(e->d_name) != wl_pid)
				tid = atoi(e->d_name);
		closedir(d);
		if (tid) {
			snprintf(buf, sizeof buf, "%d,%d", (int)wl_pid, (int)tid);
			memcpy(tids, buf, sizeof buf);
		}
	}
	verify();
	wl_say("READY");
	next = now_ns(CLOCK_MONOTONIC);
	stuck_since = next;
	for (;;) {
		uint64_t w = atomic_load(&wakes);

		verify();
		if (w != seen) {
			seen = w;
			stuck_since = now_ns(CLOCK_MONOTONIC);
		}
		WL_CHECK(now_ns(CLOCK_MONOTONIC) - stuck_since < 10 * NS,
			 "the absolute sleeper has not woken for 10 s (%" PRIu64 " wakes)", w);
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra, "mono=%lld wakes=%" PRIu64, (long long)(now_ns(CLOCK_MONOTONIC) / NS), w);
		wl_print_tick(tids, extra);
		next += 20 * 1000000LL;
		if (next < now_ns(CLOCK_MONOTONIC))
			next = now_ns(CLOCK_MONOTONIC);
		sleep_until(next);
	}
	verify();
	wl_say("DONE ok");
	return 0;
}
