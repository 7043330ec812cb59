/* SPDX-License-Identifier: MIT */
/*
 * SPSC ring: see include/ivlink/ring.h for the contract and the wake-up
 * handshake. The fast paths (reserve/commit/peek/release, single-buffer
 * write/read, the publish itself) are inline in ring_inline.h, which channels
 * and the socket shim call directly; everything else, and every case the
 * fast paths hand over, is here. This comment is the one description of the
 * ordering for both files.
 *
 * Layout v2 (layout.h): each side's block is an index line (tail or head,
 * written at every publish) and a control line (flags, sleep_seq, counters,
 * written only around a sleep, a flag change or a counter flush). The other
 * side reads an index line only when its cached copy runs out; it reads the
 * control line before each call (flags) and after each publish
 * (sleep_seq), and that line stays in its cache while this side is awake.
 * Layout v3 adds pad records in message mode: a record of at most one
 * line, header included, never crosses a line of the data area
 * (pad_before(); the consumer skips pads in ivl__ring_peek_slow()).
 *
 * The handle (ring.h): one line holds what the fast paths use. limit is
 * how far this side's index may move with no look at the other side's
 * (min of the cached other index, or cached head + size, and the end of
 * the lap), so one compare covers room or data and the ring end; gate
 * folds the sticky error, an outstanding reservation or peek and the
 * handle's role (and its mode, for the mode-typed calls) into one test.
 * A stale limit is always too low, never too high: it only sends a call
 * here, where update_limit() recomputes it.
 *
 * Memory-ordering pairs:
 *
 *   R1 (ivl__ring_publish_tail, seq_cst store of prod->tail, a release)
 *      pairs with A2 (refresh_tail / ivl__ring_fill, acquire load of
 *      prod->tail): payload and record headers (pads included) written
 *      before R1 are visible to the consumer once it sees the new tail.
 *   R2 (ivl__ring_publish_head, seq_cst store of cons->head, a release)
 *      pairs with A1 (refresh_head, acquire load of cons->head):
 *      the consumer's reads of released bytes complete before the producer
 *      sees the space as free and overwrites it.
 *   R3 (set_flags, release store of prod->flags after the final tail)
 *      pairs with A3 (refresh_tail's acquire load of prod->flags, done
 *      before the tail load): a consumer that sees DONE_WRITING also sees
 *      every byte published before it, so EOF is never reported early. The
 *      inline read path loads only the tail (A2) and hands an empty ring to
 *      refresh_tail(), so EOF is always decided here, with A3 first.
 *   F1/F2: the sleep/wake handshake. A sleeper stores an odd sleep_seq
 *      (its control line), F1 (a full fence), then re-reads the other
 *      side's index and flags. A publisher's F2 is its index store itself:
 *      R1/R2 are sequentially consistent stores (xchg on x86, stlr on
 *      arm64, where the seq_cst load after it is an ldar), and the load of
 *      the other side's sleep_seq that follows is seq_cst too, so neither
 *      can pass the other, and both are in the single total order with F1:
 *      if F1 comes first the publisher sees the odd value and kicks; if the
 *      store comes first the sleeper sees the new index and does not
 *      sleep. Without that each side's load could pass its own earlier
 *      store (store buffering, allowed even on x86) and both would miss
 *      the other: a lost wake-up. Layout v2 and earlier paid a release
 *      store plus a separate full fence (a locked "or" on the stack) per
 *      publish: two barriers where one locked instruction does. Flag
 *      changes (set_flags, set_cons_flags) keep a release store and an
 *      explicit full fence: they are rare. That the sleep word and the
 *      index sit on different lines changes nothing in this argument; it
 *      is what keeps the publisher's load of sleep_seq a cache hit while
 *      the other side is awake. ivl_ring_arm() is F1 without a sleep (poll
 *      and epoll users; channels and the shim call it, so the handshake
 *      has no copy outside ring.c and ring_inline.h).
 *
 * The counters on the control line are plain relaxed stores of the
 * handle's own counts (stats_store), never read back: a flush
 * cannot lose an update, because each side's counts are kept and written by
 * that side alone. The fast path counts messages only; kicks are counted
 * where they are sent, and the suppressed doorbells are derived (ring.h).
 * They are stored when the side sleeps or arms, kicks, changes flags, on
 * ivl_ring_flush_stats(), and once per lap of its index: the producer's
 * fast path stops at the ring end and update_limit() sees the new lap; the
 * consumer's inline refill hands the first call of a lap to
 * ivl__ring_peek_slow() (ivl__ring_fill caps its limit at stats_end). A
 * store per lap and not per message, because the other side reads that
 * line (sleep_seq) after each of its publishes.
 *
 * Nothing this side wrote to shared memory is read back: whether a flush
 * has anything to publish is in the handle (held, held_seen), not in the
 * published index.
 *
 * A write racing with the consumer's close may succeed although no one
 * will read it: the close can land between the check of the consumer's
 * flags and the publish. That is the same as a write just before the
 * close, which nobody reads either (success means published, not
 * delivered, as with TCP); the next call reports -EPIPE.
 */
