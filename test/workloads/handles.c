/*
 * handles.c: descriptors that are handles on kernel objects rather than
 * open files (run as root).
 *
 *   P (root) ── K (child: counts SIGUSR2, otherwise pauses)
 *
 * - namespace files: /proc/self/ns/{net,uts,mnt,pid_for_children,user}
 *   stay open, name the namespaces the process is in, and setns() into its
 *   own UTS namespace through one of them works;
 * - O_PATH descriptors: of a symlink itself (O_NOFOLLOW), of a file, of
 *   the directory (openat through it), of a symlink and of a file that
 *   were deleted since (readlinkat and a read through /proc/self/fd);
 * - pidfds: of K (each tick pidfd_send_signal(SIGUSR2) reaches K; not
 *   readable while K lives; at the end SIGTERM through it, poll until K
 *   is gone, waitid(P_PIDFD)) and of P itself with PIDFD_NONBLOCK.
 */
#include "common.h"

#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static const char *ns_names[] = { "net", "uts", "mnt", "pid_for_children", "user" };
#define NNS 5
static int ns_fd[NNS];
static int path_link, path_file, path_dir, path_dlink, path_dfile;
static int pid_k, pid_self;
static pid_t k;
static volatile uint64_t *k_usr2;

static void on_usr2(int sig)
{
	(void)sig;
	(*k_usr2)++;
}

static void run_k(void)
{
	struct sigaction sa;

	snprintf(wl_role, sizeof wl_role, "handles K");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr2;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR2, &sa, NULL) == 0, "sigaction");
	k_usr2[1] = 1;
	for (;;)
		pause();
}

static void check_type(int fd, mode_t type, int nlink0, const char *what)
{
	struct stat st;

	WL_CHECK(fstatat(fd, "", &st, AT_EMPTY_PATH) == 0, "fstatat %s: %s", what, strerror(errno));
	WL_CHECK((st.st_mode & S_IFMT) == type, "%s is of type %#o, want %#o", what, st.st_mode & S_IFMT, type);
	WL_CHECK(!nlink0 || st.st_nlink == 0, "%s has %d links, want 0", what, (int)st.st_nlink);
	WL_CHECK(fcntl(fd, F_GETFL) & O_PATH, "%s is not an O_PATH descriptor", what);
}

