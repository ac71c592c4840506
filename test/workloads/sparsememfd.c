/*
 * sparsememfd DIR: a 1 GiB memfd (the ZGC heap's shape: a memfd mapped
 * twice, committed with fallocate) of which 4 MiB is written, 1024 pages
 * spread over the first 12 MiB and a last page at the end. Prints
 * "READY pid=P"; on DIR/go checks every written page through both mappings
 * and a sample of the others (still zero), then prints "DONE ok".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIZE (1UL << 30)
#define PAGE 4096UL
#define PAGES 1024UL

static void fail(const char *what)
{
	printf("FAIL %s\n", what);
	fflush(stdout);
	exit(1);
}

static size_t offset(size_t i) { return i == PAGES - 1 ? SIZE - PAGE : i * 3 * PAGE; }

int main(int argc, char **argv)
{
	char path[4096];
	int fd = memfd_create("java_heap", MFD_CLOEXEC);
	if (argc < 2 || fd < 0 || ftruncate(fd, SIZE) != 0)
		fail("memfd");
	if (fallocate(fd, 0, 0, 64UL << 20) != 0)
		fail("fallocate");
	char *a = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	char *b = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (a == MAP_FAILED || b == MAP_FAILED)
		fail("mmap");
	for (size_t i = 0; i < PAGES; i++)
		memset(a + offset(i), (int)(i % 251) + 1, PAGE);
	printf("READY pid=%d\n", getpid());
	fflush(stdout);
	snprintf(path, sizeof path, "%s/go", argv[1]);
	while (access(path, F_OK) != 0)
		usleep(20000);
	for (size_t i = 0; i < PAGES; i++) {
		char want = (char)((i % 251) + 1);
		if (a[offset(i)] != want || b[offset(i) + PAGE - 1] != want)
			fail("a written page differs");
	}
	/* Memory in use: the blocks the memfd holds (before anything below
	 * could fault more in). */
	struct stat st;
	if (fstat(fd, &st) != 0 || (size_t)st.st_size != SIZE)
		fail("size");
	/* pread of a hole allocates nothing (a read fault would). */
	for (size_t off = PAGE; off < SIZE - PAGE; off += 7 * PAGE) {
		char c = 1;
		if (off % (3 * PAGE) != 0 && (pread(fd, &c, 1, (off_t)off) != 1 || c != 0))
			fail("a page never written is not zero");
	}
	printf("DONE ok blocks=%lld\n", (long long)st.st_blocks);
	fflush(stdout);
	return 0;
}
