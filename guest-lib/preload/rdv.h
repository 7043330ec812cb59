/* SPDX-License-Identifier: MIT */
/*
 * Private header of guest-lib/preload/: reading the socket shim's
 * rendezvous records (struct ivl_shim_half, layout.h) that other peers
 * publish in their sections: listeners and proposals. Every record is
 * copied out of the region, re-checked against the half's state and gen
 * after the copy, and only then used; a hostile peer can make a lookup
 * find nothing or the wrong (its own) half, never make it read outside
 * the region. Kept free of the shim's other state so that
 * tests/fuzz/fuzz_shim_rdv.c runs exactly this code over arbitrary
 * sections.
 */
#ifndef IVLINK_PRELOAD_RDV_H
#define IVLINK_PRELOAD_RDV_H

#include <stdint.h>

#include <ivlink/layout.h>
#include <ivlink/region.h>

/* 1 if a (4 bytes for AF_INET, else 16) is the wildcard address. */
int ivl__shim_addr_any(int fam, const uint8_t *a);
/* 1 if a is 127.0.0.0/8 (AF_INET) or ::1. */
int ivl__shim_addr_loopback(int fam, const uint8_t *a);

/*
 * Finds a shim listener for fam/dst:port (port in network order) among
 * the live peers' sections. Loopback destinations and wildcard listeners
 * only match host peers (same host) when both sides are host processes;
 * other destinations match a listener's bound address or one of the local
 * addresses a wildcard listener published. Returns 0 with *peer set,
 * -ELOOP when the listener is self's own, -ENOENT.
 */
int ivl__shim_find_listener(const struct ivl_region *rg, uint32_t self, int fam, const uint8_t *dst,
			    uint16_t port, uint32_t *peer);

/*
 * 1 if addr (16 bytes, IPv4 folded into the first 4 as shim_sa_parse()
 * leaves it) is an address a live peer of rg published in any of its shim
 * records: a listener's bound address or the local addresses of a
 * wildcard listener, the owner's address of a proposal, accept or note.
 * That is how a server tells a client of one of its regions' peers from
 * one outside them (no-shared-region, shim.h); a hostile peer can only
 * change which of the two reasons is counted.
 */
int ivl__shim_addr_known(const struct ivl_region *rg, const uint8_t *addr);

struct shim_proposal {
	uint32_t peer, slot, gen, epoch;
	char name[IVL_NAME_MAX]; /* NUL terminated */
};

/*
 * Finds the proposal a client made to self for the accepted connection
 * caddr:cport -> saddr:sport. Returns 0 with *out set; -ESTALE when the
 * client withdrew (a fallback note with the 4-tuple, or the proposal is no
 * longer PROPOSED); -ENOENT.
 */
int ivl__shim_find_proposal(const struct ivl_region *rg, uint32_t self, int fam,
			    const uint8_t *caddr, uint16_t cport, const uint8_t *saddr,
			    uint16_t sport, struct shim_proposal *out);

#endif /* IVLINK_PRELOAD_RDV_H */
