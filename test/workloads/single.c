/*
 * single.c: one single-threaded process holding as many kinds of
 * per-process state as possible, re-verified every tick.
 *
 * Memory: private anonymous pages (patterned, read-only-touched, never
 * touched), a read-only anonymous region, MAP_SHARED|MAP_ANONYMOUS memory
 * with a second alias made by mremap (the two must stay one object), a
 * private file mapping with a few COW-modified pages, a MAP_SHARED file
 * mapping (writes reach the file), heap lists, a big malloc chunk, a
 * PROT_NONE region, a guard gap, a brk extension, a patterned stack array.
 * Files: a partially read file (offset continues exactly) and a dup of it
 * (shared offset), an O_APPEND file, an open-but-deleted file, a directory,
 * /dev/null, /dev/zero, /dev/urandom, FD_CLOEXEC flags, exact fd numbers and
 * the exact set of open fds.
 * Process: sigactions of every signal, the blocked mask, pending signals
 * (standard and queued real-time with values), sigaltstack (the SIGUSR1
 * handler checks it runs on it), every rlimit, umask, cwd, personality,
 * comm, nice, sbrk(0), /proc/self/exe, cmdline, auxv, the mm fields of
 * /proc/self/stat, and a nanosleep loop on CLOCK_MONOTONIC.
 */
#include "common.h"

#include <dirent.h>
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sysmacros.h>

#define PAGE 4096UL

/* Fixed fd numbers: the restore must put every fd back at its number. */
enum {
	FD_DATA = 40,     /* data.dat, O_RDONLY, partially read */
	FD_APPEND = 41,   /* append.log, O_WRONLY|O_APPEND, FD_CLOEXEC */
	FD_GHOST = 42,    /* ghost.dat, O_RDWR, unlinked */
	FD_DIR = 43,      /* the start directory, O_DIRECTORY */
	FD_NULL = 44,     /* /dev/null, O_WRONLY, FD_CLOEXEC */
	FD_ZERO = 45,     /* /dev/zero, O_RDONLY */
	FD_URANDOM = 46,  /* /dev/urandom, O_RDONLY|O_NONBLOCK */
	FD_SHARED = 47,   /* shared.dat, O_RDWR (backs the shared mapping) */
	FD_DATA_DUP = 200 /* dup(FD_DATA): shares its offset */
};

static const int fd_list[] = { FD_DATA, FD_APPEND, FD_GHOST, FD_DIR, FD_NULL,
			       FD_ZERO, FD_URANDOM, FD_SHARED, FD_DATA_DUP };
#define NFDS (sizeof fd_list / sizeof fd_list[0])

struct fd_rec {
	int fdflags, flflags;
	dev_t dev;
	ino_t ino;
	mode_t mode;
	dev_t rdev;
};
static struct fd_rec fd_recs[NFDS];

/* Sizes of the data files. */
#define DATA_SIZE (64 * 1024)
#define GHOST_SIZE 10000
#define PRIV_PAGES 16
#define SHARED_FILE_PAGES 4
#define ANON_PAGES 2048 /* 8 MiB */
#define RO_PAGES 16
#define SHANON_SIZE (1024 * 1024)
#define NODES 2000
#define BIG_SIZE (3 * 1024 * 1024)
#define BRK_EXT (64 * 1024)
#define STACK_WORDS 8192

static volatile uint64_t *anon, *ro, *shanon, *shanon_alias, *priv, *shfile, *big, *brkext;
static char *protnone, *guard;
static uint64_t rolling[ANON_PAGES];

struct node {
	struct node *next;
	uint32_t idx, len;
	unsigned char data[];
};
static struct node *list_head;

static uint64_t data_off;   /* expected offset of FD_DATA */
static uint64_t ghost_off;  /* expected offset of FD_GHOST */
static uint64_t append_recs;
static char start_dir[2048], cwd_path[2048];
static struct stat cwd_st, start_dir_st;
static void *brk_rec;
static int personality_rec, nice_rec;
static char comm_rec[16];
static mode_t umask_rec;
static struct rlimit rlim_rec[RLIM_NLIMITS];
static stack_t ss_rec;
static char altstack[64 * 1024] __attribute__((aligned(16)));
static volatile sig_atomic_t usr1_wrong_stack, usr1_wrong_info;
static char exe_rec[4096];
static char cmdline_rec[4096], auxv_rec[4096];
static ssize_t cmdline_len, auxv_len;
static char statmm_rec[512];
static int fds_rec[256], nfds_rec;

struct sa_rec {
	int err;
	struct sigaction sa;
};
static struct sa_rec sa_recs[_NSIG];
static sigset_t blocked_rec, pending_rec;

static char big_buf[1 << 18]; /* scratch for /proc reads; static so no malloc */

/* madvise/mlock region: 4 pages each of DONTDUMP, WIPEONFORK, DONTFORK, NOHUGEPAGE, mlock. */
#define ADV_PARTS 5
static volatile uint64_t *adv;
static const char *const adv_flag[ADV_PARTS] = { "dd", "wf", "dc", "nh", "lo" };

static volatile sig_atomic_t trap_count, segv_count, segv_wrong_stack;
static void *volatile segv_addr;
static sigjmp_buf segv_jmp;

static uint64_t pat(uint64_t region, uint64_t i)
{
	return wl_mix(wl_nonce ^ (region << 48) ^ i);
}

/* file_pat is independent of the nonce: it is what the files hold on disk. */
static uint64_t file_pat(uint64_t region, uint64_t i)
{
	return wl_mix(0x5eab1e55ULL ^ (region << 48) ^ i);
}

static void usr1_handler(int sig, siginfo_t *si, void *uc)
{
	char here;

	(void)uc;
	if (&here < altstack || &here >= altstack + sizeof altstack)
		usr1_wrong_stack = 1;
	if (sig != SIGUSR1 || si->si_signo != SIGUSR1)
		usr1_wrong_info = 1;
	wl_usr1_count++;
}

static void trap_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (sig == SIGTRAP && si->si_code == SI_TKILL)
		trap_count++;
}

/* segv_handler is armed only by the final check, which touches PROT_NONE. */
static void segv_handler(int sig, siginfo_t *si, void *uc)
{
	char here;

	(void)sig;
	(void)uc;
	if (&here < altstack || &here >= altstack + sizeof altstack)
		segv_wrong_stack = 1;
	segv_addr = si->si_addr;
	segv_count++;
	siglongjmp(segv_jmp, 1);
}

