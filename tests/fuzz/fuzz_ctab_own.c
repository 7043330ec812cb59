/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: a region member rewrites our own channel halves while
 * we use them (issue 10, items 2 and 3). Peer 0 (us) and peer 1 are UP in a
 * freshly formatted 1 MiB region (a heap block of exactly that size, so
 * AddressSanitizer reports any access outside it).
 *
 * The input is a program of 4-byte steps {op, slot, field, value}:
 *   op 0  offer a channel (ring 4..64 KiB) and attach its producer ring
 *         from the private copy, as libivlink and the shim do;
 *   op 1  write value bytes into a live channel's ring (reserve, copy,
 *         commit);
 *   op 2  release a live channel (ivl_ctab_release, private copy);
 *   op 3  close a live channel without its private copy (its owner left):
 *         only ivl_ctab_gc() can free it, from the half;
 *   op 4  ivl_ctab_gc();
 *   other overwrite one field of one of our halves with a value derived
 *         from the input: tx_size, tx_data_off (including the offsets of
 *         other live rings), tx_pages, mode, gen, state, remote_slot.
 * Between any two steps the "attacker" may have changed anything, which is
 * how concurrency looks to a single thread.
 *
 * Checked: no access outside the region (ASan); after every step but a
 * gc, the pages of every live channel are still allocated (offer, release
 * and writes use the private copies, whatever the halves say); at the end
 * everything is released and collected without a fault.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/region.h>
#include <ivlink/ring.h>

#include "fuzz_region.h"

#define RSIZE (1u << 20)
#define SLOTS 8u
#define LIVE  8u

struct live {
	int used;
	struct ivl_ctab_own own;
	struct ivl_ring ring;
	struct ivl_ring_cons cons; /* a private consumer block: no remote */
};

static uint8_t *base;
static struct live lv[LIVE];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int noop_kick(void *ctx)
{
	(void)ctx;
	return 0;
}

static int noop_block(void *ctx, int64_t t)
{
	(void)ctx;
	(void)t;
	return 0;
}

static int noop_check(void *ctx)
{
	(void)ctx;
	return 0;
}

static int pages_set(const struct ivl_region *rg, const struct ivl_ctab_own *o);

/*
 * The gc frees a half an attacker marked CLOSED from the half's geometry
 * (its owner may be a process that is gone): if that geometry names the
 * pages of a live ring of ours, they are freed. RELIABILITY.md documents
 * this residue (inside our section, never outside the region); such rings
 * are dropped from the checks, not counted as a failure.
 */
static void lost_to_gc(const struct ivl_region *rg)
{
	for (unsigned i = 0; i < LIVE; i++)
		if (lv[i].used && !pages_set(rg, &lv[i].own))
			lv[i].used = 0;
}

/* Every page of every live channel is still marked in our bitmap: no
 * offer, release, write or rewrite of a half ever frees them. */
static void check_live(const struct ivl_region *rg)
{
	for (unsigned i = 0; i < LIVE; i++)
		if (lv[i].used && !pages_set(rg, &lv[i].own))
			abort();
}

