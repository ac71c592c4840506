/*
 * stopped.c: stopped processes (job control) must stay stopped.
 *
 *   R  (root, prints the ticks; counts the SIGCHLDs it gets)
 *   ├─ S1 (two threads) stopped by SIGSTOP; R has waited for the stop
 *   │     (waitpid WUNTRACED), so no stop is left to report
 *   ├─ S2 stopped by SIGTSTP in a process group of its own; R never waited
 *   │     for it: waitid(WSTOPPED) still reports the stop, with SIGTSTP
 *   └─ J1, J2: a job (process group J1) stopped by SIGTTIN sent to the group;
 *        its stops are not waited for either
 *
 * While stopped, each got a SIGUSR2 (it stays pending: a stopped process
 * runs no handler). Every tick R checks that every thread of each is in
 * state T, what waitid(WSTOPPED|WNOWAIT) reports for each (nothing for S1,
 * CLD_STOPPED with the signal for the others), that none of them moved (its
 * SIGUSR2 handler did not run), and that no SIGCHLD arrived since the
 * stops. At the end R continues them (SIGCONT): each must then run its
 * SIGUSR2 handler exactly once and exit 0.
 */
#include "common.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>

enum { S1, S2, J1, J2, N };
static const char *names[N] = { "S1", "S2", "J1", "J2" };
static const int stopsig[N] = { SIGSTOP, SIGTSTP, SIGTTIN, SIGTTIN };
static const int waited[N] = { 1, 0, 0, 0 };

struct shared {
	volatile int usr2[N]; /* SIGUSR2 handlers run */
	volatile int ready[N];
	volatile int alive[N]; /* ticks of each child, while it runs */
};

static struct shared *sh;
static pid_t kids[N];
static volatile sig_atomic_t sigchld;
static int me = -1;

static void on_usr2(int sig)
{
	(void)sig;
	sh->usr2[me]++;
}

static void on_chld(int sig)
{
	(void)sig;
	sigchld++;
}

static void *second_thread(void *p)
{
	(void)p;
	for (;;) {
		sh->alive[me]++;
		wl_sleep_ms(5);
	}
	return NULL;
}

/* child is the life of one stopped process: ready, stopped, then after
 * SIGCONT it checks that its SIGUSR2 arrived exactly once and exits. */
static void child(int k, pid_t pgid)
{
	struct sigaction sa = { .sa_handler = on_usr2 };

	me = k;
	snprintf(wl_role, sizeof wl_role, "stopped %s", names[k]);
	wl_pid = (pid_t)syscall(SYS_getpid);
	wl_settle_root = getppid();
	prctl(PR_SET_NAME, names[k], 0, 0, 0);
	sigaction(SIGUSR2, &sa, NULL);
	signal(SIGTSTP, SIG_DFL);
	signal(SIGTTIN, SIG_DFL);
	if (pgid >= 0)
		WL_CHECK(setpgid(0, pgid) == 0, "setpgid: %s", strerror(errno));
	if (k == S1) {
		pthread_t t;

		WL_CHECK(pthread_create(&t, NULL, second_thread, NULL) == 0, "pthread_create");
	}
	sh->ready[k] = 1;
	for (;;) {
		if (sh->usr2[k]) /* continued */
			break;
		sh->alive[k]++;
		wl_sleep_ms(5);
	}
	/* Let a second SIGUSR2, if one is wrongly queued, arrive. */
	wl_sleep_ms(100);
	WL_CHECK(sh->usr2[k] == 1, "the SIGUSR2 queued while stopped ran %d times", sh->usr2[k]);
	_exit(0);
}

static char state_of(pid_t pid, pid_t tid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	if (wl_read_file(path, buf, sizeof buf) <= 0)
		return '?';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

/* all_stopped reports whether every thread of pid is in state T. */
static int all_stopped(pid_t pid, char *what, size_t size)
{
	char path[64];
	int fd, ok = 1;
	char buf[4096];
	long n;

	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	WL_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
		for (long off = 0; off < n;) {
			struct {
				uint64_t ino;
				int64_t off;
				unsigned short reclen;
				unsigned char type;
				char name[];
			} *d = (void *)(buf + off);
			pid_t tid = atoi(d->name);

			if (tid > 0 && state_of(pid, tid) != 'T') {
				snprintf(what, size, "thread %d is in state %c", (int)tid, state_of(pid, tid));
				ok = 0;
			}
			off += d->reclen;
		}
	}
	close(fd);
	return ok;
}

static int seen_alive[N];
static sig_atomic_t sigchld_at_stop;

