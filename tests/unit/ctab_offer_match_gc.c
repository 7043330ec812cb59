/* SPDX-License-Identifier: MIT */
/*
 * The channel table: offer/match between two peers and data through the
 * matched rings in both directions, offer's argument checks, -EEXIST,
 * -ENOSPC, -ENOMEM (with the slot given back), match refusing a remote half
 * of another epoch, mode or name or one matched elsewhere, -ECONNRESET for a
 * remote that is not UP, and gc freeing a closed half only once the remote
 * has stopped reading it. A half's geometry rewritten by another region
 * member: the owner's release frees what its offer took (private copy), and
 * the gc of an orphaned half never frees pages another channel holds.
 * Matching through a third peer (ivl_ctab_match_via, the shim's redirect)
 * and the gc of such a pair.
 */
#include "ivl_test.h"

#define RSIZE (4u << 20)

static struct ivl_region rg;
static uint32_t epoch[4]; /* [3]: an id beyond max_peers, for argument checks */

static struct ivl_ctab_params params(const char *name, uint32_t remote, uint32_t mode)
{
	struct ivl_ctab_params p = {
	    .name = name,
	    .remote = remote,
	    .mode = mode,
	    .ring_size = 8192,
	    .max_record = mode == IVL_MODE_MESSAGE ? 1024 : 0,
	    .rx_vector = 1,
	    .owner_pid = 1,
	};
	return p;
}

static int offer(uint32_t self, const char *name, uint32_t remote, uint32_t mode)
{
	struct ivl_ctab_params p = params(name, remote, mode);

	return ivl_ctab_offer(&rg, self, epoch[self], &p, NULL);
}

static void reset_peers(void)
{
	for (uint32_t i = 0; i < 3; i++) {
		long e = ivl_region_peer_set(&rg, i, IVL_PEER_UP, 10 + i, 0, 8);

		CHECK(e > 0);
		epoch[i] = (uint32_t)e;
		CHECK_OK(ivl_section_reset(&rg, i, epoch[i]));
	}
}

static void test_offer_args(void)
{
	struct ivl_ctab_params p;
	char longname[IVL_NAME_MAX + 1];

	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK_EQ(offer(0, NULL, 1, IVL_MODE_STREAM), -EINVAL);
	CHECK_EQ(offer(0, "", 1, IVL_MODE_STREAM), -EINVAL);
	CHECK_EQ(offer(0, longname, 1, IVL_MODE_STREAM), -EINVAL);
	longname[IVL_NAME_MAX - 1] = '\0'; /* 47 characters: the longest legal name */
	CHECK_OK(offer(0, longname, 1, IVL_MODE_STREAM));
	CHECK_EQ(offer(0, "self", 0, IVL_MODE_STREAM), -EINVAL);
	CHECK_EQ(offer(0, "far", 3, IVL_MODE_STREAM), -EINVAL);
	CHECK_EQ(offer(3, "bad-self", 0, IVL_MODE_STREAM), -EINVAL);
	CHECK_EQ(offer(0, "mode0", 1, 0), -EINVAL);
	CHECK_EQ(offer(0, "mode3", 1, 3), -EINVAL);
	p = params("vec", 1, IVL_MODE_STREAM);
	p.rx_vector = 8;
	CHECK_EQ(ivl_ctab_offer(&rg, 0, epoch[0], &p, NULL), -EINVAL);
	p = params("size", 1, IVL_MODE_STREAM);
	p.ring_size = 12288;
	CHECK_EQ(ivl_ctab_offer(&rg, 0, epoch[0], &p, NULL), -EINVAL);
	p.ring_size = 2048;
	CHECK_EQ(ivl_ctab_offer(&rg, 0, epoch[0], &p, NULL), -EINVAL);
	p.ring_size = 0;
	CHECK_EQ(ivl_ctab_offer(&rg, 0, epoch[0], &p, NULL), -EINVAL);
	p = params("rec", 1, IVL_MODE_MESSAGE);
	p.max_record = 8192 - 7;
	CHECK_EQ(ivl_ctab_offer(&rg, 0, epoch[0], &p, NULL), -EINVAL);
	p.max_record = 8192 - 8;
	CHECK_OK(ivl_ctab_offer(&rg, 0, epoch[0], &p, NULL));
	reset_peers();
}

