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
IVL__RING_COLD void ivl__ring_after_publish_slow(struct ivl_ring *r, uint32_t seq);
IVL__RING_COLD long ivl__ring_write_slow(struct ivl_ring *r, const void *buf, size_t len,
					 unsigned flags);
IVL__RING_COLD long ivl__ring_read_slow(struct ivl_ring *r, void *buf, size_t len);
IVL__RING_COLD long ivl__ring_reserve_slow(struct ivl_ring *r, size_t len, struct ivl_span sp[2]);
IVL__RING_COLD long ivl__ring_peek_slow(struct ivl_ring *r, struct ivl_span sp[2]);
long ivl__ring_read_part(struct ivl_ring *r, void *buf, const uint8_t *src, size_t n, uint64_t fp);
long ivl__ring_read_any(struct ivl_ring *r, void *buf, size_t len);

/* The gate bits that send each role's calls to ring.c. */
#define IVL__GATE_P (IVL__GATE_ERROR | IVL__GATE_BUSY | IVL__GATE_CONS)
#define IVL__GATE_C (IVL__GATE_ERROR | IVL__GATE_BUSY | IVL__GATE_PROD)

/* Whether position end is at or before limit. Indices are free running and
 * start wherever the shared ones were at attach (a hostile peer may put
 * them near 2^64), so positions are compared by their signed distance. */
IVL__RING_INLINE int ivl__ring_upto(uint64_t end, uint64_t limit)
{
	return (int64_t)(limit - end) >= 0;
}

/* The position where the lap of pos ends (the ring end, as an index). */
IVL__RING_INLINE uint64_t ivl__ring_lap_end(const struct ivl_ring *r, uint64_t pos)
{
	return (pos | r->mask) + 1;
}

/*
 * The second half of a publish, the same for both sides. The index was
 * stored with a sequentially consistent store (R1/R2 and F2 in one: see
 * ring.c); the other side's sleep_seq is loaded after it. Odd means it
 * sleeps or is about to (ring.c decides whether it was kicked already).
 * Nothing is counted here: a publish that does not kick is a suppressed
 * doorbell, derived from the message count (ring.h).
 */
IVL__RING_INLINE void ivl__ring_after_publish(struct ivl_ring *r, const uint32_t *their_seq)
{
	/* F2: pairs with F1 in wait_loop() and ivl_ring_arm(). */
	uint32_t seq = __atomic_load_n(their_seq, __ATOMIC_SEQ_CST);

	if (ivl__unlikely(seq & 1u))
		ivl__ring_after_publish_slow(r, seq);
}

/* The publishes take the blocks and the index as arguments: the callers
 * hold them in registers, and the compiler reloads nothing from the handle
 * after the (compiler-barrier) atomic store. */
IVL__RING_INLINE void ivl__ring_publish_tail_at(struct ivl_ring *r, struct ivl_ring_prod *p,
						const struct ivl_ring_cons *c, uint64_t tail)
{
	/* R1 (+F2): pairs with A2 in refresh_tail() and ivl__ring_fill(). */
	__atomic_store_n(&p->tail, tail, __ATOMIC_SEQ_CST);
	ivl__ring_after_publish(r, &c->sleep_seq);
}

IVL__RING_INLINE void ivl__ring_publish_head_at(struct ivl_ring *r, struct ivl_ring_cons *c,
						const struct ivl_ring_prod *p, uint64_t head)
{
	/* R2 (+F2): pairs with A1 in refresh_head(). */
	__atomic_store_n(&c->head, head, __ATOMIC_SEQ_CST);
	ivl__ring_after_publish(r, &p->sleep_seq);
}

IVL__RING_INLINE void ivl__ring_publish_tail(struct ivl_ring *r)
{
	ivl__ring_publish_tail_at(r, r->prod, r->cons, r->p_tail);
}

IVL__RING_INLINE void ivl__ring_publish_head(struct ivl_ring *r)
{
	ivl__ring_publish_head_at(r, r->cons, r->prod, r->c_head);
}