static void verify(void)
{
	char a[256], b[256], path[64];
	ssize_t n;

	for (int i = 0; i < NNS; i++) {
		snprintf(path, sizeof path, "/proc/self/fd/%d", ns_fd[i]);
		n = readlink(path, a, sizeof a - 1);
		a[n > 0 ? n : 0] = 0;
		snprintf(path, sizeof path, "/proc/self/ns/%s", ns_names[i]);
		n = readlink(path, b, sizeof b - 1);
		b[n > 0 ? n : 0] = 0;
		WL_CHECK(strcmp(a, b) == 0, "namespace fd %d is %s, the process is in %s", ns_fd[i], a, b);
	}
	WL_CHECK(setns(ns_fd[1], CLONE_NEWUTS) == 0, "setns through the UTS namespace fd: %s", strerror(errno));

	check_type(path_link, S_IFLNK, 0, "O_PATH symlink");
	n = readlinkat(path_link, "", a, sizeof a - 1);
	WL_CHECK(n == 11 && memcmp(a, "target-file", 11) == 0, "the O_PATH symlink points elsewhere");
	check_type(path_file, S_IFREG, 0, "O_PATH file");
	check_type(path_dir, S_IFDIR, 0, "O_PATH directory");
	{
		int fd = openat(path_dir, "target-file", O_RDONLY | O_CLOEXEC);

		WL_CHECK(fd >= 0 && read(fd, a, 6) == 6 && memcmp(a, "target", 6) == 0,
			 "openat through the O_PATH directory: %s", strerror(errno));
		close(fd);
	}
	check_type(path_dlink, S_IFLNK, 1, "O_PATH deleted symlink");
	n = readlinkat(path_dlink, "", a, sizeof a - 1);
	WL_CHECK(n == 11 && memcmp(a, "gone-target", 11) == 0, "the deleted O_PATH symlink points elsewhere");
	check_type(path_dfile, S_IFREG, 1, "O_PATH deleted file");
	snprintf(path, sizeof path, "/proc/self/fd/%d", path_dfile);
	n = wl_read_file(path, a, sizeof a);
	WL_CHECK(n == 3 && memcmp(a, "abc", 3) == 0, "the deleted O_PATH file reads %zd bytes", n);

	{
		uint64_t before = *k_usr2;
		int64_t until = wl_mono_ns() + 10000000000LL;
		struct pollfd pfd = { .fd = pid_k, .events = POLLIN };

		WL_CHECK(syscall(SYS_pidfd_send_signal, pid_k, SIGUSR2, NULL, 0) == 0, "pidfd_send_signal: %s",
			 strerror(errno));
		while (*k_usr2 == before) {
			WL_CHECK(wl_mono_ns() < until, "SIGUSR2 sent through the pidfd did not reach K");
			wl_sleep_ms(1);
		}
		WL_CHECK(poll(&pfd, 1, 0) == 0, "the pidfd of K is readable while K lives");
		WL_CHECK(fcntl(pid_self, F_GETFL) & O_NONBLOCK, "the PIDFD_NONBLOCK pidfd is blocking");
		WL_CHECK(syscall(SYS_pidfd_send_signal, pid_self, 0, NULL, 0) == 0, "the pidfd of P: %s", strerror(errno));
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	wl_init(argc, argv, "handles P");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	k_usr2 = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(k_usr2 != MAP_FAILED, "mmap: %s", strerror(errno));

	for (int i = 0; i < NNS; i++) {
		char path[64];

		snprintf(path, sizeof path, "/proc/self/ns/%s", ns_names[i]);
		ns_fd[i] = open(path, O_RDONLY | O_CLOEXEC);
		WL_CHECK(ns_fd[i] >= 0, "open %s: %s", path, strerror(errno));
	}

	{
		int fd = open("target-file", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		WL_CHECK(fd >= 0 && write(fd, "target", 6) == 6 && close(fd) == 0, "target-file: %s", strerror(errno));
		fd = open("dfile", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		WL_CHECK(fd >= 0 && write(fd, "abc", 3) == 3 && close(fd) == 0, "dfile: %s", strerror(errno));
	}
	WL_CHECK(symlink("target-file", "link") == 0 && symlink("gone-target", "dlink") == 0, "symlink: %s",
		 strerror(errno));
	path_link = open("link", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	path_file = open("target-file", O_PATH | O_CLOEXEC);
	path_dir = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	path_dlink = open("dlink", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	path_dfile = open("dfile", O_PATH | O_CLOEXEC);
	WL_CHECK(path_link >= 0 && path_file >= 0 && path_dir >= 0 && path_dlink >= 0 && path_dfile >= 0,
		 "O_PATH: %s", strerror(errno));
	WL_CHECK(unlink("dlink") == 0 && unlink("dfile") == 0, "unlink: %s", strerror(errno));

	k = fork();
	WL_CHECK(k >= 0, "fork: %s", strerror(errno));
	if (k == 0)
		run_k();
	wl_settle_root = wl_pid;
	wl_wait_flag((volatile int *)&k_usr2[1], "K's SIGUSR2 handler");
	pid_k = (int)syscall(SYS_pidfd_open, k, 0);
	pid_self = (int)syscall(SYS_pidfd_open, wl_pid, PIDFD_NONBLOCK);
	WL_CHECK(pid_k >= 0 && pid_self >= 0, "pidfd_open: %s", strerror(errno));
	fcntl(pid_k, F_SETFD, FD_CLOEXEC);
	fcntl(pid_self, F_SETFD, FD_CLOEXEC);

	verify();
	wl_say("READY");
	for (;;) {
		char extra[64];

		verify();
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra, "k_usr2=%" PRIu64, *k_usr2);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}
	verify();
	{
		struct pollfd pfd = { .fd = pid_k, .events = POLLIN };
		siginfo_t si;

		WL_CHECK(syscall(SYS_pidfd_send_signal, pid_k, SIGTERM, NULL, 0) == 0, "SIGTERM through the pidfd: %s",
			 strerror(errno));
		WL_CHECK(poll(&pfd, 1, 10000) == 1 && (pfd.revents & POLLIN), "the pidfd of K did not become readable");
		memset(&si, 0, sizeof si);
		WL_CHECK(waitid(P_PIDFD, pid_k, &si, WEXITED) == 0, "waitid(P_PIDFD): %s", strerror(errno));
		WL_CHECK(si.si_pid == k && si.si_code == CLD_KILLED && si.si_status == SIGTERM,
			 "K ended with code %d status %d", si.si_code, si.si_status);
	}
	wl_say("DONE ok");
	return 0;
}