static void term_handler(int sig)
{
	(void)sig;
}

static void winch_handler(int sig)
{
	(void)sig;
}

static void chld_handler(int sig)
{
	(void)sig;
}

static void make_file(const char *name, size_t size, uint64_t region)
{
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	uint64_t w;

	WL_CHECK(fd >= 0, "create %s: %s", name, strerror(errno));
	for (size_t i = 0; i < size / 8; i++) {
		w = file_pat(region, i);
		wl_write_all(fd, &w, 8, name);
	}
	if (size % 8) {
		w = file_pat(region, size / 8);
		wl_write_all(fd, &w, size % 8, name);
	}
	close(fd);
}

/* byte_at returns byte off of a file made by make_file. */
static unsigned char byte_at(uint64_t region, uint64_t off)
{
	uint64_t w = file_pat(region, off / 8);

	return ((unsigned char *)&w)[off % 8];
}

static void place_fd(int fd, int want, int cloexec, const char *what)
{
	WL_CHECK(fd >= 0, "open %s: %s", what, strerror(errno));
	WL_CHECK(dup3(fd, want, cloexec ? O_CLOEXEC : 0) == want, "dup3 %s: %s", what,
		 strerror(errno));
	close(fd);
}

/* maps_find looks addr up in /proc/self/maps: perms (5 chars) and path. */
static int maps_find(const void *addr, unsigned long *start, unsigned long *end, char *perms,
		     unsigned long *ino, char *path, size_t pathsz)
{
	ssize_t n = wl_read_file("/proc/self/maps", big_buf, sizeof big_buf);
	char *line = big_buf;

	WL_CHECK(n > 0, "read /proc/self/maps: %s", strerror(errno));
	while (line && *line) {
		char *nl = strchr(line, '\n');
		unsigned long s, e, off;
		char p[8], dev[32];
		int consumed = 0;

		if (nl)
			*nl = 0;
		if (sscanf(line, "%lx-%lx %7s %lx %31s %lu %n", &s, &e, p, &off, dev, ino,
			   &consumed) >= 6 &&
		    (unsigned long)addr >= s && (unsigned long)addr < e) {
			*start = s;
			*end = e;
			strcpy(perms, p);
			snprintf(path, pathsz, "%s", consumed ? line + consumed : "");
			return 1;
		}
		line = nl ? nl + 1 : NULL;
	}
	return 0;
}

static void check_vma(const void *addr, size_t len, const char *want_perms, const char *suffix,
		      unsigned long want_ino, const char *what)
{
	unsigned long s, e, ino;
	char perms[8], path[1024];

	WL_CHECK(maps_find(addr, &s, &e, perms, &ino, path, sizeof path),
		 "%s at %p is not mapped", what, addr);
	WL_CHECK(s <= (unsigned long)addr && e >= (unsigned long)addr + len,
		 "%s: vma %lx-%lx does not cover %p+%zu", what, s, e, addr, len);
	WL_CHECK(strcmp(perms, want_perms) == 0, "%s: perms %s, want %s", what, perms, want_perms);
	if (suffix) {
		size_t pl = strlen(path), sl = strlen(suffix);

		WL_CHECK(pl >= sl && strcmp(path + pl - sl, suffix) == 0,
			 "%s: backing path %s, want *%s", what, path, suffix);
	}
	if (want_ino)
		WL_CHECK(ino == want_ino, "%s: inode %lu, want %lu", what, ino, want_ino);
}