/* Whether the consumer closed or aborted: its control line, which every
 * publish reads anyway, a cache hit while the consumer is awake. */
IVL__RING_INLINE int ivl__ring_cons_gone(const struct ivl_ring_cons *c)
{
	return __atomic_load_n(&c->flags, __ATOMIC_RELAXED) &
	       (IVL_RING_F_CLOSED | IVL_RING_F_ABORT);
}

/* Whether the producer aborted (honoured even while data remains). */
IVL__RING_INLINE int ivl__ring_prod_abort(const struct ivl_ring_prod *p)
{
	return __atomic_load_n(&p->flags, __ATOMIC_RELAXED) & IVL_RING_F_ABORT;
}

/*
 * Layout v3: a record of at most one cache line, header included, never
 * crosses a line of the data area; one that would is preceded by a pad
 * record to the line end (ring.c). Rings under two lines do without.
 */
IVL__RING_INLINE int ivl__rec_crosses(uint64_t pos, uint64_t fp)
{
	return fp <= IVL_CACHELINE && ((pos ^ (pos + fp - 1)) & ~(uint64_t)(IVL_CACHELINE - 1));
}

/* ---------------------------------------------------------------- producer */

/* ivl_ring_reserve(): len > 0 bytes (stream) or a record of len bytes
 * (message) within the limit. */
IVL__RING_INLINE long ivl__ring_reserve(struct ivl_ring *r, size_t len, struct ivl_span sp[2])
{
	uint64_t tail = r->p_tail;
	uint64_t hdr = r->mode == IVL_MODE_MESSAGE ? sizeof(struct ivl_rec_hdr) : 0;
	uint64_t fp = hdr ? ivl_rec_footprint(len) : len;

	if (ivl__likely(!(r->gate & IVL__GATE_P) && len != 0 && (!hdr || len <= r->max_record) &&
			ivl__ring_upto(tail + fp, r->limit) &&
			!(hdr && ivl__rec_crosses(tail, fp)) && !ivl__ring_cons_gone(r->cons))) {
		sp[0].base = r->data + ((uint32_t)tail & r->mask) + hdr;
		sp[0].len = len;
		sp[1].base = r->data;
		sp[1].len = 0;
		r->p_reserved = (uint32_t)len;
		r->p_active = 1;
		r->gate |= IVL__GATE_BUSY;
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
		uint64_t h = (uint64_t)IVL_REC_MAGIC << 32 | (uint32_t)len;

		/* The header is 8-byte aligned and the ring size a power of
		 * two >= 64, so the header never wraps. */
		memcpy(r->data + ((uint32_t)r->p_tail & r->mask), &h, sizeof(h));
		r->p_tail += ivl_rec_footprint(len);
	} else {
		r->p_tail += len;
	}
	r->p_active = 0;
	r->p_reserved = 0;
	r->gate &= (uint16_t)~IVL__GATE_BUSY;
	r->p_msgs++;
	if (flags & IVL_MORE)
		r->held++;
	else
		ivl__ring_publish_tail(r);
	return 0;
}

/*
 * Copies n bytes that do not overlap: a size known at compile time up to
 * two cache lines as unrolled 16-byte moves, a variable size up to
 * IVL__RING_COPY_INLINE as two overlapping moves of 16, 8, 4 or 1 bytes,
 * anything else through memcpy(). A variable-size memcpy() is a libc call
 * and its size dispatch; below 32 bytes that costs more than the moves,
 * above it libc's 32-byte (AVX) moves need fewer instructions than the
 * 16-byte ones of the x86-64 baseline (ivlink-ring-pairs under callgrind).
 * n may be 0 (src is then never touched, and may be NULL).
 */
#define IVL__RING_COPY_INLINE 32u