static int pages_set(const struct ivl_region *rg, const struct ivl_ctab_own *o)
{
	struct ivl_section_hdr *s = ivl_region_section(rg, 0);
	uint64_t heap = (uint64_t)((uint8_t *)s - rg->base) + IVL_SECTION_HDR_SIZE +
			(uint64_t)rg->hdr.chan_slots * IVL_CHAN_HALF_SIZE;

	uint64_t first;

	heap = (heap + 4095) & ~4095ull;
	first = (o->tx_data_off - heap) / 4096;
	for (uint32_t p = 0; p < o->tx_pages; p++)
		if (!((s->bitmap[(first + p) / 64] >> ((first + p) % 64)) & 1))
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ivl_notifier n = {.kick = noop_kick, .block = noop_block, .check = noop_check};
	struct ivl_region rg;
	long e0;
	int next_name = 0;

	e0 = fuzz_two_peers(&base, RSIZE, SLOTS, &rg);
	if (!e0)
		return 0;
	memset(lv, 0, sizeof(lv));

	for (size_t at = 0; at + 4 <= size; at += 4) {
		uint8_t op = data[at], arg = data[at + 1], field = data[at + 2], val = data[at + 3];
		struct live *l = &lv[arg % LIVE];

		switch (op % 12) {
		case 0: {
			char name[8];
			struct ivl_ctab_params cp = {.name = name,
						     .remote = 1,
						     .mode = IVL_MODE_STREAM,
						     .ring_size = 4096u << (val % 5)};
			void *ring;
			int slot;

			if (l->used)
				break;
			name[0] = 'c';
			name[1] = (char)('a' + next_name % 26);
			name[2] = (char)('a' + next_name / 26 % 26);
			name[3] = '\0';
			next_name++;
			slot = ivl_ctab_offer(&rg, 0, (uint32_t)e0, &cp, &l->own);
			if (slot < 0)
				break;
			/* Where we write comes from the private copy only. */
			ring = ivl_region_ptr(&rg, l->own.tx_data_off, l->own.tx_size);
			if (!ring)
				abort(); /* offer's own geometry is always inside */
			memset(&l->cons, 0, sizeof(l->cons));
			if (ivl_ring_init_producer(
				&l->ring, &ivl_region_chan(&rg, 0, (uint32_t)slot)->tx_prod,
				&l->cons, ring, l->own.tx_size, IVL_MODE_STREAM, 0, &n) < 0)
				break; /* the attacker broke the producer block */
			l->used = 1;
			break;
		}
		case 1: {
			struct ivl_span sp[2];
			long r;

			if (!l->used)
				break;
			r = ivl_ring_reserve(&l->ring, (size_t)val + 1, sp);
			if (r <= 0)
				break;
			memset(sp[0].base, val, sp[0].len);
			if (sp[1].len)
				memset(sp[1].base, val, sp[1].len);
			ivl_ring_commit(&l->ring, (size_t)r, 0);
			/* A reader that keeps up: the private consumer block. */
			l->cons.head = __atomic_load_n(
			    &ivl_region_chan(&rg, 0, l->own.slot)->tx_prod.tail, __ATOMIC_RELAXED);
			break;
		}
		case 2:
			if (l->used) {
				ivl_ctab_release(&rg, 0, &l->own);
				l->used = 0;
			}
			break;
		case 3:
			if (l->used) {
				ivl_ctab_close(&rg, 0, l->own.slot);
				l->used = 0;
			}
			break;
		case 4:
			ivl_ctab_gc(&rg, 0);
			lost_to_gc(&rg);
			break;
		default: {
			struct ivl_chan_half *h = ivl_region_chan(&rg, 0, arg % SLOTS);
			uint64_t other = lv[val % LIVE].own.tx_data_off;

			switch (field % 7) {
			case 0:
				h->tx_size = val % 2 ? 1u << 30 : 4096u << (val % 9);
				break;
			case 1:
				h->tx_data_off = val % 2 ? other : (uint64_t)val << 12;
				break;
			case 2:
				h->tx_pages = val % 2 ? 1u << 18 : val;
				break;
			case 3:
				h->mode = val;
				break;
			case 4:
				h->gen += val;
				break;
			case 5:
				h->state = val % 8;
				break;
			default:
				h->remote_slot = val % 2 ? 0xffffffffu : val % SLOTS;
				break;
			}
			break;
		}
		}
		check_live(&rg);
	}

	/* Everything released, then collected: what is left is bounded by
	 * the halves an attacker could leave unfreeable. */
	for (unsigned i = 0; i < LIVE; i++)
		if (lv[i].used) {
			ivl_ctab_release(&rg, 0, &lv[i].own);
			lv[i].used = 0;
		}
	for (uint32_t s = 0; s < SLOTS; s++) {
		struct ivl_chan_half *h = ivl_region_chan(&rg, 0, s);
		uint32_t st = __atomic_load_n(&h->state, __ATOMIC_RELAXED);

		if (st == IVL_CHAN_OFFERED || st == IVL_CHAN_CLAIMED)
			ivl_ctab_close(&rg, 0, s);
	}
	ivl_ctab_gc(&rg, 0);
	if (ivl_section_pages_used(&rg, 0) < 0)
		abort();
	return 0;
}
