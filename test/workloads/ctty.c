/*
 * ctty.c: a process that talks to its controlling terminal through /dev/tty.
 *
 *   P (root, prints the ticks; holds the master of a pty pair, raw mode)
 *   └─ C (setsid(); the slave is its controlling terminal (TIOCSCTTY); its
 *        stdin and stdout are /dev/tty (5:0), not the slave: it closed every
 *        fd of the slave itself, as programs that open /dev/tty do)
 *
 * P sends numbered 16-byte records through the master and keeps up to 4 of
 * them in flight; C, blocked in read(0) between records, answers each one
 * through fd 1. Both check every record: a lost, repeated or changed byte
 * is a FAIL. /dev/tty resolves to the controlling terminal of whoever
 * opens it, so a restore must open it inside C after C has its terminal
 * back. C checks on every record that fd 0 and 1 are /dev/tty, that its
 * tty_nr is the slave, tcgetsid(0) and tcgetpgrp(0); it reports failures
 * on stderr.
 */
#include "common.h"

#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>

#define REC 16
#define INFLIGHT 4

static int master = -1;
static char pts_path[64];
static dev_t pts_rdev;

static void record(char *b, char kind, uint64_t seq)
{
	char tmp[REC + 1];

	snprintf(tmp, sizeof tmp, "%c%014" PRIu64 "\n", kind, (uint64_t)(seq % 100000000000000ULL));
	memcpy(b, tmp, REC);
}

static void read_full(int fd, char *b, size_t n, int child)
{
	for (size_t off = 0; off < n;) {
		ssize_t r = read(fd, b + off, n - off);

		if (r < 0 && errno == EINTR)
			continue;
		if (child)
			WL_TTY_CHECK(r > 0, "read /dev/tty: %s", r < 0 ? strerror(errno) : "EOF");
		else
			WL_CHECK(r > 0, "read master: %s", r < 0 ? strerror(errno) : "EOF");
		off += (size_t)r;
	}
}

