/*
 * attrs.c: process and thread attributes that the kernel keeps for a task
 * and that no descriptor or memory shows. Must be started as root.
 *
 *   R  (root, prints the ticks): five threads
 *   │    main   nice 2, PR_SET_PDEATHSIG SIGTERM (its parent is the harness)
 *   │    batch  SCHED_BATCH nice 7, CPU affinity {0}, ioprio best-effort 6,
 *   │           timer slack 123456 ns
 *   │    idle   SCHED_IDLE, ioprio idle, timer slack 1 ms
 *   │    fifo   SCHED_FIFO priority 2 with SCHED_RESET_ON_FORK
 *   │    forker forks C and then only checks itself: C's parent thread
 *   └─ C  (child of R, created by R's thread "forker"): two threads
 *        main   PR_SET_PDEATHSIG SIGHUP, nice -3
 *        second PR_SET_PDEATHSIG SIGWINCH, SCHED_BATCH
 *
 * Process-wide, in R: oom_score_adj 400, loginuid 4321 (set once: a new
 * audit session), PR_SET_THP_DISABLE, membarrier registrations (private
 * expedited, its sync-core variant, global expedited), PR_SET_MDWE; in C:
 * oom_score_adj 200; the loginuid, audit session (the number changes when a
 * restore sets the loginuid again: C checks that it shares R's), THP and MDWE settings and the
 * membarrier registrations inherited from R.
 *
 * Every thread checks its own attributes on every tick (sched_getscheduler,
 * sched_getparam, getpriority, sched_getaffinity, ioprio_get,
 * PR_GET_TIMERSLACK, PR_GET_PDEATHSIG); R checks the process-wide ones
 * (including that MEMBARRIER_CMD_PRIVATE_EXPEDITED still works, which fails
 * with EPERM once the registration is lost) and C checks its own and that
 * its loginuid and sessionid are R's. C ticks a counter in shared memory;
 * R checks that it advances. C exits when R sets its stop flag; R checks
 * its exit status before its own threads end (the exit of C's parent thread
 * would send C its parent-death signal).
 */
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_GET_MDWE 66
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif
#ifndef MEMBARRIER_CMD_GET_REGISTRATIONS
#define MEMBARRIER_CMD_GET_REGISTRATIONS (1 << 9)
#endif
#define IOPRIO_WHO_PROCESS 1
#define IOPRIO_CLASS_BE 2
#define IOPRIO_CLASS_IDLE 3
#define IOPRIO(class, data) (((class) << 13) | (data))

/* The attributes one thread must keep. */
struct want {
	const char *name;
	int policy; /* as sched_getscheduler reports it, SCHED_RESET_ON_FORK included */
	int prio;
	int nice;
	int cpu; /* the only CPU it may run on, or -1 for all of them */
	int ioprio;
	unsigned long slack;
	int pdeathsig;
};

struct shared {
	volatile uint64_t ctr;
	volatile int ready;
	volatile int stop, stop_c;
	pid_t c;
};

static struct shared *sh;
static int ncpus;
static const uint32_t mb_want = MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED |
				MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE |
				MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED;

static int ioprio_get_self(void)
{
	return (int)syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0);
}

/* apply gives the calling thread the attributes of w. */
static void apply(const struct want *w)
{
	struct sched_param sp = { .sched_priority = w->prio };

	prctl(PR_SET_NAME, w->name, 0, 0, 0);
	WL_CHECK(setpriority(PRIO_PROCESS, wl_gettid(), w->nice) == 0, "%s: setpriority %d: %s",
		 w->name, w->nice, strerror(errno));
	WL_CHECK(sched_setscheduler(0, w->policy, &sp) == 0, "%s: sched_setscheduler %#x: %s",
		 w->name, w->policy, strerror(errno));
	if (w->cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(w->cpu, &set);
		WL_CHECK(sched_setaffinity(0, sizeof set, &set) == 0, "%s: sched_setaffinity: %s",
			 w->name, strerror(errno));
	}
	WL_CHECK(syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, w->ioprio) == 0,
		 "%s: ioprio_set: %s", w->name, strerror(errno));
	WL_CHECK(prctl(PR_SET_TIMERSLACK, w->slack, 0, 0, 0) == 0, "%s: PR_SET_TIMERSLACK", w->name);
	if (w->pdeathsig)
		WL_CHECK(prctl(PR_SET_PDEATHSIG, w->pdeathsig, 0, 0, 0) == 0,
			 "%s: PR_SET_PDEATHSIG: %s", w->name, strerror(errno));
}

