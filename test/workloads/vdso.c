/*
 * vdso.c: calls the vDSO through glibc, which resolved its entry points
 * once at startup and keeps calling them at those addresses: after a
 * restore on a kernel whose vDSO differs (or with `seamless restore --vdso
 * proxy`), the calls go through the proxy at the old address.
 *
 * Every tick it calls clock_gettime (CLOCK_MONOTONIC, CLOCK_REALTIME,
 * CLOCK_BOOTTIME), gettimeofday, time, getcpu and clock_getres a few times
 * each, and checks every result against the raw system call made just
 * before and after: the vDSO's answer must lie between them (give or take
 * a millisecond; a second for time()). It also checks that glibc's time and
 * gettimeofday really are the vDSO's functions (they are IFUNCs resolved
 * to the vDSO), and prints the vDSO address it started with:
 *
 *   INFO vdso=ADDR          the AT_SYSINFO_EHDR glibc resolved from
 *   TICK ... calls=N        N = vDSO calls made and checked so far
 */
#include "common.h"

#include <dlfcn.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/time.h>

#define SLACK_NS 1000000LL /* the vDSO and the system call read one clock */

static uint64_t calls;
/* Read once: sysconf opens a /sys file each time, and the harness compares
 * the open descriptors before and after a checkpoint. */
static long ncpu;

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static int64_t raw_clock(clockid_t id)
{
	struct timespec ts;

	WL_CHECK(syscall(SYS_clock_gettime, id, &ts) == 0, "raw clock_gettime(%d): %s", (int)id, strerror(errno));
	return ts_ns(&ts);
}

static void check_clock(clockid_t id, const char *name)
{
	struct timespec ts;
	int64_t before, after, got;

	before = raw_clock(id);
	WL_CHECK(clock_gettime(id, &ts) == 0, "clock_gettime(%s): %s", name, strerror(errno));
	after = raw_clock(id);
	got = ts_ns(&ts);
	WL_CHECK(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L, "clock_gettime(%s) returned tv_nsec %ld", name, ts.tv_nsec);
	WL_CHECK(got >= before - SLACK_NS && got <= after + SLACK_NS,
		 "clock_gettime(%s) = %lld, but the system call said %lld before and %lld after", name,
		 (long long)got, (long long)before, (long long)after);
	calls++;
}

static void check_gettimeofday(void)
{
	struct timeval tv, raw1, raw2;
	int64_t got, before, after;

	WL_CHECK(syscall(SYS_gettimeofday, &raw1, NULL) == 0, "raw gettimeofday: %s", strerror(errno));
	WL_CHECK(gettimeofday(&tv, NULL) == 0, "gettimeofday: %s", strerror(errno));
	WL_CHECK(syscall(SYS_gettimeofday, &raw2, NULL) == 0, "raw gettimeofday: %s", strerror(errno));
	got = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
	before = (int64_t)raw1.tv_sec * 1000000 + raw1.tv_usec;
	after = (int64_t)raw2.tv_sec * 1000000 + raw2.tv_usec;
	WL_CHECK(got >= before - SLACK_NS / 1000 && got <= after + SLACK_NS / 1000,
		 "gettimeofday = %lld us, but the system call said %lld before and %lld after", (long long)got,
		 (long long)before, (long long)after);
	calls++;
}

static void check_time(void)
{
	time_t before, after, got, stored = 0;

	before = (time_t)syscall(SYS_time, NULL);
	got = time(&stored);
	after = (time_t)syscall(SYS_time, NULL);
	WL_CHECK(got == stored, "time() returned %lld but stored %lld", (long long)got, (long long)stored);
	WL_CHECK(got >= before - 1 && got <= after + 1, "time() = %lld, but the system call said %lld before and %lld after",
		 (long long)got, (long long)before, (long long)after);
	calls++;
}

static void check_getcpu(void)
{
	unsigned int cpu = ~0u, node = ~0u;

	WL_CHECK(getcpu(&cpu, &node) == 0, "getcpu: %s", strerror(errno));
	WL_CHECK(cpu < (unsigned int)ncpu && node < 1024, "getcpu = cpu %u node %u (%ld CPUs)", cpu, node, ncpu);
	calls++;
}

static void check_getres(void)
{
	struct timespec res, raw;

	WL_CHECK(clock_getres(CLOCK_MONOTONIC, &res) == 0, "clock_getres: %s", strerror(errno));
	WL_CHECK(syscall(SYS_clock_getres, CLOCK_MONOTONIC, &raw) == 0, "raw clock_getres: %s", strerror(errno));
	WL_CHECK(res.tv_sec == raw.tv_sec && res.tv_nsec == raw.tv_nsec,
		 "clock_getres(CLOCK_MONOTONIC) = %ld.%09ld, the system call says %ld.%09ld", (long)res.tv_sec,
		 res.tv_nsec, (long)raw.tv_sec, raw.tv_nsec);
	calls++;
}

static void check_all(void)
{
	for (int i = 0; i < 3; i++) {
		check_clock(CLOCK_MONOTONIC, "CLOCK_MONOTONIC");
		check_clock(CLOCK_REALTIME, "CLOCK_REALTIME");
		check_clock(CLOCK_BOOTTIME, "CLOCK_BOOTTIME");
		check_gettimeofday();
		check_time();
		check_getcpu();
		check_getres();
	}
	wl_check_clock();
}

/* in_vdso fails unless glibc's function name is the vDSO's. */
static void in_vdso(const char *name)
{
	void *fn = dlsym(RTLD_DEFAULT, name);
	Dl_info info;

	WL_CHECK(fn != NULL, "dlsym(%s): %s", name, dlerror());
	WL_CHECK(dladdr(fn, &info) != 0 && info.dli_fname != NULL && strstr(info.dli_fname, "vdso") != NULL,
		 "glibc's %s (%p) is not the vDSO's but %s's: this workload tests nothing", name, fn,
		 info.dli_fname ? info.dli_fname : "?");
}

int main(int argc, char **argv)
{
	wl_init(argc, argv, "vdso");
	signal(SIGUSR1, wl_usr1_counter);
	WL_CHECK(getauxval(AT_SYSINFO_EHDR) != 0, "this kernel maps no vDSO");
	ncpu = sysconf(_SC_NPROCESSORS_CONF);
	WL_CHECK(ncpu > 0, "sysconf(_SC_NPROCESSORS_CONF): %s", strerror(errno));
	/* Resolved before any checkpoint: later lookups would read the vDSO's
	 * tables again, which is not what cached pointers do. */
	in_vdso("time");
	in_vdso("gettimeofday");
	check_all();
	wl_say("INFO vdso=%#lx", getauxval(AT_SYSINFO_EHDR));
	wl_say("READY");
	for (;;) {
		char extra[64];
		int stop = wl_stop_requested();

		check_all();
		wl_check_pid();
		if (stop) {
			wl_say("DONE ok");
			return 0;
		}
		snprintf(extra, sizeof extra, "calls=%" PRIu64, calls);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}
}
