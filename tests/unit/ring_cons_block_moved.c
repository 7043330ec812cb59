/* SPDX-License-Identifier: MIT */
/*
 * A producer handle moved to another consumer block with
 * ivl_ring_set_cons_block(), as the socket shim's client does when the
 * server's half appears (it writes against a private block until then):
 * afterwards every word the producer reads of its consumer comes from the
 * new block. A sleeping consumer on the new block is kicked, a close there
 * is reported, the head there frees space; nothing read from the private
 * block counts any more. An impossible head in the new block poisons the
 * handle.
 *
 * This is the bug that reverted 7432a41: the handle cached pointers to the
 * consumer's sleep_seq and flags at init, the shim moved only r->cons, and
 * the forward iperf3 stream slept in 50 ms slices without a kick.
 */
#include "ivl_test.h"

#define SZ 256u

static void run(uint32_t mode)
{
	struct ivt_ring t;
	struct ivl_ring_cons *priv = aligned_alloc(IVL_CACHELINE, sizeof(*priv));
	struct ivt_cnt_notifier pn = {0};
	struct ivl_notifier op = ivt_cnt_bind(&pn);
	struct ivl_ring p, c;
	uint32_t mr = mode == IVL_MODE_MESSAGE ? 64 : 0;
	uint8_t buf[16] = {0};

	CHECK(priv);
	ivt_ring_alloc(&t, SZ);
	memset(priv, 0, sizeof(*priv));
	CHECK_EQ(ivl_ring_init_producer(&p, t.prod, priv, t.data, SZ, mode, mr, &op), 0);
	/* Written while pending: the private block sees it, nobody reads. */
	CHECK_EQ(ivl_ring_write(&p, buf, 8, 0), 8);

	CHECK_EQ(ivl_ring_init_consumer(&c, t.prod, t.cons, t.data, SZ, mode, mr, NULL), 0);
	CHECK_EQ(ivl_ring_set_cons_block(&p, t.cons), 0);
	CHECK_EQ(ivl_ring_read(&c, buf, sizeof(buf)), 8);

	/* The consumer advertises sleep in the new block: the next publish
	 * kicks it, once; the private block's even sleep_seq is irrelevant. */
	ivl_ring_arm(&c);
	CHECK_EQ(ivl_ring_write(&p, buf, 8, 0), 8);
	CHECK_EQ(pn.kicks, 1);
	CHECK_EQ(ivl_ring_write(&p, buf, 8, 0), 8);
	CHECK_EQ(pn.kicks, 1);
	ivl_ring_disarm(&c);
	if (mode == IVL_MODE_STREAM) {
		CHECK_EQ(ivl_ring_read(&c, buf, sizeof(buf)), 16);
	} else {
		CHECK_EQ(ivl_ring_read(&c, buf, sizeof(buf)), 8);
		CHECK_EQ(ivl_ring_read(&c, buf, sizeof(buf)), 8);
	}

	/* Space comes from the new head: fill the ring, free it there. */
	while (ivl_ring_write(&p, buf, 8, 0) == 8)
		;
	CHECK_EQ(ivl_ring_writable(&p, 8), 0);
	while (ivl_ring_read(&c, buf, sizeof(buf)) > 0)
		;
	CHECK_EQ(ivl_ring_writable(&p, 8), 1);

	/* A private block that says CLOSED no longer matters; the new
	 * block's close does, at the next write. */
	priv->flags = IVL_RING_F_CLOSED | IVL_RING_F_ABORT;
	CHECK_EQ(ivl_ring_write(&p, buf, 8, 0), 8);
	CHECK_EQ(ivl_ring_set_cons_flags(&c, IVL_RING_F_CLOSED), 0);
	CHECK_EQ(ivl_ring_write(&p, buf, 8, 0), -EPIPE);
	ivt_ring_free(&t);

	/* A head in the new block beyond what we published: poisoned. */
	ivt_ring_alloc(&t, SZ);
	memset(priv, 0, sizeof(*priv));
	CHECK_EQ(ivl_ring_init_producer(&p, t.prod, priv, t.data, SZ, mode, mr, &op), 0);
	CHECK_EQ(ivl_ring_write(&p, buf, 8, 0), 8);
	t.cons->head = 64;
	CHECK_EQ(ivl_ring_set_cons_block(&p, t.cons), -EPROTO);
	CHECK_EQ(ivl_ring_write(&p, buf, 8, 0), -EPROTO);
	/* Consumer handles cannot be moved. */
	t.cons->head = 0;
	CHECK_EQ(ivl_ring_init_consumer(&c, t.prod, t.cons, t.data, SZ, mode, mr, NULL), 0);
	CHECK_EQ(ivl_ring_set_cons_block(&c, priv), -EINVAL);
	ivt_ring_free(&t);
	free(priv);
}

int main(void)
{
	run(IVL_MODE_STREAM);
	run(IVL_MODE_MESSAGE);
	printf("ring_cons_block_moved: ok\n");
	return 0;
}
