/*
 * threads.c: the main thread and 8 pthreads, each with its own state.
 *
 * - Workers 0-5 pass a token around a ring under one mutex and condition
 *   variable: worker i may only take the token when counter % 6 == i. Even
 *   workers wait with pthread_cond_wait (a lost wakeup hangs the ring: the
 *   final check reports it), odd ones with pthread_cond_timedwait.
 * - Worker 7 sleeps in nanosleep until told to stop; worker 6 is blocked in
 *   pthread_join on worker 7 the whole time (a futex on the thread's TID
 *   word, cleared and woken by the kernel through clear_child_tid), and
 *   checks the value worker 7 returned.
 * - Every thread checks, on every wakeup: gettid() and pthread_self()
 *   unchanged, its __thread values (so fs_base is right), a patterned array
 *   on its own stack, its own signal mask (each blocks a different signal),
 *   its name (/proc/self/task/TID/comm), and that glibc's rseq area is still
 *   registered with the kernel (a second rseq(2) registration of the same
 *   area must fail with EBUSY, as it did before) with cpu_id >= 0.
 * - The main thread prints the ticks and checks that exactly the 9 recorded
 *   threads exist. SIGUSR1 is counted (usr1= in the TICK line).
 */
#include "common.h"

#include <pthread.h>
#include <sys/rseq.h>

#define NWORKERS 8
#define NRING 6
#define JOINER 6
#define SLEEPER 7
#define SLEEPER_RET 0x51eeULL
#define JOINER_RET 0x701eULL

struct worker {
	int idx;
	pthread_t self;
	pid_t tid;
};

static struct worker workers[NWORKERS + 1]; /* [NWORKERS] is the main thread */
static pthread_barrier_t start_barrier;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static uint64_t ring_counter; /* guarded by mu */
static int ring_turn;         /* guarded by mu */
static int ring_stop;         /* guarded by mu */
static volatile int sleeper_stop;
static char tids_str[256];

static __thread int tls_idx = -1;
static __thread uint64_t tls_id;
static __thread unsigned char tls_buf[256];
static __thread int rseq_errno_rec;

static uint64_t tls_value(int idx)
{
	return wl_mix(wl_nonce ^ (uint64_t)idx << 40 ^ 0x715);
}

/* check_rseq verifies that the kernel still knows this thread's rseq area. */
static void check_rseq(int idx, int record)
{
	struct rseq *rs;
	long r;

	if (__rseq_size == 0)
		return; /* glibc did not register rseq (tunable or old kernel) */
	rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
	WL_CHECK((int32_t)((volatile struct rseq *)rs)->cpu_id >= 0,
		 "thread %d: rseq cpu_id is %d", idx, (int32_t)((volatile struct rseq *)rs)->cpu_id);
	r = syscall(SYS_rseq, rs, 32, 0, RSEQ_SIG);
	if (r == 0) {
		syscall(SYS_rseq, rs, 32, 1 /* RSEQ_FLAG_UNREGISTER */, RSEQ_SIG);
		wl_fail("thread %d: rseq area %p was not registered with the kernel", idx, (void *)rs);
	}
	if (record) {
		rseq_errno_rec = errno;
		WL_CHECK(errno == EBUSY || errno == EINVAL, "thread %d: rseq probe: %s", idx,
			 strerror(errno));
	} else {
		WL_CHECK(errno == rseq_errno_rec, "thread %d: rseq probe gives %s, gave %s", idx,
			 strerror(errno), strerror(rseq_errno_rec));
	}
}

static void thread_name(int idx, char *buf, size_t size)
{
	if (idx == NWORKERS)
		snprintf(buf, size, "wl-threads");
	else
		snprintf(buf, size, "wl-thr-%d", idx);
}

/* thread_setup gives the calling thread its private state. */
static void thread_setup(struct worker *w, volatile uint64_t *stk, size_t nstk)
{
	char name[16];
	sigset_t set;

	tls_idx = w->idx;
	tls_id = tls_value(w->idx);
	for (size_t i = 0; i < sizeof tls_buf; i++)
		tls_buf[i] = (unsigned char)(tls_id >> (i % 8 * 8)) ^ (unsigned char)i;
	for (size_t i = 0; i < nstk; i++)
		stk[i] = wl_mix(tls_id ^ i);
	w->tid = wl_gettid();
	w->self = pthread_self();
	thread_name(w->idx, name, sizeof name);
	WL_CHECK(pthread_setname_np(pthread_self(), name) == 0, "setname");
	sigemptyset(&set);
	if (w->idx < NWORKERS)
		sigaddset(&set, SIGRTMIN + 10 + w->idx);
	WL_CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0, "pthread_sigmask");
	check_rseq(w->idx, 1);
}

