/*
 * epollx.c: epoll watches whose descriptor numbers no longer say what they
 * watch. The kernel keys a watch by the watched open file description and
 * the number it was added under, and keeps it until the description is
 * closed for good.
 *
 * - watch A: a pipe's read end added as fd 50 (data 0xA1), then dup'ed to
 *   51 and 50 given to an eventfd: the watch stays, on the pipe;
 * - watch C: another pipe's read end added as fd 52 (data 0xC1), moved to
 *   53, 52 left closed;
 * - watches B0, B1: a third pipe's read end dup'ed to 60, 61 and 62, added
 *   as 60 (data 0xB0) and 61 (data 0xB1): one byte wakes both;
 * - watches D1, D2: two pipes added under the same number 70: the first
 *   (data 0xD1) then moved to 71, the second put at 70 and added (0xD2).
 * Every tick writes to each pipe and checks that epoll_wait reports exactly
 * the watches of that pipe, with their data words.
 */
#include "common.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>

static int ep, a_w, b_w, c_w, d1_w, d2_w;

static void expect(int w, int rd, const uint64_t *want, int n, const char *what)
{
	struct epoll_event ev[8];
	char c = 'e';
	int got, seen = 0;

	WL_CHECK(write(w, &c, 1) == 1, "write %s: %s", what, strerror(errno));
	got = epoll_wait(ep, ev, 8, 0);
	WL_CHECK(got == n, "%s: epoll_wait reported %d events, want %d", what, got, n);
	for (int i = 0; i < got; i++) {
		int j;

		for (j = 0; j < n && ev[i].data.u64 != want[j]; j++)
			;
		WL_CHECK(j < n && !(seen & (1 << j)), "%s: event with data %#" PRIx64, what, (uint64_t)ev[i].data.u64);
		WL_CHECK(ev[i].events == EPOLLIN, "%s: events %#x", what, ev[i].events);
		seen |= 1 << j;
	}
	WL_CHECK(read(rd, &c, 1) == 1, "read %s: %s", what, strerror(errno));
	WL_CHECK(epoll_wait(ep, ev, 8, 0) == 0, "%s: events left after the read", what);
}

static void verify(void)
{
	static const uint64_t a[] = { 0xA1 }, b[] = { 0xB0, 0xB1 }, c[] = { 0xC1 }, d1[] = { 0xD1 }, d2[] = { 0xD2 };

	expect(a_w, 51, a, 1, "pipe A (watched as fd 50, now fd 51)");
	expect(b_w, 62, b, 2, "pipe B (watched as fds 60 and 61)");
	expect(c_w, 53, c, 1, "pipe C (watched as fd 52, now fd 53)");
	expect(d1_w, 71, d1, 1, "pipe D1 (watched as fd 70, now fd 71)");
	expect(d2_w, 70, d2, 1, "pipe D2 (watched as fd 70)");
	WL_CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, 50, NULL) < 0 && errno == ENOENT,
		 "fd 50 (now an eventfd) is watched: %s", strerror(errno));
	WL_CHECK(fcntl(52, F_GETFD) < 0 && errno == EBADF, "fd 52 is open");
}

static void watch(int fd, uint64_t data)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = data };

	WL_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "watch fd %d: %s", fd, strerror(errno));
}

static int pipe_at(int rd)
{
	int p[2];

	WL_CHECK(pipe2(p, O_CLOEXEC) == 0 && dup3(p[0], rd, O_CLOEXEC) == rd, "pipe: %s", strerror(errno));
	close(p[0]);
	return p[1];
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	wl_init(argc, argv, "epollx");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	ep = epoll_create1(EPOLL_CLOEXEC);
	WL_CHECK(ep >= 0, "epoll_create1: %s", strerror(errno));

	a_w = pipe_at(50);
	watch(50, 0xA1);
	WL_CHECK(dup3(50, 51, O_CLOEXEC) == 51, "dup: %s", strerror(errno));
	{
		int other = eventfd(0, EFD_CLOEXEC);

		WL_CHECK(other >= 0 && dup3(other, 50, O_CLOEXEC) == 50, "eventfd: %s", strerror(errno));
		close(other);
	}
	c_w = pipe_at(52);
	watch(52, 0xC1);
	WL_CHECK(dup3(52, 53, O_CLOEXEC) == 53 && close(52) == 0, "move fd 52: %s", strerror(errno));
	b_w = pipe_at(60);
	WL_CHECK(dup3(60, 61, O_CLOEXEC) == 61 && dup3(60, 62, O_CLOEXEC) == 62, "dup: %s", strerror(errno));
	watch(60, 0xB0);
	watch(61, 0xB1);
	d1_w = pipe_at(70);
	watch(70, 0xD1);
	WL_CHECK(dup3(70, 71, O_CLOEXEC) == 71, "dup: %s", strerror(errno));
	d2_w = pipe_at(70);
	watch(70, 0xD2);

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
	wl_say("DONE ok");
	return 0;
}
