/*
 * seccomp.c: stacked seccomp filters that differ from thread to thread, as
 * a systemd unit with MemoryDenyWriteExecute=, SystemCallFilter= and
 * friends would leave them. Must be started as root.
 *
 * The main thread, still with CAP_SYS_ADMIN and without no_new_privs,
 * installs
 *   F1: mmap and mprotect with PROT_WRITE|PROT_EXEC -> EPERM (like
 *       MemoryDenyWriteExecute=), getcpu -> errno 1111;
 * and starts thread "one" (chain F1), which drops CAP_SYS_ADMIN: it could
 * not install its filter any more. The main thread then sets
 * no_new_privs, installs
 *   F2 with SECCOMP_FILTER_FLAG_LOG: getcpu -> errno 1234, prlimit64 ->
 *       EPERM (like SystemCallFilter=~@resources with an errno);
 * and starts thread "three" (chain F1 F2), which adds one of its own:
 *   F3: getcpu -> errno 2345, seccomp -> EPERM.
 * When two filters return errors for one call, the newest wins: getcpu
 * tells each thread's chain and its order apart (main 1234, one 1111,
 * three 2345). Every ~20 ms each thread checks that its filters still act
 * (the exact errnos), that allowed calls still work (getpid, an RW mmap
 * that reaches the kernel, mprotect to RW, prlimit64 where F2 is absent,
 * SECCOMP_GET_ACTION_AVAIL where F3 is absent; none of them changes the
 * memory map, which the harness compares), and its own
 * /proc/self/task/TID/status: Seccomp 2, Seccomp_filters 2, 1 and 3,
 * NoNewPrivs 1, 0 and 1, CAP_SYS_ADMIN in CapEff but for "one". The
 * seamless checkpoint itself runs prlimit64 inside the process, which F2
 * refuses.
 */
#include "common.h"

#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/resource.h>

#define ERRNO_F1 1111
#define ERRNO_F2 1234
#define ERRNO_F3 2345

#define LD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LD_ARCH BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define ALLOW RET(SECCOMP_RET_ALLOW)
#define ERRNO(e) RET(SECCOMP_RET_ERRNO | (e))
/* The prefix of every filter: anything but x86-64 system calls is allowed. */
#define ARCH_X86_64 LD_ARCH, BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0), ALLOW
/* If the system call is nr, return ERRNO(e); else go on. */
#define DENY(nr, e) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), ERRNO(e)

static struct sock_filter f1[] = {
	ARCH_X86_64,
	LD_NR,
	DENY(__NR_getcpu, ERRNO_F1),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 1, 0),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mprotect, 0, 4),
	/* prot is argument 2 of both; its low 32 bits suffice. */
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
	BPF_STMT(BPF_ALU | BPF_AND | BPF_K, PROT_WRITE | PROT_EXEC),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROT_WRITE | PROT_EXEC, 0, 1),
	ERRNO(EPERM),
	ALLOW,
};

static struct sock_filter f2[] = {
	ARCH_X86_64,
	LD_NR,
	DENY(__NR_getcpu, ERRNO_F2),
	DENY(__NR_prlimit64, EPERM),
	ALLOW,
};

static struct sock_filter f3[] = {
	ARCH_X86_64,
	LD_NR,
	DENY(__NR_getcpu, ERRNO_F3),
	DENY(__NR_seccomp, EPERM),
	ALLOW,
};

/* What one thread's chain does, and the credentials it has. */
struct chain {
	const char *name;
	int filters;
	int getcpu_errno;
	int prlimit_errno; /* 0: prlimit64 works */
	int seccomp_errno; /* 0: SECCOMP_GET_ACTION_AVAIL works */
	int no_new_privs;
	int sys_admin; /* CAP_SYS_ADMIN is effective */
	pid_t tid;
	pthread_t self;
};

