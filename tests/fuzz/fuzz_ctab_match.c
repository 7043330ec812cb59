/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: channel-table matching against a remote section that is
 * whatever the input says. Peer 0 (us) and peer 1 (the remote) are UP in a
 * freshly formatted 1 MiB region (a heap block of exactly that size, so
 * AddressSanitizer reports any access outside it); we offer channel "c" to
 * peer 1. The input then overwrites the remote's peer-table line (state,
 * epoch: its first 8 bytes) and the start of its section (section header
 * and channel table: the rest); the last input byte's bit 0 picks message
 * mode for our half. ivl_ctab_match() must either refuse or
 * return a match whose ring lies inside the remote's heap; the harness then
 * attaches a consumer ring to it, peeks, closes and collects our half.
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

static uint8_t *base;
static volatile uint8_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ivl_ctab_params cp = {
	    .name = "c", .remote = 1, .mode = IVL_MODE_STREAM, .ring_size = 4096};
	struct ivl_region rg;
	struct ivl_ctab_remote m;
	struct ivl_section_hdr *rs;
	uint64_t sec_len, heap, heap_end;
	long e0;
	int slot, rc;

	e0 = fuzz_two_peers(&base, RSIZE, SLOTS, &rg);
	if (!e0)
		return 0;
	/* The last byte picks our mode (the first is the remote's state). */
	if (size > 0 && (data[size - 1] & 1)) {
		cp.mode = IVL_MODE_MESSAGE;
		cp.max_record = 1000;
	}
	slot = ivl_ctab_offer(&rg, 0, (uint32_t)e0, &cp, NULL);
	if (slot < 0)
		abort();

	/* The remote's state and epoch, then its section. */
	if (size >= 8) {
		memcpy(ivl_region_peer(&rg, 1), data, 8);
		data += 8;
		size -= 8;
	}
	rs = ivl_region_section(&rg, 1);
	sec_len = IVL_SECTION_HDR_SIZE + SLOTS * IVL_CHAN_HALF_SIZE;
	memcpy(rs, data, size < sec_len ? size : sec_len);

	rc = ivl_ctab_match(&rg, 0, (uint32_t)slot, &m);
	if (rc == 0) {
		struct ivl_chan_half *mine = ivl_region_chan(&rg, 0, (uint32_t)slot);
		struct ivl_chan_half *theirs = ivl_region_chan(&rg, 1, m.remote_slot);
		uint8_t *d = ivl_region_ptr(&rg, m.remote_tx_data_off, m.remote_tx_size);
		struct ivl_span sp[2];
		struct ivl_ring r;

		/* The remote's ring must lie in the remote's heap. */
		heap = rg.hdr.section_off + rg.hdr.section_size + IVL_SECTION_HDR_SIZE +
		       ((SLOTS * IVL_CHAN_HALF_SIZE + IVL_PAGE_SIZE - 1) & ~(IVL_PAGE_SIZE - 1ull));
		heap_end = rg.hdr.section_off + 2 * rg.hdr.section_size;
		if (!theirs || !d || m.remote_tx_data_off < heap ||
		    m.remote_tx_data_off + m.remote_tx_size > heap_end ||
		    m.remote_rx_vector >= rg.hdr.n_vectors)
			abort();
		sink ^= d[0];
		sink ^= d[m.remote_tx_size - 1];
		if (ivl_ring_init_consumer(&r, &theirs->tx_prod, &mine->rx_cons, d,
					   m.remote_tx_size, cp.mode, m.remote_max_record,
					   NULL) == 0 &&
		    ivl_ring_peek(&r, sp) > 0) {
			const uint8_t *b0 = sp[0].base;

			if (b0 < d || b0 + sp[0].len > d + m.remote_tx_size ||
			    sp[1].len > m.remote_tx_size)
				abort();
		}
	} else if (rc != -EAGAIN && rc != -ECONNRESET && rc != -EPROTO) {
		abort();
	}
	ivl_ctab_close(&rg, 0, (uint32_t)slot);
	ivl_ctab_gc(&rg, 0);
	if (ivl_section_pages_used(&rg, 0) != 0 &&
	    __atomic_load_n(&ivl_region_chan(&rg, 0, (uint32_t)slot)->state, __ATOMIC_RELAXED) !=
		IVL_CHAN_CLOSED)
		abort();
	return 0;
}
