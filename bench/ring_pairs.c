/* SPDX-License-Identifier: MIT */
/*
 * ivlink-ring-pairs: a fixed number of send+recv pairs through one ring in
 * one thread, for instruction counts that no load on the machine changes:
 *
 *   valgrind --tool=callgrind --toggle-collect=run_pairs \
 *       build/bench/ivlink-ring-pairs [--stream] [--size B] [N]
 *
 * then the instructions callgrind reports (Ir of run_pairs, inclusive)
 * divided by N. Each pair is one ivl_ring_write() of a size-byte message
 * (default 64, message mode; --stream for a byte stream) and one
 * ivl_ring_read() of it, both publishing (so both take the F2 fence and the
 * other side's sleep_seq load, as in a ping-pong), no notifier. The program
 * uses only ring.h, so the same file builds against an older ring.c for a
 * before/after comparison (BENCHMARKS.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/ring.h>

#define RING_SIZE (64u * 1024)

static struct ivl_ring_prod prod __attribute__((aligned(64)));
static struct ivl_ring_cons cons __attribute__((aligned(64)));
static unsigned char data[RING_SIZE] __attribute__((aligned(64)));

/* Not inlined: callgrind's --toggle-collect names it. */
__attribute__((noinline)) static long run_pairs(struct ivl_ring *p, struct ivl_ring *c,
						 unsigned char *in, unsigned char *out, size_t len,
						 long n)
{
	long sum = 0;

	for (long i = 0; i < n; i++) {
		if (ivl_ring_write(p, in, len, 0) != (long)len)
			return -1;
		sum += ivl_ring_read(c, out, len);
	}
	return sum;
}

int main(int argc, char **argv)
{
	enum ivl_ring_mode mode = IVL_MODE_MESSAGE;
	size_t len = 64;
	long n = 100000, sum;
	struct ivl_ring p, c;
	unsigned char *in, *out;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--stream") == 0) {
			mode = IVL_MODE_STREAM;
		} else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
			len = (size_t)strtoul(argv[++i], NULL, 10);
		} else if (argv[i][0] != '-') {
			n = strtol(argv[i], NULL, 10);
		} else {
			fprintf(stderr,
				"usage: ivlink-ring-pairs [--stream] [--size BYTES] [PAIRS]\n");
			return argv[i][1] == 'h' || strcmp(argv[i], "--help") == 0 ? 0 : 2;
		}
	}
	if (len == 0 || len > 4096 || n <= 0) {
		fprintf(stderr, "ivlink-ring-pairs: size 1..4096 and PAIRS > 0\n");
		return 2;
	}
	in = calloc(1, len);
	out = calloc(1, len);
	if (!in || !out)
		return 1;
	ivl_ring_format(&prod, &cons);
	if (ivl_ring_init_producer(&p, &prod, &cons, data, RING_SIZE, mode, 4096, NULL) < 0 ||
	    ivl_ring_init_consumer(&c, &prod, &cons, data, RING_SIZE, mode, 4096, NULL) < 0) {
		fprintf(stderr, "ivlink-ring-pairs: ring init failed\n");
		return 1;
	}
	sum = run_pairs(&p, &c, in, out, len, n);
	if (sum != (long)len * n) {
		fprintf(stderr, "ivlink-ring-pairs: moved %ld bytes, expected %ld\n", sum,
			(long)len * n);
		return 1;
	}
	printf("%ld pairs of %zu B (%s mode)\n", n, len,
	       mode == IVL_MODE_STREAM ? "stream" : "message");
	free(in);
	free(out);
	return 0;
}
