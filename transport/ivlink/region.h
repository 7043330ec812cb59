/* SPDX-License-Identifier: MIT */
/*
 * Private to the ivlink tree (never installed; libivlink.so does not export
 * these calls): the region's formatting, validation and the per-peer tables.
 *
 * struct ivl_region is a process-local view of a mapped region. Its header
 * is a validated local copy: after ivl_region_attach() succeeds, every
 * offset in rg->hdr is known to lie inside the mapping, so the accessors
 * below only bounds-check indices. Anything else read from the region (peer
 * entries, channel halves, ring indices) is read once into a local and
 * validated where it is used.
 *
 * Thread safety: the functions are safe to call concurrently from several
 * threads and processes of one peer; allocation uses atomic RMW on the
 * section bitmap and CAS on channel-half state.
 */
#ifndef IVLINK_REGION_H
#define IVLINK_REGION_H

#include <stddef.h>
#include <stdint.h>

#include <ivlink/layout.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ivl_region {
	uint8_t *base;
	uint64_t map_size;	   /* bytes actually mapped */
	struct ivl_region_hdr hdr; /* validated copy */
};

struct ivl_region_params {
	uint64_t size;	     /* power of two, >= IVL_REGION_MIN_SIZE */
	uint32_t max_peers;  /* 1..IVL_PEERS_LIMIT */
	uint32_t n_vectors;  /* 1..IVL_VECTORS_LIMIT */
	uint32_t chan_slots; /* per section, 1..IVL_CHAN_SLOTS_LIMIT */
	const char *name;    /* region name, may be NULL */
};

/* Default parameters: 64 MiB, 8 peers, 8 vectors, 64 channel slots. */
void ivl_region_params_default(struct ivl_region_params *p);

/*
 * Writes a fresh layout v4 header and peer table into base (size bytes,
 * zeroed by the caller or not). Sections are left uninitialised until their
 * peer joins (ivl_section_reset). Returns 0 or -EINVAL when the parameters
 * do not fit.
 */
int ivl_region_format(void *base, uint64_t size, const struct ivl_region_params *p);

/*
 * Validates the header at base against the mapped size and fills rg.
 * Returns 0, -EPROTO (bad magic, or a size, offset or section outside the
 * mapping), -EPROTONOSUPPORT (a valid magic, but another layout version
 * than IVL_LAYOUT_VERSION), -EOVERFLOW (the header claims more than is
 * mapped: a truncated region).
 */
int ivl_region_attach(struct ivl_region *rg, void *base, uint64_t map_size);

/* Same checks on a header copy; used by attach and by tools. */
int ivl_region_hdr_validate(const struct ivl_region_hdr *h, uint64_t map_size);

/*
 * A sentence for an error of ivl_region_attach() on the region at base:
 * for -EPROTONOSUPPORT it names the region's layout version and ours, else
 * strerror(). Written into buf (len bytes, NUL terminated); returns buf.
 */
const char *ivl_region_strerror(int rc, const void *base, uint64_t map_size, char *buf, size_t len);

/* Accessors: NULL when the index is out of range. */
struct ivl_peer_entry *ivl_region_peer(const struct ivl_region *rg, uint32_t id);
struct ivl_section_hdr *ivl_region_section(const struct ivl_region *rg, uint32_t id);
struct ivl_chan_half *ivl_region_chan(const struct ivl_region *rg, uint32_t id, uint32_t slot);

/*
 * Returns a pointer to len bytes at region offset off, or NULL when any of
 * it lies outside the mapping (overflow-safe).
 */
void *ivl_region_ptr(const struct ivl_region *rg, uint64_t off, uint64_t len);

/* A peer table entry's daemon half, read once. */
struct ivl_peer_view {
	uint32_t state;
	uint32_t epoch;
};
int ivl_region_peer_view(const struct ivl_region *rg, uint32_t id, struct ivl_peer_view *out);

/* Daemon side: marks a peer UP or GONE, bumping its epoch. Returns the new
 * epoch, or -EINVAL. */
long ivl_region_peer_set(const struct ivl_region *rg, uint32_t id, uint32_t state, uint32_t pid,
			 uint32_t uid, uint32_t n_vectors);

/*
 * Wipes peer id's section (channel table and heap bitmap) and stamps it
 * with epoch: the reclamation of a gone peer, and the clean start of a new
 * one. Only the daemon calls it, while the peer is not UP.
 */
int ivl_section_reset(const struct ivl_region *rg, uint32_t id, uint32_t epoch);

/*
 * Validates peer id's section header. Returns 0, -EPROTO.
 */
int ivl_section_check(const struct ivl_region *rg, uint32_t id);

/*
 * Allocates npages contiguous heap pages in peer id's section (first fit,
 * lock-free). Returns the region offset (> 0) or -ENOMEM, -EINVAL, -EPROTO.
 */
int64_t ivl_section_alloc(const struct ivl_region *rg, uint32_t id, uint32_t npages);

/* Frees pages from ivl_section_alloc. Returns 0, -EINVAL. */
int ivl_section_free(const struct ivl_region *rg, uint32_t id, uint64_t off, uint32_t npages);

/* Pages in use in peer id's section (counted from the bitmap). */
long ivl_section_pages_used(const struct ivl_region *rg, uint32_t id);

/* ---------------------------------------------------------------- channels */