/* Attaches the ring from `from` to `to` and moves some bytes through it. */
static void check_data_path(uint32_t from, int from_slot, uint32_t to, int to_slot,
			    const struct ivl_ctab_remote *m_to, uint32_t mode)
{
	struct ivl_chan_half *src = ivl_region_chan(&rg, from, (uint32_t)from_slot);
	struct ivl_chan_half *dst = ivl_region_chan(&rg, to, (uint32_t)to_slot);
	struct ivl_ring p, c;
	void *data = ivl_region_ptr(&rg, m_to->remote_tx_data_off, m_to->remote_tx_size);
	char buf[64];

	CHECK(data != NULL);
	CHECK_EQ(m_to->remote_tx_data_off, src->tx_data_off);
	CHECK_EQ(ivl_ring_init_producer(&p, &src->tx_prod, &dst->rx_cons,
					ivl_region_ptr(&rg, src->tx_data_off, src->tx_size),
					src->tx_size, mode, src->max_record, NULL),
		 0);
	CHECK_EQ(ivl_ring_init_consumer(&c, &src->tx_prod, &dst->rx_cons, data,
					m_to->remote_tx_size, mode, m_to->remote_max_record, NULL),
		 0);
	CHECK_EQ(ivl_ring_write(&p, "hello", 5, 0), 5);
	CHECK_EQ(ivl_ring_read(&c, buf, sizeof(buf)), 5);
	CHECK(memcmp(buf, "hello", 5) == 0);
}

static void test_offer_match(void)
{
	struct ivl_ctab_remote m0, m1;
	struct ivl_chan_half *h0, *h1;
	int s0, s1;

	s0 = offer(0, "chat", 1, IVL_MODE_STREAM);
	CHECK_OK(s0);
	CHECK_EQ(offer(0, "chat", 1, IVL_MODE_STREAM), -EEXIST);
	CHECK_EQ(offer(0, "chat", 1, IVL_MODE_MESSAGE), -EEXIST); /* name+remote is the key */
	CHECK_OK(offer(0, "chat", 2, IVL_MODE_STREAM));		  /* another remote: fine */
	h0 = ivl_region_chan(&rg, 0, (uint32_t)s0);
	CHECK_EQ(h0->state, IVL_CHAN_OFFERED);
	CHECK_EQ(h0->remote_slot, IVL_SLOT_NONE);
	CHECK_EQ(h0->owner_epoch, epoch[0]);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), 4);

	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m0), -EAGAIN); /* remote not there */
	s1 = offer(1, "chat", 0, IVL_MODE_STREAM);
	CHECK_OK(s1);
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m0), 0);
	CHECK_EQ(ivl_ctab_match(&rg, 1, (uint32_t)s1, &m1), 0);
	h1 = ivl_region_chan(&rg, 1, (uint32_t)s1);
	CHECK_EQ(m0.remote_slot, (uint32_t)s1);
	CHECK_EQ(m1.remote_slot, (uint32_t)s0);
	CHECK_EQ(m0.remote_epoch, epoch[1]);
	CHECK_EQ(m0.remote_gen, h1->gen);
	CHECK_EQ(m0.remote_tx_size, 8192);
	CHECK_EQ(m0.remote_rx_vector, 1);
	CHECK_EQ(h0->remote_slot, (uint32_t)s1);
	CHECK_EQ(h0->remote_epoch, epoch[1]);
	CHECK_EQ(h1->remote_slot, (uint32_t)s0);
	/* Matching again finds the same half. */
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m0), 0);
	CHECK_EQ(m0.remote_slot, (uint32_t)s1);
	check_data_path(0, s0, 1, s1, &m1, IVL_MODE_STREAM);
	check_data_path(1, s1, 0, s0, &m0, IVL_MODE_STREAM);

	/* Message mode too. */
	s0 = offer(0, "msgs", 1, IVL_MODE_MESSAGE);
	s1 = offer(1, "msgs", 0, IVL_MODE_MESSAGE);
	CHECK_OK(s0);
	CHECK_OK(s1);
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m0), 0);
	CHECK_EQ(ivl_ctab_match(&rg, 1, (uint32_t)s1, &m1), 0);
	CHECK_EQ(m0.remote_max_record, 1024);
	check_data_path(0, s0, 1, s1, &m1, IVL_MODE_MESSAGE);
	check_data_path(1, s1, 0, s0, &m0, IVL_MODE_MESSAGE);
	CHECK_EQ(ivl_ctab_match(&rg, 0, 64, &m0), -EINVAL);
	reset_peers();
}

