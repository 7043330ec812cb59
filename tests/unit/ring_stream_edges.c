/* SPDX-License-Identifier: MIT */
/*
 * Stream-mode ring edge cases, single threaded: init argument checks, empty,
 * full, exact wrap, zero-length writes, reserve/commit and peek/release with
 * two spans on wrap, writev/readv scatter-gather, IVL_MORE batching,
 * handle-role checks, and adopting indices moved by another handle.
 */
#include "ivl_test.h"

#define SZ 256u

static void init_pair(struct ivt_ring *t, struct ivl_ring *p, struct ivl_ring *c)
{
	CHECK_EQ(
	    ivl_ring_init_producer(p, t->prod, t->cons, t->data, t->size, IVL_MODE_STREAM, 0, NULL),
	    0);
	CHECK_EQ(
	    ivl_ring_init_consumer(c, t->prod, t->cons, t->data, t->size, IVL_MODE_STREAM, 0, NULL),
	    0);
}

/* Moves both indices to free-running position pos by writing and reading
 * filler, so that the next write starts at offset pos % SZ. */
static void advance(struct ivl_ring *p, struct ivl_ring *c, uint64_t pos)
{
	uint8_t buf[SZ];

	memset(buf, 0x11, sizeof(buf));
	while (p->p_tail < pos) {
		uint64_t n = pos - p->p_tail < SZ ? pos - p->p_tail : SZ;

		CHECK_EQ(ivl_ring_write(p, buf, (size_t)n, 0), (long)n);
		CHECK_EQ(ivl_ring_read(c, buf, sizeof(buf)), (long)n);
	}
}

static void test_init_args(void)
{
	struct ivt_ring t;
	struct ivl_ring r;

	ivt_ring_alloc(&t, SZ);
	CHECK_EQ(ivl_ring_init_producer(&r, t.prod, t.cons, t.data, 100, IVL_MODE_STREAM, 0, NULL),
		 -EINVAL);
	CHECK_EQ(ivl_ring_init_producer(&r, t.prod, t.cons, t.data, 32, IVL_MODE_STREAM, 0, NULL),
		 -EINVAL);
	CHECK_EQ(ivl_ring_init_producer(&r, t.prod, t.cons, t.data + 1, SZ / 2, IVL_MODE_STREAM, 0,
					NULL),
		 -EINVAL);
	CHECK_EQ(
	    ivl_ring_init_producer(&r, t.prod, t.cons, t.data, SZ, (enum ivl_ring_mode)3, 0, NULL),
	    -EINVAL);
	CHECK_EQ(ivl_ring_init_consumer(&r, NULL, t.cons, t.data, SZ, IVL_MODE_STREAM, 0, NULL),
		 -EINVAL);
	CHECK_EQ(ivl_ring_init_producer(&r, t.prod, t.cons, t.data, 0u, IVL_MODE_STREAM, 0, NULL),
		 -EINVAL);
	/* Shared indices further apart than one ring: refused at attach. */
	t.prod->tail = SZ + 1;
	CHECK_EQ(ivl_ring_init_consumer(&r, t.prod, t.cons, t.data, SZ, IVL_MODE_STREAM, 0, NULL),
		 -EPROTO);
	/* Attaching to a ring in use starts from its indices. */
	t.prod->tail = 1000;
	t.cons->head = 900;
	CHECK_EQ(ivl_ring_init_consumer(&r, t.prod, t.cons, t.data, SZ, IVL_MODE_STREAM, 0, NULL),
		 0);
	CHECK_EQ(ivl_ring_readable(&r), 1);
	{
		struct ivl_span sp[2];

		CHECK_EQ(ivl_ring_peek(&r, sp), 100);
	}
	ivt_ring_free(&t);
}