#include <errno.h>
#include <string.h>

#include <ivlink/ring.h>

#include "ring_inline.h"

#define RING_MIN_SIZE 64u
#define RING_MAX_SIZE (1u << 30)

static inline uint64_t load_acq64(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline uint32_t load_acq32(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void store_rel32(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline void store_relaxed64(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

IVL__FENCE_WORD_DEFINE

static inline void full_fence(void)
{
	ivl__full_fence();
}

static int poison(struct ivl_ring *r)
{
	r->error = -EPROTO;
	r->gate |= IVL__GATE_ERROR;
	return -EPROTO;
}

/* A reservation (producer) or a peek (consumer) is outstanding, or not:
 * the fast paths stay closed while one is. */
static void set_busy(struct ivl_ring *r, int busy)
{
	if (busy)
		r->gate |= IVL__GATE_BUSY;
	else
		r->gate &= (uint16_t)~IVL__GATE_BUSY;
}

static void stats_store(struct ivl_ring *r);

/* Recomputes the limit from the cached other index: never beyond what is
 * free (producer) or published (consumer), nor past the end of the lap. */
static void update_limit(struct ivl_ring *r)
{
	uint64_t end;

	if (r->is_producer) {
		end = ivl__ring_lap_end(r, r->p_tail);
		r->limit = ivl__ring_upto(r->p_head_cache + r->size, end)
			       ? r->p_head_cache + r->size
			       : end;
		/* The producer's fast path stops at the ring end, and its
		 * next call comes here: the per-lap store of the counters. */
		if (end != r->stats_end) {
			r->stats_end = end;
			stats_store(r);
		}
	} else {
		end = ivl__ring_lap_end(r, r->c_head);
		r->limit = ivl__ring_upto(r->c_tail_cache, end) ? r->c_tail_cache : end;
	}
}

/* Bytes of pad a record of footprint fp needs at pos (layout v3): up to the
 * next line when a record of at most a line would cross one. */
static uint64_t pad_before(const struct ivl_ring *r, uint64_t pos, uint64_t fp)
{
	if (r->mode != IVL_MODE_MESSAGE || r->size < 2 * IVL_CACHELINE ||
	    !ivl__rec_crosses(pos, fp))
		return 0;
	return IVL_CACHELINE - (pos & (IVL_CACHELINE - 1));
}

/* Copies len bytes into the ring at free-running position pos, wrapping.
 * An empty copy returns early: src may then be NULL (an empty record or
 * iovec), and memcpy() from NULL is undefined even for 0 bytes. */
static void copy_in(struct ivl_ring *r, uint64_t pos, const void *src, size_t len)
{
	uint32_t off = (uint32_t)pos & r->mask;
	size_t first = r->size - off;

	if (len == 0)
		return;
	if (first > len)
		first = len;
	memcpy(r->data + off, src, first);
	memcpy(r->data, (const uint8_t *)src + first, len - first);
}

static void copy_out(const struct ivl_ring *r, uint64_t pos, void *dst, size_t len)
{
	uint32_t off = (uint32_t)pos & r->mask;
	size_t first = r->size - off;

	if (len == 0)
		return;
	if (first > len)
		first = len;
	memcpy(dst, r->data + off, first);
	memcpy((uint8_t *)dst + first, r->data, len - first);
}

/* Describes len bytes at pos as one or two spans. */
static void make_spans(const struct ivl_ring *r, uint64_t pos, size_t len, struct ivl_span sp[2])
{
	uint32_t off = (uint32_t)pos & r->mask;
	size_t first = r->size - off;

	if (first > len)
		first = len;
	sp[0].base = r->data + off;
	sp[0].len = first;
	sp[1].base = r->data;
	sp[1].len = len - first;
}

void ivl_ring_format(struct ivl_ring_prod *prod, struct ivl_ring_cons *cons)
{
	memset(prod, 0, sizeof(*prod));
	memset(cons, 0, sizeof(*cons));
}

/* Reads both published indices (A1/A2: acquire, pairing with the release
 * stores of ivl__ring_publish_tail/head) and checks them as a pair: no
 * further apart than one ring, record-aligned in message mode. 0 or
 * -EPROTO. */
static int load_indices(const struct ivl_ring *r, uint64_t *tail, uint64_t *head)
{
	*tail = load_acq64(&r->prod->tail);
	*head = load_acq64(&r->cons->head);
	if (*tail - *head > r->size)
		return -EPROTO;
	if (r->mode == IVL_MODE_MESSAGE && ((*tail | *head) & (IVL_REC_ALIGN - 1)))
		return -EPROTO;
	return 0;
}

static int ring_init(struct ivl_ring *r, int producer, struct ivl_ring_prod *prod,
		     struct ivl_ring_cons *cons, void *data, uint32_t size, enum ivl_ring_mode mode,
		     uint32_t max_record, const struct ivl_notifier *n)
{
	uint64_t tail, head;

	memset(r, 0, sizeof(*r));
	/* Every fast path stays closed until the handle is complete. */
	r->gate = IVL__GATE_ERROR | IVL__GATE_PROD | IVL__GATE_CONS;
	if (!prod || !cons || !data || ((uintptr_t)data & 7))
		return -EINVAL;
	if (size < RING_MIN_SIZE || size > RING_MAX_SIZE || (size & (size - 1)))
		return -EINVAL;
	if (mode == IVL_MODE_MESSAGE) {
		if (ivl_rec_footprint(max_record) > size)
			return -EINVAL;
	} else if (mode != IVL_MODE_STREAM) {
		return -EINVAL;
	}

	r->prod = prod;
	r->cons = cons;
	r->data = data;
	r->size = size;
	r->mask = size - 1;
	r->mode = mode;
	r->max_record = max_record;
	r->fast_max = mode == IVL_MODE_MESSAGE ? max_record : size / 4;
	r->spin_ns = IVL_SPIN_NS_DEFAULT;
	if (n)
		r->notify = *n;

	/* The ring may already be in use (a handle re-attached after fork or a
	 * restart): start from the shared indices, read once and validated. */
	if (load_indices(r, &tail, &head) < 0)
		return -EPROTO;
	r->is_producer = producer;
	r->gate = (producer ? IVL__GATE_PROD : IVL__GATE_CONS) |
		  (mode == IVL_MODE_MESSAGE ? IVL__GATE_MSG : IVL__GATE_STREAM);
	if (producer) {
		r->p_tail = tail;
		r->p_head_cache = head;
		r->sleep_seq = __atomic_load_n(&prod->sleep_seq, __ATOMIC_RELAXED) & ~1u;
	} else {
		r->c_head = head;
		r->c_tail_cache = head;
		r->sleep_seq = __atomic_load_n(&cons->sleep_seq, __ATOMIC_RELAXED) & ~1u;
	}
	/* The counters are stored from the next lap on: a handle attached to
	 * a ring in use must not overwrite them with its zeros at once. */
	r->stats_end = ivl__ring_lap_end(r, producer ? tail : head);
	update_limit(r);
	return 0;
}

int ivl_ring_init_producer(struct ivl_ring *r, struct ivl_ring_prod *prod,
			   struct ivl_ring_cons *cons, void *data, uint32_t size,
			   enum ivl_ring_mode mode, uint32_t max_record,
			   const struct ivl_notifier *n)
{
	return ring_init(r, 1, prod, cons, data, size, mode, max_record, n);
}

int ivl_ring_init_consumer(struct ivl_ring *r, struct ivl_ring_prod *prod,
			   struct ivl_ring_cons *cons, void *data, uint32_t size,
			   enum ivl_ring_mode mode, uint32_t max_record,
			   const struct ivl_notifier *n)
{
	return ring_init(r, 0, prod, cons, data, size, mode, max_record, n);
}

int ivl_ring_set_cons_block(struct ivl_ring *r, struct ivl_ring_cons *cons)
{
	uint64_t head;

	if (!r->is_producer || !cons)
		return -EINVAL;
	/* Everything about the consumer is read through r->cons (its head,
	 * flags and sleep_seq), so one pointer moves them all. The new
	 * block's head is read once and validated as refresh_head() would. */
	head = load_acq64(&cons->head);
	r->cons = cons;
	if (r->p_tail - head > r->size ||
	    (r->mode == IVL_MODE_MESSAGE && (head & (IVL_REC_ALIGN - 1))))
		return poison(r);
	r->p_head_cache = head;
	update_limit(r);
	return 0;
}

/* ---------------------------------------------------------------- producer */

/* Re-reads the consumer's head and flags. Returns 0, -EPIPE, -ECONNRESET or
 * -EPROTO. */
static int refresh_head(struct ivl_ring *r)
{
	/* A1: pairs with R2 in ivl__ring_publish_head(). */
	uint64_t head = load_acq64(&r->cons->head);
	uint32_t flags = load_acq32(&r->cons->flags);

	/* The consumer can never be ahead of what we published, nor further
	 * behind than one ring. Unsigned arithmetic makes "ahead" huge. */
	if (r->p_tail - head > r->size)
		return poison(r);
	if (r->mode == IVL_MODE_MESSAGE && (head & (IVL_REC_ALIGN - 1)))
		return poison(r);
	r->p_head_cache = head;
	update_limit(r);
	if (flags & IVL_RING_F_ABORT)
		return -ECONNRESET;
	if (flags & IVL_RING_F_CLOSED)
		return -EPIPE;
	return 0;
}

size_t ivl_ring_free(struct ivl_ring *r)
{
	return r->size - (size_t)(r->p_tail - r->p_head_cache);
}

/*
 * Reserves room for len bytes (stream: at least 1) or one record of len
 * payload bytes (message, len may be 0: used by empty records, which need
 * only a header's room).
 */
static long reserve(struct ivl_ring *r, size_t len, struct ivl_span sp[2])
{
	uint64_t need, want, free_bytes, pad = 0;
	int rc;

	if (r->error)
		return r->error;
	if (!r->is_producer || r->p_active)
		return -EINVAL;
	if (r->mode == IVL_MODE_MESSAGE) {
		if (len > r->max_record)
			return -EMSGSIZE;
		pad = pad_before(r, r->p_tail, ivl_rec_footprint(len));
		need = want = pad + ivl_rec_footprint(len);
	} else {
		need = 1;
		want = len;
	}

	/* A closed or aborted consumer is reported at once, not only when the
	 * ring fills up: otherwise a writer to a closed channel would see up
	 * to a ring's worth of writes succeed. The flags are on the consumer's
	 * control line, with the sleep_seq that every publish reads anyway,
	 * and that line changes only when the consumer sleeps or closes, so
	 * this load hits in our cache. */
	if (__atomic_load_n(&r->cons->flags, __ATOMIC_RELAXED) &
	    (IVL_RING_F_CLOSED | IVL_RING_F_ABORT)) {
		rc = refresh_head(r);
		if (rc < 0)
			return rc;
	}

	/* Refresh the head only when the cached value cannot satisfy the
	 * whole request: that keeps the consumer's line out of our cache
	 * while space is plentiful, and avoids short stream writes caused
	 * only by a stale cache. */
	free_bytes = r->size - (r->p_tail - r->p_head_cache);
	if (free_bytes < want) {
		rc = refresh_head(r);
		if (rc < 0)
			return rc;
		free_bytes = r->size - (r->p_tail - r->p_head_cache);
		if (free_bytes < need)
			return -EAGAIN;
	}

	if (r->mode == IVL_MODE_MESSAGE) {
		if (pad) {
			/* Layout v3: a pad record to the line end, so that the
			 * record starts on the next line. It is published with
			 * the record (the tail moves past both at commit). */
			uint64_t h = (uint64_t)IVL_REC_PAD_MAGIC << 32 |
				     (uint32_t)(pad - sizeof(struct ivl_rec_hdr));

			memcpy(r->data + ((uint32_t)r->p_tail & r->mask), &h, sizeof(h));
			r->p_tail += pad;
		}
		make_spans(r, r->p_tail + sizeof(struct ivl_rec_hdr), len, sp);
	} else {
		if (len > free_bytes)
			len = (size_t)free_bytes;
		make_spans(r, r->p_tail, len, sp);
	}
	r->p_reserved = (uint32_t)len;
	r->p_active = 1;
	set_busy(r, 1);
	update_limit(r);
	return (long)len;
}

long ivl__ring_reserve_slow(struct ivl_ring *r, size_t len, struct ivl_span sp[2])
{
	if (len == 0)
		return r->error ? r->error : -EINVAL;
	return reserve(r, len, sp);
}

long ivl_ring_reserve(struct ivl_ring *r, size_t len, struct ivl_span sp[2])
{
	return ivl__ring_reserve(r, len, sp);
}

/*
 * Rings the other side. A failed kick is not reported to the caller: the
 * data it announces is already published, and an error here would make the
 * caller resend it (a duplicate) or drop its byte count. The sleeper still
 * wakes within one IVL_BLOCK_SLICE_NS and re-checks the ring.
 */
static void kick_peer(struct ivl_ring *r)
{
	if (r->notify.kick)
		(void)r->notify.kick(r->notify.ctx);
}

/* Stores this side's counters on its control line (layout.h): diagnostics
 * for ivlinkctl, written by this side only, never read back. */
static void stats_store(struct ivl_ring *r)
{
	uint64_t suppressed = ivl_ring_kicks_suppressed(r);

	if (r->is_producer) {
		store_relaxed64(&r->prod->kicks, r->kicks);
		store_relaxed64(&r->prod->kicks_suppressed, suppressed);
		store_relaxed64(&r->prod->msgs, r->p_msgs);
	} else {
		store_relaxed64(&r->cons->kicks, r->kicks);
		store_relaxed64(&r->cons->kicks_suppressed, suppressed);
		store_relaxed64(&r->cons->msgs, r->c_msgs);
	}
}

void ivl_ring_flush_stats(struct ivl_ring *r)
{
	stats_store(r);
}

/* The publish in ring_inline.h saw an odd sleep_seq after its seq_cst
 * store (F2): the other side sleeps, or is about to. Kick it once per odd
 * value; a value kicked already counts as a suppressed doorbell. */
void ivl__ring_after_publish_slow(struct ivl_ring *r, uint32_t seq)
{
	if (seq == r->kicked_seq)
		return;
	r->kicked_seq = seq;
	r->kicks++;
	stats_store(r);
	kick_peer(r);
}

/* Whether something committed or released with IVL_MORE may be unpublished
 * (then it is, by the caller): known from the handle's own counts, never by
 * reading back the index this side published. A later call without
 * IVL_MORE may have published it already; publishing the same index again
 * is harmless (counted as a publish: it may kick). */
static int take_held(struct ivl_ring *r)
{
	if (r->held == r->held_seen)
		return 0;
	r->held_seen = r->held;
	r->extra++;
	return 1;
}

int ivl_ring_commit(struct ivl_ring *r, size_t len, unsigned flags)
{
	return ivl__ring_commit(r, len, flags);
}

int ivl_ring_flush(struct ivl_ring *r)
{
	if (r->error)
		return r->error;
	if (!r->is_producer)
		return -EINVAL;
	if (take_held(r))
		ivl__ring_publish_tail(r);
	return 0;
}

/* Gathers len bytes from an iovec array, skipping the first skip bytes. */
/* Gathers len bytes from an iovec array into the ring at pos, starting skip
 * bytes into the array. */
static void gather(struct ivl_ring *r, uint64_t pos, const struct iovec *iov, int iovcnt,
		   size_t skip, size_t len)
{
	for (int i = 0; i < iovcnt && len > 0; i++) {
		size_t n;

		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		n = iov[i].iov_len - skip < len ? iov[i].iov_len - skip : len;
		copy_in(r, pos, (const uint8_t *)iov[i].iov_base + skip, n);
		skip = 0;
		pos += n;
		len -= n;
	}
}

/*
 * Stream writes publish every quarter ring inside a large copy, so that the
 * consumer drains while we fill. Publishing once at the end runs the two
 * sides in lockstep, each waiting for the other's whole ring, and on these
 * machines a wake-up costs more than copying a ring (ivlink-ring-bench).
 */
static long writev_stream(struct ivl_ring *r, const struct iovec *iov, int iovcnt, size_t total,
			  unsigned flags)
{
	size_t chunk = r->size / 4, done = 0;
	struct ivl_span sp[2];

	while (done < total) {
		size_t want = total - done < chunk ? total - done : chunk;
		long n = reserve(r, want, sp);
		int rc;

		if (n < 0)
			return done ? (long)done : n;
		gather(r, r->p_tail, iov, iovcnt, done, (size_t)n);
		/* Only the last piece honours the caller's IVL_MORE. */
		rc = ivl_ring_commit(r, (size_t)n, done + (size_t)n < total ? 0 : flags);
		if (rc < 0)
			return done ? (long)done : rc;
		done += (size_t)n;
		if ((size_t)n < want)
			break; /* the ring is full: a partial write */
	}
	return (long)done;
}

static long writev_slow(struct ivl_ring *r, const struct iovec *iov, int iovcnt, unsigned flags)
{
	struct ivl_span sp[2];
	size_t total = 0;
	uint64_t pos;
	long n;
	int rc;

	if (iovcnt < 0 || (iovcnt > 0 && !iov))
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > SIZE_MAX - total)
			return -EINVAL;
		total += iov[i].iov_len;
	}
	if (total == 0 && r->mode == IVL_MODE_STREAM)
		return r->error ? r->error : 0;

	if (r->mode == IVL_MODE_STREAM)
		return writev_stream(r, iov, iovcnt, total, flags);

	/* The internal reserve() takes len 0 for an empty record, which needs
	 * only a header's room and works even when max_record is 0. */
	n = reserve(r, total, sp);
	if (n < 0)
		return n;
	pos = r->p_tail + sizeof(struct ivl_rec_hdr);
	gather(r, pos, iov, iovcnt, 0, (size_t)n);
	rc = ivl_ring_commit(r, (size_t)n, flags);
	return rc < 0 ? rc : n;
}

long ivl__ring_write_slow(struct ivl_ring *r, const void *buf, size_t len, unsigned flags)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	long n = writev_slow(r, &iov, 1, flags);

	/* A write that wrapped moved the tail into the next lap: open the
	 * fast path there at once. */
	if (r->is_producer)
		update_limit(r);
	return n;
}

long ivl_ring_writev(struct ivl_ring *r, const struct iovec *iov, int iovcnt, unsigned flags)
{
	if (iovcnt == 1 && iov)
		return ivl__ring_write(r, iov[0].iov_base, iov[0].iov_len, flags);
	return writev_slow(r, iov, iovcnt, flags);
}

long ivl_ring_write(struct ivl_ring *r, const void *buf, size_t len, unsigned flags)
{
	return ivl__ring_write(r, buf, len, flags);
}

int ivl_ring_set_flags(struct ivl_ring *r, uint32_t flags)
{
	uint32_t old;
	int rc = 0;

	if (!r->is_producer)
		return -EINVAL;
	if (!r->error && take_held(r))
		ivl__ring_publish_tail(r);
	stats_store(r);
	old = __atomic_load_n(&r->prod->flags, __ATOMIC_RELAXED);
	/* R3: pairs with A3 in refresh_tail(). */
	store_rel32(&r->prod->flags, old | flags);
	/* F2 again: a consumer asleep on an empty ring must see the flag. */
	full_fence();
	if (__atomic_load_n(&r->cons->sleep_seq, __ATOMIC_RELAXED) & 1) {
		int krc = r->notify.kick ? r->notify.kick(r->notify.ctx) : 0;

		if (rc == 0)
			rc = krc;
	}
	return rc;
}

int ivl_ring_writable(struct ivl_ring *r, size_t need)
{
	uint64_t free_bytes;
	int rc;

	if (r->error)
		return 1;
	rc = refresh_head(r);
	if (rc < 0)
		return 1;
	free_bytes = r->size - (r->p_tail - r->p_head_cache);
	if (r->mode == IVL_MODE_MESSAGE) {
		uint64_t fp = ivl_rec_footprint(need > r->max_record ? r->max_record : need);

		return free_bytes >= pad_before(r, r->p_tail, fp) + fp;
	}
	if (need == 0)
		need = 1;
	return free_bytes >= (need < r->size ? need : r->size);
}

/* ---------------------------------------------------------------- consumer */

/* Re-reads the producer's tail. Returns the flags seen (>= 0) or -EPROTO. */
static long refresh_tail(struct ivl_ring *r)
{
	/* A3: pairs with R3 in ivl_ring_set_flags(); read before the tail so
	 * that a DONE_WRITING seen here comes with its final tail. */
	uint32_t flags = load_acq32(&r->prod->flags);
	/* A2: pairs with R1 in ivl__ring_publish_tail(). */
	uint64_t tail = load_acq64(&r->prod->tail);

	if (tail - r->c_head > r->size)
		return poison(r);
	if (r->mode == IVL_MODE_MESSAGE && (tail & (IVL_REC_ALIGN - 1)))
		return poison(r);
	r->c_tail_cache = tail;
	update_limit(r);
	return flags;
}

long ivl__ring_peek_slow(struct ivl_ring *r, struct ivl_span sp[2])
{
	uint64_t avail;
	struct ivl_rec_hdr h;
	long flags = 0;

	if (r->error)
		return r->error;
	if (r->is_producer)
		return -EINVAL;

	/* ABORT discards pending data, so it is honoured even while cached
	 * data remains. The flags are on the producer's control line, with
	 * the sleep_seq that every publish_head reads: a cache hit. */
	if (__atomic_load_n(&r->prod->flags, __ATOMIC_RELAXED) & IVL_RING_F_ABORT)
		return -ECONNRESET;
	/* The first call in a new lap (ivl__ring_fill sends it here). */
	if (ivl__ring_lap_end(r, r->c_head) != r->stats_end) {
		r->stats_end = ivl__ring_lap_end(r, r->c_head);
		stats_store(r);
	}

again:
	avail = r->c_tail_cache - r->c_head;
	if (avail == 0) {
		flags = refresh_tail(r);
		if (flags < 0)
			return flags;
		if (flags & IVL_RING_F_ABORT)
			return -ECONNRESET;
		avail = r->c_tail_cache - r->c_head;
		if (avail == 0) {
			if (flags & (IVL_RING_F_DONE_WRITING | IVL_RING_F_CLOSED))
				return r->mode == IVL_MODE_MESSAGE ? -EPIPE : 0;
			return -EAGAIN;
		}
	}

	if (r->mode == IVL_MODE_STREAM) {
		make_spans(r, r->c_head, (size_t)avail, sp);
		r->c_peeked = (uint32_t)avail;
		set_busy(r, 1);
		return (long)avail;
	}

	/* Message mode: the producer publishes whole records only. The
	 * header is copied once into a local and validated before use. */
	if (avail < sizeof(h))
		return poison(r);
	memcpy(&h, r->data + ((uint32_t)r->c_head & r->mask), sizeof(h));
	if (h.magic == IVL_REC_PAD_MAGIC) {
		/* Layout v3: a pad record ends exactly at the next line and
		 * is consumed with the record after it (its bytes are given
		 * back when that one is released). */
		uint64_t fp = ivl_rec_footprint(h.len);

		if (h.len >= IVL_CACHELINE || fp > avail ||
		    ((r->c_head + fp) & (IVL_CACHELINE - 1)) != 0)
			return poison(r);
		r->c_head += fp;
		update_limit(r);
		goto again;
	}
	if (h.magic != IVL_REC_MAGIC || h.len > r->max_record || ivl_rec_footprint(h.len) > avail)
		return poison(r);
	make_spans(r, r->c_head + sizeof(h), h.len, sp);
	r->c_peeked = (uint32_t)ivl_rec_footprint(h.len);
	set_busy(r, 1);
	return (long)h.len;
}

long ivl_ring_peek(struct ivl_ring *r, struct ivl_span sp[2])
{
	return ivl__ring_peek(r, sp);
}

int ivl_ring_release(struct ivl_ring *r, size_t len, unsigned flags)
{
	return ivl__ring_release(r, len, flags);
}

int ivl_ring_release_flush(struct ivl_ring *r)
{
	if (r->error)
		return r->error;
	if (r->is_producer)
		return -EINVAL;
	if (take_held(r))
		ivl__ring_publish_head(r);
	return 0;
}

/* Scatters len bytes from ring position pos into an iovec array. */
/* Scatters len bytes from ring position pos into an iovec array, starting
 * skip bytes into the array. */
static void scatter(const struct ivl_ring *r, uint64_t pos, const struct iovec *iov, int iovcnt,
		    size_t skip, size_t len)
{
	for (int i = 0; i < iovcnt && len > 0; i++) {
		size_t n;

		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		n = iov[i].iov_len - skip < len ? iov[i].iov_len - skip : len;
		copy_out(r, pos, (uint8_t *)iov[i].iov_base + skip, n);
		skip = 0;
		pos += n;
		len -= n;
	}
}

static long readv_slow(struct ivl_ring *r, const struct iovec *iov, int iovcnt)
{
	struct ivl_span sp[2];
	size_t cap = 0;
	uint64_t pos;
	long n;
	int rc;

	if (iovcnt < 0 || (iovcnt > 0 && !iov))
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > SIZE_MAX - cap)
			return -EINVAL;
		cap += iov[i].iov_len;
	}
	n = ivl_ring_peek(r, sp);
	if (n < 0 || (n == 0 && r->mode == IVL_MODE_STREAM))
		return n; /* error, empty, or stream EOF */
	if (r->mode == IVL_MODE_MESSAGE) {
		if ((size_t)n > cap) {
			r->c_peeked = 0; /* leave the record in place */
			set_busy(r, 0);
			return -EMSGSIZE;
		}
		pos = r->c_head + sizeof(struct ivl_rec_hdr);
	} else {
		if ((size_t)n > cap)
			n = (long)cap;
		pos = r->c_head;
	}
	if (cap == 0 && r->mode == IVL_MODE_STREAM) {
		r->c_peeked = 0;
		set_busy(r, 0);
		return 0;
	}
	if (r->mode == IVL_MODE_MESSAGE) {
		scatter(r, pos, iov, iovcnt, 0, (size_t)n);
		rc = ivl_ring_release(r, (size_t)n, 0);
		return rc < 0 ? rc : n;
	}
	/* Stream: release every quarter ring inside a large copy, for the
	 * reason given at writev_stream(). */
	for (size_t done = 0, chunk = r->size / 4;;) {
		size_t c = (size_t)n - done < chunk ? (size_t)n - done : chunk;

		scatter(r, r->c_head, iov, iovcnt, done, c);
		rc = ivl_ring_release(r, c, 0);
		if (rc < 0)
			return done ? (long)done : rc;
		done += c;
		if (done == (size_t)n || ivl_ring_peek(r, sp) <= 0)
			return (long)done;
	}
}

