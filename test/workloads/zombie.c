/*
 * zombie.c: zombies, a child subreaper and an orphaned process group.
 *
 *   R  (root: PR_SET_CHILD_SUBREAPER, prints the ticks)
 *   ├─ Z1 (zombie: exited with status 7 after joining L's group, below)
 *   ├─ Z2 (zombie: killed by SIGTERM, leader of a group of its own)
 *   ├─ Z3 (zombie: exited with status 3 in the group of L2, which exited
 *   │      and was reaped: a group of zombies only, without its leader)
 *   ├─ G  (grandchild: its parent I exited and was reaped, so the kernel
 *   │      reparented G to R, the nearest child subreaper)
 *   ├─ M1 ┐ members of the process group of L, a child of R that exited
 *   └─ M2 ┘ (and was reaped): pgid == L's pid, which no process has; both
 *           were reparented to R when L exited
 *
 * Every tick R checks, without reaping (waitid WNOWAIT), that Z1, Z2 and Z3
 * are still zombies with their exact status and process groups, and that G,
 * M1 and M2 are alive;
 * that it is still a child subreaper; that M1 and M2 are in group L and that
 * L itself is gone. G, M1 and M2 check their own pid, ppid (R), pgid and sid
 * and tick a counter in shared memory (R checks that each one advances).
 * At the end R reaps G, M1 and M2 (status 0), then Z1 (exit status 7), Z2
 * (SIGTERM, no core) and Z3 (exit status 3), by pid, and checks that
 * nothing else is left.
 */
#include "common.h"

#include <sys/mman.h>
#include <sys/wait.h>


enum { K_G, K_M1, K_M2, NLIVE };
static const char *live_names[NLIVE] = { "G", "M1", "M2" };

struct shared {
	uint64_t nonce;
	pid_t r, z1, z2, z3, i, l;
	pid_t live[NLIVE];
	volatile int ready[NLIVE];
	volatile uint64_t ctr[NLIVE];
	volatile int stop;
};

static struct shared *sh;

/* What the root recorded, in its private memory. */
static pid_t z1, z2, z3, lpid, l2pid, live[NLIVE];
static uint64_t seen_ctr[NLIVE], seen_at_tick[NLIVE];

static void set_name(const char *role)
{
	char name[16];

	snprintf(wl_role, sizeof wl_role, "zombie %s", role);
	snprintf(name, sizeof name, "wl-zombie-%s", role);
	prctl(PR_SET_NAME, name, 0, 0, 0);
	wl_pid = (pid_t)syscall(SYS_getpid);
}

static void wait_until(volatile int *flag, const char *what)
{
	int64_t until = wl_mono_ns() + 20000000000LL;

	while (!*flag) {
		WL_CHECK(wl_mono_ns() < until, "%s did not happen", what);
		wl_sleep_ms(2);
	}
}

/* run_live is the life of G, M1 and M2: tick a counter, check ids, exit 0 on stop. */
static void run_live(int k, pid_t want_pgid)
{
	pid_t ppid, pgid, sid;
	uint64_t n = 0;
	int64_t until = wl_mono_ns() + 20000000000LL;

	/* The intermediate parent exits once we are ready: wait for the reparenting. */
	sh->live[k] = getpid();
	sh->ready[k] = 1;
	while (getppid() != sh->r) {
		WL_CHECK(wl_mono_ns() < until, "not reparented to the subreaper %d (ppid %d)",
			 (int)sh->r, (int)getppid());
		wl_sleep_ms(2);
	}
	ppid = getppid();
	pgid = getpgid(0);
	sid = getsid(0);
	WL_CHECK(pgid == want_pgid, "pgid %d, want %d", (int)pgid, (int)want_pgid);
	WL_CHECK(sid == sh->r, "sid %d, want the root's %d", (int)sid, (int)sh->r);
	for (;;) {
		WL_CHECK(getpid() == wl_pid, "getpid() = %d, was %d", (int)getpid(), (int)wl_pid);
		WL_CHECK(getppid() == ppid, "getppid() = %d, was %d (the subreaper)", (int)getppid(),
			 (int)ppid);
		WL_CHECK(getpgid(0) == pgid, "getpgid() = %d, was %d", (int)getpgid(0), (int)pgid);
		WL_CHECK(getsid(0) == sid, "getsid() = %d, was %d", (int)getsid(0), (int)sid);
		WL_CHECK(sh->nonce == wl_nonce, "shared nonce %#" PRIx64 ", mine %#" PRIx64, sh->nonce,
			 wl_nonce);
		WL_CHECK(sh->ctr[k] == n, "my shared counter is %" PRIu64 ", I counted %" PRIu64,
			 sh->ctr[k], n);
		if (sh->stop)
			_exit(0);
		sh->ctr[k] = ++n;
		wl_sleep_ms(20);
	}
}

