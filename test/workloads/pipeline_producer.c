/*
 * pipeline_producer.c: the head of the pipeline of test/roundtrip's
 * TestPipeline (`sh -c 'pipeline_producer STOP | gzip -1 | pipeline_consumer OUT'`).
 *
 * Writes numbered 4096-byte blocks to stdout, 25 a second (~100 KiB/s):
 * bytes 0-7 are the block number (little-endian), byte i >= 8 is the low
 * byte of wl_mix(number * 4096 + i) (incompressible, so gzip output flows
 * steadily). When the file STOP exists it finishes the block it is on,
 * prints "PRODUCED <blocks>" on stderr and exits 0.
 */
#include "common.h"

#define BLOCK 4096

static void fill(uint8_t *b, uint64_t seq)
{
	memcpy(b, &seq, 8);
	for (size_t i = 8; i < BLOCK; i++)
		b[i] = (uint8_t)wl_mix(seq * BLOCK + i);
}

int main(int argc, char **argv)
{
	static uint8_t block[BLOCK];
	uint64_t seq;

	wl_init(argc, argv, "producer");
	for (seq = 0; !wl_stop_requested(); seq++) {
		fill(block, seq);
		for (size_t off = 0; off < BLOCK;) {
			ssize_t w = write(STDOUT_FILENO, block + off, BLOCK - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fprintf(stderr, "producer: write block %" PRIu64 ": %s\n", seq, strerror(errno));
				return 1;
			}
			off += (size_t)w;
		}
		wl_sleep_ms(40);
	}
	fprintf(stderr, "PRODUCED %" PRIu64 "\n", seq);
	return 0;
}
