/* SPDX-License-Identifier: MIT */
/*
 * Private header of transport/, also used by guest-lib/channel.c and the
 * socket shim: the ring's fast paths, inline, in the manner of DPDK's
 * rte_ring.h over rte_ring_elem_pvt.h. Not installed, not an API.
 *
 * Each fast path handles the common case only: a usable handle, room (or
 * data) within the cached index or one re-read of it, no wrap, a single
 * buffer. Anything else goes with one unlikely() call to the slow path in
 * ring.c, which handles every case itself (it never relies on what the fast
 * path checked). Shared values are read once into locals and validated
 * before use, exactly as in ring.c. The memory-ordering labels (R1, R2, A1,
 * A2, F2) are explained once, in ring.c's file comment.
 */
#ifndef IVLINK_TRANSPORT_RING_INLINE_H
#define IVLINK_TRANSPORT_RING_INLINE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <ivlink/ring.h>

#include "os.h"

#define ivl__likely(x)	 __builtin_expect(!!(x), 1)
#define ivl__unlikely(x) __builtin_expect(!!(x), 0)
/* Fast paths are inlined into every caller, even where the compiler would
 * rather make one out-of-line copy: a call and its register saves cost as
 * much as the checks themselves. */
#define IVL__RING_INLINE static inline __attribute__((always_inline))
#define IVL__RING_COLD	 __attribute__((cold))

/* Slow paths and out-of-line helpers (ring.c). */
IVL__RING_COLD void ivl__ring_wake(struct ivl_ring *r, uint32_t seq);
IVL__RING_COLD void ivl__ring_stats_store(struct ivl_ring *r);
IVL__RING_COLD long ivl__ring_write_slow(struct ivl_ring *r, const void *buf, size_t len,
					 unsigned flags);
IVL__RING_COLD long ivl__ring_read_slow(struct ivl_ring *r, void *buf, size_t len);
IVL__RING_COLD long ivl__ring_reserve_slow(struct ivl_ring *r, size_t len, struct ivl_span sp[2]);
IVL__RING_COLD long ivl__ring_peek_slow(struct ivl_ring *r, struct ivl_span sp[2]);

/* Whether a producer handle may take a fast path: no sticky error, no
 * reservation outstanding, and the consumer has not closed or aborted (its
 * control line, which we read after every publish anyway). */
IVL__RING_INLINE int ivl__ring_p_usable(const struct ivl_ring *r)
{
	return !(r->error | r->p_active | !r->is_producer) &&
	       !(__atomic_load_n(&r->cons->flags, __ATOMIC_RELAXED) &
		 (IVL_RING_F_CLOSED | IVL_RING_F_ABORT));
}

/* Whether a consumer handle may take a fast path: no sticky error, nothing
 * peeked, no ABORT from the producer (honoured even while data remains). */
IVL__RING_INLINE int ivl__ring_c_usable(const struct ivl_ring *r)
{
	return !(r->error | (int)r->c_peeked | r->is_producer) &&
	       !(__atomic_load_n(&r->prod->flags, __ATOMIC_RELAXED) & IVL_RING_F_ABORT);
}

/*
 * The second half of a publish, the same for both sides: F2, then the other
 * side's sleep_seq on its control line. A value kicked already, or even,
 * means no doorbell; every IVL_RING_STATS_EVERY such publishes the counters
 * are stored for ivlinkctl (stored at every publish, as in layout v1, they
 * would take the line the other side is reading right now).
 */
IVL__RING_INLINE void ivl__ring_after_publish(struct ivl_ring *r, const uint32_t *their_seq,
					      uint32_t kicked, uint64_t *suppressed)
{
	uint32_t seq;

	/* F2: pairs with F1 in wait_loop() and ivl_ring_arm(). */
	ivl__full_fence();
	seq = __atomic_load_n(their_seq, __ATOMIC_RELAXED);
	if (ivl__unlikely((seq & 1) && seq != kicked))
		ivl__ring_wake(r, seq);
	else if (ivl__unlikely((++*suppressed & (IVL_RING_STATS_EVERY - 1)) == 0))
		ivl__ring_stats_store(r);
}

IVL__RING_INLINE void ivl__ring_publish_tail(struct ivl_ring *r)
{
	/* R1: pairs with A2 in refresh_tail() and ivl__ring_read(). */
	__atomic_store_n(&r->prod->tail, r->p_tail, __ATOMIC_RELEASE);
	ivl__ring_after_publish(r, &r->cons->sleep_seq, r->p_kicked_seq, &r->p_suppressed);
}

