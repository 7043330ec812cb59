/* SPDX-License-Identifier: MIT */
/*
 * Message-mode ring edge cases, single threaded: empty, zero-length records,
 * the largest record, records over max_record, short read buffers, full,
 * records ending exactly at the wrap and wrapping, reserve/commit with a
 * shortened record, writev/readv, IVL_MORE batching.
 */
#include "ivl_test.h"

#define SZ     256u
#define MAXREC (SZ - 8u) /* the largest record that fits: footprint == SZ */

static void init_pair(struct ivt_ring *t, struct ivl_ring *p, struct ivl_ring *c, uint32_t maxrec)
{
	CHECK_EQ(ivl_ring_init_producer(p, t->prod, t->cons, t->data, t->size, IVL_MODE_MESSAGE,
					maxrec, NULL),
		 0);
	CHECK_EQ(ivl_ring_init_consumer(c, t->prod, t->cons, t->data, t->size, IVL_MODE_MESSAGE,
					maxrec, NULL),
		 0);
}

static void test_init_args(void)
{
	struct ivt_ring t;
	struct ivl_ring r;

	ivt_ring_alloc(&t, SZ);
	CHECK_EQ(ivl_ring_init_producer(&r, t.prod, t.cons, t.data, SZ, IVL_MODE_MESSAGE,
					MAXREC + 1, NULL),
		 -EINVAL);
	CHECK_EQ(ivl_ring_init_producer(&r, t.prod, t.cons, t.data, SZ, IVL_MODE_MESSAGE,
					UINT32_MAX, NULL),
		 -EINVAL);
	CHECK_EQ(
	    ivl_ring_init_producer(&r, t.prod, t.cons, t.data, SZ, IVL_MODE_MESSAGE, MAXREC, NULL),
	    0);
	/* Indices must be record aligned. */
	t.prod->tail = 12;
	t.cons->head = 8;
	CHECK_EQ(
	    ivl_ring_init_consumer(&r, t.prod, t.cons, t.data, SZ, IVL_MODE_MESSAGE, MAXREC, NULL),
	    -EPROTO);
	ivt_ring_free(&t);
}

static void test_basic(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	struct ivl_span sp[2];
	uint8_t in[SZ], out[SZ];
	struct ts_stream g;

	ivt_ring_alloc(&t, SZ);
	init_pair(&t, &p, &c, MAXREC);
	ts_stream_init(&g, 10);
	ts_stream_next(&g, in, sizeof(in));

	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), -EAGAIN);
	CHECK_EQ(ivl_ring_peek(&c, sp), -EAGAIN);
	CHECK_EQ(ivl_ring_readable(&c), 0);

	/* Zero-length record: distinct from "empty" via readable(). */
	CHECK_EQ(ivl_ring_write(&p, NULL, 0, 0), 0);
	CHECK_EQ(t.prod->tail, 8);
	CHECK_EQ(ivl_ring_readable(&c), 1);
	CHECK_EQ(ivl_ring_peek(&c, sp), 0);
	CHECK_EQ(sp[0].len, 0);
	CHECK_EQ(ivl_ring_release(&c, 0, 0), 0);
	CHECK_EQ(ivl_ring_readable(&c), 0);
	CHECK_EQ(ivl_ring_write(&p, in, 0, 0), 0);
	CHECK_EQ(ivl_ring_read(&c, out, 0), 0);
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), -EAGAIN);

	/* Over max_record. */
	CHECK_EQ(ivl_ring_write(&p, in, MAXREC + 1, 0), -EMSGSIZE);
	CHECK_EQ(ivl_ring_reserve(&p, MAXREC + 1, sp), -EMSGSIZE);
	CHECK_EQ(ivl_ring_reserve(&p, SIZE_MAX, sp), -EMSGSIZE);
	CHECK_EQ(ivl_ring_readable(&c), 0);

	/* The largest record fills the ring exactly, even across the wrap
	 * (the indices are at 16 now). */
	CHECK_EQ(ivl_ring_write(&p, in, MAXREC, 0), MAXREC);
	CHECK_EQ(ivl_ring_free(&p), 0);
	CHECK_EQ(ivl_ring_write(&p, NULL, 0, 0), -EAGAIN); /* not even a header fits */
	CHECK_EQ(ivl_ring_writable(&p, 0), 0);
	CHECK_EQ(ivl_ring_peek(&c, sp), MAXREC);
	CHECK(sp[0].base == t.data + 24 && sp[0].len == SZ - 24);
	CHECK(sp[1].base == t.data && sp[1].len == MAXREC - (SZ - 24));
	/* Too small a buffer: -EMSGSIZE and the record stays. */
	CHECK_EQ(ivl_ring_read(&c, out, MAXREC - 1), -EMSGSIZE);
	CHECK_EQ(ivl_ring_read(&c, out, MAXREC), MAXREC);
	CHECK(memcmp(out, in, MAXREC) == 0);
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), -EAGAIN);
	ivt_ring_free(&t);
}