/* check verifies, from inside the calling thread, that it still has w. */
static void check(const struct want *w)
{
	struct sched_param sp;
	cpu_set_t set;
	int pol, nice, sig = -1;

	pol = sched_getscheduler(0);
	WL_CHECK(pol == w->policy, "%s: scheduling policy %#x, want %#x", w->name, pol, w->policy);
	WL_CHECK(sched_getparam(0, &sp) == 0 && sp.sched_priority == w->prio,
		 "%s: scheduling priority %d, want %d", w->name, sp.sched_priority, w->prio);
	errno = 0;
	nice = getpriority(PRIO_PROCESS, wl_gettid());
	WL_CHECK(errno == 0 && nice == w->nice, "%s: nice %d, want %d", w->name, nice, w->nice);
	WL_CHECK(sched_getaffinity(0, sizeof set, &set) == 0, "%s: sched_getaffinity", w->name);
	if (w->cpu >= 0)
		WL_CHECK(CPU_COUNT(&set) == 1 && CPU_ISSET(w->cpu, &set),
			 "%s: runs on %d CPUs, want CPU %d only", w->name, CPU_COUNT(&set), w->cpu);
	else
		WL_CHECK(CPU_COUNT(&set) == ncpus, "%s: may run on %d CPUs, want all %d", w->name,
			 CPU_COUNT(&set), ncpus);
	WL_CHECK(ioprio_get_self() == w->ioprio, "%s: ioprio %#x, want %#x", w->name,
		 ioprio_get_self(), w->ioprio);
	WL_CHECK((unsigned long)prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0) == w->slack,
		 "%s: timer slack %d ns, want %lu", w->name, prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0),
		 w->slack);
	WL_CHECK(prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0) == 0 && sig == w->pdeathsig,
		 "%s: parent death signal %d, want %d", w->name, sig, w->pdeathsig);
}

static void proc_string(const char *file, char *out, size_t size)
{
	char path[64];

	snprintf(path, sizeof path, "/proc/self/%s", file);
	WL_CHECK(wl_read_file(path, out, size) > 0, "read %s: %s", path, strerror(errno));
	out[strcspn(out, "\n")] = 0;
}

static void write_proc(const char *file, const char *value)
{
	char path[64];
	int fd;

	snprintf(path, sizeof path, "/proc/self/%s", file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	WL_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	WL_CHECK(write(fd, value, strlen(value)) == (ssize_t)strlen(value), "write %s to %s: %s",
		 value, path, strerror(errno));
	close(fd);
}

/* check_identity compares this process's audit identity with R's: a
 * restore keeps which processes share an audit session, not its number. */
static void check_identity(pid_t r)
{
	char v[32], rv[32], path[64];

	proc_string("loginuid", v, sizeof v);
	WL_CHECK(strcmp(v, "4321") == 0, "loginuid %s, want R's 4321", v);
	proc_string("sessionid", v, sizeof v);
	snprintf(path, sizeof path, "/proc/%d/sessionid", (int)r);
	WL_CHECK(wl_read_file(path, rv, sizeof rv) > 0, "read %s: %s", path, strerror(errno));
	rv[strcspn(rv, "\n")] = 0;
	WL_CHECK(strcmp(v, rv) == 0, "audit session %s, R's is %s", v, rv);
}

/* check_root verifies R's process-wide attributes. */
static void check_root(void)
{
	char v[32];
	long regs;

	proc_string("oom_score_adj", v, sizeof v);
	WL_CHECK(strcmp(v, "400") == 0, "oom_score_adj %s, want 400", v);
	proc_string("loginuid", v, sizeof v);
	WL_CHECK(strcmp(v, "4321") == 0, "loginuid %s, want 4321", v);
	proc_string("sessionid", v, sizeof v);
	WL_CHECK(strcmp(v, "4294967295") != 0, "no audit session although the loginuid is set");
	WL_CHECK(prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1, "PR_GET_THP_DISABLE %d, want 1",
		 prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0));
	WL_CHECK(prctl(PR_GET_MDWE, 0, 0, 0, 0) == PR_MDWE_REFUSE_EXEC_GAIN, "PR_GET_MDWE %d, want %d",
		 prctl(PR_GET_MDWE, 0, 0, 0, 0), PR_MDWE_REFUSE_EXEC_GAIN);
	regs = syscall(SYS_membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0);
	WL_CHECK(regs >= 0 && ((uint32_t)regs & mb_want) == mb_want,
		 "membarrier registrations %#lx, want %#x", regs, mb_want);
	WL_CHECK(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0,
		 "membarrier private expedited: %s", strerror(errno));
	WL_CHECK(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) == 0,
		 "membarrier private expedited sync core: %s", strerror(errno));
}

