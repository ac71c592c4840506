/*
 * seccomp_tsync.c: a seccomp filter that threads share because it was
 * installed with SECCOMP_FILTER_FLAG_TSYNC. Must be started as root.
 *
 * The main thread starts two threads; the second one sets no_new_privs and
 * installs F (getcpu -> errno 1111) with TSYNC: all three threads now have
 * one and the same filter. Every tick each thread checks that F acts
 * (getcpu fails with 1111) and that its status shows one filter. At the
 * end the main thread installs G (getcpu -> errno 2222) with TSYNC too,
 * which the kernel allows only while every other thread's filters are
 * ancestors of its own: threads with equal but separate copies of F would
 * make it fail, naming one of them. Then each thread must see G.
 */
#include "common.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>

#define LD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LD_ARCH BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define ARCH_X86_64 LD_ARCH, BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0), RET(SECCOMP_RET_ALLOW)
#define GETCPU_ERRNO(e) \
	LD_NR, BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getcpu, 0, 1), RET(SECCOMP_RET_ERRNO | (e)), RET(SECCOMP_RET_ALLOW)

static struct sock_filter f[] = { ARCH_X86_64, GETCPU_ERRNO(1111) };
static struct sock_filter g[] = { ARCH_X86_64, GETCPU_ERRNO(2222) };

/* 0: before F, 1: F for all, 2: threads pause, 3: G for all, 4: stop */
static volatile int phase;
static volatile int paused[3], seen[3];
static pid_t tids[3];

static void check(int k, int filters, int err)
{
	char path[64], status[4096], *p;
	unsigned cpu;

	errno = 0;
	WL_CHECK(syscall(SYS_getcpu, &cpu, NULL, NULL) == -1 && errno == err,
		 "thread %d: getcpu: %s, want errno %d", k, strerror(errno), err);
	snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tids[k]);
	WL_CHECK(wl_read_file(path, status, sizeof status) > 0, "read %s", path);
	p = strstr(status, "\nSeccomp_filters:");
	WL_CHECK(p && atoi(p + 17) == filters, "thread %d: Seccomp_filters %d, want %d", k, p ? atoi(p + 17) : -1,
		 filters);
}

static void install(struct sock_filter *prog, int n, const char *what)
{
	struct sock_fprog fp = { (unsigned short)n, prog };
	long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fp);

	WL_CHECK(r == 0, "install %s with TSYNC: %ld (%s; a positive value is a thread that does not share the filters)",
		 what, r, r < 0 ? strerror(errno) : "a thread id");
}

static void *thread_main(void *arg)
{
	int k = (int)(intptr_t)arg;

	tids[k] = wl_gettid();
	if (k == 2) {
		while (!tids[1])
			wl_sleep_ms(1);
		WL_CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS");
		install(f, sizeof f / sizeof f[0], "F");
		phase = 1;
	}
	for (int p; (p = phase) < 4;) {
		if (p == 1)
			check(k, 1, 1111);
		else if (p == 2)
			paused[k] = 1; /* no check runs while G goes on */
		else if (p == 3)
			check(k, 2, 2222), seen[k] = 1;
		wl_sleep_ms(10);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	pthread_t th[3];

	wl_init(argc, argv, "seccomp_tsync");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	tids[0] = wl_gettid();
	for (int k = 1; k < 3; k++)
		WL_CHECK(pthread_create(&th[k], NULL, thread_main, (void *)(intptr_t)k) == 0, "pthread_create");
	wl_wait_flag(&phase, "F installed with TSYNC");
	check(0, 1, 1111);
	wl_say("READY");
	for (;;) {
		check(0, 1, 1111);
		if (wl_stop_requested())
			break;
		wl_print_tick(NULL, NULL);
		wl_sleep_ms(20);
	}
	phase = 2;
	wl_wait_flag(&paused[1], "thread 1 pauses");
	wl_wait_flag(&paused[2], "thread 2 pauses");
	install(g, sizeof g / sizeof g[0], "G");
	phase = 3;
	check(0, 2, 2222);
	wl_wait_flag(&seen[1], "thread 1 sees G");
	wl_wait_flag(&seen[2], "thread 2 sees G");
	phase = 4;
	for (int k = 1; k < 3; k++)
		pthread_join(th[k], NULL);
	wl_say("DONE ok");
	return 0;
}
