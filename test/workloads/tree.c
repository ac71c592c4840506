/*
 * tree.c: a process tree of four single-threaded processes.
 *
 *   P  (root, prints the ticks; polls its children with waitpid(WNOHANG))
 *   ├─ A  (same process group as P; blocked in wait4() on A1 the whole run)
 *   │  └─ A1 (grandchild; setsid(): leader of its own session and group)
 *   └─ B  (setpgid(): leader of its own process group; writes to the shared file)
 *
 * - All four map one MAP_SHARED|MAP_ANONYMOUS area made before the forks:
 *   the nonce, the table of PIDs, a counter per process, ping/pong words
 *   (P pings B and A1, which echo: a process that lost the sharing never
 *   answers) and the stop flag (children stop when P sets it: they never
 *   look at the stop file).
 * - fd 30 is one open file description (opened before the forks, no
 *   O_APPEND): B writes 16-byte records through it and publishes how many
 *   bytes it wrote; P and A1 check that their own offset of fd 30 moves with
 *   B's writes (a per-process copy of the file description would not move).
 * - Every process checks its pid, ppid (P excepted: its parent is outside
 *   the tree), pgid and sid on every tick, P checks
 *   that no child has exited, and at the end P checks that every child
 *   exited with status 0 (A checks A1's status the same way).
 */
#include "common.h"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

enum { R_P, R_A, R_B, R_A1, NROLES };
static const char *role_names[NROLES] = { "P", "A", "B", "A1" };

#define SHARED_FD 30
#define REC 16

struct shared {
	uint64_t nonce;
	pid_t pid[NROLES];
	volatile int ready[NROLES];
	volatile uint64_t ctr[NROLES];
	volatile uint64_t ping[NROLES], pong[NROLES];
	volatile int stop;
	volatile uint64_t b_bytes;
};

static struct shared *sh;

/* What this process recorded about itself and the tree, in private memory. */
static int role;
static pid_t my_pid, my_ppid, my_pgid, my_sid;
static pid_t table[NROLES];
static uint64_t my_ctr, seen_ctr[NROLES], seen_pong[NROLES];

static void become(int r)
{
	role = r;
	snprintf(wl_role, sizeof wl_role, "tree %s", role_names[r]);
	wl_pid = (pid_t)syscall(SYS_getpid);
	sh->pid[r] = wl_pid;
	{
		char name[16];

		snprintf(name, sizeof name, "wl-tree-%s", role_names[r]);
		prctl(PR_SET_NAME, name, 0, 0, 0);
	}
}

/* record_self notes pid, ppid, pgid and sid once the tree is complete. */
static void record_self(void)
{
	my_pid = getpid();
	my_ppid = getppid();
	my_pgid = getpgid(0);
	my_sid = getsid(0);
}

static void wait_all_ready(void)
{
	int64_t until = wl_mono_ns() + 20000000000LL;

	for (;;) {
		int n = 0;

		for (int r = 0; r < NROLES; r++)
			n += sh->ready[r];
		if (n == NROLES)
			break;
		WL_CHECK(wl_mono_ns() < until, "tree did not start");
		wl_sleep_ms(2);
	}
	for (int r = 0; r < NROLES; r++)
		table[r] = sh->pid[r];
}

static void check_offset(void)
{
	uint64_t before = sh->b_bytes;
	off_t off = lseek(SHARED_FD, 0, SEEK_CUR);
	uint64_t after = sh->b_bytes;

	WL_CHECK(off >= 0 && (uint64_t)off >= before && (uint64_t)off <= after + REC,
		 "offset of the shared file description is %lld but B wrote %" PRIu64
		 "..%" PRIu64 " bytes through it (the file description is no longer shared)",
		 (long long)off, before, after);
}

