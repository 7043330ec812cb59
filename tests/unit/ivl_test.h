/* SPDX-License-Identifier: MIT */
/*
 * Private header of the unit, corruption and stress tests: guarded region
 * mappings, a counting notifier, a heap ring and a two-peer channel
 * fixture built with the real region API. Checks, the skip code, the PRNG
 * and the byte stream come from tests/support/support.h.
 */
#ifndef IVL_TEST_H
#define IVL_TEST_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/layout.h>
#include <ivlink/region.h>
#include <ivlink/ring.h>

#include "support.h"

/* Sanitizers slow everything down; stress tests scale their volume with it. */
#if defined(__SANITIZE_THREAD__)
#define IVL_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IVL_TEST_TSAN 1
#endif
#endif
#ifndef IVL_TEST_TSAN
#define IVL_TEST_TSAN 0
#endif

/* ------------------------------------------------------------ mappings */

/* A memfd mapped between two PROT_NONE guard areas: any access outside
 * [base, base + size) faults, which is how the corruption tests prove that
 * hostile values never make the code read or write outside the region. */
struct ivt_map {
	int fd;
	uint8_t *base;
	size_t size;
	uint8_t *area; /* whole reservation including guards */
	size_t area_size;
};

#define IVT_GUARD (1u << 20)

