/* SPDX-License-Identifier: MIT */
/*
 * Region layout v4: format, validate, peer table, section heap and channel
 * table (see include/ivlink/layout.h for the picture).
 *
 * Section geometry is always computed from the validated local copy of the
 * region header, never from the section header in shared memory: the
 * section header only carries the magic, the owner's epoch and the page
 * bitmap, and the bitmap is only ever indexed by page numbers we computed.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <ivlink/region.h>
#include <ivlink/ring.h>

#include "os.h"

#define PAGE IVL_PAGE_SIZE

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static int is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

void ivl_region_params_default(struct ivl_region_params *p)
{
	p->size = 64u << 20;
	p->max_peers = 8;
	p->n_vectors = 8;
	p->chan_slots = 64;
	p->name = NULL;
}

/* Offsets of a section's parts relative to the section's start. */
static uint64_t chan_table_rel(void)
{
	return IVL_SECTION_HDR_SIZE;
}

static uint64_t heap_rel(const struct ivl_region_hdr *h)
{
	return IVL_SECTION_HDR_SIZE + align_up((uint64_t)h->chan_slots * IVL_CHAN_HALF_SIZE, PAGE);
}

static uint32_t heap_pages(const struct ivl_region_hdr *h)
{
	uint64_t pages = (h->section_size - heap_rel(h)) / PAGE;

	return pages > IVL_SECTION_MAX_PAGES ? IVL_SECTION_MAX_PAGES : (uint32_t)pages;
}

