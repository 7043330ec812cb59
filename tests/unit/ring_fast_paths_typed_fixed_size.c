/* SPDX-License-Identifier: MIT */
/*
 * The ring's inline fast paths (ring_inline.h) as their callers use them:
 * the mode-typed calls (ivl__ring_write_msg/_stream, ivl__ring_read_msg/
 * _stream) on a ring of either mode, a receiver whose buffer has a
 * constant size (the exact-record path and everything it hands on: a
 * shorter record, a longer one, a pad before it, a record or range across
 * the ring end, an empty ring, EOF, a reset), the inline copy of every
 * size up to and past two lines, a full ring and a closed consumer; then
 * the counters (stored once per lap, suppressed doorbells derived) and a
 * flush that knows from the handle, not from shared memory, whether it has
 * anything to publish.
 */
#include "ivl_test.h"
#include "ring_inline.h"

#define SZ     1024u
#define MAXREC 200u

static void init_pair(struct ivt_ring *t, struct ivl_ring *p, struct ivl_ring *c, uint32_t mode,
		      const struct ivl_notifier *pn, const struct ivl_notifier *cn)
{
	uint32_t max = mode == IVL_MODE_MESSAGE ? MAXREC : 0;

	ivt_ring_alloc(t, SZ);
	CHECK_EQ(ivl_ring_init_producer(p, t->prod, t->cons, t->data, SZ, mode, max, pn), 0);
	CHECK_EQ(ivl_ring_init_consumer(c, t->prod, t->cons, t->data, SZ, mode, max, cn), 0);
}

static void fill_pattern(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(seed * 131 + i * 7 + 1);
}

/* Fixed-size (compile-time 64) receiver on a message ring. */
static long read64_msg(struct ivl_ring *c, uint8_t *buf)
{
	return ivl__ring_read_msg(c, buf, 64);
}

static long read64_stream(struct ivl_ring *c, uint8_t *buf)
{
	return ivl__ring_read_stream(c, buf, 64);
}

static void test_typed_calls_wrong_mode(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	uint8_t in[64], out[128];

	/* Message-typed calls on a stream ring: the gate sends them to the
	 * slow path, which writes and reads a stream. */
	init_pair(&t, &p, &c, IVL_MODE_STREAM, NULL, NULL);
	fill_pattern(in, sizeof(in), 1);
	CHECK_EQ(ivl__ring_write_msg(&p, in, 64, 0), 64);
	CHECK_EQ(t.prod->tail, 64); /* no record header */
	CHECK_EQ(ivl__ring_read_msg(&c, out, 40), 40);
	CHECK(memcmp(out, in, 40) == 0);
	CHECK_EQ(ivl__ring_read_msg(&c, out, sizeof(out)), 24);
	CHECK(memcmp(out, in + 40, 24) == 0);
	ivt_ring_free(&t);

	/* Stream-typed calls on a message ring write and read records. */
	init_pair(&t, &p, &c, IVL_MODE_MESSAGE, NULL, NULL);
	CHECK_EQ(ivl__ring_write_stream(&p, in, 20, 0), 20);
	CHECK_EQ(t.prod->tail, ivl_rec_footprint(20));
	CHECK_EQ(ivl__ring_read_stream(&c, out, 10), -EMSGSIZE);
	CHECK_EQ(ivl__ring_read_stream(&c, out, sizeof(out)), 20);
	CHECK(memcmp(out, in, 20) == 0);
	ivt_ring_free(&t);
}

