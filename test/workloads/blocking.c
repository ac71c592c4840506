/*
 * blocking.c: threads blocked in system calls on pipes, and pipes holding
 * data across the checkpoint.
 *
 * - stream: a writer thread writes numbered 8-byte records (often several at
 *   once, so some are usually queued) and a reader thread blocked in read()
 *   checks that every record arrives once and in order.
 * - held: 4219 bytes written at start, never read until the end, on a pipe
 *   resized to 256 KiB (F_SETPIPE_SZ), read end O_NONBLOCK: FIONREAD, the
 *   pipe size and finally the exact bytes are checked.
 * - eof: 10 bytes and a closed write end: the end must read the bytes, then
 *   EOF (a restorer that keeps a stray write end open turns EOF into EAGAIN).
 * - three threads blocked for the whole run: one in read() on an empty pipe,
 *   one in poll() without timeout, one in poll() with a 10-minute timeout
 *   (EINTR is allowed there and retried). The main thread wakes them at the
 *   end with known bytes.
 * Each tick also checks that both ends of each pipe are one pipe, their
 * flags, and every thread's TID.
 */
#include "common.h"

#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>

#define HELD_LEN 4219
#define HELD_PIPE_SZ (256 * 1024)

enum { P_STREAM, P_HELD, P_EOF, P_READ, P_POLL, P_TPOLL, NPIPES };
static int pipes[NPIPES][2];
static int flags_rec[NPIPES][2];

enum { T_WRITER, T_READER, T_BLOCKREAD, T_POLL, T_TPOLL, NTHREADS };
static pthread_t threads[NTHREADS];
static pid_t tids[NTHREADS + 1]; /* [NTHREADS] is main */
static char tids_str[128];
static pthread_barrier_t barrier;

static volatile int writer_stop;
static volatile uint64_t written, received; /* records */
static volatile uint64_t final_seq = UINT64_MAX;

static uint64_t rec_value(uint64_t seq)
{
	return wl_mix(wl_nonce ^ seq ^ 0x91BE);
}

/* end_marker is the record the writer sends after its last one. */
static uint64_t end_marker(uint64_t seq)
{
	return rec_value(seq) ^ 0xE0F;
}

static void check_tid(int t)
{
	WL_CHECK(wl_gettid() == tids[t], "thread %d: gettid() = %d, was %d", t, (int)wl_gettid(),
		 (int)tids[t]);
}

static void start(int t)
{
	tids[t] = wl_gettid();
	pthread_barrier_wait(&barrier);
}

static void *writer(void *arg)
{
	uint64_t seq = 0;

	(void)arg;
	start(T_WRITER);
	while (!__atomic_load_n(&writer_stop, __ATOMIC_ACQUIRE)) {
		uint64_t batch[3];
		int n = 1 + (int)(seq % 3);

		for (int i = 0; i < n; i++)
			batch[i] = rec_value(seq + (uint64_t)i);
		/* Published first: the reader can never be ahead of it. */
		__atomic_store_n(&written, seq + (uint64_t)n, __ATOMIC_RELEASE);
		wl_write_all(pipes[P_STREAM][1], batch, (size_t)n * 8, "stream pipe");
		seq += (uint64_t)n;
		check_tid(T_WRITER);
		wl_sleep_ms(20);
	}
	__atomic_store_n(&final_seq, seq, __ATOMIC_RELEASE);
	{
		uint64_t end = end_marker(seq);

		wl_write_all(pipes[P_STREAM][1], &end, 8, "stream pipe");
	}
	return NULL;
}

static void *reader(void *arg)
{
	uint64_t seq = 0;

	(void)arg;
	start(T_READER);
	for (;;) {
		uint64_t v;
		ssize_t r = read(pipes[P_STREAM][0], &v, 8);

		if (r < 0 && errno == EINTR)
			continue;
		WL_CHECK(r == 8, "stream pipe read returned %zd (%s)", r, r < 0 ? strerror(errno) : "");
		if (v == end_marker(seq))
			return NULL;
		WL_CHECK(v == rec_value(seq),
			 "stream pipe record %" PRIu64 " is wrong (lost, repeated or reordered data)",
			 seq);
		seq++;
		__atomic_store_n(&received, seq, __ATOMIC_RELEASE);
		check_tid(T_READER);
	}
}