static void test_empty_full(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	struct ivl_span sp[2];
	uint8_t in[SZ + 64], out[SZ + 64];
	struct ts_stream g;

	ivt_ring_alloc(&t, SZ);
	init_pair(&t, &p, &c);

	CHECK_EQ(ivl_ring_readable(&c), 0);
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), -EAGAIN);
	CHECK_EQ(ivl_ring_peek(&c, sp), -EAGAIN);
	CHECK_EQ(ivl_ring_writable(&p, SZ), 1);
	CHECK_EQ(ivl_ring_writable(&p, SZ + 1), 1); /* capped at the ring size */
	CHECK_EQ(ivl_ring_free(&p), SZ);

	/* Zero-length writes succeed, publish nothing. */
	CHECK_EQ(ivl_ring_write(&p, NULL, 0, 0), 0);
	CHECK_EQ(ivl_ring_writev(&p, NULL, 0, 0), 0);
	CHECK_EQ(ivl_ring_readable(&c), 0);
	CHECK_EQ(t.prod->tail, 0);
	CHECK_EQ(ivl_ring_reserve(&p, 0, sp), -EINVAL);

	/* An over-long write is partial and fills the ring exactly. */
	ts_stream_init(&g, 1);
	ts_stream_next(&g, in, sizeof(in));
	CHECK_EQ(ivl_ring_write(&p, in, sizeof(in), 0), SZ);
	CHECK_EQ(ivl_ring_free(&p), 0);
	CHECK_EQ(ivl_ring_write(&p, in, 1, 0), -EAGAIN);
	CHECK_EQ(ivl_ring_reserve(&p, 1, sp), -EAGAIN);
	CHECK_EQ(ivl_ring_writable(&p, 1), 0);
	CHECK_EQ(ivl_ring_writable(&p, 0), 0);
	CHECK_EQ(ivl_ring_readable(&c), 1);

	/* A full ring reads back as one span of exactly SZ bytes. */
	CHECK_EQ(ivl_ring_peek(&c, sp), SZ);
	CHECK(sp[0].base == t.data && sp[0].len == SZ && sp[1].len == 0);
	/* Partial reads. */
	CHECK_EQ(ivl_ring_read(&c, out, 10), 10);
	CHECK(memcmp(out, in, 10) == 0);
	CHECK_EQ(ivl_ring_writable(&p, 10), 1);
	CHECK_EQ(ivl_ring_writable(&p, 11), 0);
	CHECK_EQ(ivl_ring_read(&c, out + 10, sizeof(out)), SZ - 10);
	CHECK(memcmp(out, in, SZ) == 0);
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), -EAGAIN);
	CHECK_EQ(ivl_ring_readable(&c), 0);
	/* A zero-capacity read returns 0 and consumes nothing. */
	CHECK_EQ(ivl_ring_write(&p, in, 5, 0), 5);
	CHECK_EQ(ivl_ring_read(&c, out, 0), 0);
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), 5);
	ivt_ring_free(&t);
}

static void test_exact_wrap(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	struct ivl_span sp[2];
	uint8_t in[SZ], out[SZ];
	struct ts_stream g;

	ivt_ring_alloc(&t, SZ);
	init_pair(&t, &p, &c);
	advance(&p, &c, SZ - 40);
	ts_stream_init(&g, 2);
	ts_stream_next(&g, in, sizeof(in));

	/* A write ending exactly at the end of the data area is one span. */
	CHECK_EQ(ivl_ring_write(&p, in, 40, 0), 40);
	CHECK_EQ(ivl_ring_peek(&c, sp), 40);
	CHECK(sp[0].base == t.data + SZ - 40 && sp[0].len == 40 && sp[1].len == 0);
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), 40);
	CHECK(memcmp(out, in, 40) == 0);
	/* The next starts at offset 0. */
	CHECK_EQ(ivl_ring_write(&p, in, 8, 0), 8);
	CHECK_EQ(ivl_ring_peek(&c, sp), 8);
	CHECK(sp[0].base == t.data && sp[1].len == 0);
	CHECK_EQ(ivl_ring_release(&c, 8, 0), 0);

	/* Full ring after a wrap: SZ bytes starting at offset 8, two spans. */
	CHECK_EQ(ivl_ring_write(&p, in, SZ, 0), SZ);
	CHECK_EQ(ivl_ring_peek(&c, sp), SZ);
	CHECK(sp[0].base == t.data + 8 && sp[0].len == SZ - 8);
	CHECK(sp[1].base == t.data && sp[1].len == 8);
	CHECK(memcmp(sp[0].base, in, SZ - 8) == 0 && memcmp(sp[1].base, in + SZ - 8, 8) == 0);
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), SZ);
	CHECK(memcmp(out, in, SZ) == 0);

	/* Indices far from zero (free-running, as after terabytes). */
	ivt_ring_free(&t);
	ivt_ring_alloc(&t, SZ);
	t.prod->tail = t.cons->head = UINT64_MAX - 7; /* wraps the 64-bit index */
	init_pair(&t, &p, &c);
	CHECK_EQ(ivl_ring_write(&p, in, 100, 0), 100);
	CHECK_EQ(t.prod->tail, 92);
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), 100);
	CHECK(memcmp(out, in, 100) == 0);
	ivt_ring_free(&t);
}

