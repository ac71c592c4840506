/*
 * fifo.c: named FIFOs (mkfifo) in the working directory, holding data.
 *
 * - "rw": opened O_RDWR, 5 bytes queued, read only at the end.
 * - "stream": a read end (O_RDONLY|O_NONBLOCK) and a write end (O_WRONLY),
 *   100 bytes queued at start; every tick writes an 8-byte record and reads
 *   8 bytes, which must be the next 8 bytes of the stream (the queued
 *   prefix first, then the records in order), so the queue always holds
 *   100 bytes that must survive in order.
 * Each tick checks that every fd is still the named FIFO (same inode as the
 * path), the queued byte counts (FIONREAD) and the fd flags.
 */
#include "common.h"

#include <sys/ioctl.h>

#define PREFIX 100

static int rw_fd, rd_fd, wr_fd;
static struct stat rw_st, stream_st;
static int flags_rec[3];
static uint64_t read_pos; /* bytes of the stream read so far */

/* stream_byte is byte k of the stream: PREFIX pattern bytes, then records. */
static unsigned char stream_byte(uint64_t k)
{
	uint64_t rec;

	if (k < PREFIX)
		return (unsigned char)wl_mix(wl_nonce ^ k);
	rec = wl_mix(wl_nonce ^ 0xF1F0 ^ ((k - PREFIX) / 8));
	return ((unsigned char *)&rec)[(k - PREFIX) % 8];
}

static int fionread(int fd)
{
	int n = -1;

	WL_CHECK(ioctl(fd, FIONREAD, &n) == 0, "FIONREAD fd %d: %s", fd, strerror(errno));
	return n;
}

static void check_fd(int fd, const struct stat *want, const char *what)
{
	struct stat st;

	WL_CHECK(fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode), "%s fd %d is not a FIFO", what, fd);
	WL_CHECK(st.st_ino == want->st_ino && st.st_dev == want->st_dev,
		 "%s fd %d is inode %lu, the FIFO is %lu", what, fd, (unsigned long)st.st_ino,
		 (unsigned long)want->st_ino);
}

static void verify(void)
{
	int fds[3] = { rw_fd, rd_fd, wr_fd };

	wl_check_pid();
	check_fd(rw_fd, &rw_st, "rw");
	check_fd(rd_fd, &stream_st, "stream read end");
	check_fd(wr_fd, &stream_st, "stream write end");
	for (int i = 0; i < 3; i++) {
		int fl = fcntl(fds[i], F_GETFL) | fcntl(fds[i], F_GETFD) << 24;

		WL_CHECK(fl == flags_rec[i], "fifo fd %d flags %#x, were %#x", fds[i], fl, flags_rec[i]);
	}
	WL_CHECK(fionread(rw_fd) == 5, "rw FIFO holds %d bytes, want 5", fionread(rw_fd));
	WL_CHECK(fionread(rd_fd) == PREFIX, "stream FIFO holds %d bytes, want %d", fionread(rd_fd),
		 PREFIX);
}

static void step(void)
{
	uint64_t rec = wl_mix(wl_nonce ^ 0xF1F0 ^ wl_tick);
	unsigned char buf[8];
	ssize_t r;

	wl_write_all(wr_fd, &rec, 8, "stream FIFO");
	r = read(rd_fd, buf, 8);
	WL_CHECK(r == 8, "stream FIFO read returned %zd (%s)", r, r < 0 ? strerror(errno) : "short");
	for (int i = 0; i < 8; i++)
		WL_CHECK(buf[i] == stream_byte(read_pos + (uint64_t)i),
			 "stream FIFO byte %" PRIu64 " is wrong (lost or reordered data)",
			 read_pos + (uint64_t)i);
	read_pos += 8;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	unsigned char prefix[PREFIX];
	char buf[16];

	wl_init(argc, argv, "fifo");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");

	unlink("rw");
	unlink("stream");
	WL_CHECK(mkfifo("rw", 0600) == 0 && mkfifo("stream", 0600) == 0, "mkfifo: %s",
		 strerror(errno));
	rw_fd = open("rw", O_RDWR);
	WL_CHECK(rw_fd >= 0, "open rw: %s", strerror(errno));
	wl_write_all(rw_fd, "fifo!", 5, "rw FIFO");
	rd_fd = open("stream", O_RDONLY | O_NONBLOCK);
	WL_CHECK(rd_fd >= 0, "open stream for reading: %s", strerror(errno));
	wr_fd = open("stream", O_WRONLY | O_CLOEXEC);
	WL_CHECK(wr_fd >= 0, "open stream for writing: %s", strerror(errno));
	for (int i = 0; i < PREFIX; i++)
		prefix[i] = stream_byte((uint64_t)i);
	wl_write_all(wr_fd, prefix, PREFIX, "stream FIFO");
	WL_CHECK(stat("rw", &rw_st) == 0 && stat("stream", &stream_st) == 0, "stat FIFOs");
	flags_rec[0] = fcntl(rw_fd, F_GETFL) | fcntl(rw_fd, F_GETFD) << 24;
	flags_rec[1] = fcntl(rd_fd, F_GETFL) | fcntl(rd_fd, F_GETFD) << 24;
	flags_rec[2] = fcntl(wr_fd, F_GETFL) | fcntl(wr_fd, F_GETFD) << 24;

	wl_say("READY");
	for (;;) {
		char extra[64];

		verify();
		step();
		verify();
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra, "read=%" PRIu64, read_pos);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}
	WL_CHECK(read(rw_fd, buf, sizeof buf) == 5 && memcmp(buf, "fifo!", 5) == 0,
		 "rw FIFO lost its 5 bytes");
	WL_CHECK(read(rd_fd, buf, 8) == 8, "stream FIFO lost its queue");
	wl_say("DONE ok");
	return 0;
}
