/*
 * hold_perf.c: holds a perf_event counter (software task clock of itself)
 * on fd 40, which seamless does not support: a checkpoint must be refused
 * with fd 40 and perf_event named, and leave this process running and
 * untraced. Every tick the counter must have advanced.
 */
#include "common.h"

#include <linux/perf_event.h>

#define HELD_FD 40

static uint64_t last;

static uint64_t read_counter(void)
{
	uint64_t v = 0;

	WL_CHECK(read(HELD_FD, &v, sizeof v) == sizeof v, "read perf counter: %s", strerror(errno));
	return v;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = wl_usr1_counter };
	struct perf_event_attr attr;
	int fd;

	wl_init(argc, argv, "hold_perf");
	sigaction(SIGUSR1, &sa, NULL);
	memset(&attr, 0, sizeof attr);
	attr.size = sizeof attr;
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = PERF_COUNT_SW_TASK_CLOCK;
	attr.exclude_kernel = 1;
	fd = (int)syscall(__NR_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	WL_CHECK(fd >= 0, "perf_event_open: %s", strerror(errno));
	WL_CHECK(dup2(fd, HELD_FD) == HELD_FD, "dup2: %s", strerror(errno));
	close(fd);
	last = read_counter();
	wl_say("INFO fd=%d resource=perf_event", HELD_FD);
	wl_say("READY");
	for (;;) {
		char extra[64];
		uint64_t v;

		wl_check_pid();
		/* Burn a little CPU so that the task clock must move. */
		for (volatile int i = 0; i < 100000; i++) {
		}
		v = read_counter();
		WL_CHECK(v > last, "task clock counter went from %" PRIu64 " to %" PRIu64, last, v);
		last = v;
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra, "task_clock_ns=%" PRIu64, v);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}
	wl_say("DONE ok");
	return 0;
}
