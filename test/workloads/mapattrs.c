/*
 * mapattrs.c: what mmap flags and madvise advice leave on a mapping, beyond
 * its protection and contents. Each region is a VMA of its own, filled with
 * a pattern, and checked every tick: its contents, its smaps VmFlags, and
 * for guard pages that they still fault and hold no data.
 *
 *   seq       MADV_SEQUENTIAL                       VmFlag sr
 *   rand      MADV_RANDOM                           VmFlag rr
 *   merge     MADV_MERGEABLE (KSM)                  VmFlag mg
 *   noreserve MAP_NORESERVE (unless overcommit is 2) VmFlag nr
 *   droppable MAP_DROPPABLE (Linux 6.11)            VmFlag dp (pages may be
 *             dropped under memory pressure: each page holds its pattern or zeros)
 *   guarded   MADV_GUARD_INSTALL on pages 3, 4 and 9 of 12 (Linux 6.13): the
 *             other pages keep their data; the guard pages fault (a write(2)
 *             from them fails with EFAULT), pagemap shows them as guards
 *             (bit 58, Linux 6.15) and smaps the VMA as maybe guarded (gu)
 *   unguarded MADV_GUARD_INSTALL then MADV_GUARD_REMOVE: no guard page left,
 *             VmFlag gu stays
 *
 * With CAP_SYS_RESOURCE it also sets PR_SET_MEMORY_MERGE (KSM merges all
 * of its memory): every region is then mergeable (mg) but one, made
 * MADV_UNMERGEABLE, and a mapping made on each tick must come out mergeable.
 *
 * Features the kernel lacks are skipped with an INFO line.
 */
#include "common.h"

#include <sys/mman.h>

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif

#define PAGE 4096UL
#define NPAGES 12

enum { R_SEQ, R_RAND, R_MERGE, R_NORESERVE, R_DROPPABLE, R_GUARDED, R_UNGUARDED, R_UNMERGE, NREGIONS };

struct region {
	const char *name;
	const char *flag; /* VmFlag it must show, or NULL */
	int available;
	int droppable; /* pages may read back as zeros */
	uint64_t *mem;
};

static struct region regions[NREGIONS] = {
	[R_SEQ] = { "seq", "sr" },
	[R_RAND] = { "rand", "rr" },
	[R_MERGE] = { "merge", "mg" },
	[R_NORESERVE] = { "noreserve", "nr" },
	[R_DROPPABLE] = { "droppable", "dp", .droppable = 1 },
	[R_GUARDED] = { "guarded", "gu" },
	[R_UNGUARDED] = { "unguarded", "gu" },
	[R_UNMERGE] = { "unmergeable" },
};

static int merge_any; /* PR_SET_MEMORY_MERGE is on */

static const int guard_pages[] = { 3, 4, 9 };
static int pagemap_guard_bit; /* pagemap reports guard pages (Linux 6.15) */
static int probe[2]; /* a pipe: write(2) copies from the page it is given */

static int is_guard(int page)
{
	for (size_t i = 0; i < sizeof guard_pages / sizeof guard_pages[0]; i++)
		if (guard_pages[i] == page)
			return 1;
	return 0;
}

static uint64_t pat(int r, uint64_t i)
{
	return wl_mix(((uint64_t)r << 40) ^ i ^ wl_nonce);
}

static uint64_t pagemap_entry(const void *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	WL_CHECK(fd >= 0, "open pagemap: %s", strerror(errno));
	WL_CHECK(pread(fd, &e, sizeof e, (off_t)((uintptr_t)addr / PAGE * sizeof e)) == sizeof e,
		 "read pagemap: %s", strerror(errno));
	close(fd);
	return e;
}

/* readable reports whether the kernel can read the page at addr: a guard
 * page makes write(2) from it fail with EFAULT instead of a SIGSEGV. */
