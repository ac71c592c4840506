/*
 * shmfile.c: a POSIX shared memory object (shm_open, a file of the tmpfs
 * /dev/shm) that a reboot would empty.
 *
 *   P (root) ── C (child: opens the object again by name)
 *
 * P holds the object's descriptor, a MAP_SHARED mapping of it and a
 * MAP_PRIVATE one; C its own descriptor and MAP_SHARED mapping. Every tick
 * P writes a value through its descriptor (its shared mapping sees it, C's
 * mapping sees it, P's private mapping sees it in a page it never wrote),
 * and C writes one through its mapping (P's descriptor reads it): one
 * object, however it is reached. The object's name is printed as
 * "INFO shm=NAME": TestShmFreshKernel removes it between checkpoint and
 * restore, as a reboot would, and the restore must bring it back with the
 * contents it had.
 */
#include "common.h"

#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096

struct ctl {
	volatile int stop, c_ready;
	volatile uint64_t p_wrote, c_wrote, c_ticks;
};

static struct ctl *ctl;
static char name[64];
static int fd;
static volatile uint64_t *shared_map, *private_map;

static void run_c(void)
{
	int cfd;
	volatile uint64_t *m;
	uint64_t n = 0;

	snprintf(wl_role, sizeof wl_role, "shmfile C");
	wl_pid = (pid_t)syscall(SYS_getpid);
	cfd = shm_open(name, O_RDWR, 0);
	WL_CHECK(cfd >= 0, "C: shm_open %s: %s", name, strerror(errno));
	close(fd);
	m = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
	WL_CHECK(m != MAP_FAILED, "C: mmap: %s", strerror(errno));
	ctl->c_ready = 1;
	while (!ctl->stop) {
		uint64_t pub = ctl->p_wrote;

		WL_CHECK(m[0] >= pub, "C's mapping reads %" PRIu64 ", P wrote %" PRIu64 " through its descriptor", m[0], pub);
		m[PG / 8] = ++n;
		ctl->c_wrote = n;
		ctl->c_ticks++;
		wl_sleep_ms(2);
	}
	_exit(0);
}

static void verify(void)
{
	uint64_t v = wl_tick + 5000, got, pub;
	struct stat st;

	WL_CHECK(pwrite(fd, &v, sizeof v, 0) == sizeof v, "pwrite: %s", strerror(errno));
	ctl->p_wrote = v;
	WL_CHECK(shared_map[0] == v, "P's MAP_SHARED mapping reads %" PRIu64 ", its descriptor wrote %" PRIu64,
		 shared_map[0], v);
	WL_CHECK(pwrite(fd, &v, sizeof v, 2 * PG) == sizeof v, "pwrite: %s", strerror(errno));
	WL_CHECK(private_map[2 * PG / 8] == v, "P's MAP_PRIVATE mapping reads %" PRIu64 " in an untouched page, the "
		 "descriptor wrote %" PRIu64, private_map[2 * PG / 8], v);
	WL_CHECK(private_map[1] == 0xabcdef, "P's written MAP_PRIVATE page changed");
	pub = ctl->c_wrote;
	WL_CHECK(pread(fd, &got, sizeof got, PG) == sizeof got, "pread: %s", strerror(errno));
	/* Not monotonic across a restore: after a --leave-running checkpoint
	 * the file at its path went on changing, as any file does. */
	WL_CHECK(got >= pub, "C's write through its mapping did not reach P: read %" PRIu64 ", C wrote %" PRIu64,
		 got, pub);
	WL_CHECK(fstat(fd, &st) == 0 && st.st_size == 3 * PG && (st.st_mode & 07777) == 0640,
		 "the object's size %lld or mode %#o changed", (long long)st.st_size, st.st_mode & 07777);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	pid_t c;

	wl_init(argc, argv, "shmfile P");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(ctl != MAP_FAILED, "mmap: %s", strerror(errno));
	snprintf(name, sizeof name, "/seamless-wl-shmfile-%d", (int)wl_pid);
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0640);
	WL_CHECK(fd >= 0, "shm_open %s: %s", name, strerror(errno));
	WL_CHECK(fchmod(fd, 0640) == 0 && ftruncate(fd, 3 * PG) == 0, "size: %s", strerror(errno));
	shared_map = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	private_map = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	WL_CHECK(shared_map != MAP_FAILED && private_map != MAP_FAILED, "mmap: %s", strerror(errno));
	private_map[1] = 0xabcdef;
	c = fork();
	WL_CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0)
		run_c();
	wl_wait_flag(&ctl->c_ready, "C mapping the object");
	wl_settle_root = wl_pid;
	wl_say("INFO shm=/dev/shm%s", name);
	verify();
	wl_say("READY");
	for (;;) {
		char extra[64];

		verify();
		if (wl_stop_requested())
			break;
		snprintf(extra, sizeof extra, "c_ticks=%" PRIu64, ctl->c_ticks);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}
	verify();
	ctl->stop = 1;
	{
		int status;

		WL_CHECK(waitpid(c, &status, 0) == c && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "C ended with status %#x", status);
	}
	shm_unlink(name);
	wl_say("DONE ok");
	return 0;
}
