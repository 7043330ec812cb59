/* SPDX-License-Identifier: MIT */
/*
 * Private to the ivlink tree (never installed; libivlink.so does not export
 * these calls): the SPSC ring, one producer, one consumer, in shared memory.
 *
 * A ring is three pieces of shared memory (see layout.h): the producer block
 * (an index line with the tail, a control line with flags, sleep_seq and
 * counters), the consumer block (the same with the head) and a power-of-two
 * data area. struct ivl_ring is a process-local handle for ONE
 * side of a ring: a producer handle only calls the producer functions, a
 * consumer handle only the consumer functions. Handles are not thread safe:
 * one thread at a time per handle, as with a socket's send or receive side.
 *
 * Two modes share the code: stream (a byte stream, writes may be partial) and
 * message (records of at most max_record bytes, each delivered whole).
 *
 * Every function returns >= 0 on success and -errno on failure; none sets
 * errno. Errors common to all calls:
 *   -EPROTO      the other side published an impossible index, length or
 *                record header; the handle is poisoned and keeps returning
 *                -EPROTO (the other side is buggy or hostile).
 *   -ECONNRESET  the other side set IVL_RING_F_ABORT, or the notifier's
 *                check() reported the peer gone.
 *
 * Wake-ups: a side that is about to block makes its sleep_seq odd, issues a
 * full fence and re-checks the ring; a side that publishes (tail or head)
 * does so with a sequentially consistent store and then reads the other's
 * sleep_seq. This is Dekker's pattern: at least one side sees the other's
 * store, so either the sleeper sees the new index and does not sleep, or the
 * publisher sees the odd sleep_seq and kicks. A kick is sent at most once per
 * sleep (the publisher remembers the sleep_seq it kicked), so a busy stream
 * with a spinning consumer sends no doorbells at all.
 */
#ifndef IVLINK_RING_H
#define IVLINK_RING_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <ivlink/ivlink.h> /* struct ivl_span, IVL_MORE, IVL_SPIN_NS_DEFAULT */
#include <ivlink/layout.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * How a ring wakes the other side and sleeps. The core is OS independent;
 * the host backend implements these with eventfds, the guest backend with
 * the ivshmem Doorbell register and VFIO MSI-X eventfds, tests with futexes
 * or pipes.
 *
 * kick:  wake the other side of this ring. Called only after the other side
 *        advertised that it sleeps. Returns 0 or -errno.
 * block: sleep until kicked or timeout_ns (>= 0) passes. Spurious returns
 *        are fine. Returns 0, -ETIMEDOUT, -EINTR or another -errno.
 * check: optional (may be NULL). Returns 0 while the other side is alive,
 *        -ECONNRESET once it is known to be gone. Called between sleeps so
 *        that a dead peer is noticed within one block slice.
 */
struct ivl_notifier {
	int (*kick)(void *ctx);
	int (*block)(void *ctx, int64_t timeout_ns);
	int (*check)(void *ctx);
	void *ctx;
};

/* struct ivl_span (a wrapped range is two spans), IVL_MORE (the flag of
 * commit/release), IVL_SPIN_NS_DEFAULT and IVL_BLOCK_SLICE_NS are part of
 * the native API: they are defined in ivlink.h. */

/*
 * The handle. Line 0 holds everything the inline fast paths of either role
 * touch (ring_inline.h): the data base, mask and size, this side's own
 * index, the limit up to which the fast path may move it without re-reading
 * the other side's index, the two shared blocks, the message count and the
 * gate. Fields named p_ and c_ that share a union belong to the producer and
 * the consumer role: a handle has one.
 *
 * Counters: the fast path counts messages only (msgs); a call with IVL_MORE
 * counts held, a publish of held data (flush, release_flush, set_flags)
 * counts extra, and kicks are counted where they are sent. Every publish
 * either kicks or not, so the suppressed doorbells are derived:
 * ivl_ring_kicks_suppressed().
 */
