/*
 * shared.c: kernel objects shared between descriptors, mappings and
 * processes, which a restore must neither split nor merge.
 *
 *   P  (root)
 *   ├─ M  created with clone(CLONE_FILES|CLONE_FS): P and M share one
 *   │     descriptor table, one working directory and umask
 *   └─ C  an ordinary fork child
 *
 * - Descriptor table: each tick P puts a descriptor at a number, M finds it
 *   there and closes it, P sees it gone; at the end M changes directory
 *   and umask, and P sees the change.
 * - A deleted file that P opened and C opened again through /proc/P/fd
 *   (two open file descriptions of one file), then unlinked: P's writes
 *   reach C and C's reach P; each has its own offset; both see one inode.
 *   P also maps it MAP_SHARED (page 0 follows P's writes) and MAP_PRIVATE
 *   (page 1, never written through the mapping, follows C's writes).
 * - A memfd (F_SEAL_SHRINK) with two more descriptions opened through
 *   /proc/self/fd: one O_RDONLY (writes fail with EBADF), one O_APPEND
 *   (writes go to the end); a MAP_SHARED mapping (writes go both ways) and
 *   a MAP_PRIVATE one whose page 0 was written (a private copy that must
 *   not change) and whose page 2 was only read (it follows the memfd).
 * - A pipe whose read end has a second description opened through
 *   /proc/self/fd with O_NONBLOCK: the first stays blocking.
 */
#include "common.h"

#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096

struct shared {
	volatile int stop;
	volatile pid_t m_pid, c_pid;
	volatile int c_opened, m_ready;
	volatile uint64_t req, ack;   /* table protocol: P asks M to find and close fd req_fd */
	volatile int req_fd;
	volatile uint64_t p_written;  /* last value P wrote at offset 0 of the deleted file */
	volatile uint64_t c_written;  /* last value C wrote at offset PG of the deleted file */
	volatile uint64_t m_ticks, c_ticks;
	volatile int fs_req, fs_ack; /* at the end, M changes directory and umask for both */
};

static struct shared *sh;
static int del_fd, anchor_fd, mfd, mfd_ro, mfd_ap, pipe_r, pipe_w, pipe_r2;
static volatile uint64_t *del_shared;   /* MAP_SHARED page 0 of the deleted file */
static volatile uint64_t *del_private;  /* MAP_PRIVATE page 1 of the deleted file */
static volatile uint64_t *mfd_shared;   /* MAP_SHARED of the memfd, 3 pages */
static volatile uint64_t *mfd_private;  /* MAP_PRIVATE of the memfd, 3 pages */
static uint64_t p_last_c, mfd_size;

static uint64_t ino_of(int fd)
{
	struct stat st;

	WL_CHECK(fstat(fd, &st) == 0, "fstat fd %d: %s", fd, strerror(errno));
	return st.st_ino;
}

static uint64_t pread64v(int fd, off_t off)
{
	uint64_t v = 0;

	WL_CHECK(pread(fd, &v, sizeof v, off) == sizeof v, "pread fd %d at %lld: %s", fd, (long long)off,
		 strerror(errno));
	return v;
}

static void pwrite64v(int fd, uint64_t v, off_t off)
{
	WL_CHECK(pwrite(fd, &v, sizeof v, off) == sizeof v, "pwrite fd %d at %lld: %s", fd, (long long)off,
		 strerror(errno));
}

/* M: shares P's descriptor table. It finds the descriptor P asks about and
 * closes it; P then checks that it is gone from its own table too. */
static void run_m(void)
{
	uint64_t done = 0;

	snprintf(wl_role, sizeof wl_role, "shared M");
	wl_pid = (pid_t)syscall(SYS_getpid);
	sh->m_ready = 1;
	while (!sh->stop) {
		uint64_t r = sh->req;

		if (sh->fs_req && !sh->fs_ack) {
			WL_CHECK(chdir("../a") == 0, "chdir: %s", strerror(errno));
			umask(022);
			sh->fs_ack = 1;
		}
		if (r != done) {
			int fd = sh->req_fd;

			WL_CHECK(ino_of(fd) == ino_of(anchor_fd),
				 "fd %d that P opened in the shared table is another file here", fd);
			WL_CHECK(close(fd) == 0, "close fd %d: %s", fd, strerror(errno));
			done = r;
			sh->ack = r;
		}
		sh->m_ticks++;
		wl_sleep_ms(2);
	}
	_exit(0);
}