IVL__RING_INLINE void ivl__ring_copy(void *dst, const void *src, size_t n)
{
	uint8_t *d = (uint8_t *)dst;
	const uint8_t *s = (const uint8_t *)src;

	if (__builtin_constant_p(n) && n <= 2 * IVL_CACHELINE) {
		/* A constant size: 16-byte moves, then the remainder, all
		 * unrolled (a constant memcpy() may become "rep movs", which
		 * costs more than the moves at these sizes). */
		size_t i = n & ~(size_t)15;

		/* Spelled out: a loop here is not always unrolled, and GCC
		 * then takes what follows for cold code. */
		if (n >= 16)
			memcpy(d, s, 16);
		if (n >= 32)
			memcpy(d + 16, s + 16, 16);
		if (n >= 48)
			memcpy(d + 32, s + 32, 16);
		if (n >= 64)
			memcpy(d + 48, s + 48, 16);
		if (n >= 80)
			memcpy(d + 64, s + 64, 16);
		if (n >= 96)
			memcpy(d + 80, s + 80, 16);
		if (n >= 112)
			memcpy(d + 96, s + 96, 16);
		if (n >= 128)
			memcpy(d + 112, s + 112, 16);
		if (n & 8) {
			memcpy(d + i, s + i, 8);
			i += 8;
		}
		if (n & 4) {
			memcpy(d + i, s + i, 4);
			i += 4;
		}
		if (n & 2) {
			memcpy(d + i, s + i, 2);
			i += 2;
		}
		if (n & 1)
			d[i] = s[i];
		return;
	}
	if (n > IVL__RING_COPY_INLINE) {
		memcpy(d, s, n);
	} else if (n >= 16) {
		memcpy(d, s, 16);
		memcpy(d + n - 16, s + n - 16, 16);
	} else if (n >= 8) {
		memcpy(d, s, 8);
		memcpy(d + n - 8, s + n - 8, 8);
	} else if (n >= 4) {
		memcpy(d, s, 4);
		memcpy(d + n - 4, s + n - 4, 4);
	} else if (n) {
		d[0] = s[0];
		d[n / 2] = s[n / 2];
		d[n - 1] = s[n - 1];
	}
}

/* The end of every inline write: the tail moves to end, published unless
 * IVL_MORE holds it. */
IVL__RING_INLINE long ivl__ring_written(struct ivl_ring *r, const struct ivl_ring_cons *c,
					uint64_t end, size_t len, unsigned flags)
{
	r->p_tail = end;
	r->p_msgs++;
	if (flags & IVL_MORE)
		r->held++;
	else
		ivl__ring_publish_tail_at(r, r->prod, c, end);
	return (long)len;
}

/*
 * ivl_ring_write() in message mode: one record within the limit (no wrap,
 * room from the cached head) that needs no pad. A caller that knows the
 * ring's mode calls this directly and saves the test of the mode: on a
 * stream ring the gate (IVL__GATE_STREAM) sends it to the slow path, which
 * does the right thing for either mode.
 */
IVL__RING_INLINE long ivl__ring_write_msg(struct ivl_ring *r, const void *buf, size_t len,
					  unsigned flags)
{
	struct ivl_ring_cons *c = r->cons;
	uint64_t tail = r->p_tail, fp = ivl_rec_footprint(len), end = tail + fp;
	uint64_t h = (uint64_t)IVL_REC_MAGIC << 32 | (uint32_t)len;
	uint8_t *dst = r->data + ((uint32_t)tail & r->mask);

	/* len - 1: an empty record (buf may be NULL) goes slow. */
	if (ivl__likely(!(r->gate & (IVL__GATE_P | IVL__GATE_STREAM)) && len - 1 < r->fast_max &&
			ivl__ring_upto(end, r->limit) && !ivl__rec_crosses(tail, fp) &&
			!ivl__ring_cons_gone(c))) {
		memcpy(dst, &h, sizeof(h));
		ivl__ring_copy(dst + sizeof(h), buf, len);
		return ivl__ring_written(r, c, end, len, flags);
	}
	return ivl__ring_write_slow(r, buf, len, flags);
}

/* ivl_ring_write() in stream mode: one copy within the limit of at most a
 * quarter ring (ring.c publishes larger writes in quarters). */
