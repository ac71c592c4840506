/*
 * ghosts.c: files that no path leads to any more, which a restore must
 * recreate as they were (run as root: it gives files other owners).
 *
 * - attr: a deleted file with mode 02751, owner 1234:5678, a set mtime and
 *   10000 bytes of contents;
 * - sparse: a deleted 1 GiB file with three 4 KiB data extents (at 0,
 *   512 MiB and the end): the rest must stay holes (few blocks allocated,
 *   SEEK_DATA/SEEK_HOLE find the same extents);
 * - log: a deleted file open write-only with O_APPEND (a rotated log),
 *   appended to on every tick, read back through /proc/self/fd;
 * - tmp: a file made with O_TMPFILE and one from glibc's tmpfile(): still
 *   unlinked, and the first can be linked into the directory at the end;
 * - dir: an open deleted directory (mode 0751, owner 1234:5678);
 * - cwd: the working directory, deleted (mode 0750): getcwd fails with
 *   ENOENT, nothing can be created in it;
 * - fifo: a deleted FIFO open three times (read-write, write, non-blocking
 *   read) that always holds 7 bytes in order;
 * - null, zero: deleted device nodes of /dev/null (mode 0620, owner 1234)
 *   and /dev/zero;
 * - watched: a deleted file held open with an inotify watch for
 *   IN_MODIFY: each write to it is reported under the same watch
 *   descriptor, 0x12 (after 17 other watches, one of them removed: the
 *   kernel shows watch descriptors in hex, and leaves the gap).
 */
#include "common.h"

#include <dirent.h>
#include <sys/inotify.h>
#include <sys/sysmacros.h>

#define GIB (1LL << 30)
#define EXT 4096
#define LOGREC 16

static int attr_fd, sparse_fd, log_fd, tmp_fd, dir_fd, fifo_rw, fifo_w, fifo_r, null_fd, zero_fd;
static int watched_fd, ino_fd, wd;
static FILE *tmpf;
static uint64_t log_lines, fifo_in, fifo_out;
static const off_t extents[3] = { 0, GIB / 2, GIB - EXT };
static const struct timespec attr_mtime = { 1600000000, 123456789 };

static uint8_t fifo_byte(uint64_t k) { return (uint8_t)wl_mix(k + 77); }

static void fill_ext(char *b, off_t at)
{
	for (int i = 0; i < EXT; i++)
		b[i] = (char)wl_mix((uint64_t)at + (uint64_t)i);
}

static void check_stat(int fd, const char *what, mode_t type, mode_t mode, uid_t uid, gid_t gid)
{
	struct stat st;

	WL_CHECK(fstat(fd, &st) == 0, "fstat %s: %s", what, strerror(errno));
	WL_CHECK((st.st_mode & S_IFMT) == type, "%s is of type %#o, want %#o", what, st.st_mode & S_IFMT, type);
	WL_CHECK((st.st_mode & 07777) == mode, "%s has mode %#o, want %#o", what, st.st_mode & 07777, mode);
	WL_CHECK(st.st_uid == uid && st.st_gid == gid, "%s is owned by %d:%d, want %d:%d", what,
		 (int)st.st_uid, (int)st.st_gid, (int)uid, (int)gid);
	WL_CHECK(st.st_nlink == 0, "%s has %d links, want 0 (deleted)", what, (int)st.st_nlink);
}

static void log_line(void)
{
	char rec[LOGREC + 1];

	snprintf(rec, sizeof rec, "log line %06" PRIu64 "\n", log_lines % 1000000);
	wl_write_all(log_fd, rec, LOGREC, "log");
	log_lines++;
}