/* C: holds its own description of the deleted file, writes its counter at
 * offset PG and checks that P's writes at offset 0 reach it. */
static void run_c(void)
{
	char path[64];
	int fd;
	uint64_t n = 0, seen = 0;

	snprintf(wl_role, sizeof wl_role, "shared C");
	wl_pid = (pid_t)syscall(SYS_getpid);
	snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)getppid(), del_fd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	WL_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	close(del_fd);
	WL_CHECK(lseek(fd, 200, SEEK_SET) == 200, "lseek: %s", strerror(errno));
	sh->c_opened = 1;
	while (!sh->stop) {
		uint64_t pub = sh->p_written, v = pread64v(fd, 0);

		WL_CHECK(v >= pub && v >= seen, "P's write did not reach C: read %" PRIu64 ", P wrote %" PRIu64
			 ", seen %" PRIu64, v, pub, seen);
		seen = v;
		pwrite64v(fd, ++n, PG);
		sh->c_written = n;
		{
			/* One inode: P's description and this one, both read now. */
			char pfd[64];
			struct stat st;

			snprintf(pfd, sizeof pfd, "/proc/%d/fd/%d", (int)getppid(), del_fd);
			WL_CHECK(stat(pfd, &st) == 0 && st.st_ino == ino_of(fd),
				 "C's description of the deleted file is on inode %" PRIu64 ", P's on another", ino_of(fd));
		}
		WL_CHECK(lseek(fd, 0, SEEK_CUR) == 200, "C's offset moved to %lld",
			 (long long)lseek(fd, 0, SEEK_CUR));
		sh->c_ticks++;
		wl_sleep_ms(2);
	}
	_exit(0);
}

static void check_flags(int fd, int want, int mask, const char *what)
{
	int fl = fcntl(fd, F_GETFL);

	WL_CHECK(fl >= 0 && (fl & mask) == want, "%s: flags %#o, want %#o under mask %#o", what, fl, want,
		 mask);
}