IVL__RING_INLINE long ivl__ring_write_stream(struct ivl_ring *r, const void *buf, size_t len,
					     unsigned flags)
{
	struct ivl_ring_cons *c = r->cons;
	uint64_t tail = r->p_tail, end = tail + len;
	uint8_t *dst = r->data + ((uint32_t)tail & r->mask);

	if (ivl__unlikely((r->gate & (IVL__GATE_P | IVL__GATE_MSG)) || len - 1 >= r->fast_max ||
			  !ivl__ring_upto(end, r->limit) || ivl__ring_cons_gone(c)))
		return ivl__ring_write_slow(r, buf, len, flags);
	ivl__ring_copy(dst, buf, len);
	return ivl__ring_written(r, c, end, len, flags);
}

/* ivl_ring_write(), either mode. */
IVL__RING_INLINE long ivl__ring_write(struct ivl_ring *r, const void *buf, size_t len,
				      unsigned flags)
{
	if (ivl__likely(r->mode == IVL_MODE_MESSAGE))
		return ivl__ring_write_msg(r, buf, len, flags);
	return ivl__ring_write_stream(r, buf, len, flags);
}

/* ---------------------------------------------------------------- consumer */

/*
 * Makes at least want bytes readable at c_head within the limit, re-reading
 * the tail (A2) once when the limit falls short. 0 sends the caller to the
 * slow path (empty, EOF, the ring end, or a tail that needs validating with
 * the error reported there). The lap end used is stats_end, the end of
 * the lap in which the slow path last stored the counters: a head that
 * reached it finds no data here, so the first call of each lap goes to
 * the slow path, which stores them (ivl__ring_peek_slow) and moves
 * stats_end on, with no count-down on every message and no call here.
 */
IVL__RING_INLINE int ivl__ring_fill(struct ivl_ring *r, const struct ivl_ring_prod *p,
				    uint64_t want)
{
	uint64_t head = r->c_head, tail, end;

	if (ivl__likely(ivl__ring_upto(head + want, r->limit)))
		return 1;
	/* A2: pairs with R1 in ivl__ring_publish_tail_at(). A tail further
	 * ahead than one ring is the slow path's to re-read and poison. One
	 * that is not record-aligned (message mode) can only end a record
	 * short of it: the footprint check sends that record to the slow
	 * path, which poisons, and reading up to it stays in the ring. */
	tail = __atomic_load_n(&p->tail, __ATOMIC_ACQUIRE);
	if (ivl__unlikely(tail - head > r->size))
		return 0;
	r->c_tail_cache = tail;
	end = r->stats_end;
	r->limit = ivl__ring_upto(tail, end) ? tail : end;
	return ivl__ring_upto(head + want, r->limit);
}

/*
 * Message mode: the header at c_head, validated against len (the caller's
 * room, or max_record) and the limit; a pad record or anything odd is the
 * slow path's (which validates again, on its own copy). Returns the payload
 * length with *fp the footprint, or -1.
 */
IVL__RING_INLINE int64_t ivl__ring_rec(const struct ivl_ring *r, uint64_t room, uint64_t *fp)
{
	uint64_t h, x;

	memcpy(&h, r->data + ((uint32_t)r->c_head & r->mask), sizeof(h));
	/* One compare checks the magic (upper half) and the length: with the
	 * magic right, x is the length; with it wrong, x >= 2^32. */
	x = h ^ ((uint64_t)IVL_REC_MAGIC << 32);
	if (ivl__unlikely(x > r->fast_max || x > room))
		return -1;
	*fp = ivl_rec_footprint(x);
	if (ivl__unlikely(!ivl__ring_upto(r->c_head + *fp, r->limit)))
		return -1;
	return (int64_t)x;
}