#define IVL__GATE_ERROR	 0x1u  /* sticky r->error */
#define IVL__GATE_BUSY	 0x2u  /* a reservation or a peek is outstanding */
#define IVL__GATE_PROD	 0x4u  /* a producer handle: consumer calls go slow */
#define IVL__GATE_CONS	 0x8u  /* a consumer handle: producer calls go slow */
#define IVL__GATE_MSG	 0x10u /* message mode: the stream-only calls go slow */
#define IVL__GATE_STREAM 0x20u /* stream mode: the message-only calls go slow */

struct ivl_ring {
	/* Line 0: the fast path. */
	uint8_t *data;
	union {
		uint64_t p_tail; /* includes committed but unpublished bytes */
		uint64_t c_head; /* includes released but unpublished bytes */
	};
	/* Producer: the tail may grow to limit with no re-read of the head
	 * (min of cached head + size and the ring end). Consumer: the head
	 * may grow to limit (min of cached tail and the ring end). */
	uint64_t limit;
	struct ivl_ring_prod *prod;
	struct ivl_ring_cons *cons;
	union {
		uint64_t p_msgs;
		uint64_t c_msgs;
	};
	uint32_t mask;
	uint16_t gate;	   /* IVL__GATE_*: a set bit sends a call to ring.c */
	uint16_t mode;	   /* enum ivl_ring_mode */
	uint32_t size;	   /* validated at init, a power of two */
	uint32_t fast_max; /* message: max_record; stream: size / 4 */

	/* Line 1 and on: slow paths. Shared memory validated at init. */
	uint32_t max_record;
	int error; /* sticky -EPROTO */
	union {
		uint64_t p_head_cache; /* last consumer head seen */
		uint64_t c_tail_cache; /* last producer tail seen */
	};
	uint64_t kicks;	     /* doorbells sent */
	uint64_t held;	     /* commits/writes/releases with IVL_MORE */
	uint64_t extra;	     /* publishes of held data (flush and the like) */
	uint64_t held_seen;  /* held as of the last such publish */
	uint64_t stats_end;  /* end of the lap of the last counter store */
	uint32_t p_reserved; /* bytes handed out by reserve() */
	uint32_t p_active;   /* 1 while a reservation is outstanding */
	uint32_t c_peeked;   /* bytes (with header and pad) of the peeked item */
	uint32_t kicked_seq; /* the other side's sleep_seq we already kicked */
	uint32_t sleep_seq;  /* this side's sleep_seq (odd while asleep) */
	int is_producer;     /* role of this handle */
	int64_t spin_ns;     /* spin budget before blocking, >= 0 */
	struct ivl_notifier notify;
};

#if UINTPTR_MAX == UINT64_MAX
static_assert(offsetof(struct ivl_ring, max_record) == 64, "the fast path's fields fill line 0");
#endif

/*
 * Doorbells this side did not send: publishes (one per message, minus those
 * held with IVL_MORE, plus the publishes of held data) minus kicks. Relaxed
 * loads: another thread may ask for statistics while the owner runs.
 */
static inline uint64_t ivl_ring_kicks_suppressed(const struct ivl_ring *r)
{
	uint64_t msgs = __atomic_load_n(&r->p_msgs, __ATOMIC_RELAXED);
	uint64_t held = __atomic_load_n(&r->held, __ATOMIC_RELAXED);
	uint64_t extra = __atomic_load_n(&r->extra, __ATOMIC_RELAXED);
	uint64_t kicks = __atomic_load_n(&r->kicks, __ATOMIC_RELAXED);

	return msgs - held + extra - kicks;
}

/*
 * Formats the shared blocks of a new ring: zero indices, flags and counters.
 * Called once by whoever creates the ring, before either side attaches.
 */
void ivl_ring_format(struct ivl_ring_prod *prod, struct ivl_ring_cons *cons);

