/*
 * pipeline_consumer.c: the tail of the pipeline of test/roundtrip's
 * TestPipeline. Copies stdin to the file OUT (created, truncated) until
 * end of file, then fsyncs it, prints "CONSUMED <bytes>" on stderr and
 * exits 0.
 */
#include "common.h"

int main(int argc, char **argv)
{
	static char buf[65536];
	uint64_t total = 0;
	int out;

	if (argc < 2) {
		fprintf(stderr, "usage: %s OUT\n", argv[0]);
		return 2;
	}
	out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		fprintf(stderr, "consumer: open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof buf);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "consumer: read: %s\n", strerror(errno));
			return 1;
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fprintf(stderr, "consumer: write: %s\n", strerror(errno));
				return 1;
			}
			off += w;
		}
		total += (uint64_t)n;
	}
	if (fsync(out) != 0) {
		fprintf(stderr, "consumer: fsync: %s\n", strerror(errno));
		return 1;
	}
	fprintf(stderr, "CONSUMED %" PRIu64 "\n", total);
	return 0;
}
