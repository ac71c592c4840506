/*
 * seccomp_notif.c: a seccomp filter that hands getcpu to a user-space
 * supervisor (SECCOMP_RET_USER_NOTIF), which seamless cannot carry: the
 * supervisor holds a descriptor of the filter itself. A checkpoint must be
 * refused, naming SECCOMP_RET_USER_NOTIF, and leave the process running
 * and untraced.
 *
 * The listener descriptor is closed at once, as if the supervisor had gone
 * away; the kernel then fails the notified calls with ENOSYS, which every
 * tick checks, with getpid still allowed.
 */
#include "common.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>

static struct sock_filter notif[] = {
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getcpu, 0, 1),
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

static void verify(void)
{
	unsigned cpu, node;
	long r;

	wl_check_pid();
	r = syscall(SYS_getcpu, &cpu, &node, NULL);
	WL_CHECK(r == -1 && errno == ENOSYS, "getcpu returned %ld (%s), want ENOSYS without a supervisor", r,
		 r == -1 ? strerror(errno) : "success");
}

int main(int argc, char **argv)
{
	struct sock_fprog fp = { sizeof notif / sizeof notif[0], notif };
	struct sigaction sa;
	int listener;

	wl_init(argc, argv, "seccomp_notif");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	WL_CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &fp);
	WL_CHECK(listener >= 0, "install the filter with a listener: %s", strerror(errno));
	close(listener);
	verify();
	wl_say("READY");
	for (;;) {
		verify();
		if (wl_stop_requested())
			break;
		wl_print_tick(NULL, NULL);
		wl_sleep_ms(20);
	}
	wl_say("DONE ok");
	return 0;
}
