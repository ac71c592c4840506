/*
 * hold_uring.c: holds an io_uring instance (io_uring_setup(2), no liburing)
 * on fd 40, which seamless does not support: a checkpoint must be refused
 * with fd 40 and io_uring named, and leave this process running and
 * untraced. Every tick submits an IORING_OP_NOP and reaps its completion,
 * so a ring that was disturbed by the failed attempt is a FAIL.
 */
#include "common.h"

#include <linux/io_uring.h>
#include <sys/mman.h>

#define HELD_FD 40

static struct io_uring_params p;
static uint8_t *sq_ring, *cq_ring;
static struct io_uring_sqe *sqes;
static uint64_t done_nops;

static int uring_enter(unsigned submit, unsigned min_complete, unsigned flags)
{
	return (int)syscall(__NR_io_uring_enter, HELD_FD, submit, min_complete, flags, NULL, 0);
}

/* nop submits one NOP whose user_data is seq and waits for its completion. */
static void nop(uint64_t seq)
{
	volatile unsigned *sq_tail = (unsigned *)(sq_ring + p.sq_off.tail);
	unsigned *sq_array = (unsigned *)(sq_ring + p.sq_off.array);
	unsigned sq_mask = *(unsigned *)(sq_ring + p.sq_off.ring_mask);
	volatile unsigned *cq_head = (unsigned *)(cq_ring + p.cq_off.head);
	volatile unsigned *cq_tail = (unsigned *)(cq_ring + p.cq_off.tail);
	unsigned cq_mask = *(unsigned *)(cq_ring + p.cq_off.ring_mask);
	struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq_ring + p.cq_off.cqes);
	unsigned tail = *sq_tail, idx = tail & sq_mask;
	int r;

	memset(&sqes[idx], 0, sizeof sqes[idx]);
	sqes[idx].opcode = IORING_OP_NOP;
	sqes[idx].user_data = seq;
	sq_array[idx] = idx;
	__atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
	do
		r = uring_enter(1, 1, IORING_ENTER_GETEVENTS);
	while (r < 0 && errno == EINTR);
	WL_CHECK(r == 1, "io_uring_enter: %d (%s)", r, strerror(errno));
	WL_CHECK(__atomic_load_n(cq_tail, __ATOMIC_ACQUIRE) != *cq_head, "no completion for NOP %" PRIu64,
		 seq);
	{
		struct io_uring_cqe *c = &cqes[*cq_head & cq_mask];

		WL_CHECK(c->user_data == seq && c->res == 0, "completion user_data %llu res %d, want %" PRIu64 " 0",
			 (unsigned long long)c->user_data, c->res, seq);
	}
	__atomic_store_n(cq_head, *cq_head + 1, __ATOMIC_RELEASE);
	WL_CHECK(*cq_head == *cq_tail, "extra completions in the ring");
	done_nops++;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = wl_usr1_counter };
	int fd;

	wl_init(argc, argv, "hold_uring");
	sigaction(SIGUSR1, &sa, NULL);
	fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	WL_CHECK(fd >= 0, "io_uring_setup: %s", strerror(errno));
	WL_CHECK(dup2(fd, HELD_FD) == HELD_FD, "dup2: %s", strerror(errno));
	close(fd);
	sq_ring = mmap(NULL, p.sq_off.array + p.sq_entries * sizeof(unsigned), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, HELD_FD, IORING_OFF_SQ_RING);
	cq_ring = mmap(NULL, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe),
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, HELD_FD, IORING_OFF_CQ_RING);
	sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_POPULATE, HELD_FD, IORING_OFF_SQES);
	WL_CHECK(sq_ring != MAP_FAILED && cq_ring != MAP_FAILED && sqes != MAP_FAILED,
		 "mmap io_uring rings: %s", strerror(errno));
	nop(0);
	wl_say("INFO fd=%d resource=io_uring", HELD_FD);
	wl_say("READY");
	for (;;) {
		char extra[64];

		wl_check_pid();
		nop(wl_tick + 1);
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra, "nops=%" PRIu64, done_nops);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}
	wl_say("DONE ok");
	return 0;
}
