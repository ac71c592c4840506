/*
 * hugepages DIR: two 32 MiB anonymous mappings aligned to 2 MiB, one advised
 * MADV_HUGEPAGE, one MADV_NOHUGEPAGE, both filled with a pattern. Prints
 * "READY pid=P huge=ADDR small=ADDR"; on DIR/go it checks both patterns and
 * prints "DONE ok". The test reads how each mapping is backed from smaps.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB (1UL << 20)
#define SIZE (32 * MIB)

static void fail(const char *what)
{
	printf("FAIL %s\n", what);
	fflush(stdout);
	exit(1);
}

static unsigned char pattern(size_t off, int which) { return (unsigned char)(off / 4096 * 13 + which); }

/* aligned maps SIZE bytes at a 2 MiB boundary. */
static unsigned char *aligned(int advice)
{
	unsigned char *m = mmap(NULL, SIZE + 2 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		fail("mmap");
	uintptr_t a = ((uintptr_t)m + 2 * MIB - 1) & ~(2 * MIB - 1);
	if (a > (uintptr_t)m)
		munmap(m, a - (uintptr_t)m);
	munmap((void *)(a + SIZE), (uintptr_t)m + SIZE + 2 * MIB - (a + SIZE));
	if (madvise((void *)a, SIZE, advice) != 0)
		fail("madvise");
	return (unsigned char *)a;
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	unsigned char *huge = aligned(MADV_HUGEPAGE), *small = aligned(MADV_NOHUGEPAGE);
	for (size_t off = 0; off < SIZE; off++) {
		huge[off] = pattern(off, 1);
		small[off] = pattern(off, 2);
	}
	printf("READY pid=%d huge=%lx small=%lx\n", getpid(), (unsigned long)huge, (unsigned long)small);
	fflush(stdout);
	char go[4096];
	snprintf(go, sizeof go, "%s/go", argv[1]);
	while (access(go, F_OK) != 0)
		usleep(20000);
	for (size_t off = 0; off < SIZE; off += 512)
		if (huge[off] != pattern(off, 1) || small[off] != pattern(off, 2))
			fail("pattern");
	printf("DONE ok\n");
	fflush(stdout);
	return 0;
}