/* ivl_ring_peek(). */
IVL__RING_INLINE long ivl__ring_peek(struct ivl_ring *r, struct ivl_span sp[2])
{
	const struct ivl_ring_prod *p = r->prod;
	uint64_t fp, avail;
	int64_t n;
	uint8_t *src;

	if (ivl__unlikely((r->gate & IVL__GATE_C) || ivl__ring_prod_abort(p)))
		return ivl__ring_peek_slow(r, sp);
	if (r->mode == IVL_MODE_STREAM) {
		/* Data past the ring end is the slow path's (two spans). */
		if (ivl__unlikely(!ivl__ring_fill(r, p, 1) || r->limit != r->c_tail_cache))
			return ivl__ring_peek_slow(r, sp);
		avail = r->limit - r->c_head;
		fp = avail;
		n = (int64_t)avail;
		src = r->data + ((uint32_t)r->c_head & r->mask);
	} else {
		if (ivl__unlikely(!ivl__ring_fill(r, p, sizeof(struct ivl_rec_hdr))))
			return ivl__ring_peek_slow(r, sp);
		n = ivl__ring_rec(r, UINT32_MAX, &fp);
		if (ivl__unlikely(n < 0))
			return ivl__ring_peek_slow(r, sp);
		src = r->data + ((uint32_t)r->c_head & r->mask) + sizeof(struct ivl_rec_hdr);
	}
	sp[0].base = src;
	sp[0].len = (size_t)n;
	sp[1].base = r->data;
	sp[1].len = 0;
	r->c_peeked = (uint32_t)fp;
	r->gate |= IVL__GATE_BUSY;
	return (long)n;
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
	r->gate &= (uint16_t)~IVL__GATE_BUSY;
	r->c_msgs++;
	if (flags & IVL_MORE)
		r->held++;
	else
		ivl__ring_publish_head(r);
	return 0;
}

/* The end of every inline read: the head moves to head (read before the
 * copy: the caller's buffer may alias anything, the handle included, for
 * the compiler), published at once. */
IVL__RING_INLINE void ivl__ring_consumed(struct ivl_ring *r, const struct ivl_ring_prod *p,
					 uint64_t head)
{
	r->c_head = head;
	r->c_msgs++;
	ivl__ring_publish_head_at(r, r->cons, p, head);
}

/*
 * The end of the general inline read: n bytes at src (validated by the
 * caller), fp bytes consumed. A short copy is inline (ivl__ring_copy); a
 * longer one (memcpy) is made out of line, with the rest of the
 * read, so that the fast path itself makes no call (and saves no registers
 * for one). An empty record into an empty buffer (which may be NULL)
 * copies nothing.
 */
IVL__RING_INLINE long ivl__ring_read_copy(struct ivl_ring *r, const struct ivl_ring_prod *p,
					  void *buf, const uint8_t *src, size_t n, uint64_t fp)
{
	uint64_t head = r->c_head;

	if (n > IVL__RING_COPY_INLINE)
		return ivl__ring_read_part(r, buf, src, n, fp);
	ivl__ring_copy(buf, src, n);
	ivl__ring_consumed(r, p, head + fp);
	return (long)n;
}

/* A constant-size read found less than its buffer's worth: an empty ring
 * (nothing at all up to the limit just refreshed: a poll, the common case
 * of a spinning receiver) goes straight to the slow path, which decides
 * between -EAGAIN and EOF; some data goes to the general code. */
IVL__RING_INLINE long ivl__ring_read_short(struct ivl_ring *r, void *buf, size_t len, uint64_t head)
{
	if (r->limit == head)
		return ivl__ring_read_slow(r, buf, len);
	return ivl__ring_read_any(r, buf, len);
}

/*
 * ivl_ring_read() in message mode: one record that fits len, copied out of
 * a range within the limit. As with the writes, a caller that knows the
 * mode may call this directly (IVL__GATE_STREAM sends it slow on a stream
 * ring).
 */