static void write_full(int fd, const char *b, size_t n, int child)
{
	for (size_t off = 0; off < n;) {
		ssize_t w = write(fd, b + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (child)
			WL_TTY_CHECK(w > 0, "write /dev/tty: %s", w < 0 ? strerror(errno) : "short");
		else
			WL_CHECK(w > 0, "write master: %s", w < 0 ? strerror(errno) : "short");
		off += (size_t)w;
	}
}

static void c_check(pid_t me)
{
	struct stat st0, st1;
	char buf[1024], *p, name[64];
	long tty_nr = -1;

	WL_TTY_CHECK(getpid() == me, "getpid() = %d, was %d", (int)getpid(), (int)me);
	WL_TTY_CHECK(fstat(0, &st0) == 0 && fstat(1, &st1) == 0, "fstat: %s", strerror(errno));
	WL_TTY_CHECK(S_ISCHR(st0.st_mode) && st0.st_rdev == makedev(5, 0) && st1.st_rdev == makedev(5, 0),
	       "stdin/stdout are %u:%u and %u:%u, want /dev/tty (5:0)", major(st0.st_rdev),
	       minor(st0.st_rdev), major(st1.st_rdev), minor(st1.st_rdev));
	WL_TTY_CHECK(ttyname_r(0, name, sizeof name) == 0 && strcmp(name, "/dev/tty") == 0,
	       "ttyname(0) = %s, want /dev/tty", name);
	if (wl_read_file("/proc/self/stat", buf, sizeof buf) > 0 && (p = strrchr(buf, ')')))
		sscanf(p + 2, "%*c %*d %*d %*d %ld", &tty_nr);
	WL_TTY_CHECK((dev_t)tty_nr == pts_rdev, "controlling terminal (tty_nr) %u:%u, want the slave %u:%u",
	       major(tty_nr), minor(tty_nr), major(pts_rdev), minor(pts_rdev));
	WL_TTY_CHECK(tcgetsid(0) == me && tcgetpgrp(0) == me, "tcgetsid(0) = %d, tcgetpgrp(0) = %d, want %d",
	       (int)tcgetsid(0), (int)tcgetpgrp(0), (int)me);
}

static void run_c(void)
{
	pid_t me = getpid();
	int s, t;

	snprintf(wl_role, sizeof wl_role, "ctty C");
	close(master);
	WL_TTY_CHECK(setsid() == me, "setsid: %s", strerror(errno));
	s = open(pts_path, O_RDWR | O_NOCTTY);
	WL_TTY_CHECK(s >= 0, "open %s: %s", pts_path, strerror(errno));
	WL_TTY_CHECK(ioctl(s, TIOCSCTTY, 0) == 0, "TIOCSCTTY: %s", strerror(errno));
	t = open("/dev/tty", O_RDWR);
	WL_TTY_CHECK(t >= 0, "open /dev/tty: %s", strerror(errno));
	WL_TTY_CHECK(dup2(t, 0) == 0 && dup2(t, 1) == 1, "dup2: %s", strerror(errno));
	close(t);
	close(s); /* from here on only /dev/tty */
	prctl(PR_SET_NAME, "wl-ctty-C", 0, 0, 0);
	for (uint64_t seq = 0;; seq++) {
		char in[REC], want[REC];

		read_full(0, in, REC, 1); /* blocked here between records */
		c_check(me);
		if (in[0] == 'x')
			_exit(0);
		record(want, 'q', seq);
		WL_TTY_CHECK(memcmp(in, want, REC) == 0, "record %" PRIu64 " is %.15s, want %.15s", seq, in, want);
		in[0] = 'r';
		write_full(1, in, REC, 1);
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = wl_usr1_counter };
	struct termios tio;
	struct stat st;
	uint64_t sent = 0, answered = 0;
	pid_t c;

	wl_init(argc, argv, "ctty P");
	sigaction(SIGUSR1, &sa, NULL);
	master = posix_openpt(O_RDWR | O_NOCTTY);
	WL_CHECK(master >= 0, "posix_openpt: %s", strerror(errno));
	WL_CHECK(grantpt(master) == 0 && unlockpt(master) == 0, "grantpt/unlockpt: %s",
		 strerror(errno));
	WL_CHECK(ptsname_r(master, pts_path, sizeof pts_path) == 0 && stat(pts_path, &st) == 0,
		 "ptsname: %s", strerror(errno));
	pts_rdev = st.st_rdev;
	WL_CHECK(tcgetattr(master, &tio) == 0, "tcgetattr: %s", strerror(errno));
	cfmakeraw(&tio);
	WL_CHECK(tcsetattr(master, TCSANOW, &tio) == 0, "tcsetattr: %s", strerror(errno));
	c = fork();
	WL_CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0)
		run_c();
	{
		int64_t until = wl_mono_ns() + 20000000000LL;
		int status;

		while (tcgetsid(master) != c) {
			WL_CHECK(waitpid(c, &status, WNOHANG) == 0, "C ended during setup (status %#x)",
				 status);
			WL_CHECK(wl_mono_ns() < until, "C did not take the terminal");
			wl_sleep_ms(2);
		}
	}
	wl_say("INFO c=%d pts=%s", (int)c, pts_path);
	wl_say("READY");
	for (;;) {
		char extra[96], b[REC], want[REC];
		int avail = 0, status;

		wl_check_pid();
		WL_CHECK(waitpid(c, &status, WNOHANG) == 0, "C ended early (status %#x)", status);
		WL_CHECK(tcgetsid(master) == c, "tcgetsid(master) = %d, want C %d", (int)tcgetsid(master),
			 (int)c);
		WL_CHECK(ioctl(master, FIONREAD, &avail) == 0, "FIONREAD: %s", strerror(errno));
		for (; avail >= REC; avail -= REC) {
			read_full(master, b, REC, 0);
			record(want, 'r', answered);
			WL_CHECK(memcmp(b, want, REC) == 0, "answer %" PRIu64 " is %.15s, want %.15s",
				 answered, b, want);
			answered++;
		}
		if (wl_stop_requested())
			break;
		if (sent - answered < INFLIGHT) {
			record(b, 'q', sent);
			write_full(master, b, REC, 0);
			sent++;
		}
		snprintf(extra, sizeof extra, "sent=%" PRIu64 " answered=%" PRIu64, sent, answered);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}
	/* Collect the answers still due, then tell C to finish. */
	while (answered < sent) {
		char b[REC], want[REC];

		read_full(master, b, REC, 0);
		record(want, 'r', answered);
		WL_CHECK(memcmp(b, want, REC) == 0, "answer %" PRIu64 " is %.15s, want %.15s", answered, b,
			 want);
		answered++;
	}
	{
		char b[REC];
		int status;
		pid_t r;

		record(b, 'x', 0);
		write_full(master, b, REC, 0);
		do
			r = waitpid(c, &status, 0);
		while (r < 0 && errno == EINTR);
		WL_CHECK(r == c && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "C ended with wait status %#x", status);
	}
	wl_say("DONE ok");
	return 0;
}