/* The end of ivl__ring_read() for a copy shorter than the caller's buffer:
 * src and fp were validated there. */
long ivl__ring_read_part(struct ivl_ring *r, void *buf, const uint8_t *src, size_t n, uint64_t fp)
{
	memcpy(buf, src, n);
	r->c_head += fp;
	r->c_msgs++;
	ivl__ring_publish_head(r);
	return (long)n;
}

/* The inline read for a length that is not known at compile time: where
 * the constant-size path of ivl__ring_read_msg/_stream hands a record or
 * range that does not fill the caller's buffer exactly. */
long ivl__ring_read_any(struct ivl_ring *r, void *buf, size_t len)
{
	return ivl__ring_read(r, buf, len);
}

long ivl__ring_read_slow(struct ivl_ring *r, void *buf, size_t len)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};

	return readv_slow(r, &iov, 1);
}

long ivl_ring_readv(struct ivl_ring *r, const struct iovec *iov, int iovcnt)
{
	if (iovcnt == 1 && iov)
		return ivl__ring_read(r, iov[0].iov_base, iov[0].iov_len);
	return readv_slow(r, iov, iovcnt);
}

long ivl_ring_read(struct ivl_ring *r, void *buf, size_t len)
{
	return ivl__ring_read(r, buf, len);
}