static void test_fixed_size_message(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	uint8_t in[MAXREC], out[64];

	init_pair(&t, &p, &c, IVL_MODE_MESSAGE, NULL, NULL);
	fill_pattern(in, sizeof(in), 2);

	/* Empty: -EAGAIN, nothing moved. */
	CHECK_EQ(read64_msg(&c, out), -EAGAIN);

	/* The exact record, then a shorter one (the general path), then a
	 * longer one (-EMSGSIZE, left in place and read by a larger buffer),
	 * then an empty one. */
	CHECK_EQ(ivl__ring_write_msg(&p, in, 64, 0), 64);
	CHECK_EQ(read64_msg(&c, out), 64);
	CHECK(memcmp(out, in, 64) == 0);
	CHECK_EQ(ivl__ring_write_msg(&p, in + 1, 13, 0), 13);
	CHECK_EQ(read64_msg(&c, out), 13);
	CHECK(memcmp(out, in + 1, 13) == 0);
	CHECK_EQ(ivl__ring_write_msg(&p, in, 100, 0), 100);
	CHECK_EQ(read64_msg(&c, out), -EMSGSIZE);
	{
		uint8_t big[MAXREC];

		CHECK_EQ(ivl_ring_read(&c, big, sizeof(big)), 100);
		CHECK(memcmp(big, in, 100) == 0);
	}
	CHECK_EQ(ivl_ring_write(&p, NULL, 0, 0), 0);
	CHECK_EQ(read64_msg(&c, out), 0);
	CHECK_EQ(read64_msg(&c, out), -EAGAIN);

	/* Many laps of 64-byte records with 40-byte ones between them: pads
	 * before records that would cross a line, records across the ring
	 * end never (a line record never crosses a line); every byte
	 * checked. */
	for (unsigned i = 0; i < 200; i++) {
		size_t n = i % 3 == 0 ? 40 : 64;

		fill_pattern(in, n, i);
		CHECK_EQ(ivl__ring_write_msg(&p, in, n, 0), (long)n);
		CHECK_EQ(read64_msg(&c, out), (long)n);
		CHECK(memcmp(out, in, n) == 0);
	}

	/* A full ring: records until -EAGAIN, then all of them back. */
	{
		unsigned w = 0;

		while (ivl__ring_write_msg(&p, in, 64, 0) == 64)
			w++;
		CHECK(w >= SZ / 128 && w <= SZ / 64);
		CHECK_EQ(ivl__ring_write_msg(&p, in, 64, 0), -EAGAIN);
		for (unsigned i = 0; i < w; i++)
			CHECK_EQ(read64_msg(&c, out), 64);
		CHECK_EQ(read64_msg(&c, out), -EAGAIN);
	}

	/* EOF and reset. */
	CHECK_EQ(ivl_ring_set_flags(&p, IVL_RING_F_DONE_WRITING), 0);
	CHECK_EQ(read64_msg(&c, out), -EPIPE);
	CHECK_EQ(ivl_ring_set_flags(&p, IVL_RING_F_ABORT), 0);
	CHECK_EQ(read64_msg(&c, out), -ECONNRESET);
	ivt_ring_free(&t);

	/* A closed consumer: the next write of either kind is -EPIPE. */
	init_pair(&t, &p, &c, IVL_MODE_MESSAGE, NULL, NULL);
	CHECK_EQ(ivl__ring_write_msg(&p, in, 64, 0), 64);
	CHECK_EQ(ivl_ring_set_cons_flags(&c, IVL_RING_F_CLOSED), 0);
	CHECK_EQ(ivl__ring_write_msg(&p, in, 64, 0), -EPIPE);
	CHECK_EQ(ivl_ring_write(&p, in, 7, 0), -EPIPE);
	ivt_ring_free(&t);
}

static void test_fixed_size_stream(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	uint8_t in[SZ], out[64];
	uint64_t pos = 0, wpos = 10;

	init_pair(&t, &p, &c, IVL_MODE_STREAM, NULL, NULL);
	CHECK_EQ(read64_stream(&c, out), -EAGAIN);

	/* Fewer bytes than the buffer: a short read. */
	fill_pattern(in, sizeof(in), 3);
	CHECK_EQ(ivl__ring_write_stream(&p, in, 10, 0), 10);
	CHECK_EQ(read64_stream(&c, out), 10);
	CHECK(memcmp(out, in, 10) == 0);
	pos = 10;

	/* 64-byte reads of 48-byte writes: ranges that end mid-buffer and
	 * cross the ring end (two spans) on the way, every byte checked
	 * against its stream position (byte q is q * 13). */
	for (unsigned i = 0; i < 300; i++) {
		uint8_t w[48];
		long n;

		for (unsigned k = 0; k < sizeof(w); k++)
			w[k] = (uint8_t)((wpos + k) * 13);
		CHECK_EQ(ivl__ring_write_stream(&p, w, sizeof(w), 0), (long)sizeof(w));
		wpos += sizeof(w);
		if (i % 4 != 3)
			continue;
		while ((n = read64_stream(&c, out)) > 0) {
			for (long k = 0; k < n; k++)
				CHECK_EQ(out[k], (uint8_t)((pos + (uint64_t)k) * 13));
			pos += (uint64_t)n;
		}
		CHECK_EQ(n, -EAGAIN);
		CHECK_EQ(pos, wpos);
	}
	CHECK(pos > 3 * SZ);
	ivt_ring_free(&t);
}