/* zombie_status reads a child's state without reaping it (si_pid 0: still running). */
static siginfo_t zombie_status(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof si);
	for (;;) {
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0)
			return si;
		WL_CHECK(errno == EINTR, "waitid(%d, WNOWAIT): %s", (int)pid, strerror(errno));
	}
}

static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (wl_read_file(path, buf, sizeof buf) <= 0)
		return '?';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

static void check_zombie(pid_t pid, const char *name, int code, int status)
{
	siginfo_t si = zombie_status(pid);
	char st = proc_state(pid);

	WL_CHECK(si.si_pid == pid, "%s (pid %d) is not a zombie any more: waitid WNOWAIT si_pid %d, /proc state %c",
		 name, (int)pid, (int)si.si_pid, st);
	WL_CHECK(si.si_code == code && si.si_status == status,
		 "%s (pid %d): waitid si_code %d si_status %d, want %d %d", name, (int)pid, si.si_code,
		 si.si_status, code, status);
	WL_CHECK(st == 'Z', "%s (pid %d): /proc state %c, want Z", name, (int)pid, st);
}

static void verify_root(void)
{
	int flag = -1;

	wl_check_pid();
	WL_CHECK(prctl(PR_GET_CHILD_SUBREAPER, &flag, 0, 0, 0) == 0 && flag == 1,
		 "PR_GET_CHILD_SUBREAPER = %d, want 1", flag);
	WL_CHECK(getpgid(0) == wl_pid && getsid(0) == wl_pid,
		 "root pgid %d sid %d, want %d (run it with setsid)", (int)getpgid(0), (int)getsid(0),
		 (int)wl_pid);
	WL_CHECK(sh->nonce == wl_nonce, "shared nonce %#" PRIx64 ", mine %#" PRIx64, sh->nonce, wl_nonce);
	check_zombie(z1, "Z1", CLD_EXITED, 7);
	check_zombie(z2, "Z2", CLD_KILLED, SIGTERM);
	check_zombie(z3, "Z3", CLD_EXITED, 3);
	/* Zombies keep their process groups. */
	WL_CHECK(getpgid(z1) == lpid, "Z1 is in group %d, want L's %d", (int)getpgid(z1), (int)lpid);
	WL_CHECK(getpgid(z2) == z2, "Z2 is in group %d, want its own %d", (int)getpgid(z2), (int)z2);
	WL_CHECK(getpgid(z3) == l2pid, "Z3 is in group %d, want L2's %d", (int)getpgid(z3), (int)l2pid);
	WL_CHECK(kill(l2pid, 0) < 0 && errno == ESRCH, "L2 (pid %d) exists again (kill 0: %s)",
		 (int)l2pid, strerror(errno));
	for (int k = 0; k < NLIVE; k++) {
		siginfo_t si = zombie_status(live[k]);
		pid_t ppid = -1;
		char path[64], buf[512], *p;

		WL_CHECK(si.si_pid == 0, "%s (pid %d) ended early: si_code %d si_status %d",
			 live_names[k], (int)live[k], si.si_code, si.si_status);
		WL_CHECK(sh->live[k] == live[k], "shared pid of %s is %d, was %d", live_names[k],
			 (int)sh->live[k], (int)live[k]);
		snprintf(path, sizeof path, "/proc/%d/stat", (int)live[k]);
		WL_CHECK(wl_read_file(path, buf, sizeof buf) > 0 && (p = strrchr(buf, ')')) != NULL &&
				 sscanf(p + 2, "%*c %d", &ppid) == 1,
			 "read %s", path);
		WL_CHECK(ppid == wl_pid, "%s (pid %d) has parent %d, want the subreaper %d",
			 live_names[k], (int)live[k], (int)ppid, (int)wl_pid);
	}
	/* The group of L lives on without its leader. */
	WL_CHECK(getpgid(live[K_M1]) == lpid && getpgid(live[K_M2]) == lpid,
		 "M1 and M2 are in groups %d and %d, want L's %d", (int)getpgid(live[K_M1]),
		 (int)getpgid(live[K_M2]), (int)lpid);
	WL_CHECK(getpgid(live[K_G]) == wl_pid, "G is in group %d, want %d", (int)getpgid(live[K_G]),
		 (int)wl_pid);
	WL_CHECK(kill(lpid, 0) < 0 && errno == ESRCH,
		 "the group leader L (pid %d) exists again (kill 0: %s)", (int)lpid,
		 strerror(errno));
	WL_CHECK(kill(-lpid, 0) == 0, "process group %d is gone: %s", (int)lpid, strerror(errno));
	/* Counters must advance, measured in our own ticks (time stops at checkpoint). */
	for (int k = 0; k < NLIVE; k++) {
		uint64_t c = sh->ctr[k];

		WL_CHECK(c >= seen_ctr[k], "counter of %s went back from %" PRIu64 " to %" PRIu64,
			 live_names[k], seen_ctr[k], c);
		if (c != seen_ctr[k]) {
			seen_ctr[k] = c;
			seen_at_tick[k] = wl_tick;
		}
		WL_CHECK(wl_tick - seen_at_tick[k] < 250, "%s (pid %d) made no progress for 250 ticks",
			 live_names[k], (int)live[k]);
	}
}