IVL__RING_INLINE void ivl__ring_publish_head(struct ivl_ring *r)
{
	/* R2: pairs with A1 in refresh_head(). */
	__atomic_store_n(&r->cons->head, r->c_head, __ATOMIC_RELEASE);
	ivl__ring_after_publish(r, &r->prod->sleep_seq, r->c_kicked_seq, &r->c_suppressed);
}

/* Room for want bytes from the cached head. */
IVL__RING_INLINE int ivl__ring_room(const struct ivl_ring *r, uint64_t want)
{
	return r->size - (r->p_tail - r->p_head_cache) >= want;
}

/* ---------------------------------------------------------------- producer */

/* ivl_ring_reserve(): len > 0 bytes (stream) or a record of len bytes
 * (message) that fit from the cached head without wrapping. */
IVL__RING_INLINE long ivl__ring_reserve(struct ivl_ring *r, size_t len, struct ivl_span sp[2])
{
	uint32_t off = (uint32_t)r->p_tail & r->mask;
	uint64_t hdr = r->mode == IVL_MODE_MESSAGE ? sizeof(struct ivl_rec_hdr) : 0;
	uint64_t fp = hdr ? ivl_rec_footprint(len) : len;

	if (ivl__likely(len != 0 && (!hdr || len <= r->max_record) && ivl__ring_p_usable(r) &&
			ivl__ring_room(r, fp) && off + fp <= r->size)) {
		sp[0].base = r->data + off + hdr;
		sp[0].len = len;
		sp[1].base = r->data;
		sp[1].len = 0;
		r->p_reserved = (uint32_t)len;
		r->p_active = 1;
		return (long)len;
	}
	return ivl__ring_reserve_slow(r, len, sp);
}

/* ivl_ring_commit(). */
IVL__RING_INLINE int ivl__ring_commit(struct ivl_ring *r, size_t len, unsigned flags)
{
	if (ivl__unlikely(r->error))
		return r->error;
	if (ivl__unlikely(!r->p_active || len > r->p_reserved))
		return -EINVAL;
	if (r->mode == IVL_MODE_MESSAGE) {
		struct ivl_rec_hdr h = {.len = (uint32_t)len, .magic = IVL_REC_MAGIC};

		/* The header is 8-byte aligned and the ring size a power of
		 * two >= 64, so the header never wraps. */
		memcpy(r->data + ((uint32_t)r->p_tail & r->mask), &h, sizeof(h));
		r->p_tail += ivl_rec_footprint(len);
	} else {
		r->p_tail += len;
	}
	r->p_active = 0;
	r->p_reserved = 0;
	r->p_msgs++;
	if (!(flags & IVL_MORE))
		ivl__ring_publish_tail(r);
	return 0;
}

/* ivl_ring_write(): one copy into a range that needs no wrap, fits from the
 * cached head and (stream) is at most a quarter ring (ring.c publishes
 * larger writes in quarters). */
IVL__RING_INLINE long ivl__ring_write(struct ivl_ring *r, const void *buf, size_t len,
				      unsigned flags)
{
	uint64_t tail = r->p_tail;
	uint32_t off = (uint32_t)tail & r->mask;
	uint64_t fp;

	if (r->mode == IVL_MODE_MESSAGE) {
		fp = ivl_rec_footprint(len);
		if (ivl__unlikely(len == 0 || len > r->max_record || !ivl__ring_p_usable(r) ||
				  !ivl__ring_room(r, fp) || off + fp > r->size))
			return ivl__ring_write_slow(r, buf, len, flags);
		{
			struct ivl_rec_hdr h = {.len = (uint32_t)len, .magic = IVL_REC_MAGIC};

			memcpy(r->data + off, &h, sizeof(h));
		}
		memcpy(r->data + off + sizeof(struct ivl_rec_hdr), buf, len);
	} else {
		fp = len;
		if (ivl__unlikely(len == 0 || len > r->size / 4 || !ivl__ring_p_usable(r) ||
				  !ivl__ring_room(r, fp) || off + fp > r->size))
			return ivl__ring_write_slow(r, buf, len, flags);
		memcpy(r->data + off, buf, len);
	}
	r->p_tail = tail + fp;
	r->p_msgs++;
	if (!(flags & IVL_MORE))
		ivl__ring_publish_tail(r);
	return (long)len;
}

/* ---------------------------------------------------------------- consumer */

/*
 * Readable bytes at c_head, re-reading the tail (A2) once when the cache is
 * empty; 0 sends the caller to the slow path (empty, EOF, or a tail that
 * needs validating with the error reported there).
 */