static void verify(void)
{
	char buf[EXT], want[EXT];
	struct stat st;

	/* attr */
	check_stat(attr_fd, "attr", S_IFREG, 02751, 1234, 5678);
	WL_CHECK(fstat(attr_fd, &st) == 0 && st.st_size == 10000 && st.st_mtim.tv_sec == attr_mtime.tv_sec &&
			 st.st_mtim.tv_nsec == attr_mtime.tv_nsec,
		 "attr: size %lld mtime %lld.%09ld, want 10000 and %lld.%09ld", (long long)st.st_size,
		 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long long)attr_mtime.tv_sec, attr_mtime.tv_nsec);
	for (int i = 0; i < 10000; i += 1000) {
		char c;

		WL_CHECK(pread(attr_fd, &c, 1, i) == 1 && c == (char)wl_mix((uint64_t)i), "attr: byte %d", i);
	}

	/* sparse */
	check_stat(sparse_fd, "sparse", S_IFREG, 0600, 0, 0);
	WL_CHECK(fstat(sparse_fd, &st) == 0 && st.st_size == GIB, "sparse: size %lld", (long long)st.st_size);
	WL_CHECK(st.st_blocks * 512 <= 1 << 20, "sparse: %lld bytes allocated, the holes were filled",
		 (long long)st.st_blocks * 512);
	for (int i = 0; i < 3; i++) {
		off_t d = lseek(sparse_fd, i == 0 ? 0 : extents[i - 1] + EXT, SEEK_DATA);
		off_t h = lseek(sparse_fd, extents[i], SEEK_HOLE);

		WL_CHECK(d == extents[i], "sparse: SEEK_DATA found %lld, want %lld", (long long)d,
			 (long long)extents[i]);
		WL_CHECK(h >= extents[i] + EXT && (i == 2 || h < extents[i + 1]), "sparse: SEEK_HOLE after %lld found %lld",
			 (long long)extents[i], (long long)h);
		WL_CHECK(pread(sparse_fd, buf, EXT, extents[i]) == EXT, "sparse: pread");
		fill_ext(want, extents[i]);
		WL_CHECK(memcmp(buf, want, EXT) == 0, "sparse: extent at %lld differs", (long long)extents[i]);
	}
	WL_CHECK(pread(sparse_fd, buf, 8, GIB / 4) == 8 && memcmp(buf, "\0\0\0\0\0\0\0\0", 8) == 0,
		 "sparse: a hole reads non-zero");

	/* log: write-only, appended to, read back through /proc */
	log_line();
	check_stat(log_fd, "log", S_IFREG, 0640, 0, 0);
	WL_CHECK((fcntl(log_fd, F_GETFL) & (O_ACCMODE | O_APPEND)) == (O_WRONLY | O_APPEND), "log: flags %#o",
		 fcntl(log_fd, F_GETFL));
	WL_CHECK(fstat(log_fd, &st) == 0 && (uint64_t)st.st_size == log_lines * LOGREC,
		 "log: size %lld, want %" PRIu64, (long long)st.st_size, log_lines * LOGREC);
	{
		char path[64], rec[LOGREC + 1];
		int rd;
		uint64_t k = log_lines > 5 ? log_lines - 5 : 0;

		snprintf(path, sizeof path, "/proc/self/fd/%d", log_fd);
		rd = open(path, O_RDONLY | O_CLOEXEC);
		WL_CHECK(rd >= 0, "reopen log: %s", strerror(errno));
		for (uint64_t j = 0; j < log_lines; j += j + 1 < k ? 97 : 1) {
			char want_rec[LOGREC + 1];

			snprintf(want_rec, sizeof want_rec, "log line %06" PRIu64 "\n", j % 1000000);
			WL_CHECK(pread(rd, rec, LOGREC, (off_t)(j * LOGREC)) == LOGREC && memcmp(rec, want_rec, LOGREC) == 0,
				 "log: line %" PRIu64 " differs", j);
		}
		close(rd);
	}

	/* tmp */
	check_stat(tmp_fd, "O_TMPFILE file", S_IFREG, 0600, 0, 0);
	WL_CHECK(pread(tmp_fd, buf, 12, 0) == 12 && memcmp(buf, "tmpfile-data", 12) == 0, "O_TMPFILE contents");
	check_stat(fileno(tmpf), "tmpfile()", S_IFREG, 0600, 0, 0);
	WL_CHECK(pread(fileno(tmpf), buf, 9, 0) == 9 && memcmp(buf, "via glibc", 9) == 0, "tmpfile() contents");

	/* dir and cwd */
	check_stat(dir_fd, "deleted directory", S_IFDIR, 0751, 1234, 5678);
	WL_CHECK(openat(dir_fd, "new", O_CREAT | O_WRONLY | O_CLOEXEC, 0600) < 0 && errno == ENOENT,
		 "a file could be created in the deleted directory");
	{
		int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		WL_CHECK(cwd >= 0, "open the working directory: %s", strerror(errno));
		check_stat(cwd, "deleted working directory", S_IFDIR, 0750, 0, 0);
		close(cwd);
		WL_CHECK(getcwd(buf, sizeof buf) == NULL && errno == ENOENT, "getcwd in a deleted directory: %s",
			 strerror(errno));
		WL_CHECK(open("new", O_CREAT | O_WRONLY | O_CLOEXEC, 0600) < 0 && errno == ENOENT,
			 "a file could be created in the deleted working directory");
	}

	/* fifo */
	check_stat(fifo_r, "fifo", S_IFIFO, 0640, 0, 0);
	{
		struct stat a, b, c;

		fstat(fifo_rw, &a);
		fstat(fifo_w, &b);
		fstat(fifo_r, &c);
		WL_CHECK(a.st_ino == b.st_ino && b.st_ino == c.st_ino, "the FIFO's descriptions are on different FIFOs");
	}
	{
		uint8_t in = fifo_byte(fifo_in), out = 0;

		WL_CHECK(write(fifo_w, &in, 1) == 1, "write fifo: %s", strerror(errno));
		fifo_in++;
		WL_CHECK(read(fifo_r, &out, 1) == 1, "read fifo: %s", strerror(errno));
		WL_CHECK(out == fifo_byte(fifo_out), "fifo: byte %" PRIu64 " is %#x, want %#x", fifo_out, out,
			 fifo_byte(fifo_out));
		fifo_out++;
	}

	/* null, zero */
	check_stat(null_fd, "null", S_IFCHR, 0620, 1234, 0);
	WL_CHECK(fstat(null_fd, &st) == 0 && st.st_rdev == makedev(1, 3), "null: device %d:%d",
		 major(st.st_rdev), minor(st.st_rdev));
	WL_CHECK(write(null_fd, "discard", 7) == 7 && read(null_fd, buf, 1) == 0, "null does not behave as /dev/null");
	check_stat(zero_fd, "zero", S_IFCHR, 0600, 0, 0);
	buf[0] = 1;
	WL_CHECK(read(zero_fd, buf, 64) == 64 && buf[0] == 0 && buf[63] == 0, "zero does not read zeros");

	/* watched */
	{
		union {
			struct inotify_event ev;
			char b[4096];
		} u;
		ssize_t n;
		int seen = 0;

		WL_CHECK(write(watched_fd, "m", 1) == 1, "write watched: %s", strerror(errno));
		n = read(ino_fd, u.b, sizeof u.b);
		WL_CHECK(n > 0, "no inotify event for a write to the watched deleted file: %s", strerror(errno));
		for (char *p = u.b; p < u.b + n;) {
			struct inotify_event *e = (struct inotify_event *)p;

			WL_CHECK(e->wd == wd && (e->mask & IN_MODIFY), "inotify event wd %d mask %#x, want wd %d IN_MODIFY",
				 e->wd, e->mask, wd);
			seen++;
			p += sizeof *e + e->len;
		}
		WL_CHECK(seen > 0, "no IN_MODIFY event");
		WL_CHECK(read(ino_fd, u.b, sizeof u.b) < 0 && errno == EAGAIN, "more inotify events than writes");
	}
}

