/* SPDX-License-Identifier: MIT */
/*
 * Ring flags in both modes: DONE_WRITING and CLOSED from the producer give
 * EOF after the last byte (stream read 0, message -EPIPE), ABORT gives
 * -ECONNRESET even with data pending, a CLOSED consumer gives the producer
 * -EPIPE and an aborting one -ECONNRESET; readable/writable report all of
 * these as ready so that a waiter wakes up to see them.
 */
#include "ivl_test.h"

#define SZ 256u

static void init_pair(struct ivt_ring *t, uint32_t mode, struct ivl_ring *p, struct ivl_ring *c)
{
	uint32_t mr = mode == IVL_MODE_MESSAGE ? 64 : 0;

	ivt_ring_alloc(t, SZ);
	CHECK_EQ(ivl_ring_init_producer(p, t->prod, t->cons, t->data, SZ, mode, mr, NULL), 0);
	CHECK_EQ(ivl_ring_init_consumer(c, t->prod, t->cons, t->data, SZ, mode, mr, NULL), 0);
}

static long eof_code(uint32_t mode)
{
	return mode == IVL_MODE_MESSAGE ? -EPIPE : 0;
}

static void test_eof(uint32_t mode, uint32_t flag)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	struct ivl_span sp[2];
	uint8_t buf[64];

	init_pair(&t, mode, &p, &c);
	memset(buf, 7, sizeof(buf));
	/* Data committed with IVL_MORE: set_flags publishes it first, so
	 * EOF never overtakes data. */
	CHECK_EQ(ivl_ring_write(&p, buf, 10, 0), 10);
	CHECK_EQ(ivl_ring_write(&p, buf, 20, IVL_MORE), 20);
	CHECK_EQ(ivl_ring_set_flags(&p, flag), 0);
	CHECK_EQ(ivl_ring_readable(&c), 1);
	if (mode == IVL_MODE_STREAM) {
		CHECK_EQ(ivl_ring_read(&c, buf, sizeof(buf)), 30);
	} else {
		CHECK_EQ(ivl_ring_read(&c, buf, sizeof(buf)), 10);
		CHECK_EQ(ivl_ring_read(&c, buf, sizeof(buf)), 20);
	}
	CHECK_EQ(ivl_ring_readable(&c), 1); /* EOF is "readable" */
	CHECK_EQ(ivl_ring_read(&c, buf, sizeof(buf)), eof_code(mode));
	CHECK_EQ(ivl_ring_peek(&c, sp), eof_code(mode));
	CHECK_EQ(ivl_ring_read(&c, buf, sizeof(buf)), eof_code(mode)); /* sticky */
	CHECK_EQ(ivl_ring_wait_readable(&c, 0), 0);
	CHECK_EQ(ivl_ring_wait_readable(&c, -1), 0);
	ivt_ring_free(&t);
}

static void test_abort(uint32_t mode)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	struct ivl_span sp[2];
	uint8_t buf[64];

	init_pair(&t, mode, &p, &c);
	memset(buf, 7, sizeof(buf));
	CHECK_EQ(ivl_ring_write(&p, buf, 10, 0), 10);
	CHECK_EQ(ivl_ring_write(&p, buf, 10, 0), 10);
	/* The consumer has already cached the first data: ABORT must still
	 * discard what is pending. */
	CHECK_EQ(ivl_ring_peek(&c, sp), mode == IVL_MODE_STREAM ? 20 : 10);
	CHECK_EQ(ivl_ring_set_flags(&p, IVL_RING_F_ABORT), 0);
	CHECK_EQ(ivl_ring_read(&c, buf, sizeof(buf)), -ECONNRESET);
	CHECK_EQ(ivl_ring_peek(&c, sp), -ECONNRESET);
	CHECK_EQ(ivl_ring_readable(&c), 1);
	CHECK_EQ(ivl_ring_wait_readable(&c, 1000000), 0);
	ivt_ring_free(&t);
}

static void test_consumer_closed(uint32_t mode, uint32_t flag, long want)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	struct ivl_span sp[2];
	uint8_t buf[SZ];

	/* On an empty ring (the producer's cache says "all free"). */
	init_pair(&t, mode, &p, &c);
	memset(buf, 7, sizeof(buf));
	CHECK_EQ(ivl_ring_write(&p, buf, 10, 0), 10);
	CHECK_EQ(ivl_ring_set_cons_flags(&c, flag), 0);
	CHECK_EQ(ivl_ring_write(&p, buf, 10, 0), want);
	CHECK_EQ(ivl_ring_reserve(&p, 10, sp), want);
	CHECK_EQ(ivl_ring_writable(&p, 10), 1);
	CHECK_EQ(ivl_ring_wait_writable(&p, 10, 0), 0);
	CHECK_EQ(ivl_ring_wait_writable(&p, 10, -1), 0);
	ivt_ring_free(&t);

	/* On a full ring. */
	init_pair(&t, mode, &p, &c);
	while (ivl_ring_write(&p, buf, mode == IVL_MODE_STREAM ? SZ : 56, 0) > 0)
		;
	CHECK_EQ(ivl_ring_write(&p, buf, 1, 0), -EAGAIN);
	CHECK_EQ(ivl_ring_writable(&p, 1), 0);
	CHECK_EQ(ivl_ring_set_cons_flags(&c, flag), 0);
	CHECK_EQ(ivl_ring_writable(&p, 1), 1);
	CHECK_EQ(ivl_ring_write(&p, buf, 1, 0), want);
	ivt_ring_free(&t);
}

int main(void)
{
	static const uint32_t modes[] = {IVL_MODE_STREAM, IVL_MODE_MESSAGE};

	for (int i = 0; i < 2; i++) {
		test_eof(modes[i], IVL_RING_F_DONE_WRITING);
		test_eof(modes[i], IVL_RING_F_CLOSED);
		test_abort(modes[i]);
		test_consumer_closed(modes[i], IVL_RING_F_CLOSED, -EPIPE);
		test_consumer_closed(modes[i], IVL_RING_F_ABORT, -ECONNRESET);
	}
	printf("ring_flags_eof_reset: ok\n");
	return 0;
}