static struct chain chains[3] = {
	{ "main", 2, ERRNO_F2, EPERM, 0, 1, 1 },
	{ "one", 1, ERRNO_F1, 0, 0, 0, 0 },
	{ "three", 3, ERRNO_F3, EPERM, EPERM, 1, 1 },
};

static pthread_barrier_t started;
static volatile int stop_threads;
static long page;
static char *probe; /* an RW page for mmap and mprotect to try */

static void install(const char *what, struct sock_filter *prog, unsigned short len, unsigned flags)
{
	struct sock_fprog fp = { len, prog };

	WL_CHECK(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fp) == 0, "install %s: %s", what,
		 strerror(errno));
}

/* expect_errno checks that a system call that returned r failed with e. */
static void expect_errno(const struct chain *c, const char *call, long r, int e)
{
	WL_CHECK(r == -1 && errno == e, "thread %s: %s returned %ld (%s), want errno %d from its filters",
		 c->name, call, r, r == -1 ? strerror(errno) : "success", e);
}

static int status_int(const char *status, const char *key)
{
	const char *p = strstr(status, key);

	return p == NULL ? -1 : atoi(p + strlen(key));
}

/* verify checks, from inside the thread, what its chain does. */
static void verify(const struct chain *c)
{
	char path[64], status[4096];
	struct rlimit rl;
	unsigned action = SECCOMP_RET_LOG;
	unsigned cpu, node;
	const char *p;
	void *m;
	long r;

	WL_CHECK(wl_gettid() == c->tid, "thread %s: gettid() = %d, was %d", c->name, (int)wl_gettid(),
		 (int)c->tid);
	wl_check_pid();

	r = syscall(SYS_getcpu, &cpu, &node, NULL);
	expect_errno(c, "getcpu", r, c->getcpu_errno);

	/*
	 * The memory map must not change while the harness reads it: allowed
	 * calls are made so that they change nothing. An RW mmap over the probe
	 * page with MAP_FIXED_NOREPLACE passes the filters and is refused by
	 * the kernel (EEXIST), where F1 would say EPERM; mprotect sets the
	 * probe's protection to what it is.
	 */
	m = mmap(NULL, page, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m != MAP_FAILED)
		munmap(m, page);
	expect_errno(c, "mmap(PROT_WRITE|PROT_EXEC)", m == MAP_FAILED ? -1 : 0, EPERM);
	m = mmap(probe, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (m != MAP_FAILED && m != probe)
		munmap(m, page);
	expect_errno(c, "mmap(PROT_READ|PROT_WRITE, MAP_FIXED_NOREPLACE) over a mapping",
		     m == MAP_FAILED ? -1 : 0, EEXIST);
	expect_errno(c, "mprotect(PROT_WRITE|PROT_EXEC)",
		     mprotect(probe, page, PROT_READ | PROT_WRITE | PROT_EXEC), EPERM);
	WL_CHECK(mprotect(probe, page, PROT_READ | PROT_WRITE) == 0, "thread %s: mprotect(PROT_READ|PROT_WRITE): %s",
		 c->name, strerror(errno));
	((volatile char *)probe)[c - chains] = (char)c->filters;
	WL_CHECK(((volatile char *)probe)[c - chains] == c->filters, "thread %s: probe page", c->name);

	r = syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl);
	if (c->prlimit_errno)
		expect_errno(c, "prlimit64", r, c->prlimit_errno);
	else
		WL_CHECK(r == 0, "thread %s: prlimit64: %s", c->name, strerror(errno));
	r = syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action);
	if (c->seccomp_errno)
		expect_errno(c, "seccomp(SECCOMP_GET_ACTION_AVAIL)", r, c->seccomp_errno);
	else
		WL_CHECK(r == 0, "thread %s: seccomp(SECCOMP_GET_ACTION_AVAIL): %s", c->name,
			 strerror(errno));

	snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)c->tid);
	WL_CHECK(wl_read_file(path, status, sizeof status) > 0, "thread %s: read %s: %s", c->name, path,
		 strerror(errno));
	WL_CHECK(status_int(status, "\nSeccomp:") == SECCOMP_MODE_FILTER, "thread %s: Seccomp: %d, want 2",
		 c->name, status_int(status, "\nSeccomp:"));
	WL_CHECK(status_int(status, "\nSeccomp_filters:") == c->filters,
		 "thread %s: Seccomp_filters: %d, want %d", c->name,
		 status_int(status, "\nSeccomp_filters:"), c->filters);
	WL_CHECK(status_int(status, "\nNoNewPrivs:") == c->no_new_privs, "thread %s: NoNewPrivs: %d, want %d",
		 c->name, status_int(status, "\nNoNewPrivs:"), c->no_new_privs);
	p = strstr(status, "\nCapEff:");
	WL_CHECK(p != NULL, "thread %s: no CapEff in %s", c->name, path);
	WL_CHECK((strtoull(p + 8, NULL, 16) >> CAP_SYS_ADMIN & 1) == (unsigned long long)c->sys_admin,
		 "thread %s: CapEff %.16s, want CAP_SYS_ADMIN %s", c->name, p + 9, c->sys_admin ? "in it" : "out");
}