static void verify(void)
{
	uint64_t v, pub;
	char c;

	/* The descriptor table that P and M share. */
	{
		static uint64_t reqs;
		uint64_t r = ++reqs;
		int fd = 60 + (int)(r % 4);
		int64_t until = wl_mono_ns() + 20000000000LL;

		WL_CHECK(dup2(anchor_fd, fd) == fd, "dup2: %s", strerror(errno));
		sh->req_fd = fd;
		sh->req = r;
		while (sh->ack != r) {
			WL_CHECK(wl_mono_ns() < until, "M did not answer request %" PRIu64, r);
			wl_sleep_ms(1);
		}
		WL_CHECK(fcntl(fd, F_GETFD) < 0 && errno == EBADF,
			 "fd %d that M closed is still open here: the table is not shared", fd);
	}

	/* The deleted file shared with C, and P's mappings of it. */
	v = wl_tick + 1000;
	pwrite64v(del_fd, v, 0);
	sh->p_written = v;
	WL_CHECK(del_shared[0] == v, "MAP_SHARED page of the deleted file reads %" PRIu64 ", P wrote %" PRIu64,
		 del_shared[0], v);
	pub = sh->c_written;
	v = pread64v(del_fd, PG);
	WL_CHECK(v >= pub && v >= p_last_c, "C's write did not reach P: read %" PRIu64 ", C wrote %" PRIu64,
		 v, pub);
	p_last_c = v;
	WL_CHECK(del_private[0] >= pub,
		 "untouched MAP_PRIVATE page of the deleted file reads %" PRIu64 ", C wrote %" PRIu64,
		 del_private[0], pub);
	WL_CHECK(lseek(del_fd, 0, SEEK_CUR) == 100, "P's offset of the deleted file is %lld, want 100",
		 (long long)lseek(del_fd, 0, SEEK_CUR));

	/* The memfd, its other descriptions and its mappings. */
	WL_CHECK(ino_of(mfd_ro) == ino_of(mfd) && ino_of(mfd_ap) == ino_of(mfd),
		 "the memfd's descriptions are on different inodes");
	check_flags(mfd_ro, O_RDONLY, O_ACCMODE | O_APPEND, "memfd reopened O_RDONLY");
	check_flags(mfd_ap, O_RDWR | O_APPEND, O_ACCMODE | O_APPEND, "memfd reopened O_APPEND");
	check_flags(mfd, O_RDWR, O_ACCMODE | O_APPEND, "memfd");
	WL_CHECK(write(mfd_ro, "x", 1) < 0 && errno == EBADF, "write to the O_RDONLY memfd did not fail");
	WL_CHECK(fcntl(mfd, F_GET_SEALS) == F_SEAL_SHRINK, "memfd seals %#x, want F_SEAL_SHRINK",
		 fcntl(mfd, F_GET_SEALS));
	v = wl_mix(wl_tick) | 1;
	pwrite64v(mfd, v, 8);
	WL_CHECK(pread64v(mfd_ro, 8) == v, "a write through the memfd is not seen by its O_RDONLY description");
	WL_CHECK(mfd_shared[1] == v, "MAP_SHARED of the memfd reads %" PRIu64 ", the fd wrote %" PRIu64,
		 mfd_shared[1], v);
	mfd_shared[PG / 8 + 1] = v + 1;
	WL_CHECK(pread64v(mfd, PG + 8) == v + 1, "a write to the memfd's MAP_SHARED mapping is not in the memfd");
	pwrite64v(mfd, v + 2, 2 * PG + 8);
	WL_CHECK(mfd_private[2 * PG / 8 + 1] == v + 2,
		 "untouched MAP_PRIVATE page of the memfd reads %" PRIu64 ", the fd wrote %" PRIu64,
		 mfd_private[2 * PG / 8 + 1], v + 2);
	WL_CHECK(mfd_private[0] == 0x5eed5eed5eed5eedULL && mfd_private[1] == 0x0,
		 "written MAP_PRIVATE page of the memfd changed: %#" PRIx64 " %#" PRIx64, mfd_private[0],
		 mfd_private[1]);
	{
		char rec[16];
		struct stat st;

		memset(rec, 'a' + (int)(wl_tick % 26), sizeof rec);
		WL_CHECK(lseek(mfd_ap, 0, SEEK_SET) == 0, "lseek: %s", strerror(errno));
		WL_CHECK(write(mfd_ap, rec, sizeof rec) == sizeof rec, "append: %s", strerror(errno));
		mfd_size += sizeof rec;
		WL_CHECK(fstat(mfd, &st) == 0 && (uint64_t)st.st_size == mfd_size,
			 "memfd size %lld after an O_APPEND write, want %" PRIu64, (long long)st.st_size, mfd_size);
	}

	/* The pipe's two read descriptions. */
	check_flags(pipe_r, 0, O_NONBLOCK, "pipe read end");
	check_flags(pipe_r2, O_NONBLOCK, O_NONBLOCK, "pipe read end reopened O_NONBLOCK");
	WL_CHECK(ino_of(pipe_r) == ino_of(pipe_r2), "the pipe's read descriptions are on different pipes");
	c = (char)wl_tick;
	WL_CHECK(write(pipe_w, &c, 1) == 1, "write pipe: %s", strerror(errno));
	{
		char got = 0;

		WL_CHECK(read(pipe_r2, &got, 1) == 1 && got == c, "read pipe through the second description");
		WL_CHECK(read(pipe_r2, &got, 1) < 0 && errno == EAGAIN, "empty non-blocking read did not fail with EAGAIN");
	}
}