/* thread_verify re-checks everything thread_setup established. */
static void thread_verify(struct worker *w, volatile uint64_t *stk, size_t nstk)
{
	char path[64], comm[64], want[16];
	sigset_t set;

	WL_CHECK(tls_idx == w->idx, "thread %d: __thread index reads %d", w->idx, tls_idx);
	WL_CHECK(tls_id == tls_value(w->idx), "thread %d: __thread value %#" PRIx64, w->idx, tls_id);
	for (size_t i = 0; i < sizeof tls_buf; i++)
		WL_CHECK(tls_buf[i] == ((unsigned char)(tls_id >> (i % 8 * 8)) ^ (unsigned char)i),
			 "thread %d: __thread buffer byte %zu", w->idx, i);
	for (size_t i = 0; i < nstk; i++)
		WL_CHECK(stk[i] == wl_mix(tls_id ^ i), "thread %d: stack word %zu", w->idx, i);
	WL_CHECK(wl_gettid() == w->tid, "thread %d: gettid() = %d, was %d", w->idx,
		 (int)wl_gettid(), (int)w->tid);
	WL_CHECK(pthread_equal(pthread_self(), w->self), "thread %d: pthread_self() changed",
		 w->idx);
	pthread_sigmask(SIG_BLOCK, NULL, &set);
	for (int s = 1; s < _NSIG; s++) {
		int want_blocked = w->idx < NWORKERS && s == SIGRTMIN + 10 + w->idx;

		WL_CHECK(sigismember(&set, s) == want_blocked,
			 "thread %d: signal %d is %sblocked in its mask", w->idx, s,
			 want_blocked ? "not " : "");
	}
	snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)w->tid);
	WL_CHECK(wl_read_file(path, comm, sizeof comm) > 0, "thread %d: read %s: %s", w->idx, path,
		 strerror(errno));
	comm[strcspn(comm, "\n")] = 0;
	thread_name(w->idx, want, sizeof want);
	WL_CHECK(strcmp(comm, want) == 0, "thread %d: comm %s, want %s", w->idx, comm, want);
	check_rseq(w->idx, 0);
	wl_check_pid();
}

static void deadline_in(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_nsec += (ms % 1000) * 1000000L;
	ts->tv_sec += ms / 1000 + ts->tv_nsec / 1000000000L;
	ts->tv_nsec %= 1000000000L;
}

static void *ring_worker(void *arg)
{
	struct worker *w = arg;
	volatile uint64_t stk[512];

	thread_setup(w, stk, 512);
	pthread_barrier_wait(&start_barrier);
	for (;;) {
		int stop, mine = 0;

		pthread_mutex_lock(&mu);
		while (ring_turn != w->idx && !ring_stop) {
			if (w->idx % 2 == 0) {
				WL_CHECK(pthread_cond_wait(&cv, &mu) == 0, "cond_wait");
			} else {
				struct timespec ts;
				int r;

				deadline_in(&ts, 30);
				r = pthread_cond_timedwait(&cv, &mu, &ts);
				WL_CHECK(r == 0 || r == ETIMEDOUT, "cond_timedwait: %s", strerror(r));
			}
		}
		stop = ring_stop;
		if (!stop) {
			WL_CHECK(ring_counter % NRING == (uint64_t)w->idx,
				 "thread %d got the token at counter %" PRIu64, w->idx, ring_counter);
			ring_counter++;
			ring_turn = (w->idx + 1) % NRING;
			mine = 1;
			pthread_cond_broadcast(&cv);
		}
		pthread_mutex_unlock(&mu);
		thread_verify(w, stk, 512);
		if (stop)
			break;
		if (mine)
			wl_sleep_ms(5);
	}
	return (void *)(uintptr_t)(0x100 + w->idx);
}

static void *sleeper(void *arg)
{
	struct worker *w = arg;
	volatile uint64_t stk[512];

	thread_setup(w, stk, 512);
	pthread_barrier_wait(&start_barrier);
	while (!__atomic_load_n(&sleeper_stop, __ATOMIC_ACQUIRE)) {
		thread_verify(w, stk, 512);
		wl_sleep_ms(100);
	}
	thread_verify(w, stk, 512);
	return (void *)(uintptr_t)(SLEEPER_RET ^ wl_nonce);
}