/* Thread bodies: apply, then check every tick until the stop flag. */
struct thread_arg {
	const struct want *w;
	volatile int applied;
	volatile int *stop;
};

static void *thread_main(void *p)
{
	struct thread_arg *a = p;

	apply(a->w);
	check(a->w);
	a->applied = 1;
	while (!*a->stop) {
		check(a->w);
		wl_sleep_ms(20);
	}
	check(a->w);
	return NULL;
}

static const struct want c_main = { "wl-attrs-C", SCHED_OTHER, 0, -3, -1, IOPRIO(IOPRIO_CLASS_BE, 4),
				    50000, SIGHUP };
static const struct want c_second = { "wl-attrs-C2", SCHED_BATCH, 0, 0, -1,
				      IOPRIO(IOPRIO_CLASS_BE, 4), 50000, SIGWINCH };

static void run_child(pid_t r)
{
	pthread_t t;
	struct thread_arg a = { &c_second, 0, &sh->stop_c };

	snprintf(wl_role, sizeof wl_role, "attrs C");
	wl_pid = (pid_t)syscall(SYS_getpid);
	wl_settle_root = r;
	write_proc("oom_score_adj", "200");
	apply(&c_main);
	WL_CHECK(pthread_create(&t, NULL, thread_main, &a) == 0, "pthread_create");
	wl_wait_flag(&a.applied, "C's second thread setting its attributes");
	while (!sh->stop_c) {
		char v[32];

		check(&c_main);
		WL_CHECK(getppid() == r, "parent %d, want R %d", (int)getppid(), (int)r);
		proc_string("oom_score_adj", v, sizeof v);
		WL_CHECK(strcmp(v, "200") == 0, "oom_score_adj %s, want 200", v);
		check_identity(r);
		WL_CHECK(prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1, "PR_GET_THP_DISABLE %d, want 1 (inherited)",
			 prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0));
		WL_CHECK(prctl(PR_GET_MDWE, 0, 0, 0, 0) == PR_MDWE_REFUSE_EXEC_GAIN,
			 "PR_GET_MDWE %d, want %d (inherited)", prctl(PR_GET_MDWE, 0, 0, 0, 0),
			 PR_MDWE_REFUSE_EXEC_GAIN);
		WL_CHECK(syscall(SYS_membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0) == mb_want,
			 "membarrier registrations %#lx, want %#x (a fork inherits them)",
			 syscall(SYS_membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0), mb_want);
		WL_CHECK(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0,
			 "membarrier private expedited: %s", strerror(errno));
		sh->ready = 1;
		sh->ctr++;
		wl_sleep_ms(20);
	}
	pthread_join(t, NULL);
	_exit(0);
}

