/*
 * locks.c: file locks of three kinds, held by their owners across a restore.
 *
 *   P (root, prints the ticks) holds
 *     - flock(LOCK_EX) on flock.dat                      (owner: its open file description)
 *     - a POSIX write lock (F_SETLK) on posix.dat [100,150)   (owner: P)
 *     - an OFD write lock (F_OFD_SETLK) on ofd.dat [0,10) and an OFD read
 *       lock on ofd.dat [20,30)                          (owner: its open file description)
 *   └─ Q (child) holds a POSIX read lock on posix.dat [200,300), and has a
 *        thread W blocked for the whole run in fcntl(F_SETLKW) for a write
 *        lock on posix.dat [100,150), which P holds.
 *
 * Every tick Q tries, through its own open file descriptions, to take each
 * of P's locks (flock LOCK_NB, F_GETLK, F_OFD_GETLK) and must be refused
 * with the exact owner, type and range; P checks Q's lock the same way,
 * and both check /proc/locks: exactly these locks on these files, no more.
 * At the end P releases its locks; W must then get its lock, and Q must be
 * able to take every one of them: the locks were real, not left-overs.
 */
#include "common.h"

#include <pthread.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>


struct shared {
	uint64_t nonce;
	pid_t p, q;
	volatile int q_ready, p_locked, w_waiting, w_got;
	volatile int stop_req, q_stopped, released;
	volatile uint64_t ctr_q;
};

static struct shared *sh;
static int p_flock = -1, p_posix = -1, p_ofd = -1;
static int q_flock = -1, q_posix = -1, q_ofd = -1, w_posix = -1;
static ino_t ino_flock, ino_posix, ino_ofd;

static void set_name(const char *role)
{
	char name[16];

	snprintf(wl_role, sizeof wl_role, "locks %s", role);
	snprintf(name, sizeof name, "wl-locks-%s", role);
	prctl(PR_SET_NAME, name, 0, 0, 0);
	wl_pid = (pid_t)syscall(SYS_getpid);
}

static int open_file(const char *name, ino_t *ino)
{
	int fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	struct stat st;

	WL_CHECK(fd >= 0, "open %s: %s", name, strerror(errno));
	WL_CHECK(fstat(fd, &st) == 0, "fstat %s: %s", name, strerror(errno));
	if (ino)
		*ino = st.st_ino;
	return fd;
}

static struct flock range(short type, off_t start, off_t len)
{
	struct flock fl;

	memset(&fl, 0, sizeof fl);
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = len;
	return fl;
}

/* expect_getlk asks (F_GETLK or F_OFD_GETLK) for a lock and checks the answer. */
static void expect_getlk(int fd, int cmd, short ask, off_t start, off_t len, short want_type,
			 pid_t want_pid, off_t want_start, off_t want_len, const char *what)
{
	struct flock fl = range(ask, start, len);

	WL_CHECK(fcntl(fd, cmd, &fl) == 0, "%s: %s", what, strerror(errno));
	if (want_type == F_UNLCK) {
		WL_CHECK(fl.l_type == F_UNLCK,
			 "%s: conflicting lock type %d pid %d [%lld,+%lld), want none", what, fl.l_type,
			 (int)fl.l_pid, (long long)fl.l_start, (long long)fl.l_len);
		return;
	}
	WL_CHECK(fl.l_type == want_type && fl.l_pid == want_pid && fl.l_start == want_start &&
			 fl.l_len == want_len,
		 "%s: lock type %d pid %d [%lld,+%lld), want type %d pid %d [%lld,+%lld)", what,
		 fl.l_type, (int)fl.l_pid, (long long)fl.l_start, (long long)fl.l_len, want_type,
		 (int)want_pid, (long long)want_start, (long long)want_len);
}

/* Lock records of our files seen in one read of /proc/locks, at most MAXGOT. */
#define MAXGOT 16
struct lockset {
	int n;
	char line[MAXGOT][128];
};