static void *block_reader(void *arg)
{
	uint64_t v;
	ssize_t r;

	(void)arg;
	start(T_BLOCKREAD);
	do
		r = read(pipes[P_READ][0], &v, 8); /* blocked here until the end */
	while (r < 0 && errno == EINTR);
	WL_CHECK(r == 8 && v == (wl_nonce ^ 0xBEEF), "blocked read() woke with %zd bytes", r);
	check_tid(T_BLOCKREAD);
	return NULL;
}

static void *poller(void *arg)
{
	int t = (int)(intptr_t)arg;
	int p = t == T_POLL ? P_POLL : P_TPOLL;
	struct pollfd pfd = { .fd = pipes[p][0], .events = POLLIN };
	unsigned char b;
	int r;

	start(t);
	for (;;) {
		r = poll(&pfd, 1, t == T_POLL ? -1 : 600000);
		if (r < 0 && errno == EINTR)
			continue;
		break;
	}
	WL_CHECK(r == 1 && (pfd.revents & POLLIN), "poll on pipe %d returned %d revents %#x", p, r,
		 pfd.revents);
	WL_CHECK(read(pipes[p][0], &b, 1) == 1 && b == (unsigned char)(0x40 + p),
		 "pipe %d woke poll with a wrong byte", p);
	check_tid(t);
	return NULL;
}