IVL__RING_INLINE uint64_t ivl__ring_avail(struct ivl_ring *r)
{
	uint64_t head = r->c_head, avail = r->c_tail_cache - head, tail;

	if (avail)
		return avail;
	/* A2: pairs with R1 in ivl__ring_publish_tail(). */
	tail = __atomic_load_n(&r->prod->tail, __ATOMIC_ACQUIRE);
	avail = tail - head;
	if (ivl__unlikely(avail > r->size ||
			  (r->mode == IVL_MODE_MESSAGE && (tail & (IVL_REC_ALIGN - 1)))))
		return 0; /* the slow path re-reads and poisons */
	r->c_tail_cache = tail;
	return avail;
}

/*
 * Message mode: copies the header at c_head into *h and validates it
 * against avail and the ring end (no wrap). Returns its footprint, or 0 for
 * the slow path (which validates again, on its own copy).
 */
IVL__RING_INLINE uint64_t ivl__ring_rec(const struct ivl_ring *r, uint64_t avail,
					struct ivl_rec_hdr *h)
{
	uint32_t off = (uint32_t)r->c_head & r->mask;
	uint64_t fp;

	if (ivl__unlikely(avail < sizeof(*h)))
		return 0;
	memcpy(h, r->data + off, sizeof(*h));
	fp = ivl_rec_footprint(h->len);
	if (ivl__unlikely(h->magic != IVL_REC_MAGIC || h->len > r->max_record || fp > avail ||
			  off + fp > r->size))
		return 0;
	return fp;
}

/* ivl_ring_peek(). */
IVL__RING_INLINE long ivl__ring_peek(struct ivl_ring *r, struct ivl_span sp[2])
{
	uint64_t avail, fp;
	uint32_t off;
	struct ivl_rec_hdr h;

	if (ivl__unlikely(!ivl__ring_c_usable(r)))
		return ivl__ring_peek_slow(r, sp);
	avail = ivl__ring_avail(r);
	off = (uint32_t)r->c_head & r->mask;
	if (r->mode == IVL_MODE_STREAM) {
		if (ivl__unlikely(avail == 0 || off + avail > r->size))
			return ivl__ring_peek_slow(r, sp);
		sp[0].base = r->data + off;
		sp[0].len = (size_t)avail;
		sp[1].base = r->data;
		sp[1].len = 0;
		r->c_peeked = (uint32_t)avail;
		return (long)avail;
	}
	fp = avail ? ivl__ring_rec(r, avail, &h) : 0;
	if (ivl__unlikely(fp == 0))
		return ivl__ring_peek_slow(r, sp);
	sp[0].base = r->data + off + sizeof(h);
	sp[0].len = h.len;
	sp[1].base = r->data;
	sp[1].len = 0;
	r->c_peeked = (uint32_t)fp;
	return (long)h.len;
}

/* ivl_ring_release(). */
IVL__RING_INLINE int ivl__ring_release(struct ivl_ring *r, size_t len, unsigned flags)
{
	if (ivl__unlikely(r->error))
		return r->error;
	if (ivl__unlikely(r->c_peeked == 0))
		return -EINVAL;
	if (r->mode == IVL_MODE_MESSAGE) {
		r->c_head += r->c_peeked;
	} else {
		if (ivl__unlikely(len > r->c_peeked))
			return -EINVAL;
		r->c_head += len;
	}
	r->c_peeked = 0;
	r->c_msgs++;
	if (!(flags & IVL_MORE))
		ivl__ring_publish_head(r);
	return 0;
}

/* ivl_ring_read(): one copy out of a range that needs no wrap; a record
 * that fits len, or (stream) at most a quarter ring. */
IVL__RING_INLINE long ivl__ring_read(struct ivl_ring *r, void *buf, size_t len)
{
	uint64_t avail, fp;
	uint32_t off;
	struct ivl_rec_hdr h;
	size_t n;

	if (ivl__unlikely(len == 0 || !ivl__ring_c_usable(r)))
		return ivl__ring_read_slow(r, buf, len);
	avail = ivl__ring_avail(r);
	off = (uint32_t)r->c_head & r->mask;
	if (r->mode == IVL_MODE_MESSAGE) {
		fp = avail ? ivl__ring_rec(r, avail, &h) : 0;
		if (ivl__unlikely(fp == 0 || h.len == 0 || h.len > len))
			return ivl__ring_read_slow(r, buf, len);
		n = h.len;
		memcpy(buf, r->data + off + sizeof(h), n);
	} else {
		n = avail < len ? (size_t)avail : len;
		if (ivl__unlikely(n == 0 || n > r->size / 4 || off + n > r->size))
			return ivl__ring_read_slow(r, buf, len);
		memcpy(buf, r->data + off, n);
		fp = n;
	}
	r->c_head += fp;
	r->c_msgs++;
	ivl__ring_publish_head(r);
	return (long)n;
}

#endif /* IVLINK_TRANSPORT_RING_INLINE_H */
