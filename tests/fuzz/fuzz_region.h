/* SPDX-License-Identifier: MIT */
/*
 * The fuzz harnesses' common start: a freshly formatted region of `size`
 * bytes in a heap block of exactly that size (allocated on the first call,
 * so AddressSanitizer reports any access outside it), two peers, 4 vectors,
 * `slots` channel slots, both peers UP with fresh sections.
 */
#ifndef IVLINK_TESTS_FUZZ_REGION_H
#define IVLINK_TESTS_FUZZ_REGION_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/region.h>

/* Returns peer 0's epoch (> 0), or 0 when the block cannot be allocated. */
static inline long fuzz_two_peers(uint8_t **base, uint32_t size, uint32_t slots,
				  struct ivl_region *rg)
{
	struct ivl_region_params p;
	long e0;

	if (!*base)
		*base = malloc(size);
	if (!*base)
		return 0;
	memset(*base, 0, size);
	ivl_region_params_default(&p);
	p.size = size;
	p.max_peers = 2;
	p.n_vectors = 4;
	p.chan_slots = slots;
	if (ivl_region_format(*base, size, &p) < 0 || ivl_region_attach(rg, *base, size) < 0)
		abort();
	ivl_section_reset(rg, 0, 1);
	ivl_section_reset(rg, 1, 1);
	e0 = ivl_region_peer_set(rg, 0, IVL_PEER_UP, 1, 0, 4);
	ivl_region_peer_set(rg, 1, IVL_PEER_UP, 2, 0, 4);
	return e0;
}

#endif /* IVLINK_TESTS_FUZZ_REGION_H */
