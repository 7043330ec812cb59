/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: the region validator and everything a peer does with a
 * region it accepted. The region buffer is a heap block of exactly the
 * mapped size, so AddressSanitizer reports any access outside it.
 *
 * Input, first byte (flags):
 *   bit 0: map 2 MiB instead of 1 MiB;
 *   bit 2: raw mode only: map half of that (a truncated region);
 *   bit 1: "patch" mode: the region starts from a real one (formatted, two
 *          peers UP, a matched channel between them) and the rest of the
 *          input is a list of patches {u32 offset, u8 len, len bytes};
 *          otherwise the rest of the input is the region's first bytes
 *          (header and peer table) over zeroes.
 * If ivl_region_attach() accepts the result, the harness walks every peer
 * entry, section header and the first and last channel half of each
 * section, checks and allocates in each section, matches and collects
 * channels, and attaches rings to a successful match, reading every byte a
 * returned pointer claims.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/region.h>
#include <ivlink/ring.h>

static volatile uint8_t sink;

static void touch(const void *p, size_t len)
{
	const uint8_t *b = p;

	if (!p || !len)
		return;
	sink ^= b[0];
	sink ^= b[len - 1];
}

/* A realistic region: two peers UP, a stream channel "c" matched. */
static void build(uint8_t *base, uint64_t size)
{
	struct ivl_region_params p;
	struct ivl_region rg;
	struct ivl_ctab_params cp = {.name = "c", .mode = IVL_MODE_STREAM, .ring_size = 4096};
	struct ivl_ctab_remote m;
	long e0, e1;
	int s0, s1;

	ivl_region_params_default(&p);
	p.size = size;
	p.max_peers = 3;
	p.n_vectors = 4;
	p.chan_slots = 4;
	if (ivl_region_format(base, size, &p) < 0 || ivl_region_attach(&rg, base, size) < 0)
		abort();
	ivl_section_reset(&rg, 0, 1);
	ivl_section_reset(&rg, 1, 1);
	e0 = ivl_region_peer_set(&rg, 0, IVL_PEER_UP, 1, 0, 4);
	e1 = ivl_region_peer_set(&rg, 1, IVL_PEER_UP, 2, 0, 4);
	cp.remote = 1;
	s0 = ivl_ctab_offer(&rg, 0, (uint32_t)e0, &cp, NULL);
	cp.remote = 0;
	s1 = ivl_ctab_offer(&rg, 1, (uint32_t)e1, &cp, NULL);
	if (s0 < 0 || s1 < 0 || ivl_ctab_match(&rg, 0, (uint32_t)s0, &m) < 0 ||
	    ivl_ctab_match(&rg, 1, (uint32_t)s1, &m) < 0)
		abort();
}

static void exercise(struct ivl_region *rg)
{
	const struct ivl_region_hdr *h = &rg->hdr;

	for (uint32_t id = 0; id < h->max_peers; id++) {
		struct ivl_peer_view pv;
		struct ivl_ctab_remote m;
		long used;

		touch(ivl_region_peer(rg, id), IVL_PEER_ENTRY_SIZE);
		touch(ivl_region_section(rg, id), IVL_SECTION_HDR_SIZE);
		touch(ivl_region_chan(rg, id, 0), IVL_CHAN_HALF_SIZE);
		touch(ivl_region_chan(rg, id, h->chan_slots - 1), IVL_CHAN_HALF_SIZE);
		if (ivl_region_chan(rg, id, h->chan_slots) || ivl_region_peer(rg, h->max_peers))
			abort();
		ivl_region_peer_view(rg, id, &pv);
		used = ivl_section_pages_used(rg, id);
		if (used < 0 || (uint64_t)used > h->section_size / IVL_PAGE_SIZE)
			abort();
		if (ivl_section_check(rg, id) == 0) {
			int64_t off = ivl_section_alloc(rg, id, 1);

			if (off > 0) {
				touch(ivl_region_ptr(rg, (uint64_t)off, IVL_PAGE_SIZE),
				      IVL_PAGE_SIZE);
				if (!ivl_region_ptr(rg, (uint64_t)off, IVL_PAGE_SIZE))
					abort();
				ivl_section_free(rg, id, (uint64_t)off, 1);
			}
		}
		if (id < 4) {
			for (uint32_t s = 0; s < h->chan_slots && s < 4; s++) {
				if (ivl_ctab_match(rg, id, s, &m) == 0) {
					uint8_t *d = ivl_region_ptr(rg, m.remote_tx_data_off,
								    m.remote_tx_size);
					struct ivl_chan_half *mine = ivl_region_chan(rg, id, s);
					struct ivl_chan_half *theirs;
					struct ivl_ring r;
					struct ivl_span sp[2];

					if (!d || m.remote_slot >= h->chan_slots)
						abort();
					touch(d, m.remote_tx_size);
					theirs =
					    ivl_region_chan(rg, mine->remote_peer, m.remote_slot);
					if (theirs && ivl_ring_init_consumer(
							  &r, &theirs->tx_prod, &mine->rx_cons, d,
							  m.remote_tx_size, mine->mode,
							  m.remote_max_record, NULL) == 0) {
						long n = ivl_ring_peek(&r, sp);

						if (n > 0) {
							touch(sp[0].base, sp[0].len);
							touch(sp[1].base, sp[1].len);
						}
					}
				}
			}
			ivl_ctab_gc(rg, id);
		}
	}
	touch(ivl_region_ptr(rg, 0, h->region_size), (size_t)h->region_size);
	if (ivl_region_ptr(rg, h->region_size, 1) || ivl_region_ptr(rg, UINT64_MAX, 2))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ivl_region rg;
	uint64_t map_size;
	uint8_t *base;
	int rc;

	if (size < 1)
		return 0;
	map_size = (data[0] & 1) ? 2u << 20 : 1u << 20;
	/* Raw mode may map only half: the header then claims more than is
	 * mapped, and the block is that small so ASan sees any overrun. */
	if (!(data[0] & 2) && (data[0] & 4))
		map_size /= 2;
	base = calloc(1, map_size);
	if (!base)
		return 0;
	if (data[0] & 2) {
		size_t i = 1;

		build(base, map_size);
		while (i + 5 <= size) {
			uint32_t off;
			uint8_t len;

			memcpy(&off, data + i, 4);
			len = data[i + 4];
			i += 5;
			if (len > size - i)
				len = (uint8_t)(size - i);
			off %= (uint32_t)map_size;
			if (len > map_size - off)
				len = (uint8_t)(map_size - off);
			memcpy(base + off, data + i, len);
			i += len;
		}
	} else {
		size_t n = size - 1 < map_size ? size - 1 : (size_t)map_size;

		memcpy(base, data + 1, n);
	}
	rc = ivl_region_attach(&rg, base, map_size);
	if (rc == 0)
		exercise(&rg);
	else if (rc != -EPROTO && rc != -EPROTONOSUPPORT && rc != -EOVERFLOW)
		abort();
	free(base);
	return 0;
}