static int readable(const void *addr)
{
	ssize_t n = write(probe[1], addr, 1);
	char c;

	WL_CHECK(n == 1 || errno == EFAULT, "write from %p: %s", addr, strerror(errno));
	if (n == 1)
		WL_CHECK(read(probe[0], &c, 1) == 1, "read back the probe byte: %s", strerror(errno));
	return n == 1;
}

static void fill(int r)
{
	uint64_t *m = regions[r].mem;

	for (uint64_t i = 0; i < NPAGES * PAGE / 8; i++)
		if (r != R_GUARDED || !is_guard((int)(i * 8 / PAGE)))
			m[i] = pat(r, i);
}

static void setup(void)
{
	char buf[16], flags[512];
	int overcommit = 0;

	WL_CHECK(pipe2(probe, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
	if (wl_read_file("/proc/sys/vm/overcommit_memory", buf, sizeof buf) > 0)
		overcommit = atoi(buf);
	for (int r = 0; r < NREGIONS; r++) {
		int flags = MAP_PRIVATE | MAP_ANONYMOUS;
		void *m;

		if (r == R_NORESERVE)
			flags |= MAP_NORESERVE;
		if (r == R_DROPPABLE)
			flags = MAP_DROPPABLE | MAP_ANONYMOUS;
		m = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, flags, -1, 0);
		if (m == MAP_FAILED && r == R_DROPPABLE && errno == EINVAL) {
			wl_say("INFO no MAP_DROPPABLE on this kernel: skipped");
			continue;
		}
		WL_CHECK(m != MAP_FAILED, "mmap %s: %s", regions[r].name, strerror(errno));
		regions[r].mem = m;
		regions[r].available = 1;
	}
	if (overcommit == 2) {
		wl_say("INFO overcommit_memory is 2: the kernel ignores MAP_NORESERVE");
		regions[R_NORESERVE].flag = NULL;
	}
	WL_CHECK(madvise(regions[R_SEQ].mem, NPAGES * PAGE, MADV_SEQUENTIAL) == 0, "MADV_SEQUENTIAL: %s",
		 strerror(errno));
	WL_CHECK(madvise(regions[R_RAND].mem, NPAGES * PAGE, MADV_RANDOM) == 0, "MADV_RANDOM: %s",
		 strerror(errno));
	if (madvise(regions[R_MERGE].mem, NPAGES * PAGE, MADV_MERGEABLE) != 0) {
		WL_CHECK(errno == EINVAL, "MADV_MERGEABLE: %s", strerror(errno));
		wl_say("INFO no KSM on this kernel: MADV_MERGEABLE skipped");
		regions[R_MERGE].flag = NULL;
	}
	if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) == 0) {
		merge_any = 1;
		WL_CHECK(madvise(regions[R_UNMERGE].mem, NPAGES * PAGE, MADV_UNMERGEABLE) == 0,
			 "MADV_UNMERGEABLE: %s", strerror(errno));
	} else {
		WL_CHECK(errno == EPERM || errno == EINVAL, "PR_SET_MEMORY_MERGE: %s", strerror(errno));
		wl_say("INFO PR_SET_MEMORY_MERGE: %s (it needs CAP_SYS_RESOURCE and Linux 6.4): skipped",
		       strerror(errno));
	}
	for (int r = 0; r < NREGIONS; r++)
		if (regions[r].available)
			fill(r);
	for (size_t i = 0; i < sizeof guard_pages / sizeof guard_pages[0]; i++)
		if (madvise((char *)regions[R_GUARDED].mem + guard_pages[i] * PAGE, PAGE, MADV_GUARD_INSTALL) != 0) {
			WL_CHECK(errno == EINVAL, "MADV_GUARD_INSTALL: %s", strerror(errno));
			wl_say("INFO no guard pages on this kernel: skipped");
			regions[R_GUARDED].available = regions[R_UNGUARDED].available = 0;
			break;
		}
	if (regions[R_UNGUARDED].available) {
		WL_CHECK(madvise(regions[R_UNGUARDED].mem, 2 * PAGE, MADV_GUARD_INSTALL) == 0 &&
				 madvise(regions[R_UNGUARDED].mem, 2 * PAGE, MADV_GUARD_REMOVE) == 0,
			 "MADV_GUARD_INSTALL and REMOVE: %s", strerror(errno));
		fill(R_UNGUARDED);
		pagemap_guard_bit = pagemap_entry((char *)regions[R_GUARDED].mem + 3 * PAGE) >> 58 & 1;
		if (!pagemap_guard_bit)
			wl_say("INFO pagemap does not show guard pages on this kernel");
		wl_vma_flags(regions[R_UNGUARDED].mem, flags, sizeof flags);
		if (!wl_has_flag(flags, "gu")) {
			wl_say("INFO smaps does not show VmFlag gu on this kernel");
			regions[R_GUARDED].flag = regions[R_UNGUARDED].flag = NULL;
		}
	}
}