/* read_our_locks reads /proc/locks once and keeps the records of our files. */
static void read_our_locks(struct lockset *got)
{
	static char buf[1 << 16];

	got->n = 0;
	WL_CHECK(wl_read_file("/proc/locks", buf, sizeof buf) >= 0, "read /proc/locks: %s",
		 strerror(errno));
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		char kind[16], adv[16], rw[16], dev[64], start[32], end[32];
		int pid;
		unsigned long ino;
		char *p;

		if (strstr(line, "->"))
			continue;
		if (sscanf(line, "%*d: %15s %15s %15s %d %63s %31s %31s", kind, adv, rw, &pid, dev, start,
			   end) != 7)
			continue;
		p = strrchr(dev, ':');
		if (!p || sscanf(p + 1, "%lu", &ino) != 1)
			continue;
		if (ino != ino_flock && ino != ino_posix && ino != ino_ofd)
			continue;
		WL_CHECK(got->n < MAXGOT, "more than %d locks on our files in /proc/locks", MAXGOT);
		snprintf(got->line[got->n++], 128, "%s %s %d %lu %s %s", kind, rw, pid, ino, start, end);
	}
}

/*
 * check_proc_locks checks that our three files carry exactly the locks we
 * hold (waiters, the "->" lines, are left out). /proc/locks comes in
 * page-sized reads, each from an index into a list other processes change
 * meanwhile, so one read can show a record twice or miss one: the check
 * uses two reads in a row that agree.
 */
static void check_proc_locks(void)
{
	static struct lockset a, b;
	char want[5][128];
	int nwant = 0, tries = 0;

	snprintf(want[nwant++], 128, "FLOCK WRITE %d %lu 0 EOF", (int)sh->p, (unsigned long)ino_flock);
	snprintf(want[nwant++], 128, "POSIX WRITE %d %lu 100 149", (int)sh->p, (unsigned long)ino_posix);
	snprintf(want[nwant++], 128, "POSIX READ %d %lu 200 299", (int)sh->q, (unsigned long)ino_posix);
	snprintf(want[nwant++], 128, "OFDLCK WRITE -1 %lu 0 9", (unsigned long)ino_ofd);
	snprintf(want[nwant++], 128, "OFDLCK READ -1 %lu 20 29", (unsigned long)ino_ofd);
	read_our_locks(&a);
	for (;;) {
		read_our_locks(&b);
		int same = a.n == b.n;

		for (int i = 0; same && i < a.n; i++)
			same = strcmp(a.line[i], b.line[i]) == 0;
		if (same)
			break;
		WL_CHECK(++tries < 100, "/proc/locks never read the same twice in a row");
		a = b;
	}
	for (int i = 0; i < nwant; i++) {
		int found = 0;

		for (int j = 0; j < a.n; j++)
			found |= strcmp(want[i], a.line[j]) == 0;
		WL_CHECK(found, "/proc/locks lacks \"%s\" (%d locks on our files: %s%s%s%s%s)", want[i],
			 a.n, a.n > 0 ? a.line[0] : "", a.n > 1 ? "; " : "", a.n > 1 ? a.line[1] : "",
			 a.n > 2 ? "; " : "", a.n > 2 ? a.line[2] : "");
	}
	WL_CHECK(a.n == nwant, "/proc/locks has %d locks on our files, want %d", a.n, nwant);
}

static void *waiter(void *arg)
{
	struct flock fl = range(F_WRLCK, 100, 50);

	(void)arg;
	sh->w_waiting = 1;
	/* Blocked here until P releases its lock at the end. */
	while (fcntl(w_posix, F_SETLKW, &fl) != 0)
		WL_CHECK(errno == EINTR, "F_SETLKW: %s", strerror(errno));
	WL_CHECK(sh->released, "W got the write lock [100,150) while P still held it");
	sh->w_got = 1;
	return NULL;
}

/* waiter_blocked reports whether /proc/locks shows a waiter on posix.dat. */
static int waiter_blocked(void)
{
	static char buf[1 << 16];
	char needle[64];

	snprintf(needle, sizeof needle, ":%lu 100 149", (unsigned long)ino_posix);
	if (wl_read_file("/proc/locks", buf, sizeof buf) < 0)
		return 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		if (strstr(line, "->") && strstr(line, needle))
			return 1;
	return 0;
}