/* The inline copy: every size from 0 to past two lines, both modes, at
 * every alignment the loop brings, through the lengths' non-constant
 * paths. */
static void test_copy_sizes(uint32_t mode)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	uint8_t in[MAXREC + 8], out[MAXREC + 8];

	init_pair(&t, &p, &c, mode, NULL, NULL);
	for (size_t n = 0; n <= MAXREC; n++) {
		long r;

		if (n == 0 && mode == IVL_MODE_STREAM)
			continue;
		fill_pattern(in, n, (unsigned)n);
		memset(out, 0xee, sizeof(out));
		CHECK_EQ(ivl__ring_write(&p, n ? in : NULL, n, 0), (long)n);
		r = ivl__ring_read(&c, out, n + 3);
		if (mode == IVL_MODE_STREAM && r < (long)n) {
			/* A stream range across the ring end: the rest next. */
			CHECK(r > 0);
			CHECK_EQ(ivl__ring_read(&c, out + r, n - (size_t)r), (long)n - r);
			r = (long)n;
		}
		CHECK_EQ(r, (long)n);
		CHECK(memcmp(out, in, n) == 0);
		CHECK_EQ(out[n], 0xee); /* nothing past the data */
	}
	ivt_ring_free(&t);
}

/* Counters: the handle's, stored in the control line per lap, on a flush
 * and around a kick; suppressed doorbells derived from the publishes. */
static void test_counters_per_lap(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	uint8_t b[64];

	init_pair(&t, &p, &c, IVL_MODE_STREAM, NULL, NULL);
	memset(b, 1, sizeof(b));
	/* Within the first lap nothing is stored. */
	for (unsigned i = 0; i < SZ / 64 - 1; i++) {
		CHECK_EQ(ivl__ring_write_stream(&p, b, 64, 0), 64);
		CHECK_EQ(read64_stream(&c, b), 64);
	}
	CHECK_EQ(t.prod->msgs, 0);
	CHECK_EQ(t.cons->msgs, 0);
	CHECK_EQ(ivl_ring_kicks_suppressed(&p), SZ / 64 - 1);
	/* The producer's first call in the second lap stores its counts
	 * (before that write), the consumer's first read there its own. */
	CHECK_EQ(ivl__ring_write_stream(&p, b, 64, 0), 64);
	CHECK_EQ(read64_stream(&c, b), 64);
	CHECK_EQ(ivl__ring_write_stream(&p, b, 64, 0), 64);
	CHECK_EQ(t.prod->msgs, SZ / 64);
	CHECK_EQ(t.prod->kicks_suppressed, SZ / 64);
	CHECK_EQ(read64_stream(&c, b), 64);
	CHECK_EQ(t.cons->msgs, SZ / 64);
	CHECK_EQ(t.cons->kicks_suppressed, SZ / 64);
	ivl_ring_flush_stats(&p);
	ivl_ring_flush_stats(&c);
	CHECK_EQ(t.prod->msgs, SZ / 64 + 1);
	CHECK_EQ(t.cons->msgs, SZ / 64 + 1);
	CHECK_EQ(t.prod->kicks, 0);
	ivt_ring_free(&t);
}