static void test_reserve_peek_spans(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	struct ivl_span sp[2], sq[2];
	uint8_t in[SZ], out[SZ];
	struct ts_stream g;

	ivt_ring_alloc(&t, SZ);
	init_pair(&t, &p, &c);
	advance(&p, &c, 3 * SZ - 10);
	ts_stream_init(&g, 3);
	ts_stream_next(&g, in, sizeof(in));

	/* Commit without reserve, reserve twice, over-commit. */
	CHECK_EQ(ivl_ring_commit(&p, 0, 0), -EINVAL);
	CHECK_EQ(ivl_ring_reserve(&p, 50, sp), 50);
	CHECK(sp[0].base == t.data + SZ - 10 && sp[0].len == 10);
	CHECK(sp[1].base == t.data && sp[1].len == 40);
	CHECK_EQ(ivl_ring_reserve(&p, 1, sq), -EINVAL);
	CHECK_EQ(ivl_ring_commit(&p, 51, 0), -EINVAL);
	memcpy(sp[0].base, in, 10);
	memcpy(sp[1].base, in + 10, 40);
	/* Nothing is visible before commit. */
	CHECK_EQ(ivl_ring_peek(&c, sq), -EAGAIN);
	/* Commit fewer bytes than reserved. */
	CHECK_EQ(ivl_ring_commit(&p, 30, 0), 0);
	CHECK_EQ(ivl_ring_commit(&p, 0, 0), -EINVAL);

	CHECK_EQ(ivl_ring_release(&c, 0, 0), -EINVAL); /* nothing peeked */
	CHECK_EQ(ivl_ring_peek(&c, sq), 30);
	CHECK(sq[0].base == t.data + SZ - 10 && sq[0].len == 10);
	CHECK(sq[1].base == t.data && sq[1].len == 20);
	CHECK(memcmp(sq[0].base, in, 10) == 0 && memcmp(sq[1].base, in + 10, 20) == 0);
	CHECK_EQ(ivl_ring_release(&c, 31, 0), -EINVAL);
	/* Partial release: the rest is seen again by the next peek. */
	CHECK_EQ(ivl_ring_release(&c, 5, 0), 0);
	CHECK_EQ(ivl_ring_release(&c, 1, 0), -EINVAL); /* peek is one-shot */
	CHECK_EQ(ivl_ring_peek(&c, sq), 25);
	CHECK(sq[0].base == t.data + SZ - 5 && sq[0].len == 5 && sq[1].len == 20);
	CHECK_EQ(ivl_ring_release(&c, 25, 0), 0);

	/* Reserve larger than free gives what is free. */
	CHECK_EQ(ivl_ring_reserve(&p, 10 * SZ, sp), SZ);
	CHECK_EQ(sp[0].len + sp[1].len, SZ);
	CHECK_EQ(ivl_ring_commit(&p, 0, 0), 0); /* empty commit */
	CHECK_EQ(ivl_ring_readable(&c), 0);
	(void)out;
	ivt_ring_free(&t);
}

