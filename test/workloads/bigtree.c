/*
 * bigtree.c: a deep and a wide process tree, 54 processes.
 *
 *   R (root, prints the ticks)
 *   ├─ D1 ─ D2 ─ ... ─ D12   a chain: each Dk is the only child of D(k-1)
 *   └─ W                     the wide parent
 *      ├─ W1
 *      ...
 *      └─ W40
 *
 * Every process ticks its own counter in one MAP_SHARED area and checks,
 * on every tick, its pid, its ppid (its parent's pid from the shared table),
 * its pgid and sid (R's), the shared nonce, that its counter holds what it
 * wrote, and, if it has children, that none has exited (waitpid WNOHANG).
 * R checks the pid table and that every counter advances, measured in its
 * own ticks (time stands still for the whole tree during a checkpoint). At
 * the end each process reaps its children (exit status 0) before it exits.
 */
#include "common.h"

#include <sys/mman.h>
#include <sys/wait.h>


#define DEPTH 12
#define WIDTH 40
#define IDX_D(k) (k)		  /* 1..DEPTH */
#define IDX_W (DEPTH + 1)	  /* the wide parent */
#define IDX_WK(k) (DEPTH + 1 + (k)) /* 1..WIDTH */
#define NPROC (DEPTH + 2 + WIDTH)

struct shared {
	uint64_t nonce;
	pid_t pid[NPROC];
	int parent[NPROC];
	volatile int ready[NPROC];
	volatile uint64_t ctr[NPROC];
	volatile int stop;
};

static struct shared *sh;
static int me;			/* my index */
static pid_t kids[WIDTH + 1];	/* my children */
static int nkids;
static pid_t table[NPROC];
static uint64_t my_ctr, seen_ctr[NPROC], seen_at_tick[NPROC];

static void become(int idx, int parent)
{
	char name[32];

	me = idx;
	wl_pid = (pid_t)syscall(SYS_getpid);
	sh->pid[idx] = wl_pid;
	sh->parent[idx] = parent;
	nkids = 0;
	if (idx == 0)
		snprintf(name, sizeof name, "wl-big-R");
	else if (idx <= DEPTH)
		snprintf(name, sizeof name, "wl-big-D%d", idx);
	else if (idx == IDX_W)
		snprintf(name, sizeof name, "wl-big-W");
	else
		snprintf(name, sizeof name, "wl-big-W%d", idx - IDX_W);
	snprintf(wl_role, sizeof wl_role, "bigtree %s", name + 7);
	prctl(PR_SET_NAME, name, 0, 0, 0);
}

static void wait_all_ready(void)
{
	int64_t until = wl_mono_ns() + 60000000000LL;

	for (;;) {
		int n = 0;

		for (int i = 0; i < NPROC; i++)
			n += sh->ready[i];
		if (n == NPROC)
			break;
		WL_CHECK(wl_mono_ns() < until, "only %d of %d processes started", n, NPROC);
		wl_sleep_ms(5);
	}
	for (int i = 0; i < NPROC; i++)
		table[i] = sh->pid[i];
}

static void verify(void)
{
	WL_CHECK(getpid() == wl_pid, "getpid() = %d, was %d", (int)getpid(), (int)wl_pid);
	if (me != 0)
		WL_CHECK(getppid() == table[sh->parent[me]], "getppid() = %d, want %d",
			 (int)getppid(), (int)table[sh->parent[me]]);
	WL_CHECK(getpgid(0) == table[0] && getsid(0) == table[0], "pgid %d sid %d, want %d",
		 (int)getpgid(0), (int)getsid(0), (int)table[0]);
	WL_CHECK(sh->nonce == wl_nonce, "shared nonce %#" PRIx64 ", mine %#" PRIx64, sh->nonce,
		 wl_nonce);
	WL_CHECK(sh->pid[me] == wl_pid, "my shared pid entry is %d", (int)sh->pid[me]);
	WL_CHECK(sh->ctr[me] == my_ctr, "my shared counter is %" PRIu64 ", I counted %" PRIu64,
		 sh->ctr[me], my_ctr);
	if (nkids > 0) {
		siginfo_t si;

		/* Look without reaping: children end on their own once stop is set. */
		memset(&si, 0, sizeof si);
		WL_CHECK(waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0, "waitid: %s",
			 strerror(errno));
		WL_CHECK(si.si_pid == 0 || sh->stop,
			 "child %d ended early (si_code %d si_status %d)", (int)si.si_pid, si.si_code,
			 si.si_status);
	}
}

static void reap_kids(void)
{
	for (int i = 0; i < nkids; i++) {
		int status;
		pid_t r;

		do
			r = waitpid(kids[i], &status, 0);
		while (r < 0 && errno == EINTR);
		WL_CHECK(r == kids[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "child %d: waitpid = %d, wait status %#x", (int)kids[i], (int)r, status);
	}
}

static void run_member(void)
{
	sh->ready[me] = 1;
	wait_all_ready();
	for (;;) {
		verify();
		if (sh->stop)
			break;
		sh->ctr[me] = ++my_ctr;
		wl_sleep_ms(20);
	}
	reap_kids();
	_exit(0);
}

/* spawn forks a child that becomes idx; returns in the parent only. */
static pid_t spawn(int idx, void (*body)(void))
{
	int parent = me;
	pid_t pid = fork();

	WL_CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		become(idx, parent);
		body();
		_exit(0);
	}
	kids[nkids++] = pid;
	return pid;
}

static void chain(void)
{
	if (me < DEPTH)
		spawn(me + 1, chain);
	run_member();
}

static void wide(void)
{
	for (int k = 1; k <= WIDTH; k++)
		spawn(IDX_WK(k), run_member);
	run_member();
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = wl_usr1_counter };

	wl_init(argc, argv, "bigtree R");
	wl_settle_root = wl_pid;
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(sh != MAP_FAILED, "mmap shared: %s", strerror(errno));
	sh->nonce = wl_nonce;
	become(0, 0);
	spawn(IDX_D(1), chain);
	spawn(IDX_W, wide);
	sigaction(SIGUSR1, &sa, NULL);
	sh->ready[0] = 1;
	wait_all_ready();
	verify();
	wl_say("READY");
	for (;;) {
		char extra[128];
		uint64_t sum = 0;

		verify();
		for (int i = 0; i < NPROC; i++) {
			uint64_t c = sh->ctr[i];

			WL_CHECK(sh->pid[i] == table[i], "pid table entry %d is %d, was %d", i,
				 (int)sh->pid[i], (int)table[i]);
			WL_CHECK(c >= seen_ctr[i], "counter of process %d went back from %" PRIu64
				 " to %" PRIu64, (int)table[i], seen_ctr[i], c);
			if (c != seen_ctr[i] || i == 0) {
				seen_ctr[i] = c;
				seen_at_tick[i] = wl_tick;
			}
			WL_CHECK(wl_tick - seen_at_tick[i] < 250,
				 "process %d (index %d) made no progress for 250 ticks", (int)table[i], i);
			sum += c;
		}
		sh->ctr[0] = ++my_ctr;
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra, "procs=%d ctr_sum=%" PRIu64, NPROC, sum);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}
	sh->stop = 1;
	reap_kids();
	{
		int status;

		WL_CHECK(waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD, "a child is left");
	}
	wl_say("DONE ok");
	return 0;
}
