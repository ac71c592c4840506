/*
 * deadleader.c: a live process whose main thread has exited.
 *
 *   R (root, prints the ticks)
 *   └─ C: its main thread (the thread-group leader, TID == PID) called
 *        pthread_exit() after starting threads T1 and T2, which go on. The
 *        leader shows as a zombie (State Z in /proc/C/status) while the
 *        process lives: it must not be taken for an exited process.
 *
 * T1 and T2 tick counters in shared memory and check, every tick, their
 * TID, getpid() == C and getppid() == R. R checks that both counters
 * advance (in its own ticks), that /proc/C shows a zombie leader and
 * exactly the tasks {C, T1, T2}. At the end T1 and T2 exit; the process
 * ends with the last of them, status 0, and R reaps it.
 */
#include "common.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>


struct shared {
	uint64_t nonce;
	pid_t r, c, tid[2];
	volatile int ready[2], stop;
	volatile uint64_t ctr[2];
};

static struct shared *sh;
static uint64_t seen[2], seen_at[2];

static void *worker(void *arg)
{
	int k = (int)(intptr_t)arg;
	pid_t tid = wl_gettid();
	uint64_t n = 0;

	sh->tid[k] = tid;
	sh->ready[k] = 1;
	for (;;) {
		WL_CHECK(wl_gettid() == tid, "T%d: gettid() = %d, was %d", k + 1, (int)wl_gettid(), (int)tid);
		WL_CHECK(getpid() == sh->c, "T%d: getpid() = %d, want %d", k + 1, (int)getpid(), (int)sh->c);
		WL_CHECK(getppid() == sh->r, "T%d: getppid() = %d, want %d", k + 1, (int)getppid(), (int)sh->r);
		WL_CHECK(sh->ctr[k] == n, "T%d: my counter is %" PRIu64 ", I counted %" PRIu64, k + 1,
			 sh->ctr[k], n);
		WL_CHECK(sh->nonce == wl_nonce, "T%d: shared nonce changed", k + 1);
		if (sh->stop)
			pthread_exit(NULL); /* the last one out ends the process with status 0 */
		sh->ctr[k] = ++n;
		wl_sleep_ms(20);
	}
}

static void check_c(void)
{
	char path[64], buf[4096], *p;
	pid_t want[3] = { sh->c, sh->tid[0], sh->tid[1] };
	int found[3] = { 0, 0, 0 }, n = 0;
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)sh->c);
	WL_CHECK(wl_read_file(path, buf, sizeof buf) > 0 && (p = strrchr(buf, ')')) != NULL,
		 "C (pid %d) is gone", (int)sh->c);
	WL_CHECK(p[2] == 'Z', "C's leader thread is in state %c, want Z (it called pthread_exit)", p[2]);
	snprintf(path, sizeof path, "/proc/%d/task", (int)sh->c);
	d = opendir(path);
	WL_CHECK(d != NULL, "open %s: %s", path, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		pid_t tid = (pid_t)atoi(e->d_name);

		if (tid <= 0)
			continue;
		n++;
		for (int i = 0; i < 3; i++)
			found[i] |= tid == want[i];
	}
	closedir(d);
	WL_CHECK(n == 3 && found[0] && found[1] && found[2],
		 "C has %d tasks, want exactly %d (dead leader), %d and %d", n, (int)want[0],
		 (int)want[1], (int)want[2]);
	for (int k = 0; k < 2; k++) {
		uint64_t c = sh->ctr[k];

		WL_CHECK(c >= seen[k], "T%d's counter went back", k + 1);
		if (c != seen[k]) {
			seen[k] = c;
			seen_at[k] = wl_tick;
		}
		WL_CHECK(wl_tick - seen_at[k] < 250, "T%d (tid %d) made no progress for 250 ticks", k + 1,
			 (int)sh->tid[k]);
	}
	{
		siginfo_t si;

		memset(&si, 0, sizeof si);
		WL_CHECK(waitid(P_PID, (id_t)sh->c, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0,
			 "C has exited (si_pid %d si_code %d si_status %d)", (int)si.si_pid, si.si_code,
			 si.si_status);
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = wl_usr1_counter };
	pid_t c;

	wl_init(argc, argv, "deadleader R");
	wl_settle_root = wl_pid;
	sigaction(SIGUSR1, &sa, NULL);
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(sh != MAP_FAILED, "mmap shared: %s", strerror(errno));
	sh->nonce = wl_nonce;
	sh->r = wl_pid;
	c = fork();
	WL_CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0) {
		pthread_t t;

		snprintf(wl_role, sizeof wl_role, "deadleader C");
		prctl(PR_SET_NAME, "wl-deadleader-C", 0, 0, 0);
		sh->c = getpid();
		for (int k = 0; k < 2; k++) {
			int err = pthread_create(&t, NULL, worker, (void *)(intptr_t)k);

			WL_CHECK(err == 0, "pthread_create: %s", strerror(err));
		}
		pthread_exit(NULL);
	}
	{
		int64_t until = wl_mono_ns() + 20000000000LL;
		char path[64], buf[4096], *p;

		for (;;) {
			snprintf(path, sizeof path, "/proc/%d/stat", (int)c);
			if (sh->ready[0] && sh->ready[1] && wl_read_file(path, buf, sizeof buf) > 0 &&
			    (p = strrchr(buf, ')')) && p[2] == 'Z')
				break;
			WL_CHECK(wl_mono_ns() < until, "C's leader did not exit");
			wl_sleep_ms(2);
		}
	}
	WL_CHECK(sh->c == c, "C's pid is %d, fork said %d", (int)sh->c, (int)c);
	check_c();
	wl_say("INFO c=%d t1=%d t2=%d", (int)c, (int)sh->tid[0], (int)sh->tid[1]);
	wl_say("READY");
	for (;;) {
		char extra[64];

		wl_check_pid();
		check_c();
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra, "c=%d ctr=%" PRIu64 ",%" PRIu64, (int)c, sh->ctr[0], sh->ctr[1]);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}
	sh->stop = 1;
	{
		int status;
		pid_t r;

		do
			r = waitpid(c, &status, 0);
		while (r < 0 && errno == EINTR);
		WL_CHECK(r == c && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "C ended with wait status %#x, want exit status 0", status);
	}
	wl_say("DONE ok");
	return 0;
}