/* drop_sys_admin removes CAP_SYS_ADMIN from the calling thread's
 * effective and permitted sets (capset acts on one thread). */
static void drop_sys_admin(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	WL_CHECK(syscall(SYS_capget, &hdr, d) == 0, "capget: %s", strerror(errno));
	d[0].effective &= ~(1u << CAP_SYS_ADMIN);
	d[0].permitted &= ~(1u << CAP_SYS_ADMIN);
	WL_CHECK(syscall(SYS_capset, &hdr, d) == 0, "capset: %s", strerror(errno));
}

static void *thread_main(void *arg)
{
	struct chain *c = arg;

	c->tid = wl_gettid();
	if (c == &chains[1])
		drop_sys_admin();
	if (c == &chains[2])
		install("F3", f3, sizeof f3 / sizeof f3[0], 0);
	verify(c);
	pthread_barrier_wait(&started);
	while (!__atomic_load_n(&stop_threads, __ATOMIC_ACQUIRE)) {
		wl_sleep_ms(20);
		verify(c);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	char tids[64];

	wl_init(argc, argv, "seccomp");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	page = sysconf(_SC_PAGESIZE);
	probe = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(probe != MAP_FAILED, "mmap: %s", strerror(errno));
	pthread_barrier_init(&started, NULL, 3);
	chains[0].tid = wl_gettid();

	/* With CAP_SYS_ADMIN, no_new_privs is not needed to install a filter. */
	install("F1", f1, sizeof f1 / sizeof f1[0], 0);
	WL_CHECK(pthread_create(&chains[1].self, NULL, thread_main, &chains[1]) == 0, "pthread_create");
	WL_CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	install("F2", f2, sizeof f2 / sizeof f2[0], SECCOMP_FILTER_FLAG_LOG);
	WL_CHECK(pthread_create(&chains[2].self, NULL, thread_main, &chains[2]) == 0, "pthread_create");
	pthread_barrier_wait(&started);
	verify(&chains[0]);
	snprintf(tids, sizeof tids, "%d,%d,%d", (int)chains[0].tid, (int)chains[1].tid, (int)chains[2].tid);
	wl_say("INFO filters main=2 one=1 three=3");
	wl_say("READY");
	for (;;) {
		verify(&chains[0]);
		if (wl_stop_requested())
			break;
		wl_print_tick(tids, "filters=2,1,3");
		wl_sleep_ms(20);
	}
	__atomic_store_n(&stop_threads, 1, __ATOMIC_RELEASE);
	for (int i = 1; i < 3; i++)
		WL_CHECK(pthread_join(chains[i].self, NULL) == 0, "pthread_join");
	verify(&chains[0]);
	wl_say("DONE ok");
	return 0;
}