int ivl_region_format(void *base, uint64_t size, const struct ivl_region_params *p)
{
	struct ivl_region_hdr h;
	uint64_t min_section;

	if (!base || !p || !is_pow2(size) || size < IVL_REGION_MIN_SIZE)
		return -EINVAL;
	if (p->max_peers < 1 || p->max_peers > IVL_PEERS_LIMIT || p->n_vectors < 1 ||
	    p->n_vectors > IVL_VECTORS_LIMIT || p->chan_slots < 1 ||
	    p->chan_slots > IVL_CHAN_SLOTS_LIMIT)
		return -EINVAL;

	memset(&h, 0, sizeof(h));
	h.magic = IVL_REGION_MAGIC;
	h.version = IVL_LAYOUT_VERSION;
	h.hdr_size = IVL_REGION_HDR_SIZE;
	h.region_size = size;
	h.max_peers = p->max_peers;
	h.n_vectors = p->n_vectors;
	h.peer_table_off = IVL_REGION_HDR_SIZE;
	h.peer_entry_size = IVL_PEER_ENTRY_SIZE;
	h.chan_slots = p->chan_slots;
	h.chan_half_size = IVL_CHAN_HALF_SIZE;
	h.section_off =
	    align_up(IVL_REGION_HDR_SIZE + (uint64_t)p->max_peers * IVL_PEER_ENTRY_SIZE, PAGE);
	if (h.section_off >= size)
		return -EINVAL;
	h.section_size = ((size - h.section_off) / p->max_peers) & ~(uint64_t)(PAGE - 1);
	min_section = heap_rel(&h) + PAGE;
	if (h.section_size < min_section)
		return -EINVAL;
	if (p->name)
		strncpy(h.name, p->name, sizeof(h.name) - 1);

	memset((uint8_t *)base + h.peer_table_off, 0, (size_t)p->max_peers * IVL_PEER_ENTRY_SIZE);
	/* The magic goes last so that a reader never sees a half-written
	 * header with a valid magic. */
	h.magic = 0;
	memcpy(base, &h, sizeof(h));
	__atomic_store_n((uint64_t *)base, IVL_REGION_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

int ivl_region_hdr_validate(const struct ivl_region_hdr *h, uint64_t map_size)
{
	uint64_t peer_end, min_section;

	if (h->magic != IVL_REGION_MAGIC)
		return -EPROTO;
	/* A region of another layout version is told apart from garbage, so
	 * that tools can say which versions met (ivl_region_strerror). */
	if (h->version != IVL_LAYOUT_VERSION)
		return -EPROTONOSUPPORT;
	if (h->hdr_size != IVL_REGION_HDR_SIZE || h->peer_entry_size != IVL_PEER_ENTRY_SIZE ||
	    h->chan_half_size != IVL_CHAN_HALF_SIZE)
		return -EPROTO;
	/* format() only writes powers of two (a QEMU BAR size): anything
	 * else was not written by an ivlink daemon. */
	if (h->region_size < IVL_REGION_MIN_SIZE || !is_pow2(h->region_size))
		return -EPROTO;
	if (h->region_size > map_size)
		return -EOVERFLOW;
	if (h->max_peers < 1 || h->max_peers > IVL_PEERS_LIMIT || h->n_vectors < 1 ||
	    h->n_vectors > IVL_VECTORS_LIMIT || h->chan_slots < 1 ||
	    h->chan_slots > IVL_CHAN_SLOTS_LIMIT)
		return -EPROTO;
	/* Peer table: after the header, before the sections. */
	if (h->peer_table_off < IVL_REGION_HDR_SIZE || (h->peer_table_off % IVL_CACHELINE) ||
	    h->peer_table_off > h->region_size)
		return -EPROTO;
	peer_end = h->peer_table_off + (uint64_t)h->max_peers * IVL_PEER_ENTRY_SIZE;
	if (h->section_off < peer_end || (h->section_off % PAGE) || h->section_off > h->region_size)
		return -EPROTO;
	/* Sections: page multiples, big enough for header + table + 1 page,
	 * and all of them inside the region. section_size is bounded by
	 * region_size first, so the product below cannot overflow. */
	if ((h->section_size % PAGE) || h->section_size > h->region_size)
		return -EPROTO;
	min_section = heap_rel(h) + PAGE;
	if (h->section_size < min_section)
		return -EPROTO;
	if (h->section_size * h->max_peers > h->region_size - h->section_off)
		return -EPROTO;
	return 0;
}

const char *ivl_region_strerror(int rc, const void *base, uint64_t map_size, char *buf, size_t len)
{
	uint32_t version = 0;

	if (rc == -EPROTONOSUPPORT && base && map_size >= sizeof(struct ivl_region_hdr)) {
		memcpy(&version, (const uint8_t *)base + offsetof(struct ivl_region_hdr, version),
		       sizeof(version));
		snprintf(buf, len,
			 "region layout v%u, but this build reads layout v%u only "
			 "(restart every peer with one version; ivlinkd --force-format "
			 "re-creates the region)",
			 version, IVL_LAYOUT_VERSION);
	} else {
		snprintf(buf, len, "%s", strerror(rc < 0 ? -rc : rc));
	}
	return buf;
}

int ivl_region_attach(struct ivl_region *rg, void *base, uint64_t map_size)
{
	int rc;

	memset(rg, 0, sizeof(*rg));
	if (!base || map_size < sizeof(struct ivl_region_hdr))
		return map_size < sizeof(struct ivl_region_hdr) ? -EOVERFLOW : -EINVAL;
	/* Acquire pairs with the release store of the magic in format(). */
	if (__atomic_load_n((uint64_t *)base, __ATOMIC_ACQUIRE) != IVL_REGION_MAGIC)
		return -EPROTO;
	memcpy(&rg->hdr, base, sizeof(rg->hdr));
	rc = ivl_region_hdr_validate(&rg->hdr, map_size);
	if (rc < 0)
		return rc;
	rg->hdr.name[sizeof(rg->hdr.name) - 1] = '\0';
	rg->base = base;
	rg->map_size = map_size;
	return 0;
}

void *ivl_region_ptr(const struct ivl_region *rg, uint64_t off, uint64_t len)
{
	if (off > rg->hdr.region_size || len > rg->hdr.region_size - off)
		return NULL;
	return rg->base + off;
}

struct ivl_peer_entry *ivl_region_peer(const struct ivl_region *rg, uint32_t id)
{
	if (id >= rg->hdr.max_peers)
		return NULL;
	return (struct ivl_peer_entry *)(rg->base + rg->hdr.peer_table_off +
					 (uint64_t)id * IVL_PEER_ENTRY_SIZE);
}

static uint64_t section_start(const struct ivl_region *rg, uint32_t id)
{
	return rg->hdr.section_off + (uint64_t)id * rg->hdr.section_size;
}

struct ivl_section_hdr *ivl_region_section(const struct ivl_region *rg, uint32_t id)
{
	if (id >= rg->hdr.max_peers)
		return NULL;
	return (struct ivl_section_hdr *)(rg->base + section_start(rg, id));
}

struct ivl_chan_half *ivl_region_chan(const struct ivl_region *rg, uint32_t id, uint32_t slot)
{
	if (id >= rg->hdr.max_peers || slot >= rg->hdr.chan_slots)
		return NULL;
	return (struct ivl_chan_half *)(rg->base + section_start(rg, id) + chan_table_rel() +
					(uint64_t)slot * IVL_CHAN_HALF_SIZE);
}

int ivl_region_peer_view(const struct ivl_region *rg, uint32_t id, struct ivl_peer_view *out)
{
	struct ivl_peer_entry *e = ivl_region_peer(rg, id);

	if (!e)
		return -EINVAL;
	/* Acquire pairs with the release store of state in peer_set(): an UP
	 * state comes with the epoch written before it. */
	out->state = __atomic_load_n(&e->state, __ATOMIC_ACQUIRE);
	out->epoch = __atomic_load_n(&e->epoch, __ATOMIC_RELAXED);
	if (out->state > IVL_PEER_GONE)
		return -EPROTO;
	return 0;
}

long ivl_region_peer_set(const struct ivl_region *rg, uint32_t id, uint32_t state, uint32_t pid,
			 uint32_t uid, uint32_t n_vectors)
{
	struct ivl_peer_entry *e = ivl_region_peer(rg, id);
	uint32_t epoch;

	if (!e || state > IVL_PEER_GONE)
		return -EINVAL;
	epoch = __atomic_load_n(&e->epoch, __ATOMIC_RELAXED) + 1;
	if (epoch == 0)
		epoch = 1; /* 0 means "not matched" in channel halves */
	if (state == IVL_PEER_UP) {
		e->pid = pid;
		e->uid = uid;
		e->n_vectors = n_vectors;
		memset(e->name, 0, sizeof(e->name));
		e->backend = IVL_BACKEND_UNKNOWN;
	}
	__atomic_store_n(&e->epoch, epoch, __ATOMIC_RELAXED);
	__atomic_store_n(&e->daemon_flags, 0, __ATOMIC_RELAXED); /* a new incarnation */
	__atomic_store_n(&e->state, state, __ATOMIC_RELEASE);
	return epoch;
}

/* ---------------------------------------------------------------- sections */

int ivl_section_reset(const struct ivl_region *rg, uint32_t id, uint32_t epoch)
{
	struct ivl_section_hdr *s = ivl_region_section(rg, id);
	uint64_t start;

	if (!s)
		return -EINVAL;
	start = section_start(rg, id);
	__atomic_store_n(&s->magic, 0, __ATOMIC_RELEASE);
	memset(rg->base + start + sizeof(*s) - sizeof(s->bitmap), 0,
	       (size_t)(heap_rel(&rg->hdr) - (sizeof(*s) - sizeof(s->bitmap))));
	s->owner_epoch = epoch;
	s->pages_used = 0;
	s->heap_pages = heap_pages(&rg->hdr);
	s->heap_off = start + heap_rel(&rg->hdr);
	__atomic_store_n(&s->magic, IVL_SECTION_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

int ivl_section_check(const struct ivl_region *rg, uint32_t id)
{
	struct ivl_section_hdr *s = ivl_region_section(rg, id);

	if (!s)
		return -EINVAL;
	if (__atomic_load_n(&s->magic, __ATOMIC_ACQUIRE) != IVL_SECTION_MAGIC ||
	    s->heap_pages != heap_pages(&rg->hdr) ||
	    s->heap_off != section_start(rg, id) + heap_rel(&rg->hdr))
		return -EPROTO;
	return 0;
}

/* Mask of bits [lo, hi) within one 64-bit word, 0 <= lo < hi <= 64. */
static uint64_t bit_range(unsigned lo, unsigned hi)
{
	uint64_t upper = hi == 64 ? ~0ULL : ((1ULL << hi) - 1);

	return upper & ~((1ULL << lo) - 1);
}

/* Atomically sets bits [first, first+n). On conflict undoes what it set and
 * returns -EBUSY. */
static int claim_bits(uint64_t *bm, uint32_t first, uint32_t n)
{
	uint32_t pos = first, end = first + n;

	while (pos < end) {
		unsigned lo = pos % 64,
			 hi = (end - pos + lo) > 64 ? 64 : (unsigned)(end - pos + lo);
		uint64_t mask = bit_range(lo, hi);
		uint64_t old = __atomic_fetch_or(&bm[pos / 64], mask, __ATOMIC_ACQ_REL);

		if (old & mask) {
			/* Undo the bits of this word we newly set, then the
			 * words before it. */
			__atomic_fetch_and(&bm[pos / 64], ~(mask & ~old), __ATOMIC_RELEASE);
			for (uint32_t p = first; p < pos;) {
				unsigned l = p % 64,
					 h = (pos - p + l) > 64 ? 64 : (unsigned)(pos - p + l);

				__atomic_fetch_and(&bm[p / 64], ~bit_range(l, h), __ATOMIC_RELEASE);
				p += h - l;
			}
			return -EBUSY;
		}
		pos += hi - lo;
	}
	return 0;
}

static void clear_bits(uint64_t *bm, uint32_t first, uint32_t n)
{
	uint32_t pos = first, end = first + n;

	while (pos < end) {
		unsigned lo = pos % 64,
			 hi = (end - pos + lo) > 64 ? 64 : (unsigned)(end - pos + lo);

		__atomic_fetch_and(&bm[pos / 64], ~bit_range(lo, hi), __ATOMIC_RELEASE);
		pos += hi - lo;
	}
}

static int bit_is_set(const uint64_t *bm, uint32_t i)
{
	return (__atomic_load_n(&bm[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1;
}

int64_t ivl_section_alloc(const struct ivl_region *rg, uint32_t id, uint32_t npages)
{
	struct ivl_section_hdr *s = ivl_region_section(rg, id);
	uint32_t total = heap_pages(&rg->hdr);
	int rc;

	if (!s || npages == 0)
		return -EINVAL;
	rc = ivl_section_check(rg, id);
	if (rc < 0)
		return rc;
	for (int attempt = 0; attempt < 64; attempt++) {
		uint32_t run = 0, start = 0, i;

		for (i = 0; i < total; i++) {
			if (bit_is_set(s->bitmap, i)) {
				run = 0;
				continue;
			}
			if (run++ == 0)
				start = i;
			if (run == npages)
				break;
		}
		if (run < npages)
			return -ENOMEM;
		if (claim_bits(s->bitmap, start, npages) == 0) {
			__atomic_fetch_add(&s->pages_used, npages, __ATOMIC_RELAXED);
			return (int64_t)(section_start(rg, id) + heap_rel(&rg->hdr) +
					 (uint64_t)start * PAGE);
		}
		/* Another process of this peer raced us: rescan. */
	}
	return -ENOMEM;
}

int ivl_section_free(const struct ivl_region *rg, uint32_t id, uint64_t off, uint32_t npages)
{
	struct ivl_section_hdr *s = ivl_region_section(rg, id);
	uint64_t heap;
	uint64_t first;

	if (!s || npages == 0)
		return -EINVAL;
	heap = section_start(rg, id) + heap_rel(&rg->hdr);
	if (off < heap || (off - heap) % PAGE)
		return -EINVAL;
	first = (off - heap) / PAGE;
	if (first + npages > heap_pages(&rg->hdr))
		return -EINVAL;
	clear_bits(s->bitmap, (uint32_t)first, npages);
	__atomic_fetch_sub(&s->pages_used, npages, __ATOMIC_RELAXED);
	return 0;
}

long ivl_section_pages_used(const struct ivl_region *rg, uint32_t id)
{
	struct ivl_section_hdr *s = ivl_region_section(rg, id);
	uint32_t total = heap_pages(&rg->hdr);
	long used = 0;

	if (!s)
		return -EINVAL;
	for (uint32_t w = 0; w < (total + 63) / 64; w++) {
		uint64_t v = __atomic_load_n(&s->bitmap[w], __ATOMIC_RELAXED);

		if ((w + 1) * 64 > total)
			v &= bit_range(0, total - w * 64);
		used += __builtin_popcountll(v);
	}
	return used;
}

/* ---------------------------------------------------------------- channels */

static int name_ok(const char *name)
{
	size_t n;

	if (!name)
		return 0;
	n = strnlen(name, IVL_NAME_MAX);
	return n > 0 && n < IVL_NAME_MAX;
}

/* Validates the ring geometry of a half, read from shared memory. */
static int ring_geometry_ok(const struct ivl_region *rg, uint32_t owner, uint32_t mode,
			    uint64_t data_off, uint32_t size, uint32_t max_record)
{
	uint64_t heap = section_start(rg, owner) + heap_rel(&rg->hdr);
	uint64_t heap_end = heap + (uint64_t)heap_pages(&rg->hdr) * PAGE;

	if (!is_pow2(size) || size < PAGE || size > (1u << 30))
		return 0;
	if (data_off < heap || data_off % PAGE || data_off > heap_end || size > heap_end - data_off)
		return 0;
	if (mode == IVL_MODE_MESSAGE)
		return ivl_rec_footprint(max_record) <= size;
	return mode == IVL_MODE_STREAM;
}

static int offer_common(const struct ivl_region *rg, uint32_t self, uint32_t self_epoch,
			const struct ivl_ctab_params *p, const struct ivl_shim_half *sh,
			struct ivl_ctab_own *own);

int ivl_ctab_offer(const struct ivl_region *rg, uint32_t self, uint32_t self_epoch,
		   const struct ivl_ctab_params *p, struct ivl_ctab_own *own)
{
	return offer_common(rg, self, self_epoch, p, NULL, own);
}

int ivl_ctab_offer_shim(const struct ivl_region *rg, uint32_t self, uint32_t self_epoch,
			const struct ivl_ctab_params *p, const struct ivl_shim_half *sh,
			struct ivl_ctab_own *own)
{
	if (!sh)
		return -EINVAL;
	return offer_common(rg, self, self_epoch, p, sh, own);
}

int ivl_ctab_note(const struct ivl_region *rg, uint32_t self, uint32_t self_epoch, uint32_t state,
		  uint32_t remote, const char *name, const struct ivl_shim_half *sh)
{
	struct ivl_chan_half *c = NULL;
	uint32_t slot;

	if (!sh || !name_ok(name) || self >= rg->hdr.max_peers ||
	    (state != IVL_CHAN_LISTEN && state != IVL_CHAN_NOTE) ||
	    (remote != IVL_SLOT_NONE && remote >= rg->hdr.max_peers))
		return -EINVAL;
	for (slot = 0; slot < rg->hdr.chan_slots; slot++) {
		uint32_t expect = IVL_CHAN_FREE;

		c = ivl_region_chan(rg, self, slot);
		if (__atomic_compare_exchange_n(&c->state, &expect, IVL_CHAN_CLAIMED, 0,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			break;
	}
	if (slot == rg->hdr.chan_slots)
		return -ENOSPC;
	/* Release, as in offer_common(). */
	__atomic_store_n(&c->gen, __atomic_load_n(&c->gen, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
	c->wake_to = 0;
	c->owner_epoch = self_epoch;
	c->owner_pid = sh->owner_pid;
	/* A note has no remote half: remote_peer only says whom it concerns
	 * (IVL_SLOT_NONE for a listener), and remote_slot stays NONE so that
	 * ivl_ctab_gc() frees it as soon as it is closed. */
	c->remote_peer = remote;
	c->remote_slot = IVL_SLOT_NONE;
	c->remote_epoch = 0;
	c->remote_gen = 0;
	c->mode = IVL_MODE_STREAM;
	c->rx_vector = 0;
	c->tx_data_off = 0;
	c->tx_size = 0;
	c->max_record = 0;
	c->tx_pages = 0;
	memset(c->name, 0, sizeof(c->name));
	strncpy(c->name, name, sizeof(c->name) - 1);
	ivl_ring_format(&c->tx_prod, &c->rx_cons);
	memcpy(&c->shim, sh, sizeof(c->shim));
	/* Release pairs with the acquire load of state by readers of the
	 * listener table and of notes (the shim, ivlinkctl). */
	__atomic_store_n(&c->state, state, __ATOMIC_RELEASE);
	return (int)slot;
}

static int offer_common(const struct ivl_region *rg, uint32_t self, uint32_t self_epoch,
			const struct ivl_ctab_params *p, const struct ivl_shim_half *sh,
			struct ivl_ctab_own *own)
{
	uint32_t gen;
	struct ivl_chan_half *c;
	uint32_t slot, st, npages;
	int64_t off;

	if (!p || !name_ok(p->name) || p->remote >= rg->hdr.max_peers || p->remote == self ||
	    self >= rg->hdr.max_peers || p->rx_vector >= rg->hdr.n_vectors)
		return -EINVAL;
	if (!is_pow2(p->ring_size) || p->ring_size < PAGE || p->ring_size > (1u << 30))
		return -EINVAL;
	if (p->mode == IVL_MODE_MESSAGE) {
		if (ivl_rec_footprint(p->max_record) > p->ring_size)
			return -EINVAL;
	} else if (p->mode != IVL_MODE_STREAM) {
		return -EINVAL;
	}

	for (slot = 0; slot < rg->hdr.chan_slots; slot++) {
		c = ivl_region_chan(rg, self, slot);
		st = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
		if ((st == IVL_CHAN_OFFERED || st == IVL_CHAN_CLAIMED) &&
		    c->remote_peer == p->remote && strncmp(c->name, p->name, IVL_NAME_MAX) == 0)
			return -EEXIST;
	}

	for (slot = 0; slot < rg->hdr.chan_slots; slot++) {
		uint32_t expect = IVL_CHAN_FREE;

		c = ivl_region_chan(rg, self, slot);
		if (__atomic_compare_exchange_n(&c->state, &expect, IVL_CHAN_CLAIMED, 0,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			break;
	}
	if (slot == rg->hdr.chan_slots)
		return -ENOSPC;

	npages = p->ring_size / PAGE;
	off = ivl_section_alloc(rg, self, npages);
	if (off < 0) {
		__atomic_store_n(&c->state, IVL_CHAN_FREE, __ATOMIC_RELEASE);
		return (int)off;
	}

	/* gen is ours from here on: computed in a register, stored once. */
	gen = __atomic_load_n(&c->gen, __ATOMIC_RELAXED) + 1;
	/* Release: a reader that loads this gen (acquire) before the state
	 * sees CLAIMED or later, never the previous OFFERED (see
	 * ivl_ctab_match_via()). */
	__atomic_store_n(&c->gen, gen, __ATOMIC_RELEASE);
	c->owner_epoch = self_epoch;
	c->owner_pid = p->owner_pid;
	c->remote_peer = p->remote;
	c->remote_slot = IVL_SLOT_NONE;
	c->remote_epoch = 0;
	c->remote_gen = 0;
	c->mode = p->mode;
	c->rx_vector = p->rx_vector;
	c->tx_data_off = (uint64_t)off;
	c->tx_size = p->ring_size;
	c->max_record = p->mode == IVL_MODE_MESSAGE ? p->max_record : 0;
	c->tx_pages = npages;
	c->wake_to = 0;
	memset(c->name, 0, sizeof(c->name));
	strncpy(c->name, p->name, sizeof(c->name) - 1);
	ivl_ring_format(&c->tx_prod, &c->rx_cons);
	if (sh)
		memcpy(&c->shim, sh, sizeof(c->shim));
	else
		memset(&c->shim, 0, sizeof(c->shim));
	if (own) {
		own->slot = slot;
		own->gen = gen;
		own->tx_data_off = (uint64_t)off;
		own->tx_size = p->ring_size;
		own->tx_pages = npages;
	}
	/* Release pairs with the acquire load of state in find_match(): the
	 * remote sees a complete descriptor once it sees OFFERED. */
	__atomic_store_n(&c->state, IVL_CHAN_OFFERED, __ATOMIC_RELEASE);
	return (int)slot;
}

int ivl_ctab_match(const struct ivl_region *rg, uint32_t self, uint32_t slot,
		   struct ivl_ctab_remote *m)
{
	struct ivl_chan_half *mine = ivl_region_chan(rg, self, slot);

	if (!mine)
		return -EINVAL;
	return ivl_ctab_match_via(rg, self, slot,
				  __atomic_load_n(&mine->remote_peer, __ATOMIC_RELAXED), self, m);
}

int ivl_ctab_match_via(const struct ivl_region *rg, uint32_t self, uint32_t slot, uint32_t remote,
		       uint32_t via, struct ivl_ctab_remote *m)
{
	struct ivl_chan_half *mine = ivl_region_chan(rg, self, slot);
	struct ivl_peer_view pv, me;
	char name[IVL_NAME_MAX];
	uint32_t mode, best = IVL_SLOT_NONE;
	struct ivl_chan_half copy;
	int rc;

	if (!mine || via >= rg->hdr.max_peers)
		return -EINVAL;
	mode = mine->mode;
	memcpy(name, mine->name, sizeof(name));
	name[sizeof(name) - 1] = '\0';
	/* Our half is in shared memory too: a remote of ourselves (which
	 * offer() never writes) would match our own half. */
	if (remote >= rg->hdr.max_peers || remote == self)
		return -EPROTO;
	rc = ivl_region_peer_view(rg, remote, &pv);
	if (rc < 0)
		return rc;
	if (pv.state != IVL_PEER_UP)
		return -ECONNRESET;
	if (ivl_section_check(rg, remote) < 0)
		return -EAGAIN; /* the remote's section is being reset */
	/* Our own epoch, from the daemon's line of our entry. */
	rc = ivl_region_peer_view(rg, self, &me);
	if (rc < 0)
		return rc;

	for (uint32_t j = 0; j < rg->hdr.chan_slots; j++) {
		struct ivl_chan_half *c = ivl_region_chan(rg, remote, j);
		/* gen first: a slot closed and offered again between a load
		 * of state and one of gen would pass the re-check below with
		 * a copy torn between the two offers (seen: -EPROTO for a
		 * peer's new incarnation whose half reused the slot). */
		uint32_t gen = __atomic_load_n(&c->gen, __ATOMIC_ACQUIRE);
		uint32_t st = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);

		if (st != IVL_CHAN_OFFERED)
			continue;
		/* Read the descriptor once into a local, then make sure it did
		 * not change while we copied it (the state and gen pin it). */
		memcpy(&copy, c, 2 * IVL_CACHELINE);
		/* Acquire (a full barrier under TSan, see os.h): the copy's
		 * loads complete before the re-check below. */
		ivl__full_fence();
		if (__atomic_load_n(&c->state, __ATOMIC_RELAXED) != IVL_CHAN_OFFERED ||
		    __atomic_load_n(&c->gen, __ATOMIC_RELAXED) != gen || copy.gen != gen)
			continue;
		copy.name[IVL_NAME_MAX - 1] = '\0';
		if (copy.owner_epoch != pv.epoch || copy.remote_peer != via || copy.mode != mode ||
		    strncmp(copy.name, name, IVL_NAME_MAX) != 0)
			continue;
		if (copy.remote_slot != IVL_SLOT_NONE && copy.remote_slot != slot)
			continue; /* matched to another half of ours */
		/* Matched to an earlier incarnation of our id, whose half had
		 * our slot number (a fresh section fills slot 0 first): the
		 * remote has not closed it yet. Its ring is not ours to read. */
		if (copy.remote_slot != IVL_SLOT_NONE && copy.remote_epoch != me.epoch)
			continue;
		if (!ring_geometry_ok(rg, remote, copy.mode, copy.tx_data_off, copy.tx_size,
				      copy.max_record) ||
		    copy.rx_vector >= rg->hdr.n_vectors)
			return -EPROTO;
		if (best == IVL_SLOT_NONE || copy.remote_slot == slot) {
			best = j;
			m->remote_slot = j;
			m->remote_epoch = pv.epoch;
			m->remote_gen = gen;
			m->remote_rx_vector = copy.rx_vector;
			m->remote_tx_data_off = copy.tx_data_off;
			m->remote_tx_size = copy.tx_size;
			m->remote_max_record = copy.max_record;
			if (copy.remote_slot == slot)
				break;
		}
	}
	if (best == IVL_SLOT_NONE)
		return -EAGAIN;
	/* Matched through a redirect: our half names its real remote from
	 * now on, so that ivl_ctab_gc() asks the right peer whether it still
	 * reads our ring, and ivlinkctl shows the pair. */
	if (__atomic_load_n(&mine->remote_peer, __ATOMIC_RELAXED) != remote)
		__atomic_store_n(&mine->remote_peer, remote, __ATOMIC_RELAXED);
	mine->remote_epoch = m->remote_epoch;
	mine->remote_gen = m->remote_gen;
	__atomic_store_n(&mine->remote_slot, m->remote_slot, __ATOMIC_RELEASE);
	return 0;
}

int ivl_ctab_close(const struct ivl_region *rg, uint32_t self, uint32_t slot)
{
	struct ivl_chan_half *c = ivl_region_chan(rg, self, slot);

	if (!c)
		return -EINVAL;
	__atomic_store_n(&c->state, IVL_CHAN_CLOSED, __ATOMIC_RELEASE);
	return 0;
}

/* 1 when the remote may still read our half at slot. */
static int remote_still_reads(const struct ivl_region *rg, uint32_t self, uint32_t slot,
			      const struct ivl_chan_half *c)
{
	struct ivl_peer_view pv;
	struct ivl_chan_half *rc;
	uint32_t rslot = c->remote_slot;

	if (rslot == IVL_SLOT_NONE)
		return 0;
	if (ivl_region_peer_view(rg, c->remote_peer, &pv) < 0 || pv.state != IVL_PEER_UP ||
	    pv.epoch != c->remote_epoch)
		return 0;
	rc = ivl_region_chan(rg, c->remote_peer, rslot);
	if (!rc)
		return 0;
	return __atomic_load_n(&rc->state, __ATOMIC_ACQUIRE) == IVL_CHAN_OFFERED &&
	       rc->gen == c->remote_gen && rc->remote_slot == slot;
}

/* After CLOSED -> CLAIMED: returns pages (if any) and the half to FREE. */
static void half_free(const struct ivl_region *rg, uint32_t self, struct ivl_chan_half *c,
		      uint64_t data_off, uint32_t pages)
{
	if (pages)
		ivl_section_free(rg, self, data_off, pages);
	c->tx_pages = 0;
	c->tx_data_off = 0;
	c->remote_slot = IVL_SLOT_NONE;
	memset(&c->shim, 0, sizeof(c->shim));
	__atomic_store_n(&c->state, IVL_CHAN_FREE, __ATOMIC_RELEASE);
}

/* CLOSED -> CLAIMED, so that two processes of this peer never free the same
 * pages twice. */
static int claim_closed(struct ivl_chan_half *c)
{
	uint32_t expect = IVL_CHAN_CLOSED;

	return __atomic_compare_exchange_n(&c->state, &expect, IVL_CHAN_CLAIMED, 0,
					   __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

int ivl_ctab_release(const struct ivl_region *rg, uint32_t self, const struct ivl_ctab_own *own)
{
	struct ivl_chan_half *c;

	if (!own || self >= rg->hdr.max_peers)
		return -EINVAL;
	c = ivl_region_chan(rg, self, own->slot);
	if (!c)
		return -EINVAL;
	for (;;) {
		uint32_t st = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);

		if (st == IVL_CHAN_FREE || __atomic_load_n(&c->gen, __ATOMIC_RELAXED) != own->gen)
			return -ESTALE;
		if (st == IVL_CHAN_CLOSED ||
		    __atomic_compare_exchange_n(&c->state, &st, IVL_CHAN_CLOSED, 0,
						__ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			break;
	}
	if (remote_still_reads(rg, self, own->slot, c) || !claim_closed(c))
		return 0;
	/* The gen check again, now that the half is ours: a gc by another
	 * process of this peer may have freed and reused it meanwhile. */
	if (__atomic_load_n(&c->gen, __ATOMIC_RELAXED) != own->gen) {
		__atomic_store_n(&c->state, IVL_CHAN_CLOSED, __ATOMIC_RELEASE);
		return -ESTALE;
	}
	half_free(rg, self, c, own->tx_data_off, own->tx_pages);
	return 1;
}

void ivl_ctab_drop(const struct ivl_region *rg, uint32_t self, uint32_t slot,
		   const struct ivl_ctab_own *own)
{
	if (!own || !own->tx_pages || own->slot != slot || ivl_ctab_release(rg, self, own) < 0)
		ivl_ctab_close(rg, self, slot);
	ivl_ctab_gc(rg, self);
}

/* 1 when [off, off + pages) is a run of self's heap whose pages are all in
 * use: the most a geometry read from a half can be checked against. */
static int pages_in_use(const struct ivl_region *rg, uint32_t self, uint64_t off, uint32_t pages)
{
	struct ivl_section_hdr *s = ivl_region_section(rg, self);
	uint64_t heap = section_start(rg, self) + heap_rel(&rg->hdr);
	uint64_t first;

	if (!s || off < heap || (off - heap) % PAGE)
		return 0;
	first = (off - heap) / PAGE;
	if (first + pages > heap_pages(&rg->hdr))
		return 0;
	for (uint32_t i = 0; i < pages; i++)
		if (!bit_is_set(s->bitmap, (uint32_t)first + i))
			return 0;
	return 1;
}

int ivl_ctab_gc(const struct ivl_region *rg, uint32_t self)
{
	int freed = 0;

	for (uint32_t slot = 0; slot < rg->hdr.chan_slots; slot++) {
		struct ivl_chan_half *c = ivl_region_chan(rg, self, slot);
		uint64_t off;
		uint32_t size, pages;

		if (!c || __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) != IVL_CHAN_CLOSED)
			continue;
		if (remote_still_reads(rg, self, slot, c) || !claim_closed(c))
			continue;
		/* Read once, validate, use only the copies. A geometry that
		 * does not check out is left allocated: a leak inside this
		 * section is the safe failure. */
		off = __atomic_load_n(&c->tx_data_off, __ATOMIC_RELAXED);
		size = __atomic_load_n(&c->tx_size, __ATOMIC_RELAXED);
		pages = __atomic_load_n(&c->tx_pages, __ATOMIC_RELAXED);
		if (pages && ((uint64_t)pages * PAGE != size ||
			      !ring_geometry_ok(rg, self, IVL_MODE_STREAM, off, size, 0) ||
			      !pages_in_use(rg, self, off, pages)))
			pages = 0;
		half_free(rg, self, c, off, pages);
		freed++;
	}
	return freed;
}