static void test_full_and_wrap(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	struct ivl_span sp[2];
	uint8_t in[SZ], out[SZ];
	struct ts_stream g;
	int n = 0;

	ivt_ring_alloc(&t, SZ);
	init_pair(&t, &p, &c, MAXREC);
	ts_stream_init(&g, 11);
	ts_stream_next(&g, in, sizeof(in));

	/* 13-byte records take 24 bytes; layout v3 pads the third of each
	 * line to the next (a record of at most a line never crosses one): 8
	 * fit, and the last 16 bytes stay free. */
	while (ivl_ring_write(&p, in + n, 13, 0) == 13)
		n++;
	CHECK_EQ(n, 8);
	CHECK_EQ(ivl_ring_free(&p), 16);
	CHECK_EQ(ivl_ring_writable(&p, 8), 1);
	CHECK_EQ(ivl_ring_writable(&p, 9), 0);
	/* A zero-length record needs only its header: it fits in 8 bytes. */
	CHECK_EQ(ivl_ring_write(&p, NULL, 0, 0), 0);
	CHECK_EQ(ivl_ring_write(&p, NULL, 0, 0), 0);
	CHECK_EQ(ivl_ring_write(&p, NULL, 0, 0), -EAGAIN);
	for (int i = 0; i < n; i++) {
		CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), 13);
		CHECK(memcmp(out, in + i, 13) == 0, "record %d", i);
	}
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), 0);
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), 0);
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), -EAGAIN);
	CHECK_EQ(t.cons->head, SZ);

	/* Now at offset 0 again. A record ending exactly at the end of the
	 * data area, then one that would start in the last 8 bytes. */
	CHECK_EQ(ivl_ring_write(&p, in, SZ - 8 - 16, 0), SZ - 24); /* ends at SZ-16 */
	CHECK_EQ(ivl_ring_write(&p, in, 8, 0), 8);		   /* ends at SZ */
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), SZ - 24);
	CHECK_EQ(ivl_ring_peek(&c, sp), 8);
	CHECK(sp[0].base == t.data + SZ - 8 && sp[0].len == 8 && sp[1].len == 0);
	CHECK_EQ(ivl_ring_release(&c, 0, 0), 0);
	CHECK_EQ(ivl_ring_write(&p, in, SZ - 8 - 8, 0), SZ - 16); /* ends at SZ-8 */
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), SZ - 16);
	/* Layout v3: a 28-byte record would cross the ring end (a line
	 * boundary), so an 8-byte pad fills the last line and the record
	 * starts at 0. Records over a line still wrap (test_reserve_commit). */
	CHECK_EQ(ivl_ring_write(&p, in, 20, 0), 20);
	CHECK_EQ(ivl_ring_peek(&c, sp), 20);
	CHECK(sp[0].base == t.data + 8 && sp[0].len == 20 && sp[1].len == 0);
	CHECK(memcmp(sp[0].base, in, 20) == 0);
	CHECK_EQ(ivl_ring_release(&c, 12345, 0), 0); /* len is ignored in message mode */
	CHECK_EQ(ivl_ring_readable(&c), 0);
	ivt_ring_free(&t);
}