static void verify(void)
{
	wl_check_pid();
	WL_CHECK(sigchld == sigchld_at_stop, "%d SIGCHLDs arrived since the children stopped",
		 (int)(sigchld - sigchld_at_stop));
	for (int k = 0; k < N; k++) {
		siginfo_t si;
		char what[128] = "";

		WL_CHECK(all_stopped(kids[k], what, sizeof what), "%s (pid %d) is not stopped: %s", names[k],
			 (int)kids[k], what);
		WL_CHECK(sh->alive[k] == seen_alive[k], "%s (pid %d) ran while it should be stopped", names[k],
			 (int)kids[k]);
		WL_CHECK(sh->usr2[k] == 0, "%s ran its SIGUSR2 handler while stopped", names[k]);
		memset(&si, 0, sizeof si);
		WL_CHECK(waitid(P_PID, (id_t)kids[k], &si, WSTOPPED | WNOHANG | WNOWAIT) == 0, "waitid %s: %s",
			 names[k], strerror(errno));
		if (waited[k])
			WL_CHECK(si.si_pid == 0, "%s: a stop is reported again (si_code %d, signal %d) after it was waited for",
				 names[k], si.si_code, si.si_status);
		else
			WL_CHECK(si.si_pid == kids[k] && si.si_code == CLD_STOPPED && si.si_status == stopsig[k],
				 "%s: waitid reports pid %d si_code %d signal %d, want its stop by signal %d",
				 names[k], (int)si.si_pid, si.si_code, si.si_status, stopsig[k]);
		WL_CHECK(getpgid(kids[k]) == (k == S1 ? wl_pid : k == S2 ? kids[S2] : kids[J1]),
			 "%s is in process group %d", names[k], (int)getpgid(kids[k]));
	}
}

static void wait_stopped(int k)
{
	int64_t until = wl_mono_ns() + 20000000000LL;
	char what[128];

	while (!all_stopped(kids[k], what, sizeof what)) {
		WL_CHECK(wl_mono_ns() < until, "%s did not stop: %s", names[k], what);
		wl_sleep_ms(2);
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	int status;

	wl_init(argc, argv, "stopped R");
	wl_settle_root = wl_pid;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	sa.sa_handler = on_chld;
	WL_CHECK(sigaction(SIGCHLD, &sa, NULL) == 0, "sigaction");
	WL_CHECK(getpgid(0) == wl_pid && getsid(0) == wl_pid, "run it in a session of its own");
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(sh != MAP_FAILED, "mmap: %s", strerror(errno));
	for (int k = 0; k < N; k++) {
		pid_t pgid = k == S1 ? -1 : k == J2 ? kids[J1] : 0;

		kids[k] = fork();
		WL_CHECK(kids[k] >= 0, "fork: %s", strerror(errno));
		if (kids[k] == 0)
			child(k, pgid);
		if (pgid >= 0)
			setpgid(kids[k], pgid == 0 ? kids[k] : pgid); /* from both sides */
		wl_wait_flag(&sh->ready[k], names[k]);
	}
	WL_CHECK(kill(kids[S1], SIGSTOP) == 0, "kill S1: %s", strerror(errno));
	WL_CHECK(kill(kids[S2], SIGTSTP) == 0, "kill S2: %s", strerror(errno));
	WL_CHECK(kill(-kids[J1], SIGTTIN) == 0, "kill the job: %s", strerror(errno));
	for (int k = 0; k < N; k++)
		wait_stopped(k);
	WL_CHECK(waitpid(kids[S1], &status, WUNTRACED) == kids[S1] && WIFSTOPPED(status) &&
			 WSTOPSIG(status) == SIGSTOP,
		 "waitpid S1: status %#x", status);
	for (int k = 0; k < N; k++)
		WL_CHECK(kill(kids[k], SIGUSR2) == 0, "kill SIGUSR2: %s", strerror(errno));
	wl_sleep_ms(50);
	for (int k = 0; k < N; k++)
		seen_alive[k] = sh->alive[k];
	sigchld_at_stop = sigchld;
	verify();
	wl_say("INFO s1=%d s2=%d j1=%d j2=%d", (int)kids[S1], (int)kids[S2], (int)kids[J1], (int)kids[J2]);
	wl_say("READY");
	for (;;) {
		verify();
		if (wl_stop_requested())
			break;
		wl_print_tick(NULL, NULL);
		wl_sleep_ms(20);
	}
	for (int k = 0; k < N; k++)
		WL_CHECK(kill(kids[k], SIGCONT) == 0, "SIGCONT %s: %s", names[k], strerror(errno));
	for (int k = 0; k < N; k++) {
		pid_t r;

		do
			r = waitpid(kids[k], &status, 0);
		while (r < 0 && errno == EINTR);
		WL_CHECK(r == kids[k] && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "%s ended with status %#x", names[k], status);
	}
	wl_say("DONE ok");
	return 0;
}
