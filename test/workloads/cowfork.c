/*
 * cowfork DIR: a 100 MiB parent that forks a child, as prefork servers,
 * redis BGSAVE and PostgreSQL do. The parent fills 96 MiB of a 100 MiB
 * mapping before the fork; after it, the child writes 1 MiB of its own
 * (pages it no longer shares) and the parent writes the last 4 MiB, which
 * the child never had (they must read as zeros in the child). Both print
 * "READY pid=P child=C" (the parent, once the child is ready); on DIR/go each
 * checks its whole mapping, the child prints "CHILD ok" and exits 0, the
 * parent waits for it and prints "DONE ok".
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1UL << 20)
#define SIZE (100 * MIB)
#define FILLED (96 * MIB)
#define OWN (1 * MIB)

static void fail(const char *who, const char *what)
{
	printf("FAIL %s: %s\n", who, what);
	fflush(stdout);
	exit(1);
}

static unsigned char pattern(size_t off) { return (unsigned char)(off / 4096 * 31 + 7); }

static void wait_file(const char *dir, const char *name)
{
	char p[4096];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	while (access(p, F_OK) != 0)
		usleep(20000);
}

static void check(const char *who, unsigned char *m, int child)
{
	for (size_t off = 0; off < SIZE; off += 512) {
		unsigned char want;
		if (child && off < OWN)
			want = 0xc5;
		else if (off < FILLED)
			want = pattern(off);
		else if (child)
			want = 0;
		else
			want = 0xa3;
		if (m[off] != want) {
			char msg[128];
			snprintf(msg, sizeof msg, "byte at %#zx is %#x, want %#x", off, m[off], want);
			fail(who, msg);
		}
	}
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	const char *dir = argv[1];
	unsigned char *m = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		fail("parent", "mmap");
	for (size_t off = 0; off < FILLED; off++)
		m[off] = pattern(off);
	int ready[2];
	if (pipe(ready) != 0)
		fail("parent", "pipe");
	pid_t child = fork();
	if (child < 0)
		fail("parent", "fork");
	if (child == 0) {
		memset(m, 0xc5, OWN);
		if (write(ready[1], "r", 1) != 1)
			fail("child", "write");
		wait_file(dir, "go");
		check("child", m, 1);
		printf("CHILD ok\n");
		fflush(stdout);
		return 0;
	}
	char c;
	if (read(ready[0], &c, 1) != 1)
		fail("parent", "read");
	memset(m + FILLED, 0xa3, SIZE - FILLED);
	printf("READY pid=%d child=%d\n", getpid(), child);
	fflush(stdout);
	wait_file(dir, "go");
	check("parent", m, 0);
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("parent", "the child failed");
	printf("DONE ok\n");
	fflush(stdout);
	return 0;
}