static const struct want r_main = { "wl-attrs", SCHED_OTHER, 0, 2, -1, IOPRIO(IOPRIO_CLASS_BE, 4), 50000,
				    SIGTERM };
static struct want r_threads[] = {
	{ "wl-attrs-batch", SCHED_BATCH, 0, 7, 0, IOPRIO(IOPRIO_CLASS_BE, 6), 123456, 0 },
	{ "wl-attrs-idle", SCHED_IDLE, 0, 0, -1, IOPRIO(IOPRIO_CLASS_IDLE, 0), 1000000, 0 },
	/* Real-time threads have no timer slack. */
	{ "wl-attrs-fifo", SCHED_FIFO | SCHED_RESET_ON_FORK, 2, 0, -1, IOPRIO(IOPRIO_CLASS_BE, 4), 0,
	  0 },
};
static const struct want r_forker = { "wl-attrs-fork", SCHED_OTHER, 0, 0, -1,
				      IOPRIO(IOPRIO_CLASS_BE, 4), 50000, 0 };

/* forker forks C from a thread other than the main one. */
static void *forker(void *p)
{
	struct thread_arg *a = p;
	pid_t r = wl_pid, c;

	apply(a->w);
	c = fork();
	WL_CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0)
		run_child(r);
	sh->c = c;
	a->applied = 1;
	while (!sh->stop) {
		check(a->w);
		wl_sleep_ms(20);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	pthread_t th[4];
	struct thread_arg args[4];
	uint64_t seen = 0, seen_at = 0;
	char tids[256];
	int status;

	wl_init(argc, argv, "attrs R");
	WL_CHECK(geteuid() == 0, "attrs must be started as root");
	ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpus < 2)
		r_threads[0].cpu = -1; /* one CPU: nothing to pin to */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(sh != MAP_FAILED, "mmap: %s", strerror(errno));

	write_proc("oom_score_adj", "400");
	write_proc("loginuid", "4321");
	WL_CHECK(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0, "PR_SET_THP_DISABLE: %s", strerror(errno));
	WL_CHECK(prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) == 0, "PR_SET_MDWE: %s",
		 strerror(errno));
	WL_CHECK(syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0,
		 "membarrier register private expedited: %s", strerror(errno));
	WL_CHECK(syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) == 0,
		 "membarrier register sync core: %s", strerror(errno));
	WL_CHECK(syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0,
		 "membarrier register global expedited: %s", strerror(errno));
	apply(&r_main);

	for (int i = 0; i < 3; i++) {
		args[i] = (struct thread_arg){ &r_threads[i], 0, &sh->stop };
		WL_CHECK(pthread_create(&th[i], NULL, thread_main, &args[i]) == 0, "pthread_create");
	}
	args[3] = (struct thread_arg){ &r_forker, 0, &sh->stop };
	WL_CHECK(pthread_create(&th[3], NULL, forker, &args[3]) == 0, "pthread_create");
	for (int i = 0; i < 4; i++)
		wl_wait_flag(&args[i].applied, args[i].w->name);
	wl_wait_flag(&sh->ready, "C ready");
	wl_say("READY");
	for (;;) {
		int stop;

		check(&r_main);
		check_root();
		WL_CHECK(waitpid(sh->c, &status, WNOHANG) == 0, "C exited (status %#x)", status);
		if (sh->ctr != seen) {
			seen = sh->ctr;
			seen_at = wl_tick;
		}
		WL_CHECK(wl_tick - seen_at < 500, "C's counter stopped at %" PRIu64, seen);
		stop = wl_stop_requested();
		if (stop)
			break;
		snprintf(tids, sizeof tids, "c=%d", (int)sh->c);
		wl_print_tick(NULL, tids);
		wl_sleep_ms(20);
	}
	/* C first: its parent thread's exit would send it its parent-death signal. */
	sh->stop_c = 1;
	WL_CHECK(waitpid(sh->c, &status, 0) == sh->c && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "C ended with status %#x", status);
	sh->stop = 1;
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	check(&r_main);
	check_root();
	wl_say("DONE ok");
	return 0;
}