int ivl_ring_set_cons_flags(struct ivl_ring *r, uint32_t flags)
{
	uint32_t old;

	if (r->is_producer)
		return -EINVAL;
	stats_store(r);
	old = __atomic_load_n(&r->cons->flags, __ATOMIC_RELAXED);
	store_rel32(&r->cons->flags, old | flags);
	/* F2: a producer asleep on a full ring must see the close. */
	full_fence();
	if ((__atomic_load_n(&r->prod->sleep_seq, __ATOMIC_RELAXED) & 1) && r->notify.kick)
		return r->notify.kick(r->notify.ctx);
	return 0;
}

int ivl_ring_readable(struct ivl_ring *r)
{
	long flags;

	if (r->error)
		return 1;
	if (r->c_tail_cache != r->c_head)
		return 1;
	flags = refresh_tail(r);
	/* Only the flags that change what a read returns count: a hostile
	 * producer setting unknown bits must not turn waiting into spinning. */
	if (flags < 0 || (flags & (IVL_RING_F_DONE_WRITING | IVL_RING_F_CLOSED | IVL_RING_F_ABORT)))
		return 1;
	return r->c_tail_cache != r->c_head;
}

/* ---------------------------------------------------------------- waiting */

static int is_ready(struct ivl_ring *r, size_t need)
{
	return r->is_producer ? ivl_ring_writable(r, need) : ivl_ring_readable(r);
}