struct ivl_ctab_params {
	const char *name;    /* 1..IVL_NAME_MAX-1 bytes */
	uint32_t remote;     /* remote peer id */
	uint32_t mode;	     /* enum ivl_ring_mode */
	uint32_t ring_size;  /* tx ring bytes, power of two, >= 4096 */
	uint32_t max_record; /* message mode */
	uint32_t rx_vector;  /* vector the remote rings to wake us */
	uint32_t owner_pid;
};

/*
 * What an offer took, as the owner keeps it in private memory. The half in
 * shared memory holds a copy for the remote and for ivlinkctl; any region
 * member can rewrite that copy, so the owner never reads it back to decide
 * where to write or which pages to free (RELIABILITY.md, threat model).
 */
struct ivl_ctab_own {
	uint32_t slot;
	uint32_t gen;
	uint64_t tx_data_off; /* region offset of the tx ring data */
	uint32_t tx_size;
	uint32_t tx_pages;
};

/*
 * Claims a free half in self's channel table, allocates its tx ring, fills
 * the descriptor and publishes it as OFFERED; what it took goes to *own (may
 * be NULL). Returns the slot, or -EINVAL, -ENOSPC (no free half), -ENOMEM
 * (heap full), -EEXIST (an open half with the same name and remote exists),
 * -EPROTO.
 */
int ivl_ctab_offer(const struct ivl_region *rg, uint32_t self, uint32_t self_epoch,
		   const struct ivl_ctab_params *p, struct ivl_ctab_own *own);

/*
 * ivl_ctab_offer() with a socket-shim block (layout.h, struct ivl_shim_half)
 * written before the half is published. Same returns as ivl_ctab_offer().
 */
int ivl_ctab_offer_shim(const struct ivl_region *rg, uint32_t self, uint32_t self_epoch,
			const struct ivl_ctab_params *p, const struct ivl_shim_half *sh,
			struct ivl_ctab_own *own);

/*
 * Publishes a half without ring pages in state IVL_CHAN_LISTEN (a listening
 * socket of the shim) or IVL_CHAN_NOTE (a fallback note or a decline), with
 * name, remote (a peer id, or IVL_SLOT_NONE) and the shim block sh. Matching
 * ignores such halves; ivl_ctab_close() then ivl_ctab_gc() free them.
 * Returns the slot, or -EINVAL, -ENOSPC.
 */
int ivl_ctab_note(const struct ivl_region *rg, uint32_t self, uint32_t self_epoch, uint32_t state,
		  uint32_t remote, const char *name, const struct ivl_shim_half *sh);

/* A remote half, validated: what a local side needs to attach its rings. */
struct ivl_ctab_remote {
	uint32_t remote_slot;
	uint32_t remote_epoch;
	uint32_t remote_gen;
	uint32_t remote_rx_vector;
	uint64_t remote_tx_data_off; /* validated inside the remote's heap */
	uint32_t remote_tx_size;
	uint32_t remote_max_record;
};

/*
 * Looks for the remote's half that matches self's half at slot (same name
 * and mode, remote == self, OFFERED, owned by the remote's current epoch,
 * and not matched to another half). On success records the match in self's
 * half and fills m. Returns 0, -EAGAIN (not there yet), -ECONNRESET (remote
 * not UP), -EPROTO (remote half malformed).
 */
int ivl_ctab_match(const struct ivl_region *rg, uint32_t self, uint32_t slot,
		   struct ivl_ctab_remote *m);

/*
 * ivl_ctab_match() for a connection that another peer took over: looks in
 * remote's section (not the one self's half names) for a half that names
 * via, not self, as its remote. The socket shim uses it when a process
 * forked from a listener's peer accepts as a peer of its own (layout.h,
 * IVL_SHIM_REDIRECT): the client matches the acceptor's half, which names
 * the client, with remote = the acceptor and via = self; the acceptor
 * matches the client's proposal, which names the listener's peer, with
 * via = that peer.
 */
int ivl_ctab_match_via(const struct ivl_region *rg, uint32_t self, uint32_t slot, uint32_t remote,
		       uint32_t via, struct ivl_ctab_remote *m);

/* Marks self's half CLOSED (its rings' flags are the caller's business). */
int ivl_ctab_close(const struct ivl_region *rg, uint32_t self, uint32_t slot);

/*
 * The owner's close: marks the half own->slot CLOSED and, when the remote no
 * longer reads it, frees its pages at once from the private copy own (not
 * from the half). Returns 1 (freed), 0 (closed; ivl_ctab_gc() frees it
 * later), -EINVAL, -ESTALE (the half is no longer the one own describes).
 */
int ivl_ctab_release(const struct ivl_region *rg, uint32_t self, const struct ivl_ctab_own *own);

/*
 * Closes self's half at slot for good, whatever it is: released from own
 * when own describes it (an offer's ring), else only closed (a note, a half
 * reused meanwhile, or own NULL); then ivl_ctab_gc() frees what it can.
 */
void ivl_ctab_drop(const struct ivl_region *rg, uint32_t self, uint32_t slot,
		   const struct ivl_ctab_own *own);

/*
 * Frees self's CLOSED halves that the remote no longer reads (remote half
 * closed, gone, or matched elsewhere), returning their pages. This is the
 * path for halves whose owner left without freeing them (a process of a
 * guest that shares the peer's section): their geometry can only come from
 * the half, so it is read once and freed only if it describes pages of
 * self's heap that are all in use. Returns the number freed.
 */
int ivl_ctab_gc(const struct ivl_region *rg, uint32_t self);

#ifdef __cplusplus
}
#endif
#endif /* IVLINK_REGION_H */