/*
 * Attaches a handle to a ring. size must be a power of two between 64 bytes
 * and 1 GiB, data 8-byte aligned; in message mode max_record must satisfy
 * 8 + align8(max_record) <= size. The current shared indices are read and
 * validated (a handle can attach to a ring already in use, e.g. after fork).
 * Returns 0, -EINVAL (bad arguments) or -EPROTO (shared indices invalid).
 */
int ivl_ring_init_producer(struct ivl_ring *r, struct ivl_ring_prod *prod,
			   struct ivl_ring_cons *cons, void *data, uint32_t size,
			   enum ivl_ring_mode mode, uint32_t max_record,
			   const struct ivl_notifier *n);
int ivl_ring_init_consumer(struct ivl_ring *r, struct ivl_ring_prod *prod,
			   struct ivl_ring_cons *cons, void *data, uint32_t size,
			   enum ivl_ring_mode mode, uint32_t max_record,
			   const struct ivl_notifier *n);

/*
 * Moves a producer handle to another consumer block (the socket shim's
 * client writes before the server's half exists, against a private block,
 * then moves to the server's). The new block's head is read and validated
 * as at attach. Returns 0, -EINVAL (not a producer handle) or -EPROTO
 * (poisoned: the head is impossible for what we published).
 */
int ivl_ring_set_cons_block(struct ivl_ring *r, struct ivl_ring_cons *cons);

/*
 * Stores this side's counters (kicks, kicks_suppressed, msgs) into its
 * control line. The ring does so itself when the side sleeps, kicks or sets
 * flags, and once per lap of its index (on a slow path: the fast path
 * stops at the ring end); call this for exact shared counters (tests,
 * before a final status).
 */
void ivl_ring_flush_stats(struct ivl_ring *r);

/* ---------------------------------------------------------------- producer */

/*
 * Reserves space for writing without a copy.
 * Stream mode: up to len bytes (fewer if less is free); message mode:
 * exactly one record of len payload bytes. On success fills sp[0] (and sp[1]
 * when the space wraps, else sp[1].len = 0) and returns the bytes reserved.
 * Returns -EAGAIN when nothing (stream) or not enough (message) is free,
 * -EMSGSIZE when len > max_record (message), -EINVAL when len == 0 or a
 * reservation is outstanding, -EPIPE when the consumer closed, -ECONNRESET,
 * -EPROTO.
 */
long ivl_ring_reserve(struct ivl_ring *r, size_t len, struct ivl_span sp[2]);

/*
 * Commits len bytes of the outstanding reservation (len <= reserved; in
 * message mode the record is shortened to len, which may be 0). Publishes
 * the new tail unless flags has IVL_MORE. Returns 0, -EINVAL.
 */
int ivl_ring_commit(struct ivl_ring *r, size_t len, unsigned flags);

/* Publishes everything committed with IVL_MORE. Returns 0 or -errno (kick). */
int ivl_ring_flush(struct ivl_ring *r);

/*
 * Copies data in. Stream: writes up to len bytes and returns how many
 * (a partial write when the ring is nearly full). Message: writes one
 * record of len bytes (0 allowed) and returns len. Errors as reserve(),
 * except that a zero-length stream write returns 0.
 */
long ivl_ring_write(struct ivl_ring *r, const void *buf, size_t len, unsigned flags);
long ivl_ring_writev(struct ivl_ring *r, const struct iovec *iov, int iovcnt, unsigned flags);

/*
 * Sets IVL_RING_F_DONE_WRITING, _CLOSED or _ABORT (after publishing pending
 * data) and kicks a sleeping consumer. Returns 0 or -errno.
 */
int ivl_ring_set_flags(struct ivl_ring *r, uint32_t flags);

/* Free bytes as of the last refresh (never more than truly free). */
size_t ivl_ring_free(struct ivl_ring *r);

/* ---------------------------------------------------------------- consumer */