static void test_match_rejects(void)
{
	struct ivl_ctab_remote m;
	int s0, s1, s1b;

	/* Mode differs. */
	s0 = offer(0, "a", 1, IVL_MODE_STREAM);
	CHECK_OK(offer(1, "a", 0, IVL_MODE_MESSAGE));
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m), -EAGAIN);
	/* Name differs (prefix). */
	s0 = offer(0, "bb", 1, IVL_MODE_STREAM);
	CHECK_OK(offer(1, "b", 0, IVL_MODE_STREAM));
	CHECK_OK(offer(1, "bbb", 0, IVL_MODE_STREAM));
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m), -EAGAIN);
	/* Remote half addressed to another peer. */
	s0 = offer(0, "c", 1, IVL_MODE_STREAM);
	CHECK_OK(offer(1, "c", 2, IVL_MODE_STREAM));
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m), -EAGAIN);
	/* Remote half of an older incarnation (stale epoch). */
	s0 = offer(0, "d", 1, IVL_MODE_STREAM);
	s1 = ivl_ctab_offer(&rg, 1, epoch[1] - 1,
			    &(struct ivl_ctab_params){.name = "d",
						      .remote = 0,
						      .mode = IVL_MODE_STREAM,
						      .ring_size = 4096,
						      .rx_vector = 1},
			    NULL);
	CHECK_OK(s1);
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m), -EAGAIN);
	/* The remote re-joins: its epoch moves on, its old halves no longer
	 * match even though they carry the right name. */
	s0 = offer(0, "e", 1, IVL_MODE_STREAM);
	CHECK_OK(offer(1, "e", 0, IVL_MODE_STREAM));
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m), 0);
	CHECK(ivl_region_peer_set(&rg, 1, IVL_PEER_UP, 11, 0, 8) > 0);
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m), -EAGAIN);
	/* Remote not UP. */
	CHECK(ivl_region_peer_set(&rg, 1, IVL_PEER_GONE, 0, 0, 0) > 0);
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m), -ECONNRESET);
	reset_peers();

	/* A remote half already matched to another half of ours is skipped;
	 * a second one with the same name (after the first closed) can still
	 * be found. */
	s0 = offer(0, "f", 1, IVL_MODE_STREAM);
	s1 = offer(1, "f", 0, IVL_MODE_STREAM);
	CHECK_EQ(ivl_ctab_match(&rg, 1, (uint32_t)s1, &m), 0);
	CHECK_EQ(m.remote_slot, (uint32_t)s0);
	CHECK_OK(ivl_ctab_close(&rg, 0, (uint32_t)s0));
	s0 = offer(0, "f", 1, IVL_MODE_STREAM); /* a new half of ours, same name */
	CHECK_OK(s0);
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m), -EAGAIN); /* s1 is taken */
	CHECK_OK(ivl_ctab_close(&rg, 1, (uint32_t)s1));
	s1b = offer(1, "f", 0, IVL_MODE_STREAM);
	CHECK_OK(s1b);
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m), 0);
	CHECK_EQ(m.remote_slot, (uint32_t)s1b);
	/* The remote section being reset: -EAGAIN, not a match. */
	ivl_region_section(&rg, 1)->magic = 0;
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m), -EAGAIN);
	reset_peers();
}