static void test_flush_from_handle(void)
{
	struct ivt_cnt_notifier pc = {0}, cc = {0};
	struct ivl_notifier pn = ivt_cnt_bind(&pc), cn = ivt_cnt_bind(&cc);
	struct ivt_ring t;
	struct ivl_ring p, c;
	uint8_t b[24]; /* records of 32 bytes: no pads */

	init_pair(&t, &p, &c, IVL_MODE_MESSAGE, &pn, &cn);
	memset(b, 7, sizeof(b));
	CHECK_EQ(ivl_ring_flush(&c), -EINVAL);
	CHECK_EQ(ivl_ring_release_flush(&p), -EINVAL);

	/* Nothing held: a flush publishes nothing, even when the shared
	 * tail says otherwise (it is never read back). */
	CHECK_EQ(ivl_ring_flush(&p), 0);
	CHECK_EQ(ivl_ring_kicks_suppressed(&p), 0);
	t.prod->tail = 8; /* a scribble a flush must not "repair" */
	CHECK_EQ(ivl_ring_flush(&p), 0);
	CHECK_EQ(t.prod->tail, 8);
	t.prod->tail = 0;

	/* Held data: the flush publishes it once, and kicks a sleeping
	 * consumer once. */
	CHECK_EQ(ivl__ring_write_msg(&p, b, 24, IVL_MORE), 24);
	CHECK_EQ(ivl__ring_write_msg(&p, b, 24, IVL_MORE), 24);
	CHECK_EQ(t.prod->tail, 0);
	ivl_ring_arm(&c);
	CHECK_EQ(ivl_ring_flush(&p), 0);
	CHECK_EQ(t.prod->tail, 2 * ivl_rec_footprint(24));
	CHECK_EQ(pc.kicks, 1);
	CHECK_EQ(p.kicks, 1);
	CHECK_EQ(ivl_ring_flush(&p), 0);
	CHECK_EQ(ivl_ring_kicks_suppressed(&p), 0); /* 1 publish, 1 kick */
	ivl_ring_disarm(&c);

	/* A held write, then one that publishes both: a later flush may
	 * publish the same tail again, harmlessly. */
	CHECK_EQ(ivl__ring_write_msg(&p, b, 24, IVL_MORE), 24);
	CHECK_EQ(ivl__ring_write_msg(&p, b, 24, 0), 24);
	CHECK_EQ(t.prod->tail, 4 * ivl_rec_footprint(24));
	CHECK_EQ(ivl_ring_flush(&p), 0);
	CHECK_EQ(t.prod->tail, 4 * ivl_rec_footprint(24));
	for (int i = 0; i < 4; i++)
		CHECK_EQ(ivl__ring_read_msg(&c, b, sizeof(b)), 24);

	/* The consumer: releases held with IVL_MORE, published by
	 * release_flush only. */
	CHECK_EQ(ivl__ring_write_msg(&p, b, 24, 0), 24);
	{
		struct ivl_span sp[2];

		CHECK_EQ(ivl__ring_peek(&c, sp), 24);
		CHECK_EQ(ivl__ring_release(&c, 24, IVL_MORE), 0);
	}
	CHECK_EQ(t.cons->head, 4 * ivl_rec_footprint(24));
	CHECK_EQ(ivl_ring_release_flush(&c), 0);
	CHECK_EQ(t.cons->head, 5 * ivl_rec_footprint(24));
	t.cons->head = 0; /* again a scribble nobody re-publishes over */
	CHECK_EQ(ivl_ring_release_flush(&c), 0);
	CHECK_EQ(t.cons->head, 0);
	CHECK_EQ(pc.kicks, 1);
	CHECK_EQ(cc.kicks, 0);
	ivt_ring_free(&t);
}

int main(void)
{
	ts_init("ring_fast_paths_typed_fixed_size", 60);
	test_typed_calls_wrong_mode();
	test_fixed_size_message();
	test_fixed_size_stream();
	test_copy_sizes(IVL_MODE_MESSAGE);
	test_copy_sizes(IVL_MODE_STREAM);
	test_counters_per_lap();
	test_flush_from_handle();
	return 0;
}