static void test_reserve_commit(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	struct ivl_span sp[2];
	uint8_t in[SZ], out[SZ];
	struct ts_stream g;

	ivt_ring_alloc(&t, SZ);
	init_pair(&t, &p, &c, 100);
	ts_stream_init(&g, 12);
	ts_stream_next(&g, in, sizeof(in));
	/* Move to offset 200 with records of 104 and 96 bytes (over a line:
	 * no pad in layout v3): a 100-byte payload then starts at 208 and
	 * wraps after 48 bytes. */
	for (int i = 0; i < 2; i++) {
		size_t len = i == 0 ? 96 : 88;

		CHECK_EQ(ivl_ring_write(&p, in, len, 0), (long)len);
		CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), (long)len);
	}
	CHECK_EQ(ivl_ring_reserve(&p, 100, sp), 100);
	CHECK(sp[0].base == t.data + 208 && sp[0].len == 48);
	CHECK(sp[1].base == t.data && sp[1].len == 52);
	memcpy(sp[0].base, in, 48);
	memcpy(sp[1].base, in + 48, 52);
	CHECK_EQ(ivl_ring_commit(&p, 101, 0), -EINVAL);
	CHECK_EQ(ivl_ring_commit(&p, 70, 0), 0); /* shortened record */
	CHECK_EQ(ivl_ring_peek(&c, sp), 70);
	CHECK(sp[0].len == 48 && sp[1].len == 22);
	CHECK(memcmp(sp[0].base, in, 48) == 0 && memcmp(sp[1].base, in + 48, 22) == 0);
	CHECK_EQ(ivl_ring_release(&c, 0, 0), 0);
	CHECK_EQ(t.cons->head, 200 + 8 + 72);

	/* Reserve then commit 0: an empty record. */
	CHECK_EQ(ivl_ring_reserve(&p, 50, sp), 50);
	CHECK_EQ(ivl_ring_commit(&p, 0, 0), 0);
	CHECK_EQ(ivl_ring_peek(&c, sp), 0);
	CHECK_EQ(ivl_ring_release(&c, 0, 0), 0);

	/* writev gathers into one record across the wrap; readv scatters. */
	struct iovec wv[3] = {{in, 30}, {NULL, 0}, {in + 30, 70}};
	CHECK_EQ(ivl_ring_writev(&p, wv, 3, 0), 100);
	struct iovec big[2] = {{in, 60}, {in, 60}};
	CHECK_EQ(ivl_ring_writev(&p, big, 2, 0), -EMSGSIZE);
	uint8_t a[33], b[67];
	struct iovec rv[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
	struct iovec small[2] = {{a, 50}, {b, 49}};
	CHECK_EQ(ivl_ring_readv(&c, small, 2), -EMSGSIZE);
	CHECK_EQ(ivl_ring_readv(&c, rv, 2), 100);
	CHECK(memcmp(a, in, 33) == 0 && memcmp(b, in + 33, 67) == 0);
	ivt_ring_free(&t);
}

static void test_batching_and_tiny(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	uint8_t in[SZ], out[SZ];

	ivt_ring_alloc(&t, SZ);
	init_pair(&t, &p, &c, MAXREC);
	memset(in, 0x42, sizeof(in));
	CHECK_EQ(ivl_ring_write(&p, in, 1, IVL_MORE), 1);
	CHECK_EQ(ivl_ring_write(&p, in, 2, IVL_MORE), 2);
	CHECK_EQ(ivl_ring_write(&p, NULL, 0, IVL_MORE), 0);
	CHECK_EQ(ivl_ring_readable(&c), 0);
	CHECK_EQ(ivl_ring_flush(&p), 0);
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), 1);
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), 2);
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), 0);
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), -EAGAIN);
	ivt_ring_free(&t);

	/* max_record 0: only empty records, which must still work. */
	ivt_ring_alloc(&t, 64);
	init_pair(&t, &p, &c, 0);
	CHECK_EQ(ivl_ring_write(&p, in, 1, 0), -EMSGSIZE);
	for (int i = 0; i < 8; i++)
		CHECK_EQ(ivl_ring_write(&p, NULL, 0, 0), 0);
	CHECK_EQ(ivl_ring_write(&p, NULL, 0, 0), -EAGAIN);
	for (int i = 0; i < 8; i++)
		CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), 0);
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), -EAGAIN);
	ivt_ring_free(&t);
}

int main(void)
{
	test_init_args();
	test_basic();
	test_full_and_wrap();
	test_reserve_commit();
	test_batching_and_tiny();
	printf("ring_message_edges: ok\n");
	return 0;
}