static void test_enospc_enomem(void)
{
	struct ivl_ctab_params p;
	char name[16];
	int s;

	for (uint32_t i = 0; i < rg.hdr.chan_slots; i++) {
		snprintf(name, sizeof(name), "n%u", i);
		CHECK_EQ(offer(0, name, 1, IVL_MODE_STREAM), (long)i);
	}
	CHECK_EQ(offer(0, "one-more", 1, IVL_MODE_STREAM), -ENOSPC);
	CHECK_OK(ivl_ctab_close(&rg, 0, 3));
	CHECK_EQ(ivl_ctab_gc(&rg, 0), 1); /* never matched: freed at once */
	CHECK_EQ(offer(0, "one-more", 1, IVL_MODE_STREAM), 3);
	reset_peers();

	/* A ring larger than the heap: -ENOMEM, and the slot is free again. */
	p = params("huge", 1, IVL_MODE_STREAM);
	p.ring_size = 1u << 30;
	CHECK_EQ(ivl_ctab_offer(&rg, 0, epoch[0], &p, NULL), -ENOMEM);
	CHECK_EQ(ivl_region_chan(&rg, 0, 0)->state, IVL_CHAN_FREE);
	s = offer(0, "huge", 1, IVL_MODE_STREAM);
	CHECK_EQ(s, 0);
	/* Heap full: -ENOMEM although slots are free. */
	p = params("big", 1, IVL_MODE_STREAM);
	p.ring_size = 1u << 20; /* the heap is 338 pages: one 256-page ring fits, not two */
	CHECK_EQ(ivl_ctab_offer(&rg, 0, epoch[0], &p, NULL), 1);
	CHECK_EQ(ivl_ctab_offer(&rg, 0, epoch[0],
				&(struct ivl_ctab_params){.name = "big2",
							  .remote = 1,
							  .mode = IVL_MODE_STREAM,
							  .ring_size = 1u << 20,
							  .rx_vector = 1},
				NULL),
		 -ENOMEM);
	reset_peers();
}

static void test_gc(void)
{
	struct ivl_ctab_remote m;
	long used0;
	int s0, s1;

	used0 = ivl_section_pages_used(&rg, 0);
	s0 = offer(0, "g", 1, IVL_MODE_STREAM);
	s1 = offer(1, "g", 0, IVL_MODE_STREAM);
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m), 0);
	CHECK_EQ(ivl_ctab_match(&rg, 1, (uint32_t)s1, &m), 0);
	CHECK_EQ(ivl_ctab_gc(&rg, 0), 0); /* nothing closed */

	/* We close, the remote still reads our ring: keep it. */
	CHECK_OK(ivl_ctab_close(&rg, 0, (uint32_t)s0));
	CHECK_EQ(ivl_ctab_gc(&rg, 0), 0);
	CHECK_EQ(ivl_region_chan(&rg, 0, (uint32_t)s0)->state, IVL_CHAN_CLOSED);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), used0 + 2);
	/* The remote closes too: now it is freed, pages returned. */
	CHECK_OK(ivl_ctab_close(&rg, 1, (uint32_t)s1));
	CHECK_EQ(ivl_ctab_gc(&rg, 0), 1);
	CHECK_EQ(ivl_region_chan(&rg, 0, (uint32_t)s0)->state, IVL_CHAN_FREE);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), used0);
	CHECK_EQ(ivl_ctab_gc(&rg, 0), 0);
	CHECK_EQ(ivl_ctab_gc(&rg, 1), 1);

	/* The remote goes away (GONE): freed. */
	s0 = offer(0, "h", 1, IVL_MODE_STREAM);
	s1 = offer(1, "h", 0, IVL_MODE_STREAM);
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m), 0);
	CHECK_EQ(ivl_ctab_match(&rg, 1, (uint32_t)s1, &m), 0);
	CHECK_OK(ivl_ctab_close(&rg, 0, (uint32_t)s0));
	CHECK_EQ(ivl_ctab_gc(&rg, 0), 0);
	CHECK(ivl_region_peer_set(&rg, 1, IVL_PEER_GONE, 0, 0, 0) > 0);
	CHECK_EQ(ivl_ctab_gc(&rg, 0), 1);
	reset_peers();

	/* The remote re-joined (new epoch) and reused its slot (new gen):
	 * the old incarnation is not reading, free. */
	s0 = offer(0, "i", 1, IVL_MODE_STREAM);
	s1 = offer(1, "i", 0, IVL_MODE_STREAM);
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m), 0);
	CHECK_EQ(ivl_ctab_match(&rg, 1, (uint32_t)s1, &m), 0);
	CHECK_OK(ivl_ctab_close(&rg, 0, (uint32_t)s0));
	CHECK_OK(ivl_ctab_close(&rg, 1, (uint32_t)s1));
	CHECK_EQ(ivl_ctab_gc(&rg, 1), 1);
	CHECK_EQ(offer(1, "other", 0, IVL_MODE_STREAM), s1); /* same slot, gen+1 */
	CHECK_EQ(ivl_ctab_gc(&rg, 0), 1);

	/* The remote half matched to another half of ours. */
	s0 = offer(0, "j", 1, IVL_MODE_STREAM);
	s1 = offer(1, "j", 0, IVL_MODE_STREAM);
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m), 0);
	ivl_region_chan(&rg, 1, (uint32_t)s1)->remote_slot = (uint32_t)s0 + 1;
	CHECK_OK(ivl_ctab_close(&rg, 0, (uint32_t)s0));
	CHECK_EQ(ivl_ctab_gc(&rg, 0), 1);
	CHECK_EQ(ivl_ctab_close(&rg, 0, 1000), -EINVAL);
	reset_peers();
}