static void *joiner(void *arg)
{
	struct worker *w = arg;
	volatile uint64_t stk[512];
	void *ret = NULL;
	int r;

	thread_setup(w, stk, 512);
	pthread_barrier_wait(&start_barrier);
	thread_verify(w, stk, 512);
	r = pthread_join(workers[SLEEPER].self, &ret); /* blocked here for the whole run */
	WL_CHECK(r == 0, "pthread_join(sleeper): %s", strerror(r));
	WL_CHECK((uintptr_t)ret == (SLEEPER_RET ^ wl_nonce), "sleeper returned %p", ret);
	thread_verify(w, stk, 512);
	return (void *)(uintptr_t)(JOINER_RET ^ wl_nonce);
}

/* check_task_list checks that exactly the recorded threads exist. */
static void check_task_list(void)
{
	static char status[8192];
	char path[64], *p;
	struct stat st;
	long tasks;

	for (int i = 0; i <= NWORKERS; i++) {
		snprintf(path, sizeof path, "/proc/self/task/%d", (int)workers[i].tid);
		WL_CHECK(stat(path, &st) == 0, "thread %d (tid %d) is gone from /proc/self/task", i,
			 (int)workers[i].tid);
	}
	WL_CHECK(wl_read_file("/proc/self/status", status, sizeof status) > 0,
		 "read /proc/self/status: %s", strerror(errno));
	p = strstr(status, "\nThreads:");
	WL_CHECK(p != NULL, "no Threads: line in /proc/self/status");
	tasks = strtol(p + 9, NULL, 10);
	WL_CHECK(tasks == NWORKERS + 1, "%ld threads in the process, want %d", tasks, NWORKERS + 1);
}

static void join_timed(int idx, void **ret)
{
	struct timespec ts;
	int r;

	deadline_in(&ts, 20000);
	r = pthread_timedjoin_np(workers[idx].self, ret, &ts);
	WL_CHECK(r == 0, "thread %d did not finish: %s", idx, strerror(r));
}

int main(int argc, char **argv)
{
	struct worker *m = &workers[NWORKERS];
	volatile uint64_t stk[512];
	struct sigaction sa;
	void *ret;

	wl_init(argc, argv, "threads");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");

	m->idx = NWORKERS;
	thread_setup(m, stk, 512);
	pthread_barrier_init(&start_barrier, NULL, NWORKERS + 1);
	for (int i = 0; i < NWORKERS; i++) {
		void *(*fn)(void *) = i < NRING ? ring_worker : i == JOINER ? joiner : sleeper;

		workers[i].idx = i;
		WL_CHECK(pthread_create(&workers[i].self, NULL, fn, &workers[i]) == 0, "pthread_create");
	}
	pthread_barrier_wait(&start_barrier);
	{
		size_t off = 0;

		off += snprintf(tids_str + off, sizeof tids_str - off, "%d", (int)m->tid);
		for (int i = 0; i < NWORKERS; i++)
			off += snprintf(tids_str + off, sizeof tids_str - off, ",%d",
					(int)workers[i].tid);
	}
	wl_say("READY");
	for (;;) {
		uint64_t ring;
		char extra[64];

		thread_verify(m, stk, 512);
		check_task_list();
		if (wl_stop_requested())
			break;
		pthread_mutex_lock(&mu);
		ring = ring_counter;
		pthread_mutex_unlock(&mu);
		snprintf(extra, sizeof extra, "ring=%" PRIu64, ring);
		wl_print_tick(tids_str, extra);
		wl_sleep_ms(20);
	}

	/* The ring must still go round twice: a lost wakeup stalls it. */
	{
		uint64_t c0, c;
		int64_t until = wl_mono_ns() + 20000000000LL;
		int turn;

		pthread_mutex_lock(&mu);
		c0 = ring_counter;
		pthread_mutex_unlock(&mu);
		for (;;) {
			pthread_mutex_lock(&mu);
			c = ring_counter;
			turn = ring_turn;
			pthread_mutex_unlock(&mu);
			if (c >= c0 + 2 * NRING)
				break;
			WL_CHECK(wl_mono_ns() < until,
				 "token ring stalled at counter %" PRIu64 " waiting for thread %d "
				 "(lost wakeup?)",
				 c, turn);
			wl_sleep_ms(10);
		}
	}
	pthread_mutex_lock(&mu);
	ring_stop = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < NRING; i++) {
		join_timed(i, &ret);
		WL_CHECK((uintptr_t)ret == (uintptr_t)(0x100 + i), "ring thread %d returned %p", i, ret);
	}
	__atomic_store_n(&sleeper_stop, 1, __ATOMIC_RELEASE);
	join_timed(JOINER, &ret);
	WL_CHECK((uintptr_t)ret == (JOINER_RET ^ wl_nonce), "joiner returned %p", ret);
	thread_verify(m, stk, 512);
	wl_say("DONE ok");
	return 0;
}
