/* SPDX-License-Identifier: MIT */
/*
 * ivlink-ring-bench: DPDK's rte_ring as a peer, single producer and single
 * consumer (RING_F_SP_ENQ | RING_F_SC_DEQ), elements of RB_PEER_MSG bytes.
 * No EAL: rte_ring_init() formats a ring in memory we allocate, aligned to
 * a cache line as rte_ring_create() would; only librte_ring is linked.
 */
#define _GNU_SOURCE /* DPDK headers need POSIX types (ssize_t) and GNU extensions */
#include <sys/types.h>

#include <rte_config.h>

#include <errno.h>
#include <stdlib.h>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "peer_queue.h"

static void *dpdk_create(void)
{
	ssize_t size = rte_ring_get_memsize_elem(RB_PEER_MSG, RB_PEER_SLOTS);
	struct rte_ring *r;

	if (size < 0)
		return NULL;
	r = aligned_alloc(RTE_CACHE_LINE_SIZE, ((size_t)size + RTE_CACHE_LINE_SIZE - 1) &
						   ~(size_t)(RTE_CACHE_LINE_SIZE - 1));
	if (!r)
		return NULL;
	if (rte_ring_init(r, "ivlink-bench", RB_PEER_SLOTS, RING_F_SP_ENQ | RING_F_SC_DEQ) < 0) {
		free(r);
		return NULL;
	}
	return r;
}

static void dpdk_destroy(void *q)
{
	free(q);
}

/* rte_ring_sp_enqueue_elem() takes a non-const pointer but only reads it. */
static int dpdk_send(void *q, const struct rb_peer_msg *msg)
{
	return rte_ring_sp_enqueue_elem(q, (void *)(uintptr_t)msg, RB_PEER_MSG) == 0 ? 0 : -EAGAIN;
}

static int dpdk_recv(void *q, struct rb_peer_msg *msg)
{
	return rte_ring_sc_dequeue_elem(q, msg, RB_PEER_MSG) == 0 ? 0 : -EAGAIN;
}

const struct rb_queue_ops rb_dpdk_ops = {
    .key = "dpdk_rte_ring",
    .name = "DPDK rte_ring SP/SC",
    .create = dpdk_create,
    .destroy = dpdk_destroy,
    .send = dpdk_send,
    .recv = dpdk_recv,
};