static void test_scatter_gather(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	uint8_t in[SZ], out[SZ], a[7], b[100], d[SZ];
	struct ts_stream g;

	ivt_ring_alloc(&t, SZ);
	init_pair(&t, &p, &c);
	advance(&p, &c, SZ - 33);
	ts_stream_init(&g, 4);
	ts_stream_next(&g, in, sizeof(in));

	struct iovec wv[4] = {
	    {in, 20}, {NULL, 0}, {in + 20, 1}, {in + 21, 79} /* 100 total */
	};
	CHECK_EQ(ivl_ring_writev(&p, wv, 4, 0), 100);
	CHECK_EQ(ivl_ring_writev(&p, wv, -1, 0), -EINVAL);
	struct iovec rv[3] = {{a, sizeof(a)}, {NULL, 0}, {b, sizeof(b)}};
	CHECK_EQ(ivl_ring_readv(&c, rv, 3), 100);
	CHECK(memcmp(a, in, 7) == 0 && memcmp(b, in + 7, 93) == 0);

	/* A writev larger than the free space is partial, cut mid-iovec. */
	struct iovec big[3] = {{in, SZ / 2}, {in + SZ / 2, SZ / 2}, {in, SZ / 2}};
	CHECK_EQ(ivl_ring_writev(&p, big, 3, 0), SZ);
	struct iovec rv2[2] = {{d, 3}, {d + 3, SZ - 3}};
	CHECK_EQ(ivl_ring_readv(&c, rv2, 2), SZ);
	CHECK(memcmp(d, in, SZ) == 0);
	/* An iovec total that overflows size_t is refused. */
	struct iovec ov[2] = {{in, SIZE_MAX}, {in, 2}};
	CHECK_EQ(ivl_ring_writev(&p, ov, 2, 0), -EINVAL);
	CHECK_EQ(ivl_ring_readv(&c, ov, 2), -EINVAL);
	(void)out;
	ivt_ring_free(&t);
}

static void test_batching(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	struct ivl_span sp[2];
	uint8_t in[SZ], out[SZ];

	ivt_ring_alloc(&t, SZ);
	init_pair(&t, &p, &c);
	memset(in, 0x5a, sizeof(in));

	/* IVL_MORE: committed but not published until flush (or a commit
	 * without the flag). */
	CHECK_EQ(ivl_ring_write(&p, in, 10, IVL_MORE), 10);
	CHECK_EQ(ivl_ring_write(&p, in, 10, IVL_MORE), 10);
	CHECK_EQ(ivl_ring_readable(&c), 0);
	CHECK_EQ(t.prod->tail, 0);
	CHECK_EQ(ivl_ring_flush(&p), 0);
	CHECK_EQ(t.prod->tail, 20);
	CHECK_EQ(ivl_ring_flush(&p), 0); /* nothing pending: no-op */
	/* Counters live in the handle until a flush (layout.h). */
	CHECK_EQ(t.prod->kicks_suppressed, 0);
	ivl_ring_flush_stats(&p);
	CHECK_EQ(t.prod->kicks_suppressed, 1);
	CHECK_EQ(ivl_ring_write(&p, in, 5, IVL_MORE), 5);
	CHECK_EQ(ivl_ring_write(&p, in, 5, 0), 5);
	CHECK_EQ(t.prod->tail, 30);
	ivl_ring_flush_stats(&p);
	CHECK_EQ(t.prod->msgs, 4);

	/* Consumer side: release with IVL_MORE keeps the space hidden from
	 * the producer until release_flush. */
	CHECK_EQ(ivl_ring_write(&p, in, SZ - 30, 0), SZ - 30);
	CHECK_EQ(ivl_ring_writable(&p, 1), 0);
	CHECK_EQ(ivl_ring_peek(&c, sp), SZ);
	CHECK_EQ(ivl_ring_release(&c, 100, IVL_MORE), 0);
	CHECK_EQ(ivl_ring_writable(&p, 1), 0);
	CHECK_EQ(t.cons->head, 0);
	CHECK_EQ(ivl_ring_release_flush(&c), 0);
	CHECK_EQ(t.cons->head, 100);
	CHECK_EQ(ivl_ring_writable(&p, 100), 1);
	CHECK_EQ(ivl_ring_writable(&p, 101), 0);
	CHECK_EQ(ivl_ring_release_flush(&c), 0);
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), SZ - 100);
	ivt_ring_free(&t);
}