/*
 * A connection taken over by another peer (the shim's REDIRECT): client 0
 * offered to the listener's peer 1, peer 2 accepts. Each matches the
 * other through ivl_ctab_match_via(); the client's half then names 2, so
 * that its gc asks peer 2 whether its ring is still read.
 */
static void test_match_via(void)
{
	struct ivl_ctab_remote m0, m2;
	long used0 = ivl_section_pages_used(&rg, 0);
	int s0, s2;

	s0 = offer(0, "via", 1, IVL_MODE_STREAM);
	s2 = offer(2, "via", 0, IVL_MODE_STREAM);
	CHECK_OK(s0);
	CHECK_OK(s2);
	/* Plain matching finds nothing: the halves name different peers. */
	CHECK_EQ(ivl_ctab_match(&rg, 2, (uint32_t)s2, &m2), -EAGAIN);
	CHECK_EQ(ivl_ctab_match(&rg, 0, (uint32_t)s0, &m0), -EAGAIN);
	/* Only a half naming via matches, and arguments are checked. */
	CHECK_EQ(ivl_ctab_match_via(&rg, 2, (uint32_t)s2, 0, 2, &m2), -EAGAIN);
	CHECK_EQ(ivl_ctab_match_via(&rg, 2, (uint32_t)s2, 0, 3, &m2), -EINVAL);
	CHECK_EQ(ivl_ctab_match_via(&rg, 2, (uint32_t)s2, 2, 1, &m2), -EPROTO);
	CHECK_EQ(ivl_ctab_match_via(&rg, 2, (uint32_t)s2, 0, 1, &m2), 0);
	CHECK_EQ(m2.remote_slot, (uint32_t)s0);
	CHECK_EQ(ivl_region_chan(&rg, 2, (uint32_t)s2)->remote_peer, 0);
	CHECK_EQ(ivl_ctab_match_via(&rg, 0, (uint32_t)s0, 2, 0, &m0), 0);
	CHECK_EQ(m0.remote_slot, (uint32_t)s2);
	CHECK_EQ(m0.remote_epoch, epoch[2]);
	CHECK_EQ(ivl_region_chan(&rg, 0, (uint32_t)s0)->remote_peer, 2);
	check_data_path(0, s0, 2, s2, &m2, IVL_MODE_STREAM);
	check_data_path(2, s2, 0, s0, &m0, IVL_MODE_STREAM);
	/* The client closes while peer 2 still reads its ring: kept. */
	CHECK_OK(ivl_ctab_close(&rg, 0, (uint32_t)s0));
	CHECK_EQ(ivl_ctab_gc(&rg, 0), 0);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), used0 + 2);
	CHECK_OK(ivl_ctab_close(&rg, 2, (uint32_t)s2));
	CHECK_EQ(ivl_ctab_gc(&rg, 0), 1);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), used0);
	CHECK_EQ(ivl_ctab_gc(&rg, 2), 1);
	reset_peers();
}