static int open_deleted(const char *name, int flags, mode_t mode, uid_t uid, gid_t gid)
{
	int fd = open(name, flags | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	WL_CHECK(fd >= 0, "create %s: %s", name, strerror(errno));
	WL_CHECK(fchown(fd, uid, gid) == 0 && fchmod(fd, mode) == 0, "chown/chmod %s: %s", name, strerror(errno));
	return fd;
}

int main(int argc, char **argv)
{
	char buf[EXT];
	struct sigaction sa;

	wl_init(argc, argv, "ghosts");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	umask(0);

	attr_fd = open_deleted("attr", O_RDWR, 02751, 1234, 5678);
	{
		static char contents[10000];

		for (int i = 0; i < 10000; i++)
			contents[i] = (char)wl_mix((uint64_t)i);
		wl_write_all(attr_fd, contents, sizeof contents, "attr");
	}
	{
		struct timespec ts[2] = { attr_mtime, attr_mtime };

		WL_CHECK(futimens(attr_fd, ts) == 0, "futimens: %s", strerror(errno));
	}
	WL_CHECK(unlink("attr") == 0, "unlink attr");

	sparse_fd = open_deleted("sparse", O_RDWR, 0600, 0, 0);
	WL_CHECK(ftruncate(sparse_fd, GIB) == 0, "ftruncate: %s", strerror(errno));
	for (int i = 0; i < 3; i++) {
		fill_ext(buf, extents[i]);
		WL_CHECK(pwrite(sparse_fd, buf, EXT, extents[i]) == EXT, "pwrite sparse: %s", strerror(errno));
	}
	WL_CHECK(unlink("sparse") == 0, "unlink sparse");

	log_fd = open_deleted("app.log", O_WRONLY | O_APPEND, 0640, 0, 0);
	for (int i = 0; i < 100; i++)
		log_line();
	WL_CHECK(unlink("app.log") == 0, "unlink app.log");

	tmp_fd = open(".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	WL_CHECK(tmp_fd >= 0, "O_TMPFILE: %s", strerror(errno));
	wl_write_all(tmp_fd, "tmpfile-data", 12, "tmpfile");
	tmpf = tmpfile();
	WL_CHECK(tmpf != NULL, "tmpfile: %s", strerror(errno));
	WL_CHECK(fputs("via glibc", tmpf) >= 0 && fflush(tmpf) == 0, "write tmpfile()");

	WL_CHECK(mkdir("dir", 0751) == 0 && chown("dir", 1234, 5678) == 0, "mkdir dir: %s", strerror(errno));
	dir_fd = open("dir", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	WL_CHECK(dir_fd >= 0 && rmdir("dir") == 0, "open and remove dir: %s", strerror(errno));

	WL_CHECK(mkfifo("fifo", 0640) == 0, "mkfifo: %s", strerror(errno));
	fifo_rw = open("fifo", O_RDWR | O_CLOEXEC);
	fifo_w = open("fifo", O_WRONLY | O_CLOEXEC);
	fifo_r = open("fifo", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	WL_CHECK(fifo_rw >= 0 && fifo_w >= 0 && fifo_r >= 0 && unlink("fifo") == 0, "fifo: %s", strerror(errno));
	for (; fifo_in < 7; fifo_in++) {
		uint8_t b = fifo_byte(fifo_in);

		WL_CHECK(write(fifo_w, &b, 1) == 1, "fill fifo");
	}

	WL_CHECK(mknod("null", S_IFCHR | 0620, makedev(1, 3)) == 0 && chown("null", 1234, 0) == 0,
		 "mknod null: %s", strerror(errno));
	WL_CHECK(mknod("zero", S_IFCHR | 0600, makedev(1, 5)) == 0, "mknod zero: %s", strerror(errno));
	null_fd = open("null", O_RDWR | O_CLOEXEC);
	zero_fd = open("zero", O_RDONLY | O_CLOEXEC);
	WL_CHECK(null_fd >= 0 && zero_fd >= 0 && unlink("null") == 0 && unlink("zero") == 0, "device nodes: %s",
		 strerror(errno));

	watched_fd = open_deleted("watched", O_RDWR, 0600, 0, 0);
	ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	WL_CHECK(ino_fd >= 0, "inotify_init1: %s", strerror(errno));
	for (int i = 1; i <= 17; i++) {
		char name[16];
		int f;

		snprintf(name, sizeof name, "w%d", i);
		f = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		WL_CHECK(f >= 0 && close(f) == 0, "create %s: %s", name, strerror(errno));
		WL_CHECK(inotify_add_watch(ino_fd, name, IN_ATTRIB) == i, "watch %s: %s", name, strerror(errno));
	}
	WL_CHECK(inotify_rm_watch(ino_fd, 5) == 0, "inotify_rm_watch: %s", strerror(errno));
	{
		struct inotify_event ev;

		WL_CHECK(read(ino_fd, &ev, sizeof ev) == sizeof ev && ev.wd == 5 && (ev.mask & IN_IGNORED),
			 "no IN_IGNORED for the removed watch: %s", strerror(errno));
	}
	wd = inotify_add_watch(ino_fd, "watched", IN_MODIFY);
	WL_CHECK(wd == 18 && unlink("watched") == 0, "watch: wd %d: %s", wd, strerror(errno));

	WL_CHECK(mkdir("cwd", 0750) == 0 && chdir("cwd") == 0 && rmdir("../cwd") == 0, "deleted cwd: %s",
		 strerror(errno));

	verify();
	wl_say("READY");
	for (;;) {
		char extra[64];

		verify();
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra, "log=%" PRIu64, log_lines);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}
	verify();
	{
		/* Still an O_TMPFILE file: it can be given a name. */
		char path[64], dir[4096];
		struct stat a, b;

		snprintf(path, sizeof path, "/proc/self/fd/%d", tmp_fd);
		snprintf(dir, sizeof dir, "%s", wl_stop_path);
		*strrchr(dir, '/') = 0;
		strncat(dir, "/linked", sizeof dir - strlen(dir) - 1);
		WL_CHECK(linkat(AT_FDCWD, path, AT_FDCWD, dir, AT_SYMLINK_FOLLOW) == 0, "link the O_TMPFILE file: %s",
			 strerror(errno));
		WL_CHECK(stat(dir, &a) == 0 && fstat(tmp_fd, &b) == 0 && a.st_ino == b.st_ino, "the link is another file");
		unlink(dir);
	}
	wl_say("DONE ok");
	return 0;
}