static void setup_pipes(void)
{
	static unsigned char held[HELD_LEN];

	for (int p = 0; p < NPIPES; p++)
		WL_CHECK(pipe(pipes[p]) == 0, "pipe: %s", strerror(errno));
	WL_CHECK(fcntl(pipes[P_HELD][1], F_SETPIPE_SZ, HELD_PIPE_SZ) >= HELD_PIPE_SZ,
		 "F_SETPIPE_SZ: %s", strerror(errno));
	for (int i = 0; i < HELD_LEN; i++)
		held[i] = (unsigned char)wl_mix(wl_nonce ^ (uint64_t)i);
	wl_write_all(pipes[P_HELD][1], held, HELD_LEN, "held pipe");
	WL_CHECK(fcntl(pipes[P_HELD][0], F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK");
	wl_write_all(pipes[P_EOF][1], "0123456789", 10, "eof pipe");
	close(pipes[P_EOF][1]);
	pipes[P_EOF][1] = -1;
	WL_CHECK(fcntl(pipes[P_EOF][0], F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK");
	WL_CHECK(fcntl(pipes[P_READ][0], F_SETFD, FD_CLOEXEC) == 0, "FD_CLOEXEC");

	for (int p = 0; p < NPIPES; p++)
		for (int e = 0; e < 2; e++)
			if (pipes[p][e] >= 0)
				flags_rec[p][e] = fcntl(pipes[p][e], F_GETFL) |
						  fcntl(pipes[p][e], F_GETFD) << 24;
}

static int fionread(int fd)
{
	int n = -1;

	WL_CHECK(ioctl(fd, FIONREAD, &n) == 0, "FIONREAD fd %d: %s", fd, strerror(errno));
	return n;
}

static void verify(void)
{
	wl_check_pid();
	check_tid(NTHREADS);
	for (int p = 0; p < NPIPES; p++) {
		struct stat s0, s1;

		WL_CHECK(fstat(pipes[p][0], &s0) == 0 && S_ISFIFO(s0.st_mode),
			 "pipe %d read end fd %d is not a pipe", p, pipes[p][0]);
		for (int e = 0; e < 2; e++) {
			int fl;

			if (pipes[p][e] < 0)
				continue;
			fl = fcntl(pipes[p][e], F_GETFL) | fcntl(pipes[p][e], F_GETFD) << 24;
			WL_CHECK(fl == flags_rec[p][e], "pipe %d end %d flags %#x, were %#x", p, e, fl,
				 flags_rec[p][e]);
		}
		if (pipes[p][1] >= 0) {
			WL_CHECK(fstat(pipes[p][1], &s1) == 0 && s1.st_ino == s0.st_ino &&
					 s1.st_dev == s0.st_dev,
				 "pipe %d: fds %d and %d are no longer two ends of one pipe", p,
				 pipes[p][0], pipes[p][1]);
		}
	}
	WL_CHECK(fionread(pipes[P_HELD][0]) == HELD_LEN, "held pipe holds %d bytes, want %d",
		 fionread(pipes[P_HELD][0]), HELD_LEN);
	WL_CHECK(fcntl(pipes[P_HELD][0], F_GETPIPE_SZ) == HELD_PIPE_SZ, "held pipe size %d, want %d",
		 fcntl(pipes[P_HELD][0], F_GETPIPE_SZ), HELD_PIPE_SZ);
	WL_CHECK(fionread(pipes[P_EOF][0]) == 10, "eof pipe holds %d bytes, want 10",
		 fionread(pipes[P_EOF][0]));
	WL_CHECK(fionread(pipes[P_READ][0]) == 0 && fionread(pipes[P_POLL][0]) == 0 &&
			 fionread(pipes[P_TPOLL][0]) == 0,
		 "a wake-up pipe has data");
	{
		uint64_t got = __atomic_load_n(&received, __ATOMIC_ACQUIRE);
		uint64_t sent = __atomic_load_n(&written, __ATOMIC_ACQUIRE);

		WL_CHECK(got <= sent, "reader got %" PRIu64 " records, only %" PRIu64 " were written",
			 got, sent);
	}
}

static void join_timed(int t)
{
	struct timespec ts;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 20;
	r = pthread_timedjoin_np(threads[t], NULL, &ts);
	WL_CHECK(r == 0, "thread %d did not finish: %s", t, strerror(r));
}

static void final_checks(void)
{
	static unsigned char held[HELD_LEN + 16];
	char buf[16];
	ssize_t r;
	uint64_t v;
	unsigned char b;

	__atomic_store_n(&writer_stop, 1, __ATOMIC_RELEASE);
	join_timed(T_WRITER);
	join_timed(T_READER); /* it returns once every record arrived */
	WL_CHECK(received == final_seq, "reader got %" PRIu64 " of %" PRIu64 " records", received,
		 final_seq);

	v = wl_nonce ^ 0xBEEF;
	wl_write_all(pipes[P_READ][1], &v, 8, "wake pipe");
	b = 0x40 + P_POLL;
	wl_write_all(pipes[P_POLL][1], &b, 1, "wake pipe");
	b = 0x40 + P_TPOLL;
	wl_write_all(pipes[P_TPOLL][1], &b, 1, "wake pipe");
	join_timed(T_BLOCKREAD);
	join_timed(T_POLL);
	join_timed(T_TPOLL);

	r = read(pipes[P_HELD][0], held, sizeof held);
	WL_CHECK(r == HELD_LEN, "held pipe read %zd bytes, want %d", r, HELD_LEN);
	for (int i = 0; i < HELD_LEN; i++)
		WL_CHECK(held[i] == (unsigned char)wl_mix(wl_nonce ^ (uint64_t)i), "held pipe byte %d",
			 i);
	r = read(pipes[P_HELD][0], held, 1);
	WL_CHECK(r < 0 && errno == EAGAIN, "held pipe not empty after its data");

	r = read(pipes[P_EOF][0], buf, sizeof buf);
	WL_CHECK(r == 10 && memcmp(buf, "0123456789", 10) == 0, "eof pipe read %zd bytes", r);
	r = read(pipes[P_EOF][0], buf, sizeof buf);
	WL_CHECK(r == 0, "eof pipe: want end of file, read returned %zd (%s): a write end is open",
		 r, r < 0 ? strerror(errno) : "data");
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	wl_init(argc, argv, "blocking");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction"); /* no SA_RESTART: EINTR paths */
	setup_pipes();
	tids[NTHREADS] = wl_gettid();
	pthread_barrier_init(&barrier, NULL, NTHREADS + 1);
	WL_CHECK(pthread_create(&threads[T_WRITER], NULL, writer, NULL) == 0, "pthread_create");
	WL_CHECK(pthread_create(&threads[T_READER], NULL, reader, NULL) == 0, "pthread_create");
	WL_CHECK(pthread_create(&threads[T_BLOCKREAD], NULL, block_reader, NULL) == 0,
		 "pthread_create");
	WL_CHECK(pthread_create(&threads[T_POLL], NULL, poller, (void *)(intptr_t)T_POLL) == 0,
		 "pthread_create");
	WL_CHECK(pthread_create(&threads[T_TPOLL], NULL, poller, (void *)(intptr_t)T_TPOLL) == 0,
		 "pthread_create");
	pthread_barrier_wait(&barrier);
	snprintf(tids_str, sizeof tids_str, "%d,%d,%d,%d,%d,%d", (int)tids[NTHREADS],
		 (int)tids[0], (int)tids[1], (int)tids[2], (int)tids[3], (int)tids[4]);
	wl_say("READY");
	for (;;) {
		char extra[64];

		verify();
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra, "written=%" PRIu64 " received=%" PRIu64, written,
			 received);
		wl_print_tick(tids_str, extra);
		wl_sleep_ms(20);
	}
	final_checks();
	wl_say("DONE ok");
	return 0;
}