IVL__RING_INLINE long ivl__ring_read_msg(struct ivl_ring *r, void *buf, size_t len)
{
	const struct ivl_ring_prod *p = r->prod;
	const uint8_t *src;
	uint64_t fp;
	int64_t x;

	if (ivl__unlikely((r->gate & (IVL__GATE_C | IVL__GATE_STREAM)) || ivl__ring_prod_abort(p)))
		return ivl__ring_read_slow(r, buf, len);
	/* A receiver whose buffer has a constant size (a fixed-size message)
	 * tries the record that fills it exactly: one look at the limit (its
	 * whole footprint), one compare of the header against the expected
	 * magic and length. Anything else is the general code below, out of
	 * line (ivl__ring_read_any), so that this path needs few registers. */
	if (__builtin_constant_p(len) && len > 0 && len <= 2 * IVL_CACHELINE) {
		const uint64_t want = (uint64_t)IVL_REC_MAGIC << 32 | len;
		uint64_t head = r->c_head, h;

		if (ivl__unlikely(!ivl__ring_fill(r, p, ivl_rec_footprint(len))))
			return ivl__ring_read_short(r, buf, len, head);
		src = r->data + ((uint32_t)head & r->mask);
		memcpy(&h, src, sizeof(h));
		if (ivl__unlikely(h != want || len > r->fast_max))
			return ivl__ring_read_any(r, buf, len);
		ivl__ring_copy(buf, src + sizeof(h), len);
		ivl__ring_consumed(r, p, head + ivl_rec_footprint(len));
		return (long)len;
	}
	if (ivl__unlikely(!ivl__ring_fill(r, p, sizeof(struct ivl_rec_hdr))))
		return ivl__ring_read_slow(r, buf, len);
	x = ivl__ring_rec(r, len, &fp);
	if (ivl__unlikely(x < 0))
		return ivl__ring_read_slow(r, buf, len);
	src = r->data + ((uint32_t)r->c_head & r->mask) + sizeof(struct ivl_rec_hdr);
	return ivl__ring_read_copy(r, p, buf, src, (size_t)x, fp);
}

/* ivl_ring_read() in stream mode: up to len bytes within the limit, at
 * most a quarter ring. */
IVL__RING_INLINE long ivl__ring_read_stream(struct ivl_ring *r, void *buf, size_t len)
{
	const struct ivl_ring_prod *p = r->prod;
	uint64_t avail;
	size_t n;

	if (ivl__unlikely((r->gate & (IVL__GATE_C | IVL__GATE_MSG)) || ivl__ring_prod_abort(p)))
		return ivl__ring_read_slow(r, buf, len);
	/* A constant-size read takes exactly len bytes when they are there
	 * (one look at the limit); a shorter read is the general case, out
	 * of line as in ivl__ring_read_msg(). */
	if (__builtin_constant_p(len) && len > 0 && len <= 2 * IVL_CACHELINE) {
		uint64_t head = r->c_head;

		if (ivl__unlikely(!ivl__ring_fill(r, p, len) || len > r->fast_max))
			return ivl__ring_read_short(r, buf, len, head);
		ivl__ring_copy(buf, r->data + ((uint32_t)head & r->mask), len);
		ivl__ring_consumed(r, p, head + len);
		return (long)len;
	}
	if (ivl__unlikely(!ivl__ring_fill(r, p, 1)))
		return ivl__ring_read_slow(r, buf, len);
	avail = r->limit - r->c_head;
	n = avail < len ? (size_t)avail : len;
	/* A read that wants data past the ring end is the slow path's (two
	 * spans), as is one over a quarter ring. */
	if (ivl__unlikely(n - 1 >= r->fast_max || (n < len && r->limit != r->c_tail_cache)))
		return ivl__ring_read_slow(r, buf, len);
	return ivl__ring_read_copy(r, p, buf, r->data + ((uint32_t)r->c_head & r->mask), n, n);
}

/* ivl_ring_read(), either mode. */
IVL__RING_INLINE long ivl__ring_read(struct ivl_ring *r, void *buf, size_t len)
{
	if (ivl__likely(r->mode == IVL_MODE_MESSAGE))
		return ivl__ring_read_msg(r, buf, len);
	return ivl__ring_read_stream(r, buf, len);
}

#endif /* IVLINK_TRANSPORT_RING_INLINE_H */
