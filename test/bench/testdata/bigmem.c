/* bigmem: touches argv[1] MiB of anonymous memory with a known pattern,
 * prints READY, then every 100 ms re-checks a sample of the pattern and
 * prints OK <n> (or BAD and exits 1). Used to measure throughput. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
	size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 1024;
	size_t len = mib << 20;
	unsigned long *p = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) { perror("mmap"); return 1; }
	size_t n = len / sizeof *p;
	for (size_t i = 0; i < n; i++) p[i] = i * 2654435761UL;
	printf("READY\n");
	fflush(stdout);
	for (unsigned long tick = 1;; tick++) {
		for (size_t i = tick % 4096; i < n; i += 4096 * 31)
			if (p[i] != i * 2654435761UL) { printf("BAD %zu\n", i); fflush(stdout); return 1; }
		printf("OK %lu\n", tick);
		fflush(stdout);
		usleep(100000);
	}
}