static uint32_t *own_sleep_seq(struct ivl_ring *r);

int ivl_ring_adopt(struct ivl_ring *r)
{
	uint32_t seq = __atomic_load_n(own_sleep_seq(r), __ATOMIC_RELAXED);
	uint64_t tail, head;

	if (r->error)
		return r->error;
	/* A newer sleep_seq: continue after it, on an even (awake) value, so
	 * that our next sleep advertises a value the other side never kicked. */
	if ((int32_t)(seq - r->sleep_seq) > 0)
		r->sleep_seq = (seq + 1) & ~1u;
	if (load_indices(r, &tail, &head) < 0)
		return poison(r);
	if (r->is_producer) {
		if (!r->p_active && (int64_t)(tail - r->p_tail) > 0)
			r->p_tail = tail;
		if ((int64_t)(head - r->p_head_cache) > 0 && r->p_tail - head <= r->size)
			r->p_head_cache = head;
	} else if (!r->c_peeked && (int64_t)(head - r->c_head) > 0) {
		r->c_head = head;
		r->c_tail_cache = tail;
	}
	update_limit(r);
	return 0;
}

static uint32_t *own_sleep_seq(struct ivl_ring *r)
{
	return r->is_producer ? &r->prod->sleep_seq : &r->cons->sleep_seq;
}