static void reap(pid_t pid, const char *name, int want_exited, int want)
{
	int status;
	pid_t r;

	do
		r = waitpid(pid, &status, 0);
	while (r < 0 && errno == EINTR);
	WL_CHECK(r == pid, "waitpid(%s %d) = %d: %s", name, (int)pid, (int)r, strerror(errno));
	if (want_exited)
		WL_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == want,
			 "%s (pid %d): wait status %#x, want exit status %d", name, (int)pid, status, want);
	else
		WL_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == want && !WCOREDUMP(status),
			 "%s (pid %d): wait status %#x, want killed by signal %d", name, (int)pid, status,
			 want);
}

int main(int argc, char **argv)
{
	pid_t i;
	struct sigaction sa = { .sa_handler = wl_usr1_counter };

	wl_init(argc, argv, "zombie R");
	wl_settle_root = wl_pid;
	set_name("R");
	sigaction(SIGUSR1, &sa, NULL);
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(sh != MAP_FAILED, "mmap shared: %s", strerror(errno));
	sh->nonce = wl_nonce;
	sh->r = wl_pid;
	WL_CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0, "PR_SET_CHILD_SUBREAPER: %s",
		 strerror(errno));

	/* Z2: killed by SIGTERM, the leader of a group of its own. */
	z2 = fork();
	WL_CHECK(z2 >= 0, "fork Z2: %s", strerror(errno));
	if (z2 == 0) {
		signal(SIGTERM, SIG_DFL);
		setpgid(0, 0);
		for (;;)
			pause();
	}
	WL_CHECK(setpgid(z2, z2) == 0 || errno == EACCES, "setpgid Z2: %s", strerror(errno));
	WL_CHECK(kill(z2, SIGTERM) == 0, "kill Z2: %s", strerror(errno));
	/* L2 leads a group, forks Z3 into it (exit status 3), waits until Z3 is
	 * a zombie and exits: Z3 is reparented to us, alone in L2's group. */
	l2pid = fork();
	WL_CHECK(l2pid >= 0, "fork L2: %s", strerror(errno));
	if (l2pid == 0) {
		set_name("L2");
		WL_CHECK(setpgid(0, 0) == 0, "setpgid: %s", strerror(errno));
		pid_t z = fork();

		WL_CHECK(z >= 0, "fork Z3: %s", strerror(errno));
		if (z == 0)
			_exit(3);
		sh->z3 = z;
		while (zombie_status(z).si_pid != z)
			wl_sleep_ms(2);
		_exit(0);
	}
	setpgid(l2pid, l2pid); /* from both sides, whichever runs first */
	reap(l2pid, "L2", 1, 0);
	z3 = sh->z3;

	/* I forks G and exits: G is reparented to us. */
	i = fork();
	WL_CHECK(i >= 0, "fork I: %s", strerror(errno));
	if (i == 0) {
		pid_t g = fork();

		WL_CHECK(g >= 0, "fork G: %s", strerror(errno));
		if (g == 0) {
			set_name("G");
			run_live(K_G, sh->r);
		}
		set_name("I");
		wait_until(&sh->ready[K_G], "G ready");
		_exit(0);
	}
	/* L leads a new group, forks M1 and M2 into it and exits. */
	lpid = fork();
	WL_CHECK(lpid >= 0, "fork L: %s", strerror(errno));
	if (lpid == 0) {
		pid_t me = getpid();

		set_name("L");
		WL_CHECK(setpgid(0, 0) == 0, "setpgid: %s", strerror(errno));
		for (int k = K_M1; k <= K_M2; k++) {
			pid_t m = fork();

			WL_CHECK(m >= 0, "fork %s: %s", live_names[k], strerror(errno));
			if (m == 0) {
				set_name(live_names[k]);
				run_live(k, me);
			}
			wait_until(&sh->ready[k], "M ready");
		}
		_exit(0);
	}
	setpgid(lpid, lpid); /* from both sides, whichever runs first */
	reap(i, "I", 1, 0);
	reap(lpid, "L", 1, 0);
	/* Z1: joins the group of L (which lives on in M1 and M2) and exits with
	 * status 7. */
	z1 = fork();
	WL_CHECK(z1 >= 0, "fork Z1: %s", strerror(errno));
	if (z1 == 0) {
		if (setpgid(0, lpid) != 0)
			_exit(100);
		_exit(7);
	}
	for (int k = 0; k < NLIVE; k++) {
		wait_until(&sh->ready[k], live_names[k]);
		live[k] = sh->live[k];
	}
	/* Until the zombies are zombies and the orphans are ours. */
	{
		int64_t until = wl_mono_ns() + 20000000000LL;

		for (;;) {
			int done = zombie_status(z1).si_pid == z1 && zombie_status(z2).si_pid == z2 &&
				   zombie_status(z3).si_pid == z3;

			for (int k = 0; k < NLIVE; k++) {
				char path[64], buf[512], *p;
				int ppid = -1;

				snprintf(path, sizeof path, "/proc/%d/stat", (int)live[k]);
				if (wl_read_file(path, buf, sizeof buf) > 0 && (p = strrchr(buf, ')')))
					sscanf(p + 2, "%*c %d", &ppid);
				done = done && ppid == wl_pid;
			}
			if (done)
				break;
			WL_CHECK(wl_mono_ns() < until, "zombies and orphans did not settle");
			wl_sleep_ms(2);
		}
	}
	verify_root();
	wl_say("INFO z1=%d z2=%d z3=%d g=%d m1=%d m2=%d lost_leaders=%d,%d", (int)z1, (int)z2, (int)z3,
	       (int)live[K_G], (int)live[K_M1], (int)live[K_M2], (int)lpid, (int)l2pid);
	wl_say("READY");
	for (;;) {
		char extra[256];

		verify_root();
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra, "zombies=%d,%d,%d live=%d,%d,%d pgrps_without_leader=%d,%d",
			 (int)z1, (int)z2, (int)z3, (int)live[K_G], (int)live[K_M1], (int)live[K_M2],
			 (int)lpid, (int)l2pid);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}
	sh->stop = 1;
	for (int k = 0; k < NLIVE; k++)
		reap(live[k], live_names[k], 1, 0);
	reap(z1, "Z1", 1, 7);
	reap(z2, "Z2", 0, SIGTERM);
	reap(z3, "Z3", 1, 3);
	{
		int status;
		pid_t r = waitpid(-1, &status, WNOHANG);

		WL_CHECK(r < 0 && errno == ECHILD, "an unknown child is left: waitpid = %d", (int)r);
	}
	wl_say("DONE ok");
	return 0;
}