/* list_fds lists the open fds without malloc (getdents64 on a static buffer). */
static int list_fds(int *out, int max)
{
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int n = 0;

	WL_CHECK(dfd >= 0, "open /proc/self/fd: %s", strerror(errno));
	for (;;) {
		long r = syscall(SYS_getdents64, dfd, big_buf, sizeof big_buf);

		WL_CHECK(r >= 0, "getdents64: %s", strerror(errno));
		if (r == 0)
			break;
		for (long off = 0; off < r;) {
			struct dirent64 *d = (struct dirent64 *)(big_buf + off);
			char *endp;
			long fd = strtol(d->d_name, &endp, 10);

			if (d->d_name[0] != '.' && *endp == 0 && fd != dfd && n < max)
				out[n++] = (int)fd;
			off += d->d_reclen;
		}
	}
	close(dfd);
	/* getdents order is the kernel's; sort for comparison. */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
			int t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

/* stat_mm returns the mm fields of /proc/self/stat (26-28, 45-51). */
static void stat_mm(char *out, size_t size)
{
	char *p;
	int field = 2;

	WL_CHECK(wl_read_file("/proc/self/stat", big_buf, sizeof big_buf) > 0,
		 "read /proc/self/stat: %s", strerror(errno));
	p = strrchr(big_buf, ')');
	WL_CHECK(p != NULL, "bad /proc/self/stat");
	out[0] = 0;
	for (char *tok = strtok(p + 1, " \n"); tok; tok = strtok(NULL, " \n")) {
		field++;
		if ((field >= 26 && field <= 28) || (field >= 45 && field <= 51)) {
			size_t l = strlen(out);
			snprintf(out + l, size - l, "%d=%s ", field, tok);
		}
	}
}

static void setup(void)
{
	struct sigaction sa;
	stack_t ss;
	struct rlimit rl;
	int fd;

	/* Directories: the start dir (held by FD_DIR) and cwd/ inside it. */
	WL_CHECK(getcwd(start_dir, sizeof start_dir) != NULL, "getcwd: %s", strerror(errno));
	WL_CHECK(stat(".", &start_dir_st) == 0, "stat .: %s", strerror(errno));
	if (mkdir("cwd", 0755) != 0)
		WL_CHECK(errno == EEXIST, "mkdir cwd: %s", strerror(errno));

	/* Files. */
	make_file("data.dat", DATA_SIZE, 1);
	make_file("priv.dat", PRIV_PAGES * PAGE, 2);
	make_file("shared.dat", SHARED_FILE_PAGES * PAGE, 3);
	unlink("append.log");

	place_fd(open("data.dat", O_RDONLY), FD_DATA, 0, "data.dat");
	{
		unsigned char buf[1000];
		WL_CHECK(read(FD_DATA, buf, sizeof buf) == sizeof buf, "read data.dat");
		for (size_t i = 0; i < sizeof buf; i++)
			WL_CHECK(buf[i] == byte_at(1, i), "data.dat byte %zu", i);
		data_off = sizeof buf;
	}
	WL_CHECK(dup2(FD_DATA, FD_DATA_DUP) == FD_DATA_DUP, "dup2: %s", strerror(errno));
	place_fd(open("append.log", O_WRONLY | O_APPEND | O_CREAT, 0644), FD_APPEND, 1,
		 "append.log");
	place_fd(open("ghost.dat", O_RDWR | O_CREAT | O_TRUNC, 0600), FD_GHOST, 0, "ghost.dat");
	for (int i = 0; i < GHOST_SIZE; i++) {
		unsigned char b = byte_at(4, (uint64_t)i);
		wl_write_all(FD_GHOST, &b, 1, "ghost.dat");
	}
	WL_CHECK(unlink("ghost.dat") == 0, "unlink ghost.dat: %s", strerror(errno));
	ghost_off = 5000;
	WL_CHECK(lseek(FD_GHOST, (off_t)ghost_off, SEEK_SET) == (off_t)ghost_off, "lseek ghost");
	place_fd(open(".", O_RDONLY | O_DIRECTORY), FD_DIR, 0, "start dir");
	place_fd(open("/dev/null", O_WRONLY), FD_NULL, 1, "/dev/null");
	place_fd(open("/dev/zero", O_RDONLY), FD_ZERO, 0, "/dev/zero");
	place_fd(open("/dev/urandom", O_RDONLY | O_NONBLOCK), FD_URANDOM, 0, "/dev/urandom");
	place_fd(open("shared.dat", O_RDWR), FD_SHARED, 0, "shared.dat");

	/* Private anonymous memory: 4 kinds of pages, in turn. */
	anon = mmap(NULL, ANON_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		    0);
	WL_CHECK(anon != MAP_FAILED, "mmap anon: %s", strerror(errno));
	for (uint64_t p = 0; p < ANON_PAGES; p++) {
		volatile uint64_t *pg = anon + p * (PAGE / 8);

		switch (p % 4) {
		case 0: /* fully patterned */
		case 1: /* patterned, word 0 rewritten every tick */
			for (uint64_t j = 0; j < PAGE / 8; j++)
				pg[j] = pat(1, p * 512 + j);
			rolling[p] = pg[0];
			break;
		case 2: /* only read: maps the zero page */
			(void)pg[7];
			break;
		case 3: /* never touched until the final check */
			break;
		}
	}

	/* Read-only anonymous memory with content. */
	ro = mmap(NULL, RO_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(ro != MAP_FAILED, "mmap ro: %s", strerror(errno));
	for (uint64_t i = 0; i < RO_PAGES * PAGE / 8; i++)
		ro[i] = pat(2, i);
	WL_CHECK(mprotect((void *)ro, RO_PAGES * PAGE, PROT_READ) == 0, "mprotect ro");

	/* Shared anonymous memory and an alias of the same pages. */
	shanon = mmap(NULL, SHANON_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(shanon != MAP_FAILED, "mmap shared anon: %s", strerror(errno));
	for (uint64_t i = 0; i < SHANON_SIZE / 8; i++)
		shanon[i] = pat(3, i);
	shanon_alias = mremap((void *)shanon, 0, SHANON_SIZE, MREMAP_MAYMOVE);
	WL_CHECK(shanon_alias != MAP_FAILED, "mremap alias: %s", strerror(errno));

	/* Private file mapping with COW-modified pages 3 and 7 and one word of 11. */
	fd = open("priv.dat", O_RDWR);
	WL_CHECK(fd >= 0, "open priv.dat: %s", strerror(errno));
	priv = mmap(NULL, PRIV_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	WL_CHECK(priv != MAP_FAILED, "mmap priv.dat: %s", strerror(errno));
	close(fd); /* the mapping must survive without an fd */
	for (uint64_t j = 0; j < PAGE / 8; j++) {
		priv[3 * 512 + j] = pat(4, 3 * 512 + j);
		priv[7 * 512 + j] = pat(4, 7 * 512 + j);
	}
	priv[11 * 512 + 5] = pat(4, 11 * 512 + 5);

	/* Shared file mapping. */
	shfile = mmap(NULL, SHARED_FILE_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, FD_SHARED,
		      0);
	WL_CHECK(shfile != MAP_FAILED, "mmap shared.dat: %s", strerror(errno));

	/* Heap: a list of varied sizes with every third node freed, and a big chunk. */
	{
		struct node **tail = &list_head;
		struct node *keep[NODES];

		for (uint32_t i = 0; i < NODES; i++) {
			uint32_t len = 16 + (i * 37) % 3000;

			keep[i] = malloc(sizeof(struct node) + len);
			WL_CHECK(keep[i] != NULL, "malloc");
			keep[i]->idx = i;
			keep[i]->len = len;
			for (uint32_t j = 0; j < len; j++)
				keep[i]->data[j] = (unsigned char)pat(5, (uint64_t)i << 16 | j);
		}
		for (uint32_t i = 0; i < NODES; i++) {
			if (i % 3 == 2) {
				free(keep[i]);
				continue;
			}
			*tail = keep[i];
			tail = &keep[i]->next;
		}
		*tail = NULL;
	}
	big = malloc(BIG_SIZE);
	WL_CHECK(big != NULL, "malloc big");
	for (uint64_t i = 0; i < BIG_SIZE / 8; i++)
		big[i] = pat(6, i);

	/* PROT_NONE region, and a guard gap: 3 pages with the middle one unmapped. */
	protnone = mmap(NULL, 16 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(protnone != MAP_FAILED, "mmap PROT_NONE");
	guard = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	WL_CHECK(guard != MAP_FAILED, "mmap guard");
	WL_CHECK(munmap(guard + PAGE, PAGE) == 0, "munmap guard gap");
	guard[0] = 0x11;
	guard[2 * PAGE] = 0x22;

	/* madvise/mlock: each part becomes its own VMA with its own VmFlags. */
	adv = mmap(NULL, ADV_PARTS * 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		   0);
	WL_CHECK(adv != MAP_FAILED, "mmap adv");
	for (uint64_t i = 0; i < ADV_PARTS * 4 * PAGE / 8; i++)
		adv[i] = pat(9, i);
	WL_CHECK(madvise((char *)adv, 4 * PAGE, MADV_DONTDUMP) == 0, "MADV_DONTDUMP: %s",
		 strerror(errno));
	WL_CHECK(madvise((char *)adv + 4 * PAGE, 4 * PAGE, MADV_WIPEONFORK) == 0,
		 "MADV_WIPEONFORK: %s", strerror(errno));
	WL_CHECK(madvise((char *)adv + 8 * PAGE, 4 * PAGE, MADV_DONTFORK) == 0, "MADV_DONTFORK: %s",
		 strerror(errno));
	WL_CHECK(madvise((char *)adv + 12 * PAGE, 4 * PAGE, MADV_NOHUGEPAGE) == 0,
		 "MADV_NOHUGEPAGE: %s", strerror(errno));
	WL_CHECK(mlock((char *)adv + 16 * PAGE, 4 * PAGE) == 0, "mlock: %s", strerror(errno));

	/* brk: extend the break by hand after every malloc. */
	brkext = sbrk(BRK_EXT);
	WL_CHECK(brkext != (void *)-1, "sbrk: %s", strerror(errno));
	for (uint64_t i = 0; i < BRK_EXT / 8; i++)
		brkext[i] = pat(7, i);
	brk_rec = sbrk(0);

	/* Signals. */
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = usr1_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGINT);
	sigaddset(&sa.sa_mask, SIGQUIT);
	sigaddset(&sa.sa_mask, SIGRTMIN + 2);
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction USR1");
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = trap_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	WL_CHECK(sigaction(SIGTRAP, &sa, NULL) == 0, "sigaction TRAP");
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = segv_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigaddset(&sa.sa_mask, SIGBUS);
	WL_CHECK(sigaction(SIGSEGV, &sa, NULL) == 0, "sigaction SEGV");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	WL_CHECK(sigaction(SIGHUP, &sa, NULL) == 0, "sigaction HUP");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = term_handler;
	sa.sa_flags = SA_RESETHAND | SA_NODEFER;
	sigaddset(&sa.sa_mask, SIGHUP);
	WL_CHECK(sigaction(SIGTERM, &sa, NULL) == 0, "sigaction TERM");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = winch_handler;
	WL_CHECK(sigaction(SIGWINCH, &sa, NULL) == 0, "sigaction WINCH");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = chld_handler;
	sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
	WL_CHECK(sigaction(SIGCHLD, &sa, NULL) == 0, "sigaction CHLD");

	memset(&ss, 0, sizeof ss);
	ss.ss_sp = altstack;
	ss.ss_size = sizeof altstack;
	WL_CHECK(sigaltstack(&ss, NULL) == 0, "sigaltstack: %s", strerror(errno));

	{
		sigset_t blk;

		sigemptyset(&blk);
		sigaddset(&blk, SIGUSR2);
		sigaddset(&blk, SIGRTMIN + 5);
		sigaddset(&blk, SIGXCPU);
		WL_CHECK(sigprocmask(SIG_BLOCK, &blk, NULL) == 0, "sigprocmask");
		WL_CHECK(raise(SIGUSR2) == 0, "raise USR2");
		WL_CHECK(sigqueue(getpid(), SIGRTMIN + 5, (union sigval){ .sival_int = 111 }) == 0,
			 "sigqueue 1");
		WL_CHECK(sigqueue(getpid(), SIGRTMIN + 5, (union sigval){ .sival_int = 222 }) == 0,
			 "sigqueue 2");
		WL_CHECK(kill(getpid(), SIGXCPU) == 0, "kill XCPU");
	}

	/* Limits, umask, cwd, personality, comm, nice. */
	WL_CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit");
	rl.rlim_cur = 512;
	WL_CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit NOFILE: %s", strerror(errno));
	rl.rlim_cur = 12345;
	rl.rlim_max = 654321;
	WL_CHECK(setrlimit(RLIMIT_CORE, &rl) == 0, "setrlimit CORE: %s", strerror(errno));
	umask(027);
	WL_CHECK(chdir("cwd") == 0, "chdir: %s", strerror(errno));
	WL_CHECK(personality(PER_LINUX | UNAME26) != -1, "personality: %s", strerror(errno));
	WL_CHECK(prctl(PR_SET_NAME, "wl-single", 0, 0, 0) == 0, "PR_SET_NAME");
	WL_CHECK(setpriority(PRIO_PROCESS, 0, 7) == 0, "setpriority: %s", strerror(errno));
	setenv("SEAMLESS_WORKLOAD", "single", 1);
}

/* record takes the reference values of everything the kernel reports back. */
static void record(void)
{
	for (size_t i = 0; i < NFDS; i++) {
		struct stat st;

		WL_CHECK(fstat(fd_list[i], &st) == 0, "fstat fd %d", fd_list[i]);
		fd_recs[i].fdflags = fcntl(fd_list[i], F_GETFD);
		fd_recs[i].flflags = fcntl(fd_list[i], F_GETFL);
		fd_recs[i].dev = st.st_dev;
		fd_recs[i].ino = st.st_ino;
		fd_recs[i].mode = st.st_mode;
		fd_recs[i].rdev = st.st_rdev;
	}
	for (int s = 1; s < _NSIG; s++) {
		sa_recs[s].err = sigaction(s, NULL, &sa_recs[s].sa) == 0 ? 0 : errno;
	}
	sigprocmask(SIG_BLOCK, NULL, &blocked_rec);
	sigpending(&pending_rec);
	sigaltstack(NULL, &ss_rec);
	for (int r = 0; r < RLIM_NLIMITS; r++)
		getrlimit(r, &rlim_rec[r]);
	umask_rec = umask(0);
	umask(umask_rec);
	WL_CHECK(getcwd(cwd_path, sizeof cwd_path) != NULL, "getcwd");
	stat(".", &cwd_st);
	personality_rec = personality(0xffffffff);
	prctl(PR_GET_NAME, comm_rec, 0, 0, 0);
	errno = 0;
	nice_rec = getpriority(PRIO_PROCESS, 0);
	WL_CHECK(readlink("/proc/self/exe", exe_rec, sizeof exe_rec - 1) > 0, "readlink exe");
	cmdline_len = wl_read_file("/proc/self/cmdline", cmdline_rec, sizeof cmdline_rec);
	auxv_len = wl_read_file("/proc/self/auxv", auxv_rec, sizeof auxv_rec);
	stat_mm(statmm_rec, sizeof statmm_rec);
	nfds_rec = list_fds(fds_rec, 256);
}

static void check_sigset(const sigset_t *got, const sigset_t *want, const char *what)
{
	for (int s = 1; s < _NSIG; s++)
		WL_CHECK(sigismember(got, s) == sigismember(want, s), "%s: signal %d is %s, was %s",
			 what, s, sigismember(got, s) ? "set" : "clear",
			 sigismember(want, s) ? "set" : "clear");
}

static void verify_memory(int final)
{
	for (uint64_t p = 0; p < ANON_PAGES; p++) {
		volatile uint64_t *pg = anon + p * (PAGE / 8);

		switch (p % 4) {
		case 0:
		case 1:
			WL_CHECK(pg[0] == rolling[p], "anon page %" PRIu64 " word 0: %#" PRIx64
				 " want %#" PRIx64, p, pg[0], rolling[p]);
			for (uint64_t j = 1; j < PAGE / 8; j++)
				WL_CHECK(pg[j] == pat(1, p * 512 + j),
					 "anon page %" PRIu64 " word %" PRIu64 ": %#" PRIx64
					 " want %#" PRIx64, p, j, pg[j], pat(1, p * 512 + j));
			break;
		case 2:
		case 3:
			if (p % 4 == 3 && !final)
				break; /* keep these pages untouched until the end */
			for (uint64_t j = 0; j < PAGE / 8; j++)
				WL_CHECK(pg[j] == 0, "anon %s page %" PRIu64 " word %" PRIu64
					 " is %#" PRIx64 ", want 0",
					 p % 4 == 2 ? "read-only-touched" : "never-touched", p, j, pg[j]);
			break;
		}
	}
	for (uint64_t i = 0; i < RO_PAGES * PAGE / 8; i++)
		WL_CHECK(ro[i] == pat(2, i), "read-only anon word %" PRIu64, i);
	check_vma((void *)ro, RO_PAGES * PAGE, "r--p", NULL, 0, "read-only anon");
	check_vma((void *)anon, ANON_PAGES * PAGE, "rw-p", NULL, 0, "private anon");

	/* Shared anon: both aliases must show one object. */
	for (uint64_t i = 0; i < SHANON_SIZE / 8; i++) {
		uint64_t want = i == 0 ? shanon[0] : pat(3, i);

		WL_CHECK(shanon[i] == want, "shared anon word %" PRIu64, i);
		WL_CHECK(shanon_alias[i] == shanon[i],
			 "shared anon alias word %" PRIu64 " differs (%#" PRIx64 " vs %#" PRIx64 ")", i,
			 shanon_alias[i], shanon[i]);
	}
	shanon[0] = wl_tick ^ wl_nonce;
	WL_CHECK(shanon_alias[0] == (wl_tick ^ wl_nonce),
		 "write through shared anon not seen through its mremap alias");
	shanon_alias[1] = pat(3, 1); /* same value, written through the alias */
	check_vma((void *)shanon, SHANON_SIZE, "rw-s", NULL, 0, "shared anon");
	check_vma((void *)shanon_alias, SHANON_SIZE, "rw-s", NULL, 0, "shared anon alias");

	/* Private file mapping. */
	for (uint64_t p = 0; p < PRIV_PAGES; p++) {
		for (uint64_t j = 0; j < PAGE / 8; j++) {
			uint64_t i = p * 512 + j;
			int modified = p == 3 || p == 7 || (p == 11 && j == 5);
			uint64_t want = modified ? pat(4, i) : file_pat(2, i);

			WL_CHECK(priv[i] == want,
				 "private file mapping page %" PRIu64 " word %" PRIu64
				 " (%s): %#" PRIx64 " want %#" PRIx64,
				 p, j, modified ? "modified" : "file content", priv[i], want);
		}
	}
	{
		uint64_t w;
		int fd = openat(FD_DIR, "priv.dat", O_RDONLY | O_CLOEXEC);

		WL_CHECK(fd >= 0, "open priv.dat: %s", strerror(errno));
		for (uint64_t p = 3; p <= 11; p += 4) {
			WL_CHECK(pread(fd, &w, 8, (off_t)(p * PAGE + 40)) == 8, "pread priv.dat");
			WL_CHECK(w == file_pat(2, p * 512 + 5),
				 "private mapping write leaked into priv.dat page %" PRIu64, p);
		}
		close(fd);
	}
	check_vma((void *)priv, PRIV_PAGES * PAGE, "rw-p", "/priv.dat",
		  (unsigned long)0, "private file mapping");

	/* Shared file mapping: a write through it must reach the file. */
	{
		static uint64_t filebuf[SHARED_FILE_PAGES * PAGE / 8];
		uint64_t slot = (wl_tick % SHARED_FILE_PAGES) * 512;

		shfile[slot] = wl_tick ^ wl_nonce ^ 0xf11e;
		WL_CHECK(pread(FD_SHARED, filebuf, sizeof filebuf, 0) == sizeof filebuf,
			 "pread shared.dat: %s", strerror(errno));
		for (uint64_t i = 0; i < SHARED_FILE_PAGES * PAGE / 8; i++) {
			WL_CHECK(filebuf[i] == shfile[i],
				 "shared file mapping word %" PRIu64 " = %#" PRIx64
				 " but shared.dat holds %#" PRIx64 " (mapping is not the file)",
				 i, shfile[i], filebuf[i]);
			if (i % 512 != 0)
				WL_CHECK(shfile[i] == file_pat(3, i), "shared.dat word %" PRIu64, i);
		}
		check_vma((void *)shfile, SHARED_FILE_PAGES * PAGE, "rw-s", "/shared.dat",
			  (unsigned long)fd_recs[7].ino, "shared file mapping");
	}

	/* Heap. */
	{
		uint32_t expect = 0;

		for (struct node *n = list_head; n; n = n->next, expect++) {
			if (expect % 3 == 2)
				expect++;
			WL_CHECK(n->idx == expect && n->len == 16 + (expect * 37) % 3000,
				 "heap node %u: idx %u len %u", expect, n->idx, n->len);
			for (uint32_t j = 0; j < n->len; j++)
				WL_CHECK(n->data[j] == (unsigned char)pat(5, (uint64_t)n->idx << 16 | j),
					 "heap node %u byte %u", n->idx, j);
		}
		WL_CHECK(expect == NODES, "heap list ends after %u nodes", expect);
	}
	for (uint64_t i = 0; i < BIG_SIZE / 8; i++)
		WL_CHECK(big[i] == pat(6, i), "big malloc chunk word %" PRIu64, i);
	for (uint64_t i = 0; i < BRK_EXT / 8; i++)
		WL_CHECK(brkext[i] == pat(7, i), "brk extension word %" PRIu64, i);
	WL_CHECK(sbrk(0) == brk_rec, "sbrk(0) = %p, was %p", sbrk(0), brk_rec);

	/* madvise/mlock parts: content and VmFlags. */
	for (uint64_t i = 0; i < ADV_PARTS * 4 * PAGE / 8; i++)
		WL_CHECK(adv[i] == pat(9, i), "madvise region word %" PRIu64, i);
	for (int p = 0; p < ADV_PARTS; p++) {
		char flags[256];

		wl_vma_flags((char *)adv + p * 4 * PAGE, flags, sizeof flags);
		WL_CHECK(wl_has_flag(flags, adv_flag[p]), "VMA at %p lost VmFlag %s (VmFlags:%s)",
			 (void *)((char *)adv + p * 4 * PAGE), adv_flag[p], flags);
	}

	/* PROT_NONE and the guard gap. */
	check_vma(protnone, 16 * PAGE, "---p", NULL, 0, "PROT_NONE region");
	check_vma(guard, PAGE, "rw-p", NULL, 0, "guard low page");
	check_vma(guard + 2 * PAGE, PAGE, "rw-p", NULL, 0, "guard high page");
	{
		unsigned char vec[1];

		WL_CHECK(mincore(guard + PAGE, PAGE, vec) == -1 && errno == ENOMEM,
			 "guard gap page %p is mapped", guard + PAGE);
	}
	WL_CHECK(guard[0] == 0x11 && guard[2 * PAGE] == 0x22, "guard page content");
}

static void verify_files(void)
{
	unsigned char buf[16];
	struct stat st;

	for (size_t i = 0; i < NFDS; i++) {
		int fd = fd_list[i];
		int fdflags = fcntl(fd, F_GETFD), flflags = fcntl(fd, F_GETFL);

		WL_CHECK(fstat(fd, &st) == 0, "fd %d is not open: %s", fd, strerror(errno));
		WL_CHECK(fdflags == fd_recs[i].fdflags, "fd %d F_GETFD %#x, was %#x", fd, fdflags,
			 fd_recs[i].fdflags);
		WL_CHECK(flflags == fd_recs[i].flflags, "fd %d F_GETFL %#x, was %#x", fd, flflags,
			 fd_recs[i].flflags);
		WL_CHECK(st.st_mode == fd_recs[i].mode, "fd %d mode %o, was %o", fd, st.st_mode,
			 fd_recs[i].mode);
		WL_CHECK(st.st_rdev == fd_recs[i].rdev, "fd %d rdev %u:%u, was %u:%u", fd,
			 major(st.st_rdev), minor(st.st_rdev), major(fd_recs[i].rdev),
			 minor(fd_recs[i].rdev));
		if (fd != FD_GHOST) /* a deleted file may come back as another inode */
			WL_CHECK(st.st_dev == fd_recs[i].dev && st.st_ino == fd_recs[i].ino,
				 "fd %d is inode %lu, was %lu", fd, (unsigned long)st.st_ino,
				 (unsigned long)fd_recs[i].ino);
	}
	WL_CHECK(fd_recs[1].fdflags == FD_CLOEXEC && fd_recs[0].fdflags == 0,
		 "FD_CLOEXEC setup");
	{
		int now[256], n = list_fds(now, 256);

		WL_CHECK(n == nfds_rec, "%d fds open, was %d", n, nfds_rec);
		for (int i = 0; i < n; i++)
			WL_CHECK(now[i] == fds_rec[i], "open fd #%d is %d, was %d", i, now[i],
				 fds_rec[i]);
	}

	/* data.dat: the offset continues exactly, and the dup shares it. */
	WL_CHECK(lseek(FD_DATA, 0, SEEK_CUR) == (off_t)data_off, "data.dat offset %lld, want %llu",
		 (long long)lseek(FD_DATA, 0, SEEK_CUR), (unsigned long long)data_off);
	if (data_off + 7 > DATA_SIZE) {
		WL_CHECK(lseek(FD_DATA_DUP, 0, SEEK_SET) == 0, "lseek dup");
		data_off = 0;
	}
	WL_CHECK(read(FD_DATA, buf, 7) == 7, "read data.dat");
	for (int i = 0; i < 7; i++)
		WL_CHECK(buf[i] == byte_at(1, data_off + i), "data.dat byte at %llu",
			 (unsigned long long)(data_off + i));
	data_off += 7;
	WL_CHECK(lseek(FD_DATA_DUP, 0, SEEK_CUR) == (off_t)data_off,
		 "dup of data.dat does not share its offset (%lld vs %llu)",
		 (long long)lseek(FD_DATA_DUP, 0, SEEK_CUR), (unsigned long long)data_off);

	/* append.log: after an lseek to 0, a write must still land at the end. */
	{
		char rec[32], back[32];
		int len = snprintf(rec, sizeof rec, "rec %016" PRIx64 "\n", wl_tick);
		off_t end;

		WL_CHECK(lseek(FD_APPEND, 0, SEEK_SET) == 0, "lseek append.log");
		wl_write_all(FD_APPEND, rec, (size_t)len, "append.log");
		append_recs++;
		end = lseek(FD_APPEND, 0, SEEK_CUR);
		WL_CHECK(fstat(FD_APPEND, &st) == 0 && st.st_size == end,
			 "append.log: offset %lld after write, size %lld (O_APPEND lost?)",
			 (long long)end, (long long)st.st_size);
		WL_CHECK(st.st_size >= (off_t)(append_recs * (uint64_t)len),
			 "append.log is %lld bytes, %" PRIu64 " records written",
			 (long long)st.st_size, append_recs);
		{
			int rfd = openat(FD_DIR, "append.log", O_RDONLY | O_CLOEXEC);

			WL_CHECK(rfd >= 0, "open append.log: %s", strerror(errno));
			WL_CHECK(pread(rfd, back, (size_t)len, end - len) == len, "pread append.log");
			close(rfd);
		}
		WL_CHECK(memcmp(back, rec, (size_t)len) == 0, "append.log does not end with the last record");
	}

	/* The deleted file: unlinked, content and offset intact. */
	WL_CHECK(fstat(FD_GHOST, &st) == 0 && st.st_nlink == 0 && st.st_size == GHOST_SIZE,
		 "deleted file: nlink %lu size %lld", (unsigned long)st.st_nlink,
		 (long long)st.st_size);
	WL_CHECK(lseek(FD_GHOST, 0, SEEK_CUR) == (off_t)ghost_off, "deleted file offset %lld, want %llu",
		 (long long)lseek(FD_GHOST, 0, SEEK_CUR), (unsigned long long)ghost_off);
	WL_CHECK(read(FD_GHOST, buf, 4) == 4, "read deleted file");
	for (int i = 0; i < 4; i++)
		WL_CHECK(buf[i] == byte_at(4, ghost_off + i), "deleted file byte %llu",
			 (unsigned long long)(ghost_off + i));
	ghost_off += 4;
	if (ghost_off + 4 > 9000) {
		ghost_off = 100;
		lseek(FD_GHOST, 100, SEEK_SET);
	}
	{
		static unsigned char all[GHOST_SIZE];
		uint64_t w = wl_tick ^ wl_nonce, back;

		WL_CHECK(pwrite(FD_GHOST, &w, 8, 9500) == 8, "pwrite deleted file");
		WL_CHECK(pread(FD_GHOST, &back, 8, 9500) == 8 && back == w, "deleted file pwrite/pread");
		WL_CHECK(pread(FD_GHOST, all, 9500, 0) == 9500, "pread deleted file");
		for (int i = 0; i < 9500; i++)
			WL_CHECK(all[i] == byte_at(4, (uint64_t)i), "deleted file byte %d", i);
	}

	/* Directory fd and devices. */
	{
		int fd = openat(FD_DIR, "data.dat", O_RDONLY | O_CLOEXEC);
		char link[4096];
		ssize_t n = readlink("/proc/self/fd/43", link, sizeof link - 1);

		WL_CHECK(fd >= 0, "openat(dirfd, data.dat): %s", strerror(errno));
		close(fd);
		WL_CHECK(n > 0, "readlink fd 43");
		link[n] = 0;
		WL_CHECK(strcmp(link, start_dir) == 0, "dir fd is %s, was %s", link, start_dir);
	}
	WL_CHECK(write(FD_NULL, "x", 1) == 1, "write /dev/null: %s", strerror(errno));
	memset(buf, 0xff, sizeof buf);
	WL_CHECK(read(FD_ZERO, buf, sizeof buf) == sizeof buf, "read /dev/zero");
	for (size_t i = 0; i < sizeof buf; i++)
		WL_CHECK(buf[i] == 0, "/dev/zero gave a non-zero byte");
	WL_CHECK(read(FD_URANDOM, buf, sizeof buf) == sizeof buf, "read /dev/urandom: %s",
		 strerror(errno));
	WL_CHECK(fd_recs[4].rdev == makedev(1, 3) && fd_recs[5].rdev == makedev(1, 5) &&
			 fd_recs[6].rdev == makedev(1, 9),
		 "device numbers of /dev/null, zero, urandom");
}

static void verify_process(void)
{
	struct sigaction sa;
	sigset_t set;
	stack_t ss;
	struct rlimit rl;
	char comm[16], path[2048], mm[512];
	struct stat st;
	mode_t um;

	wl_check_pid();
	for (int s = 1; s < _NSIG; s++) {
		int err = sigaction(s, NULL, &sa) == 0 ? 0 : errno;

		WL_CHECK(err == sa_recs[s].err, "sigaction(%d) error %d, was %d", s, err,
			 sa_recs[s].err);
		if (err)
			continue;
		WL_CHECK(sa.sa_handler == sa_recs[s].sa.sa_handler,
			 "signal %d handler %p, was %p", s, (void *)sa.sa_handler,
			 (void *)sa_recs[s].sa.sa_handler);
		WL_CHECK(sa.sa_flags == sa_recs[s].sa.sa_flags, "signal %d sa_flags %#x, was %#x",
			 s, sa.sa_flags, sa_recs[s].sa.sa_flags);
		WL_CHECK(sa.sa_restorer == sa_recs[s].sa.sa_restorer,
			 "signal %d sa_restorer %p, was %p", s, (void *)sa.sa_restorer,
			 (void *)sa_recs[s].sa.sa_restorer);
		for (int m = 1; m < _NSIG; m++)
			WL_CHECK(sigismember(&sa.sa_mask, m) == sigismember(&sa_recs[s].sa.sa_mask, m),
				 "signal %d sa_mask differs at signal %d", s, m);
	}
	WL_CHECK(sa_recs[SIGUSR1].sa.sa_flags & SA_ONSTACK, "SIGUSR1 setup");
	WL_CHECK(!usr1_wrong_stack, "SIGUSR1 handler did not run on the sigaltstack");
	WL_CHECK(!usr1_wrong_info, "SIGUSR1 handler got a wrong siginfo");
	sigprocmask(SIG_BLOCK, NULL, &set);
	check_sigset(&set, &blocked_rec, "blocked mask");
	sigpending(&set);
	check_sigset(&set, &pending_rec, "pending set");
	WL_CHECK(sigismember(&pending_rec, SIGUSR2) && sigismember(&pending_rec, SIGRTMIN + 5) &&
			 sigismember(&pending_rec, SIGXCPU),
		 "pending signals setup");
	sigaltstack(NULL, &ss);
	WL_CHECK(ss.ss_sp == ss_rec.ss_sp && ss.ss_size == ss_rec.ss_size &&
			 ss.ss_flags == ss_rec.ss_flags,
		 "sigaltstack %p+%zu flags %#x, was %p+%zu flags %#x", ss.ss_sp, ss.ss_size,
		 ss.ss_flags, ss_rec.ss_sp, ss_rec.ss_size, ss_rec.ss_flags);
	for (int r = 0; r < RLIM_NLIMITS; r++) {
		getrlimit(r, &rl);
		WL_CHECK(rl.rlim_cur == rlim_rec[r].rlim_cur && rl.rlim_max == rlim_rec[r].rlim_max,
			 "rlimit %d = %llu/%llu, was %llu/%llu", r, (unsigned long long)rl.rlim_cur,
			 (unsigned long long)rl.rlim_max, (unsigned long long)rlim_rec[r].rlim_cur,
			 (unsigned long long)rlim_rec[r].rlim_max);
	}
	WL_CHECK(rlim_rec[RLIMIT_NOFILE].rlim_cur == 512 && rlim_rec[RLIMIT_CORE].rlim_max == 654321,
		 "rlimit setup");
	um = umask(0);
	umask(um);
	WL_CHECK(um == umask_rec && um == 027, "umask %03o, was %03o", um, umask_rec);
	WL_CHECK(getcwd(path, sizeof path) != NULL && strcmp(path, cwd_path) == 0,
		 "cwd %s, was %s", path, cwd_path);
	WL_CHECK(stat(".", &st) == 0 && st.st_ino == cwd_st.st_ino && st.st_dev == cwd_st.st_dev,
		 "cwd inode changed");
	WL_CHECK(personality(0xffffffff) == personality_rec &&
			 personality_rec == (PER_LINUX | UNAME26),
		 "personality %#x, was %#x", personality(0xffffffff), personality_rec);
	prctl(PR_GET_NAME, comm, 0, 0, 0);
	WL_CHECK(strcmp(comm, comm_rec) == 0 && strcmp(comm, "wl-single") == 0,
		 "comm %s, was %s", comm, comm_rec);
	errno = 0;
	WL_CHECK(getpriority(PRIO_PROCESS, 0) == nice_rec && nice_rec == 7, "nice %d, was %d",
		 getpriority(PRIO_PROCESS, 0), nice_rec);
	{
		char exe[4096];
		ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

		WL_CHECK(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
		exe[n] = 0;
		WL_CHECK(strcmp(exe, exe_rec) == 0, "/proc/self/exe is %s, was %s", exe, exe_rec);
	}
	{
		char now[4096];
		ssize_t n = wl_read_file("/proc/self/cmdline", now, sizeof now);

		WL_CHECK(n == cmdline_len && memcmp(now, cmdline_rec, (size_t)n) == 0,
			 "/proc/self/cmdline changed (%zd bytes, was %zd)", n, cmdline_len);
		n = wl_read_file("/proc/self/auxv", now, sizeof now);
		WL_CHECK(n == auxv_len && memcmp(now, auxv_rec, (size_t)n) == 0,
			 "/proc/self/auxv changed (%zd bytes, was %zd)", n, auxv_len);
	}
	stat_mm(mm, sizeof mm);
	WL_CHECK(strcmp(mm, statmm_rec) == 0, "/proc/self/stat mm fields: %s; were %s", mm,
		 statmm_rec);
	WL_CHECK(strcmp(getenv("SEAMLESS_WORKLOAD") ? getenv("SEAMLESS_WORKLOAD") : "", "single") == 0,
		 "environment variable lost");
}

static void verify_stack(volatile uint64_t *stk)
{
	for (uint64_t i = 0; i < STACK_WORDS; i++)
		WL_CHECK(stk[i] == pat(8, i), "stack array word %" PRIu64, i);
}

/* final_checks consume state that the ticks only look at. */
static void final_checks(void)
{
	siginfo_t si;
	sigset_t set;
	struct timespec zero = { 0, 0 };
	int got_usr2 = 0, got_xcpu = 0, rt_vals[4], nrt = 0;

	verify_memory(1);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGRTMIN + 5);
	sigaddset(&set, SIGXCPU);
	for (;;) {
		int s = sigtimedwait(&set, &si, &zero);

		if (s < 0) {
			WL_CHECK(errno == EAGAIN, "sigtimedwait: %s", strerror(errno));
			break;
		}
		if (s == SIGUSR2)
			got_usr2++;
		else if (s == SIGXCPU)
			got_xcpu++;
		else if (s == SIGRTMIN + 5 && nrt < 4)
			rt_vals[nrt++] = si.si_value.sival_int;
	}
	WL_CHECK(got_usr2 == 1, "pending SIGUSR2 delivered %d times, want 1", got_usr2);
	WL_CHECK(got_xcpu == 1, "pending SIGXCPU delivered %d times, want 1", got_xcpu);
	WL_CHECK(nrt == 2 && rt_vals[0] == 111 && rt_vals[1] == 222,
		 "queued SIGRTMIN+5: %d instances (values %d, %d), want 2 (111, 222)", nrt,
		 nrt > 0 ? rt_vals[0] : -1, nrt > 1 ? rt_vals[1] : -1);

	/* The SIGTRAP and SIGSEGV handlers must still work. */
	WL_CHECK(raise(SIGTRAP) == 0 && trap_count == 1, "SIGTRAP handler ran %d times, want 1",
		 (int)trap_count);
	if (sigsetjmp(segv_jmp, 1) == 0) {
		(void)*(volatile char *)(protnone + 5 * PAGE);
		wl_fail("reading PROT_NONE memory did not fault");
	}
	WL_CHECK(segv_count == 1 && segv_addr == protnone + 5 * PAGE,
		 "SIGSEGV handler: %d calls, address %p, want 1 and %p", (int)segv_count,
		 segv_addr, (void *)(protnone + 5 * PAGE));
	WL_CHECK(!segv_wrong_stack, "SIGSEGV handler did not run on the sigaltstack");

	/* brk must still move from where it is. */
	{
		volatile char *p = sbrk(PAGE);

		WL_CHECK(p == brk_rec, "sbrk(+4096) returned %p, want %p", (void *)p, brk_rec);
		p[0] = 1;
		p[PAGE - 1] = 2;
		WL_CHECK(sbrk(-(intptr_t)PAGE) != (void *)-1 && sbrk(0) == brk_rec, "sbrk shrink");
	}
	/* malloc still works on the restored heap. */
	for (int i = 0; i < 1000; i++) {
		char *p = malloc(1 + (i * 97) % 5000);

		WL_CHECK(p != NULL, "malloc after restore");
		memset(p, i, 1 + (i * 97) % 5000);
		free(p);
	}
}

int main(int argc, char **argv)
{
	volatile uint64_t stk[STACK_WORDS];

	wl_init(argc, argv, "single");
	setup();
	for (uint64_t i = 0; i < STACK_WORDS; i++)
		stk[i] = pat(8, i);
	wl_say("READY"); /* before record(): stdout is set up, nothing allocates later */
	record();
	for (;;) {
		int stop = wl_stop_requested();
		char extra[64];

		verify_memory(0);
		verify_files();
		verify_process();
		verify_stack(stk);
		/* Roll word 0 of a few patterned anon pages. */
		for (uint64_t p = wl_tick % 8; p < ANON_PAGES; p += 64) {
			if (p % 4 < 2) {
				rolling[p] = wl_mix(wl_tick ^ p ^ wl_nonce);
				anon[p * 512] = rolling[p];
			}
		}
		if (stop)
			break;
		snprintf(extra, sizeof extra, "data_off=%llu", (unsigned long long)data_off);
		wl_print_tick(NULL, extra);
		wl_sleep_ms(20);
	}
	final_checks();
	wl_say("DONE ok");
	return 0;
}