/* Advertises seq; an odd one (a sleep) also flushes the counters, since
 * our control line changes now anyway. */
static void set_sleep_seq(struct ivl_ring *r, uint32_t seq)
{
	if (seq & 1u)
		stats_store(r);
	r->sleep_seq = seq;
	__atomic_store_n(own_sleep_seq(r), seq, __ATOMIC_RELAXED);
}

void ivl_ring_arm(struct ivl_ring *r)
{
	set_sleep_seq(r, (r->sleep_seq + 2) | 1u);
	/* F1: pairs with F2 in ivl__ring_after_publish(); see the file
	 * comment. The caller re-checks the ring after this. */
	full_fence();
}

void ivl_ring_disarm(struct ivl_ring *r)
{
	if (r->sleep_seq & 1u)
		r->sleep_seq++;
	__atomic_store_n(own_sleep_seq(r), r->sleep_seq, __ATOMIC_RELAXED);
}

static int wait_loop(struct ivl_ring *r, size_t need, int64_t timeout_ns)
{
	int64_t start, deadline, spin_end, now;
	unsigned i = 0;
	int rc;

	if (is_ready(r, need))
		return 0;
	if (timeout_ns == 0)
		return -ETIMEDOUT;

	/* Saturate rather than overflow (signed overflow is undefined): a
	 * caller may pass INT64_MAX to mean "practically forever". */
	start = ivl__now_ns();
	deadline =
	    timeout_ns < 0 || timeout_ns > INT64_MAX - start ? INT64_MAX : start + timeout_ns;
	spin_end = r->spin_ns <= 0		    ? start
		   : r->spin_ns > INT64_MAX - start ? INT64_MAX
						    : start + r->spin_ns;
	if (spin_end > deadline || !r->notify.block)
		spin_end = deadline;

	/* Phase 1: spin. The index lines stay in our cache until the other
	 * side writes them, so this costs no bus traffic while idle. */
	for (;;) {
		if (is_ready(r, need))
			return 0;
		/* i++: the clock is read on the first pass too, so that
		 * spin_ns <= 0 really goes straight to sleep. */
		if ((i++ & 63) == 0 && ivl__now_ns() >= spin_end)
			break;
		ivl__cpu_relax();
	}
	if (!r->notify.block)
		return -ETIMEDOUT;

	/* Phase 2: advertise sleep, re-check, block. */
	for (;;) {
		if (r->notify.check) {
			rc = r->notify.check(r->notify.ctx);
			if (rc < 0)
				return rc;
		}
		set_sleep_seq(r, r->sleep_seq | 1u);
		/* F1: pairs with F2 in ivl__ring_after_publish(). */
		full_fence();
		if (is_ready(r, need)) {
			set_sleep_seq(r, r->sleep_seq + 1);
			return 0;
		}
		now = ivl__now_ns();
		if (now >= deadline) {
			set_sleep_seq(r, r->sleep_seq + 1);
			return -ETIMEDOUT;
		}
		rc = r->notify.block(r->notify.ctx, deadline - now < IVL_BLOCK_SLICE_NS
							? deadline - now
							: IVL_BLOCK_SLICE_NS);
		set_sleep_seq(r, r->sleep_seq + 1);
		if (rc < 0 && rc != -ETIMEDOUT)
			return rc;
		if (is_ready(r, need))
			return 0;
	}
}

int ivl_ring_wait_readable(struct ivl_ring *r, int64_t timeout_ns)
{
	if (r->is_producer)
		return -EINVAL;
	return wait_loop(r, 0, timeout_ns);
}

int ivl_ring_wait_writable(struct ivl_ring *r, size_t need, int64_t timeout_ns)
{
	if (!r->is_producer)
		return -EINVAL;
	return wait_loop(r, need, timeout_ns);
}