static void verify(void)
{
	WL_CHECK(getpid() == my_pid, "getpid() = %d, was %d", (int)getpid(), (int)my_pid);
	/* P's parent is outside the tree: a restore may change it (the harness checks it). */
	if (role != R_P)
		WL_CHECK(getppid() == my_ppid, "getppid() = %d, was %d", (int)getppid(), (int)my_ppid);
	WL_CHECK(getpgid(0) == my_pgid, "getpgid() = %d, was %d", (int)getpgid(0), (int)my_pgid);
	WL_CHECK(getsid(0) == my_sid, "getsid() = %d, was %d", (int)getsid(0), (int)my_sid);
	WL_CHECK(sh->nonce == wl_nonce, "shared memory nonce %#" PRIx64 ", mine %#" PRIx64,
		 sh->nonce, wl_nonce);
	for (int r = 0; r < NROLES; r++) {
		uint64_t c = sh->ctr[r];

		WL_CHECK(sh->pid[r] == table[r], "shared pid table entry %s is %d, was %d",
			 role_names[r], (int)sh->pid[r], (int)table[r]);
		WL_CHECK(c >= seen_ctr[r], "counter of %s went back from %" PRIu64 " to %" PRIu64,
			 role_names[r], seen_ctr[r], c);
		seen_ctr[r] = c;
	}
	WL_CHECK(sh->ctr[role] == my_ctr, "my shared counter is %" PRIu64 ", I counted %" PRIu64,
		 sh->ctr[role], my_ctr);
	switch (role) {
	case R_P:
		WL_CHECK(my_pid == table[R_P] && my_sid == my_pid && my_pgid == my_pid,
			 "P must be session and group leader (run it with setsid)");
		break;
	case R_A:
		WL_CHECK(my_ppid == table[R_P] && my_pgid == getpgid(table[R_P]) &&
				 my_sid == table[R_P],
			 "A: ppid %d pgid %d sid %d", (int)my_ppid, (int)my_pgid, (int)my_sid);
		break;
	case R_B:
		WL_CHECK(my_ppid == table[R_P] && my_pgid == my_pid && my_sid == table[R_P],
			 "B: ppid %d pgid %d sid %d", (int)my_ppid, (int)my_pgid, (int)my_sid);
		break;
	case R_A1:
		WL_CHECK(my_ppid == table[R_A] && my_pgid == my_pid && my_sid == my_pid,
			 "A1: ppid %d pgid %d sid %d", (int)my_ppid, (int)my_pgid, (int)my_sid);
		break;
	}
}

/* tick_child is one tick of B or A1. */
static void tick_child(void)
{
	my_ctr++;
	sh->ctr[role] = my_ctr;
	sh->pong[role] = sh->ping[role];
	if (role == R_B) {
		char rec[REC + 1];
		uint64_t seq = sh->b_bytes / REC;

		snprintf(rec, sizeof rec, "B %013" PRIu64 "\n", seq % (uint64_t)10000000000000ULL);
		wl_write_all(SHARED_FD, rec, REC, "shared file");
		sh->b_bytes += REC;
	} else {
		check_offset();
	}
}

static void run_child(void)
{
	for (;;) {
		verify();
		if (sh->stop)
			break;
		tick_child();
		wl_sleep_ms(20);
	}
	verify();
	_exit(0);
}