static inline void ivt_map_create(struct ivt_map *m, size_t size)
{
	m->fd = memfd_create("ivlink-test", MFD_CLOEXEC);
	CHECK(m->fd >= 0, "memfd_create: %s", strerror(errno));
	CHECK(ftruncate(m->fd, (off_t)size) == 0, "ftruncate: %s", strerror(errno));
	m->size = size;
	m->area_size = size + 2 * (size_t)IVT_GUARD;
	m->area =
	    mmap(NULL, m->area_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(m->area != MAP_FAILED, "mmap guard: %s", strerror(errno));
	m->base = mmap(m->area + IVT_GUARD, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		       m->fd, 0);
	CHECK(m->base == m->area + IVT_GUARD, "mmap fixed: %s", strerror(errno));
}

static inline void ivt_map_destroy(struct ivt_map *m)
{
	munmap(m->area, m->area_size);
	close(m->fd);
	m->fd = -1;
}

/* -------------------------------------------------------------- notifier */

/* A notifier that counts kicks and blocks and can run a callback inside
 * block(): a single-threaded test can thus act as the other side while this
 * side is advertised as sleeping. */
struct ivt_cnt_notifier {
	long kicks;
	long blocks;
	long checks;
	int block_rc;				      /* returned by block() */
	int check_rc;				      /* returned by check() */
	void (*on_block)(struct ivt_cnt_notifier *n); /* may be NULL */
	void *arg;
};

static inline int ivt_cnt_kick(void *ctx)
{
	struct ivt_cnt_notifier *n = ctx;

	n->kicks++;
	return 0;
}

static inline int ivt_cnt_block(void *ctx, int64_t timeout_ns)
{
	struct ivt_cnt_notifier *n = ctx;

	n->blocks++;
	if (n->on_block)
		n->on_block(n);
	return n->block_rc;
}

static inline int ivt_cnt_check(void *ctx)
{
	struct ivt_cnt_notifier *n = ctx;

	n->checks++;
	return n->check_rc;
}

static inline struct ivl_notifier ivt_cnt_bind(struct ivt_cnt_notifier *n)
{
	struct ivl_notifier op = {ivt_cnt_kick, ivt_cnt_block, ivt_cnt_check, n};

	return op;
}

/* ---------------------------------------------------------- local ring */

/* A ring whose control blocks and data live in the process heap: the ring
 * tests need no region, and ASan then checks every data access exactly. */
struct ivt_ring {
	struct ivl_ring_prod *prod;
	struct ivl_ring_cons *cons;
	uint8_t *data;
	uint32_t size;
};

static inline void ivt_ring_alloc(struct ivt_ring *t, uint32_t size)
{
	t->prod = aligned_alloc(IVL_CACHELINE, sizeof(*t->prod));
	t->cons = aligned_alloc(IVL_CACHELINE, sizeof(*t->cons));
	t->data = aligned_alloc(IVL_CACHELINE, size);
	CHECK(t->prod && t->cons && t->data);
	memset(t->data, 0xa5, size);
	ivl_ring_format(t->prod, t->cons);
	t->size = size;
}

static inline void ivt_ring_free(struct ivt_ring *t)
{
	free(t->prod);
	free(t->cons);
	free(t->data);
}

/* ------------------------------------------------------ channel fixture */

/*
 * Two peers (0 and 1) with a channel "chan" between them, made with the
 * region API exactly as libivlink does: format, both peers UP, sections
 * reset, both halves offered and matched. ring_ptrs() then gives the three
 * pieces of the ring from peer `from` to the other peer.
 */
struct ivt_chan {
	struct ivl_region rg;
	uint32_t epoch[2];
	int slot[2];
	struct ivl_ctab_remote m[2]; /* what peer i matched */
	uint32_t mode, ring_size, max_record;
};

static inline int ivt_chan_setup(struct ivt_chan *c, void *base, uint64_t size, uint32_t mode,
				 uint32_t ring_size, uint32_t max_record)
{
	struct ivl_region_params p;
	struct ivl_ctab_params cp;
	int rc;

	memset(c, 0, sizeof(*c));
	ivl_region_params_default(&p);
	p.size = size;
	p.max_peers = 2;
	p.chan_slots = 4;
	p.name = "ivt";
	rc = ivl_region_format(base, size, &p);
	if (rc < 0)
		return rc;
	rc = ivl_region_attach(&c->rg, base, size);
	if (rc < 0)
		return rc;
	for (uint32_t i = 0; i < 2; i++) {
		long e = ivl_region_peer_set(&c->rg, i, IVL_PEER_UP, 100 + i, 0, p.n_vectors);

		if (e < 0)
			return (int)e;
		c->epoch[i] = (uint32_t)e;
		rc = ivl_section_reset(&c->rg, i, c->epoch[i]);
		if (rc < 0)
			return rc;
	}
	c->mode = mode;
	c->ring_size = ring_size;
	c->max_record = max_record;
	for (uint32_t i = 0; i < 2; i++) {
		memset(&cp, 0, sizeof(cp));
		cp.name = "chan";
		cp.remote = 1 - i;
		cp.mode = mode;
		cp.ring_size = ring_size;
		cp.max_record = max_record;
		cp.rx_vector = 1;
		cp.owner_pid = 100 + i;
		c->slot[i] = ivl_ctab_offer(&c->rg, i, c->epoch[i], &cp, NULL);
		if (c->slot[i] < 0)
			return c->slot[i];
	}
	for (uint32_t i = 0; i < 2; i++) {
		rc = ivl_ctab_match(&c->rg, i, (uint32_t)c->slot[i], &c->m[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The ring from peer `from` to peer 1 - from: producer block and data in
 * from's half and heap, consumer block in the receiver's half. The data
 * offset comes from the receiver's validated match result, as a real
 * receiver would use it. */
static inline void ivt_chan_ring_ptrs(const struct ivt_chan *c, uint32_t from,
				      struct ivl_ring_prod **prod, struct ivl_ring_cons **cons,
				      void **data)
{
	uint32_t to = 1 - from;
	const struct ivl_ctab_remote *m = &c->m[to];
	struct ivl_chan_half *src = ivl_region_chan(&c->rg, from, m->remote_slot);
	struct ivl_chan_half *dst = ivl_region_chan(&c->rg, to, (uint32_t)c->slot[to]);

	*prod = &src->tx_prod;
	*cons = &dst->rx_cons;
	*data = ivl_region_ptr(&c->rg, m->remote_tx_data_off, m->remote_tx_size);
}

#endif /* IVL_TEST_H */