static void test_tampered_geometry(void)
{
	struct ivl_ctab_params p = params("own", 1, IVL_MODE_STREAM);
	struct ivl_ctab_own a, b;
	struct ivl_chan_half *ha, *hb;
	long used0 = ivl_section_pages_used(&rg, 0);
	int sa, sb;

	sa = ivl_ctab_offer(&rg, 0, epoch[0], &p, &a);
	CHECK_OK(sa);
	CHECK_EQ(a.slot, (uint32_t)sa);
	CHECK_EQ(a.tx_size, p.ring_size);
	CHECK_EQ(a.tx_pages, p.ring_size / 4096);
	ha = ivl_region_chan(&rg, 0, (uint32_t)sa);
	CHECK_EQ(a.gen, ha->gen);
	CHECK_EQ(a.tx_data_off, ha->tx_data_off);
	p.name = "other";
	sb = ivl_ctab_offer(&rg, 0, epoch[0], &p, &b);
	CHECK_OK(sb);
	hb = ivl_region_chan(&rg, 0, (uint32_t)sb);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), used0 + 2 * (long)a.tx_pages);

	/* A hostile member points a's half at b's ring, and claims more. */
	ha->tx_data_off = b.tx_data_off;
	ha->tx_pages = 3 * a.tx_pages;
	CHECK_EQ(ivl_ctab_release(&rg, 0, &a), 1);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), used0 + (long)b.tx_pages);
	CHECK_EQ(ivl_region_chan(&rg, 0, (uint32_t)sa)->state, IVL_CHAN_FREE);
	CHECK_EQ(ivl_ctab_release(&rg, 0, &a), -ESTALE); /* freed: not ours any more */

	/* b's owner is gone: only gc can free it, from the half. A size
	 * that disagrees with the page count, or pages that are not in use,
	 * are refused: the pages leak inside the section, nothing else. */
	p.name = "c";
	CHECK_OK(ivl_ctab_offer(&rg, 0, epoch[0], &p, &a));
	CHECK_OK(ivl_ctab_close(&rg, 0, (uint32_t)sb));
	hb->tx_pages = 2 * b.tx_pages;
	CHECK_EQ(ivl_ctab_gc(&rg, 0), 1);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), used0 + (long)b.tx_pages + (long)a.tx_pages);
	sb = ivl_ctab_offer(&rg, 0, epoch[0],
			    &(struct ivl_ctab_params){.name = "d",
						      .remote = 1,
						      .mode = IVL_MODE_STREAM,
						      .ring_size = 8192,
						      .rx_vector = 1},
			    &b);
	CHECK_OK(sb);
	CHECK_OK(ivl_ctab_close(&rg, 0, (uint32_t)sb));
	hb = ivl_region_chan(&rg, 0, (uint32_t)sb);
	hb->tx_data_off = b.tx_data_off + 64 * 4096; /* beyond anything allocated */
	CHECK_EQ(ivl_ctab_gc(&rg, 0), 1);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), used0 + 2 * (long)b.tx_pages + (long)a.tx_pages);
	/* c, untouched, is freed by its owner. */
	CHECK_EQ(ivl_ctab_release(&rg, 0, &a), 1);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), used0 + 2 * (long)b.tx_pages);
	reset_peers();
}

int main(void)
{
	struct ivt_map mp;
	struct ivl_region_params p;

	ivt_map_create(&mp, RSIZE);
	ivl_region_params_default(&p);
	p.size = RSIZE;
	p.max_peers = 3;
	p.chan_slots = 16;
	CHECK_EQ(ivl_region_format(mp.base, RSIZE, &p), 0);
	CHECK_EQ(ivl_region_attach(&rg, mp.base, RSIZE), 0);
	reset_peers();
	test_offer_args();
	test_offer_match();
	test_match_rejects();
	test_enospc_enomem();
	test_gc();
	test_match_via();
	test_tampered_geometry();
	ivt_map_destroy(&mp);
	printf("ctab_offer_match_gc: ok\n");
	return 0;
}
