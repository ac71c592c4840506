/*
 * hold_fanotify.c: holds a fanotify group (fanotify_init) on fd 40 with a
 * FAN_MODIFY mark on a file, which seamless does not support: a checkpoint
 * must be refused with fd 40 and fanotify named, and leave this process
 * running and untraced. Every tick writes the file and must read exactly
 * one FAN_MODIFY event for it.
 */
#include "common.h"

#include <sys/fanotify.h>

#define HELD_FD 40

static uint64_t events;

/* one_event writes the watched file and reads the event it causes. */
static void one_event(int file)
{
	char buf[4096];
	int64_t until;

	WL_CHECK(pwrite(file, "x", 1, 0) == 1, "write watched file: %s", strerror(errno));
	until = wl_mono_ns() + 5000000000LL;
	for (;;) {
		ssize_t n = read(HELD_FD, buf, sizeof buf);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			WL_CHECK(wl_mono_ns() < until, "no fanotify event within 5 s");
			wl_sleep_ms(1);
			continue;
		}
		WL_CHECK(n >= (ssize_t)sizeof(struct fanotify_event_metadata), "read fanotify: %zd (%s)",
			 n, strerror(errno));
		for (struct fanotify_event_metadata *m = (void *)buf; FAN_EVENT_OK(m, n);
		     m = FAN_EVENT_NEXT(m, n)) {
			WL_CHECK(m->vers == FANOTIFY_METADATA_VERSION && (m->mask & FAN_MODIFY) &&
					 m->pid == wl_pid,
				 "fanotify event version %d mask %#llx pid %d", m->vers,
				 (unsigned long long)m->mask, (int)m->pid);
			if (m->fd >= 0)
				close(m->fd);
			events++;
		}
		return;
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = wl_usr1_counter };
	int fd, file;

	wl_init(argc, argv, "hold_fanotify");
	sigaction(SIGUSR1, &sa, NULL);
	file = open("watched", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	WL_CHECK(file >= 0, "open watched: %s", strerror(errno));
	fd = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK | FAN_CLOEXEC, O_RDONLY | O_CLOEXEC);
	WL_CHECK(fd >= 0, "fanotify_init: %s", strerror(errno));
	WL_CHECK(dup2(fd, HELD_FD) == HELD_FD, "dup2: %s", strerror(errno));
	close(fd);
	WL_CHECK(fanotify_mark(HELD_FD, FAN_MARK_ADD, FAN_MODIFY, AT_FDCWD, "watched") == 0,
		 "fanotify_mark: %s", strerror(errno));
	one_event(file);
	wl_say("INFO fd=%d resource=fanotify", HELD_FD);
	wl_say("READY");
	for (;;) {
		char extra[64];

		wl_check_pid();
		one_event(file);
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra, "events=%" PRIu64, events);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}
	wl_say("DONE ok");
	return 0;
}