int main(int argc, char **argv)
{
	pid_t m, c;
	char path[64];

	wl_init(argc, argv, "shared P");
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof sa);
		sa.sa_handler = wl_usr1_counter;
		sa.sa_flags = SA_RESTART;
		WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	}
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(sh != MAP_FAILED, "mmap: %s", strerror(errno));

	/* A /proc file: the harness's fingerprint leaves such fds out, and the
	 * copies of it come and go every tick. */
	anchor_fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	del_fd = open("deleted.dat", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	WL_CHECK(anchor_fd >= 0 && del_fd >= 0, "open: %s", strerror(errno));
	WL_CHECK(ftruncate(del_fd, 2 * PG) == 0, "ftruncate: %s", strerror(errno));
	del_shared = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, del_fd, 0);
	del_private = mmap(NULL, PG, PROT_READ, MAP_PRIVATE, del_fd, PG);
	WL_CHECK(del_shared != MAP_FAILED && del_private != MAP_FAILED, "mmap deleted file: %s", strerror(errno));

	mfd = memfd_create("wl-shared", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	WL_CHECK(mfd >= 0, "memfd_create: %s", strerror(errno));
	WL_CHECK(ftruncate(mfd, 3 * PG) == 0, "ftruncate memfd: %s", strerror(errno));
	mfd_size = 3 * PG;
	WL_CHECK(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK) == 0, "seal: %s", strerror(errno));
	snprintf(path, sizeof path, "/proc/self/fd/%d", mfd);
	mfd_ro = open(path, O_RDONLY | O_CLOEXEC);
	mfd_ap = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
	WL_CHECK(mfd_ro >= 0 && mfd_ap >= 0, "reopen memfd: %s", strerror(errno));
	mfd_shared = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	mfd_private = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0);
	WL_CHECK(mfd_shared != MAP_FAILED && mfd_private != MAP_FAILED, "mmap memfd: %s", strerror(errno));
	mfd_private[0] = 0x5eed5eed5eed5eedULL; /* a private copy of page 0 */

	{
		int p[2];

		WL_CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
		pipe_r = p[0];
		pipe_w = p[1];
		snprintf(path, sizeof path, "/proc/self/fd/%d", pipe_r);
		pipe_r2 = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		WL_CHECK(pipe_r2 >= 0, "reopen pipe: %s", strerror(errno));
	}

	c = fork();
	WL_CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0)
		run_c();
	sh->c_pid = c;
	wl_wait_flag(&sh->c_opened, "C opening the file");
	WL_CHECK(unlink("deleted.dat") == 0, "unlink: %s", strerror(errno));
	WL_CHECK(lseek(del_fd, 100, SEEK_SET) == 100, "lseek: %s", strerror(errno));

	WL_CHECK(mkdir("a", 0755) == 0 && mkdir("b", 0755) == 0 && chdir("b") == 0, "mkdir: %s", strerror(errno));
	umask(027);
	m = (pid_t)syscall(SYS_clone, CLONE_FILES | CLONE_FS | SIGCHLD, 0, 0, 0, 0);
	WL_CHECK(m >= 0, "clone(CLONE_FILES|CLONE_FS): %s", strerror(errno));
	if (m == 0)
		run_m();
	sh->m_pid = m;
	wl_wait_flag(&sh->m_ready, "M starting");
	wl_settle_root = wl_pid;

	wl_say("READY");
	for (;;) {
		char extra[128];

		verify();
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra, "m_ticks=%" PRIu64 " c_ticks=%" PRIu64, sh->m_ticks, sh->c_ticks);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}
	verify();
	{
		/* M changes directory and umask: P's change with them. */
		char cwd[4096];
		mode_t um;

		sh->fs_req = 1;
		wl_wait_flag(&sh->fs_ack, "M changing directory");
		um = umask(0);
		umask(um);
		WL_CHECK(getcwd(cwd, sizeof cwd) != NULL && strcmp(strrchr(cwd, '/'), "/a") == 0 && um == 022,
			 "M changed directory and umask, P is in %s with umask %#o", cwd, (unsigned)um);
	}
	sh->stop = 1;
	for (int left = 2; left > 0; left--) {
		int status;
		pid_t r = waitpid(-1, &status, 0);

		WL_CHECK(r == m || r == c, "waitpid: %d %s", (int)r, strerror(errno));
		WL_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d ended with status %#x", (int)r,
			 status);
	}
	wl_say("DONE ok");
	return 0;
}