/* q_check is what Q sees of P's locks. */
static void q_check(void)
{
	WL_CHECK(getpid() == wl_pid, "getpid() = %d, was %d", (int)getpid(), (int)wl_pid);
	WL_CHECK(getppid() == sh->p, "getppid() = %d, want P %d", (int)getppid(), (int)sh->p);
	WL_CHECK(sh->nonce == wl_nonce, "shared nonce changed");
	errno = 0;
	WL_CHECK(flock(q_flock, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK,
		 "flock(LOCK_EX|LOCK_NB) on flock.dat through another open file: %s (P's flock is gone)",
		 errno ? strerror(errno) : "granted");
	errno = 0;
	WL_CHECK(flock(q_flock, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK,
		 "flock(LOCK_SH|LOCK_NB) on flock.dat: %s (P's exclusive flock is gone)",
		 errno ? strerror(errno) : "granted");
	expect_getlk(q_posix, F_GETLK, F_RDLCK, 0, 0, F_WRLCK, sh->p, 100, 50,
		     "F_GETLK read, whole posix.dat");
	expect_getlk(q_posix, F_GETLK, F_WRLCK, 100, 50, F_WRLCK, sh->p, 100, 50,
		     "F_GETLK write posix.dat [100,150)");
	expect_getlk(q_posix, F_GETLK, F_WRLCK, 150, 50, F_UNLCK, 0, 0, 0,
		     "F_GETLK write posix.dat [150,200)");
	expect_getlk(q_posix, F_GETLK, F_WRLCK, 0, 100, F_UNLCK, 0, 0, 0,
		     "F_GETLK write posix.dat [0,100)");
	expect_getlk(q_ofd, F_OFD_GETLK, F_RDLCK, 0, 10, F_WRLCK, -1, 0, 10,
		     "F_OFD_GETLK read ofd.dat [0,10)");
	expect_getlk(q_ofd, F_OFD_GETLK, F_WRLCK, 20, 10, F_RDLCK, -1, 20, 10,
		     "F_OFD_GETLK write ofd.dat [20,30)");
	expect_getlk(q_ofd, F_OFD_GETLK, F_RDLCK, 20, 10, F_UNLCK, 0, 0, 0,
		     "F_OFD_GETLK read ofd.dat [20,30)");
	expect_getlk(q_ofd, F_OFD_GETLK, F_WRLCK, 10, 10, F_UNLCK, 0, 0, 0,
		     "F_OFD_GETLK write ofd.dat [10,20)");
	check_proc_locks();
}

static void run_q(void)
{
	pthread_t t;
	struct flock fl = range(F_RDLCK, 200, 100);
	int err;

	set_name("Q");
	sh->q = wl_pid;
	close(p_flock);
	close(p_ofd);
	/* p_posix stays open: closing any fd of posix.dat would drop Q's POSIX locks. */
	q_flock = open_file("flock.dat", NULL);
	q_posix = open_file("posix.dat", NULL);
	w_posix = open_file("posix.dat", NULL);
	q_ofd = open_file("ofd.dat", NULL);
	WL_CHECK(fcntl(q_posix, F_SETLK, &fl) == 0, "F_SETLK read posix.dat [200,300): %s",
		 strerror(errno));
	sh->q_ready = 1;
	wl_wait_flag(&sh->p_locked, "P's locks");
	err = pthread_create(&t, NULL, waiter, NULL);
	WL_CHECK(err == 0, "pthread_create: %s", strerror(err));
	while (!sh->stop_req) {
		q_check();
		sh->ctr_q++;
		wl_sleep_ms(20);
	}
	sh->q_stopped = 1;
	wl_wait_flag(&sh->released, "P's release");
	err = pthread_join(t, NULL);
	WL_CHECK(err == 0, "pthread_join: %s", strerror(err));
	WL_CHECK(sh->w_got, "W did not get its lock");
	/* P's locks were real: now that P released them, they are ours to take. */
	WL_CHECK(flock(q_flock, LOCK_EX | LOCK_NB) == 0, "flock(LOCK_EX) after P's release: %s",
		 strerror(errno));
	fl = range(F_WRLCK, 0, 30);
	WL_CHECK(fcntl(q_ofd, F_OFD_SETLK, &fl) == 0, "F_OFD_SETLK write [0,30) after P's release: %s",
		 strerror(errno));
	fl = range(F_WRLCK, 200, 100);
	WL_CHECK(fcntl(q_posix, F_SETLK, &fl) == 0, "F_SETLK upgrade [200,300) to write: %s",
		 strerror(errno));
	_exit(0);
}

static void p_check(pid_t q)
{
	int status;

	wl_check_pid();
	WL_CHECK(sh->nonce == wl_nonce, "shared nonce changed");
	WL_CHECK(sh->q == q, "shared pid of Q is %d, was %d", (int)sh->q, (int)q);
	WL_CHECK(waitpid(q, &status, WNOHANG) == 0, "Q ended early (status %#x)", status);
	expect_getlk(p_posix, F_GETLK, F_WRLCK, 0, 0, F_RDLCK, q, 200, 100,
		     "F_GETLK write, whole posix.dat");
	expect_getlk(p_posix, F_GETLK, F_WRLCK, 250, 1, F_RDLCK, q, 200, 100,
		     "F_GETLK write posix.dat [250,251)");
	expect_getlk(p_posix, F_GETLK, F_RDLCK, 200, 100, F_UNLCK, 0, 0, 0,
		     "F_GETLK read posix.dat [200,300)");
	check_proc_locks();
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = wl_usr1_counter };
	struct flock fl;
	pid_t q;

	wl_init(argc, argv, "locks P");
	wl_settle_root = wl_pid;
	set_name("P");
	sigaction(SIGUSR1, &sa, NULL);
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(sh != MAP_FAILED, "mmap shared: %s", strerror(errno));
	sh->nonce = wl_nonce;
	sh->p = wl_pid;
	p_flock = open_file("flock.dat", &ino_flock);
	p_posix = open_file("posix.dat", &ino_posix);
	p_ofd = open_file("ofd.dat", &ino_ofd);
	WL_CHECK(ftruncate(p_posix, 4096) == 0 && ftruncate(p_ofd, 4096) == 0, "ftruncate: %s",
		 strerror(errno));

	q = fork();
	WL_CHECK(q >= 0, "fork Q: %s", strerror(errno));
	if (q == 0)
		run_q();
	wl_wait_flag(&sh->q_ready, "Q ready");
	WL_CHECK(flock(p_flock, LOCK_EX | LOCK_NB) == 0, "flock(LOCK_EX): %s", strerror(errno));
	fl = range(F_WRLCK, 100, 50);
	WL_CHECK(fcntl(p_posix, F_SETLK, &fl) == 0, "F_SETLK write [100,150): %s", strerror(errno));
	fl = range(F_WRLCK, 0, 10);
	WL_CHECK(fcntl(p_ofd, F_OFD_SETLK, &fl) == 0, "F_OFD_SETLK write [0,10): %s", strerror(errno));
	fl = range(F_RDLCK, 20, 10);
	WL_CHECK(fcntl(p_ofd, F_OFD_SETLK, &fl) == 0, "F_OFD_SETLK read [20,30): %s", strerror(errno));
	sh->p_locked = 1;
	wl_wait_flag(&sh->w_waiting, "W started");
	{
		int64_t until = wl_mono_ns() + 20000000000LL;

		while (!waiter_blocked()) {
			WL_CHECK(wl_mono_ns() < until, "W never blocked on the lock");
			wl_sleep_ms(2);
		}
	}
	p_check(q);
	wl_say("INFO q=%d inodes flock=%lu posix=%lu ofd=%lu", (int)q, (unsigned long)ino_flock,
	       (unsigned long)ino_posix, (unsigned long)ino_ofd);
	wl_say("READY");
	for (;;) {
		char extra[128];

		p_check(q);
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra, "q=%d q_ctr=%" PRIu64 " w_blocked=%d", (int)q, sh->ctr_q,
			 waiter_blocked());
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}

	sh->stop_req = 1;
	wl_wait_flag(&sh->q_stopped, "Q stopped checking");
	sh->released = 1;
	WL_CHECK(flock(p_flock, LOCK_UN) == 0, "flock(LOCK_UN): %s", strerror(errno));
	fl = range(F_UNLCK, 0, 0);
	WL_CHECK(fcntl(p_ofd, F_OFD_SETLK, &fl) == 0, "F_OFD_SETLK unlock: %s", strerror(errno));
	fl = range(F_UNLCK, 100, 50);
	WL_CHECK(fcntl(p_posix, F_SETLK, &fl) == 0, "F_SETLK unlock: %s", strerror(errno));
	{
		int status;
		pid_t r;

		do
			r = waitpid(q, &status, 0);
		while (r < 0 && errno == EINTR);
		WL_CHECK(r == q && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "Q ended with wait status %#x", status);
	}
	wl_say("DONE ok");
	return 0;
}