static void verify(void)
{
	char flags[512];

	wl_check_pid();
	if (merge_any) {
		void *fresh = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		WL_CHECK(prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0) == 1, "PR_GET_MEMORY_MERGE is %d, want 1",
			 prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0));
		WL_CHECK(fresh != MAP_FAILED, "mmap: %s", strerror(errno));
		wl_vma_flags(fresh, flags, sizeof flags);
		WL_CHECK(wl_has_flag(flags, "mg"), "a new mapping is not mergeable (VmFlags:%s)", flags);
		munmap(fresh, PAGE);
	}
	for (int r = 0; r < NREGIONS; r++) {
		struct region *g = &regions[r];

		if (!g->available)
			continue;
		wl_vma_flags(g->mem, flags, sizeof flags);
		if (g->flag)
			WL_CHECK(wl_has_flag(flags, g->flag), "%s at %p lost VmFlag %s (VmFlags:%s)", g->name,
				 (void *)g->mem, g->flag, flags);
		if (merge_any && r != R_DROPPABLE)
			WL_CHECK(wl_has_flag(flags, "mg") == (r != R_UNMERGE),
				 "%s at %p: VmFlag mg is %s with PR_SET_MEMORY_MERGE (VmFlags:%s)", g->name,
				 (void *)g->mem, wl_has_flag(flags, "mg") ? "set" : "missing", flags);
		for (int p = 0; p < NPAGES; p++) {
			char *page = (char *)g->mem + p * PAGE;

			if (r == R_GUARDED && is_guard(p)) {
				WL_CHECK(!readable(page), "%s: page %d is no guard page any more", g->name, p);
				if (pagemap_guard_bit)
					WL_CHECK(pagemap_entry(page) >> 58 & 1,
						 "%s: pagemap no longer shows page %d as a guard (%#" PRIx64 ")",
						 g->name, p, pagemap_entry(page));
				continue;
			}
			WL_CHECK(readable(page), "%s: page %d faults (a guard page appeared)", g->name, p);
			for (uint64_t i = p * PAGE / 8; i < (p + 1) * PAGE / 8; i++) {
				uint64_t v = g->mem[i];

				if (g->droppable && v == 0 && i == p * PAGE / 8)
					break; /* the kernel dropped this page */
				WL_CHECK(v == pat(r, i), "%s: word %" PRIu64 " is %#" PRIx64 ", want %#" PRIx64,
					 g->name, i, v, pat(r, i));
			}
		}
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa;

	wl_init(argc, argv, "mapattrs");
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = wl_usr1_counter;
	sa.sa_flags = SA_RESTART;
	WL_CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	prctl(PR_SET_NAME, "wl-mapattrs", 0, 0, 0);
	setup();
	verify();
	wl_say("READY");
	for (;;) {
		verify();
		if (wl_stop_requested())
			break;
		wl_print_tick(NULL, NULL);
		wl_sleep_ms(20);
	}
	verify();
	wl_say("DONE ok");
	return 0;
}