static void test_roles(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	struct ivl_span sp[2];
	uint8_t buf[8] = {0};

	ivt_ring_alloc(&t, SZ);
	init_pair(&t, &p, &c);
	CHECK_EQ(ivl_ring_write(&c, buf, 8, 0), -EINVAL);
	CHECK_EQ(ivl_ring_reserve(&c, 8, sp), -EINVAL);
	CHECK_EQ(ivl_ring_read(&p, buf, 8), -EINVAL);
	CHECK_EQ(ivl_ring_peek(&p, sp), -EINVAL);
	CHECK_EQ(ivl_ring_set_flags(&c, IVL_RING_F_DONE_WRITING), -EINVAL);
	CHECK_EQ(ivl_ring_set_cons_flags(&p, IVL_RING_F_CLOSED), -EINVAL);
	CHECK_EQ(ivl_ring_wait_readable(&p, 0), -EINVAL);
	CHECK_EQ(ivl_ring_wait_writable(&c, 1, 0), -EINVAL);
	ivt_ring_free(&t);
}

/* Two handles on each end, as two processes sharing a socket over fork
 * that use it in turn: each adopts what the other moved. */
static void test_adopt(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c, p2, c2;
	uint8_t in[100], out[100];
	uint32_t seq;

	ivt_ring_alloc(&t, SZ);
	init_pair(&t, &p, &c);
	p2 = p; /* the fork */
	c2 = c;
	for (unsigned i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)i;
	/* Producer 1 writes 60, producer 2 (stale) adopts and writes 40 after. */
	CHECK_EQ(ivl_ring_write(&p, in, 60, 0), 60);
	CHECK_EQ(ivl_ring_adopt(&p2), 0);
	CHECK_EQ(p2.p_tail, 60);
	CHECK_EQ(ivl_ring_write(&p2, in + 60, 40, 0), 40);
	/* Consumer 1 reads 70, consumer 2 adopts and reads the last 30. */
	CHECK_EQ(ivl_ring_read(&c, out, 70), 70);
	CHECK_EQ(ivl_ring_adopt(&c2), 0);
	CHECK_EQ(ivl_ring_read(&c2, out + 70, sizeof(out)), 30);
	CHECK(memcmp(in, out, sizeof(in)) == 0);
	CHECK_EQ(ivl_ring_readable(&c2), 0);
	/* A handle that is ahead (it published last) keeps its indices. */
	CHECK_EQ(ivl_ring_adopt(&c2), 0);
	CHECK_EQ(c2.c_head, 100);
	/* A sleep_seq the other handle advanced (it slept and was kicked):
	 * the adopter continues on a newer even value, never an old odd one. */
	seq = t.cons->sleep_seq;
	t.cons->sleep_seq = seq + 3;
	CHECK_EQ(ivl_ring_adopt(&c), 0);
	CHECK_EQ(c.sleep_seq, (seq + 4) & ~1u);
	CHECK_EQ(c.sleep_seq & 1u, 0);
	/* Shared indices corrupted: poisoned, as at attach. */
	t.prod->tail = t.cons->head + SZ + 1;
	CHECK_EQ(ivl_ring_adopt(&c), -EPROTO);
	ivt_ring_free(&t);
}

int main(void)
{
	test_init_args();
	test_empty_full();
	test_exact_wrap();
	test_reserve_peek_spans();
	test_scatter_gather();
	test_batching();
	test_roles();
	test_adopt();
	printf("ring_stream_edges: ok\n");
	return 0;
}
