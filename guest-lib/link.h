/* SPDX-License-Identifier: MIT */
/*
 * Private header of guest-lib/: the link, what one connection needs below
 * the API, shared by channels (channel.c) and the socket shim
 * (preload/conn*.c): the ring pair, the remote's doorbell, the notifier the
 * rings sleep and wake through, liveness of the remote, and arm/disarm of
 * a doorbell for poll-style waiting. The sleep/wake handshake itself is the
 * ring's (transport/ring.c, ring_inline.h); a link only tells the ring how
 * to kick, check and block.
 *
 * Threads: each direction's ring handle is single-threaded (the caller
 * serializes uses of one direction); the liveness calls and the kick may
 * run in any thread at any time.
 */
#ifndef IVLINK_GUEST_LIB_LINK_H
#define IVLINK_GUEST_LIB_LINK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <ivlink/ring.h>

#include "backend.h"

struct ivl_endpoint;
struct ivl__link;
struct ivl__link_kick;

/* One direction: a ring handle plus its notifier's state. */
struct ivl__link_dir {
	struct ivl_ring ring;
	struct ivl__link *lk;
	uint32_t snap;	 /* vector generation seen by check(), used by block() */
	int armed;	 /* sleep_seq made odd by ivl__link_arm() */
	int64_t poll_ns; /* polling mode: current back-off, 0 at each new wait */
	uint64_t sleeps; /* blocks, for statistics (relaxed atomic) */
};

struct ivl__link {
	struct ivl_endpoint *ep;
	uint32_t remote;	   /* the remote's peer id */
	uint32_t remote_epoch;	   /* its epoch when matched */
	uint32_t rx_vector;	   /* ours: the remote rings it for both rings */
	uint32_t remote_rx_vector; /* the remote's: we ring it */
	int kick_open;		   /* kick is valid (atomic) */
	struct ivl__kick kick;	   /* the remote's rx_vector doorbell */
	/* The remote half's wake_to (layout.h), or NULL: followed before
	 * each doorbell (ivl__link_watch_wake). */
	const uint32_t *remote_wake;
	uint32_t wake_seen;		  /* the wake_to value acted on (atomic) */
	int wake_busy;			  /* a thread is moving the doorbell (atomic) */
	int wake_moves;			  /* doorbells opened for wake_to so far */
	struct ivl__kick *kick_moved;	  /* what wake_to names, or NULL (atomic) */
	struct ivl__link_kick *kicks_old; /* every moved doorbell, closed with the link */
	int reset;			  /* sticky -ECONNRESET (atomic) */
	/* The notifier's check() reports a gone remote only while this is
	 * set (atomic): the shim clears it while its rendezvous is pending
	 * and the remote's epoch not yet final. */
	int check_alive;
	/* > 0: no sleep longer than this (fork-shared vectors, whose
	 * doorbells another process may consume). */
	int64_t block_max_ns;
	struct ivl__link_dir tx; /* producer */
	struct ivl__link_dir rx; /* consumer */
};

/* Zeroes lk for endpoint ep: no kick, liveness checked, no sleep cap. */
void ivl__link_init(struct ivl__link *lk, struct ivl_endpoint *ep);

/* 0 while the remote is the incarnation we matched and UP, else
 * -ECONNRESET (also once reset is set). A peer that left never comes back
 * with the same epoch, so this needs no sticky state of its own. */
int ivl__link_alive(struct ivl__link *lk);

/*
 * The receive side may still read after the remote left: the daemon keeps
 * a gone peer's section intact until it hands the id out again (and then
 * re-stamps it with the new epoch first), so what the remote published
 * before it went, its last bytes and its EOF, is still there and still
 * trustworthy while the section carries the epoch we matched. Returns 0
 * while that holds, -ECONNRESET once the section was reused.
 */
int ivl__link_rx_alive(struct ivl__link *lk);

/* The notifier of direction d for ivl_ring_init_producer/consumer(). */
void ivl__link_notifier(struct ivl__link_dir *d, struct ivl_notifier *n);

/* Records the remote's rx vector and opens its doorbell if it is known
 * (a peer that just joined may not be yet: the first kick retries).
 * Returns 0, -EAGAIN (not known yet) or -errno. */
int ivl__link_open_kick(struct ivl__link *lk, uint32_t vector);
/* Follows the remote half's wake_to word (layout.h) from now on: each
 * doorbell first looks at it and rings the vector it names, once it is
 * set. The socket shim's links only: a process forked from the remote's
 * owner may take a doorbell of its own (preload/conn_io.c). */
void ivl__link_watch_wake(struct ivl__link *lk, const uint32_t *wake_to);
/* Closes the doorbell if open, and the ones wake_to moved it to. */
void ivl__link_close_kick(struct ivl__link *lk);
/* Rings the remote (opening the doorbell first if needed). */
int ivl__link_kick(struct ivl__link *lk);

/* Asks for one doorbell on d without sleeping (poll and epoll users, and
 * a non-blocking call that found the ring empty or full), through
 * ivl_ring_arm(); disarm undoes it before a blocking wait, which arms by
 * itself. */
void ivl__link_arm(struct ivl__link_dir *d);
void ivl__link_disarm(struct ivl__link_dir *d);
/* Before a blocking ring wait: disarm, and restart the polling back-off. */
void ivl__link_wait_prepare(struct ivl__link_dir *d);

/* The duplicate of an iovec array that the data calls may advance: in
 * stack (IVL__IOV_STACK entries) or allocated (free() it when *out !=
 * stack). *total gets the byte count. Returns 0, -EINVAL (the lengths add
 * up to more than SSIZE_MAX, as writev(2) refuses) or -ENOMEM. */
#define IVL__IOV_STACK 16
int ivl__iov_dup(const struct iovec *iov, int cnt, struct iovec stack[IVL__IOV_STACK],
		 struct iovec **out, size_t *total);

/* Drops the first n bytes of an iovec array in place. */
static inline void ivl__iov_advance(struct iovec **iov, int *cnt, size_t n)
{
	while (*cnt > 0 && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	if (*cnt > 0 && n) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}

#endif /* IVLINK_GUEST_LIB_LINK_H */