/*
 * Looks at readable data without a copy. Stream: every byte available;
 * message: the next record's payload. Fills sp[0..1] and returns the byte
 * count (a zero-length record returns 0 with sp[0].len == 0; tell it from
 * an empty ring with the return of ivl_ring_readable()).
 * Returns -EAGAIN when empty, 0 at EOF in stream mode (the producer set
 * DONE_WRITING or CLOSED and everything was read); in message mode EOF is
 * -EPIPE so that it differs from an empty record. -ECONNRESET, -EPROTO.
 */
long ivl_ring_peek(struct ivl_ring *r, struct ivl_span sp[2]);

/*
 * Consumes len bytes (stream, len <= peeked) or the peeked record (message,
 * len ignored). Publishes the head unless flags has IVL_MORE.
 */
int ivl_ring_release(struct ivl_ring *r, size_t len, unsigned flags);

/* Publishes a head advanced with IVL_MORE. */
int ivl_ring_release_flush(struct ivl_ring *r);

/*
 * Copies data out. Stream: up to len bytes, returns the count, 0 at EOF.
 * Message: one record; -EMSGSIZE (record left in place) if it is longer
 * than len; -EPIPE at EOF. -EAGAIN when empty.
 */
long ivl_ring_read(struct ivl_ring *r, void *buf, size_t len);
long ivl_ring_readv(struct ivl_ring *r, const struct iovec *iov, int iovcnt);

/* Sets IVL_RING_F_CLOSED or _ABORT on the consumer block. */
int ivl_ring_set_cons_flags(struct ivl_ring *r, uint32_t flags);

/*
 * Readiness without side effects: 1 if a read would not return -EAGAIN
 * (data, EOF, reset or error), 0 if empty. Consumer handles only.
 */
int ivl_ring_readable(struct ivl_ring *r);

/* 1 if at least need bytes (stream) or a record of need bytes (message) fit,
 * or the consumer closed. Producer handles only. */
int ivl_ring_writable(struct ivl_ring *r, size_t need);

/*
 * For a ring end that several processes use in turn (a socket shared over
 * fork): another process may have moved this end's published index and
 * sleep_seq since this handle last did. Adopts them when they are ahead of
 * the handle's copy (never between reserve and commit, or peek and
 * release), validated as at attach. Returns 0, or -EPROTO (poisoned).
 */
int ivl_ring_adopt(struct ivl_ring *r);

/* ---------------------------------------------------------------- waiting */

/*
 * Asks for one doorbell without sleeping (poll and epoll users, non-blocking
 * calls): a new odd sleep_seq, which the other side kicks once, and the
 * fence F1 of the handshake (ring.c). The caller re-checks the ring
 * afterwards (readable/writable) and calls ivl_ring_disarm() before a
 * blocking wait, since the wait keeps an odd value as it is and the other
 * side kicks each odd value only once.
 */
void ivl_ring_arm(struct ivl_ring *r);
void ivl_ring_disarm(struct ivl_ring *r);

/*
 * Waits until ivl_ring_readable() (consumer) or ivl_ring_writable(need)
 * (producer): spins for spin_ns, then advertises sleep and blocks on the
 * notifier in slices of at most IVL_BLOCK_SLICE_NS. timeout_ns < 0 waits
 * forever, 0 only checks. Returns 0 when ready, -ETIMEDOUT, -EINTR (from
 * the notifier), -ECONNRESET (check() failed), -EPROTO.
 */
int ivl_ring_wait_readable(struct ivl_ring *r, int64_t timeout_ns);
int ivl_ring_wait_writable(struct ivl_ring *r, size_t need, int64_t timeout_ns);

/* Bytes a message of len payload bytes occupies in the ring. */
static inline uint64_t ivl_rec_footprint(uint64_t len)
{
	return sizeof(struct ivl_rec_hdr) +
	       ((len + IVL_REC_ALIGN - 1) & ~(uint64_t)(IVL_REC_ALIGN - 1));
}

#ifdef __cplusplus
}
#endif
#endif /* IVLINK_RING_H */
