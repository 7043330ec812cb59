/* SPDX-License-Identifier: MIT */
/*
 * Ring flags in both modes: DONE_WRITING and CLOSED from the producer give
 * EOF after the last byte (stream read 0, message -EPIPE), ABORT gives
 * -ECONNRESET even with data pending, a CLOSED consumer gives the producer
 * -EPIPE and an aborting one -ECONNRESET; readable/writable report all of
 * these as ready so that a waiter wakes up to see them. Everything runs
 * twice: rings without wake lines, and with them (as channels attach), where
 * the flags are polled through the wake lines' copies; then flags written
 * into the blocks only (as guestd aborts a dead process's channels) are
 * seen within the documented bounds.
 */
#include "ivl_test.h"

#define SZ 256u

static int use_wake;			 /* attach with wake lines */
static struct ivl_ring_wake wake[2] __attribute__((aligned(64)));

static void init_pair(struct ivt_ring *t, uint32_t mode, struct ivl_ring *p, struct ivl_ring *c)
{
	uint32_t mr = mode == IVL_MODE_MESSAGE ? 64 : 0;
	struct ivl_ring_shm shm;

	ivt_ring_alloc(t, SZ);
	/* Stale values a reused slot could hold: init re-syncs them. */
	memset(wake, 0xff, sizeof(wake));
	shm = (struct ivl_ring_shm){.prod = t->prod,
				    .cons = t->cons,
				    .prod_wake = use_wake ? &wake[0] : NULL,
				    .cons_wake = use_wake ? &wake[1] : NULL,
				    .data = t->data,
				    .size = SZ};
	CHECK_EQ(ivl_ring_init(p, 1, &shm, mode, mr, NULL), 0);
	CHECK_EQ(ivl_ring_init(c, 0, &shm, mode, mr, NULL), 0);
	if (use_wake) {
		CHECK_EQ(wake[0].flags, 0);
		CHECK_EQ(wake[1].flags, 0);
		CHECK_EQ(wake[0].sleep_seq & 1, 0);
		CHECK_EQ(wake[1].sleep_seq & 1, 0);
	}
}

/*
 * Flags stored into the blocks only, not through the ring API (guestd
 * does this for a dead process): the consumer sees a producer ABORT once
 * its cached data is consumed, the producer sees a consumer CLOSED within
 * IVL_RING_FLAGS_POLL reserves (at once without wake lines).
 */
static void test_block_only_flags(uint32_t mode)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	uint8_t buf[8] = {0};
	unsigned ok = 0;
	long n;

	init_pair(&t, mode, &p, &c);
	__atomic_fetch_or(&t.cons->flags, IVL_RING_F_CLOSED, __ATOMIC_SEQ_CST);
	for (;;) {
		n = ivl_ring_write(&p, buf, sizeof(buf), 0);
		if (n != (long)sizeof(buf))
			break;
		ok++;
		CHECK_EQ(ivl_ring_read(&c, buf, sizeof(buf)), (long)sizeof(buf));
	}
	CHECK_EQ(n, -EPIPE);
	CHECK(ok < (use_wake ? IVL_RING_FLAGS_POLL : 1u), "%u writes succeeded", ok);
	ivt_ring_free(&t);

	init_pair(&t, mode, &p, &c);
	CHECK_EQ(ivl_ring_write(&p, buf, sizeof(buf), 0), (long)sizeof(buf));
	CHECK_EQ(ivl_ring_peek(&c, (struct ivl_span[2]){0}), (long)sizeof(buf));
	__atomic_fetch_or(&t.prod->flags, IVL_RING_F_ABORT, __ATOMIC_SEQ_CST);
	if (use_wake)
		CHECK_EQ(ivl_ring_read(&c, buf, sizeof(buf)), (long)sizeof(buf));
	CHECK_EQ(ivl_ring_read(&c, buf, sizeof(buf)), -ECONNRESET);
	ivt_ring_free(&t);
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

	ivt_name = "ring_flags_eof_reset";
	for (use_wake = 0; use_wake < 2; use_wake++) {
		for (int i = 0; i < 2; i++) {
			test_eof(modes[i], IVL_RING_F_DONE_WRITING);
			test_eof(modes[i], IVL_RING_F_CLOSED);
			test_abort(modes[i]);
			test_consumer_closed(modes[i], IVL_RING_F_CLOSED, -EPIPE);
			test_consumer_closed(modes[i], IVL_RING_F_ABORT, -ECONNRESET);
			test_block_only_flags(modes[i]);
		}
	}
	printf("ring_flags_eof_reset: ok\n");
	return 0;
}