static void check_exit(pid_t pid, int status, const char *who)
{
	WL_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "%s (pid %d) ended with %s %d", who, (int)pid,
		 WIFEXITED(status) ? "exit status" : "signal",
		 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

static void run_a(void)
{
	pid_t a1 = fork();
	int status;
	struct rusage ru;
	pid_t r;

	WL_CHECK(a1 >= 0, "fork A1: %s", strerror(errno));
	if (a1 == 0) {
		become(R_A1);
		WL_CHECK(setsid() == getpid(), "setsid: %s", strerror(errno));
		record_self();
		sh->ready[R_A1] = 1;
		wait_all_ready();
		run_child();
	}
	become(R_A);
	record_self();
	sh->ready[R_A] = 1;
	wait_all_ready();
	verify();
	do
		r = wait4(a1, &status, 0, &ru); /* blocked here for the whole run */
	while (r < 0 && errno == EINTR);
	WL_CHECK(r == a1, "wait4(A1 %d) returned %d: %s", (int)a1, (int)r, strerror(errno));
	check_exit(a1, status, "A1");
	WL_CHECK(sh->stop, "A1 exited before the stop request");
	verify();
	_exit(0);
}

int main(int argc, char **argv)
{
	pid_t a, b;

	wl_init(argc, argv, "tree P");
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(sh != MAP_FAILED, "mmap shared: %s", strerror(errno));
	sh->nonce = wl_nonce;
	{
		int fd = open("shared.log", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		WL_CHECK(fd >= 0 && dup2(fd, SHARED_FD) == SHARED_FD, "open shared.log: %s",
			 strerror(errno));
		close(fd);
	}
	become(R_P);

	a = fork();
	WL_CHECK(a >= 0, "fork A: %s", strerror(errno));
	if (a == 0)
		run_a();
	b = fork();
	WL_CHECK(b >= 0, "fork B: %s", strerror(errno));
	if (b == 0) {
		become(R_B);
		WL_CHECK(setpgid(0, 0) == 0, "setpgid: %s", strerror(errno));
		record_self();
		sh->ready[R_B] = 1;
		wait_all_ready();
		run_child();
	}
	/* Also from the parent, so that B's group exists whichever runs first. */
	if (setpgid(b, b) != 0)
		WL_CHECK(errno == EACCES || errno == ESRCH, "setpgid(B): %s", strerror(errno));
	record_self();
	sh->ready[R_P] = 1;
	wait_all_ready();
	verify();

	wl_say("READY");
	for (;;) {
		char tree[128], extra[256];
		int status;
		pid_t r;

		verify();
		check_offset();
		r = waitpid(-1, &status, WNOHANG);
		WL_CHECK(r == 0, "waitpid(WNOHANG) = %d (%s): a child ended early", (int)r,
			 r < 0 ? strerror(errno) : "exited");
		for (int c = R_A; c < NROLES; c++)
			WL_CHECK(sh->pong[c] <= sh->ping[c] && sh->pong[c] >= seen_pong[c],
				 "%s echoed ping %" PRIu64 " (sent %" PRIu64 ", seen %" PRIu64 ")",
				 role_names[c], sh->pong[c], sh->ping[c], seen_pong[c]);
		for (int c = R_A; c < NROLES; c++)
			seen_pong[c] = sh->pong[c];
		my_ctr++;
		sh->ctr[R_P] = my_ctr;
		sh->ping[R_B] = sh->ping[R_A1] = wl_tick + 1;
		if (wl_stop_requested())
			break;
		snprintf(tree, sizeof tree, "%d,%d,%d,%d", (int)table[R_P], (int)table[R_A],
			 (int)table[R_B], (int)table[R_A1]);
		snprintf(extra, sizeof extra,
			 "tree=%s ctr=%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 " b_bytes=%" PRIu64,
			 tree, sh->ctr[0], sh->ctr[1], sh->ctr[2], sh->ctr[3], sh->b_bytes);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}

	/* B and A1 must still answer through the shared memory. */
	{
		uint64_t magic = wl_nonce | 1;
		int64_t until = wl_mono_ns() + 20000000000LL;

		sh->ping[R_B] = sh->ping[R_A1] = magic;
		while (sh->pong[R_B] != magic || sh->pong[R_A1] != magic) {
			WL_CHECK(wl_mono_ns() < until,
				 "no echo through shared memory from %s (B %#" PRIx64 ", A1 %#" PRIx64 ")",
				 sh->pong[R_B] != magic ? "B" : "A1", sh->pong[R_B], sh->pong[R_A1]);
			wl_sleep_ms(5);
		}
	}
	sh->stop = 1;
	{
		int64_t until = wl_mono_ns() + 20000000000LL;
		int left = 2;

		while (left > 0) {
			int status;
			pid_t r = waitpid(-1, &status, WNOHANG);

			WL_CHECK(r >= 0, "waitpid: %s", strerror(errno));
			if (r == 0) {
				WL_CHECK(wl_mono_ns() < until, "children did not exit after the stop");
				wl_sleep_ms(5);
				continue;
			}
			WL_CHECK(r == a || r == b, "waitpid returned unknown child %d", (int)r);
			check_exit(r, status, r == a ? "A" : "B");
			left--;
		}
	}
	{
		char rec[REC + 1] = { 0 }, want[REC + 1];
		off_t off = lseek(SHARED_FD, 0, SEEK_CUR);

		WL_CHECK(off >= REC && (uint64_t)off == sh->b_bytes,
			 "shared file offset %lld after B exited, B wrote %" PRIu64, (long long)off,
			 sh->b_bytes);
		WL_CHECK(pread(SHARED_FD, rec, REC, off - REC) == REC, "pread shared.log");
		snprintf(want, sizeof want, "B %013" PRIu64 "\n",
			 (sh->b_bytes / REC - 1) % (uint64_t)10000000000000ULL);
		WL_CHECK(strcmp(rec, want) == 0, "last record in shared.log is %.15s, want %.15s", rec,
			 want);
	}
	verify();
	wl_say("DONE ok");
	return 0;
}
