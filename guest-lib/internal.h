/* SPDX-License-Identifier: MIT */
/*
 * Private header of guest-lib/: the endpoint and channel objects shared by
 * endpoint.c and channel.c. Nothing here is backend specific.
 */
#ifndef IVLINK_GUEST_LIB_INTERNAL_H
#define IVLINK_GUEST_LIB_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/uio.h>

#include <ivlink/ivlink.h>
#include <ivlink/region.h>
#include <ivlink/ring.h>

#include "backend.h"
#include "poll_sys.h"
#include "link.h"
#include "os.h" /* transport/: ivl__now_ns(), ivl__cpu_relax() */

/*
 * Per-vector waiting state, process local (see endpoint.c). One cache line
 * each: threads of different vectors do not contend.
 */
struct ivl__vwait {
	uint32_t gen;	  /* futex word: bumped after each drain of the eventfd */
	uint32_t waiters; /* threads in futex_wait on gen */
	uint32_t leader;  /* 1 while one thread polls the eventfd */
	uint8_t pad[IVL_CACHELINE - 12];
} __attribute__((aligned(IVL_CACHELINE)));

struct ivl_endpoint {
	const struct ivl__backend_ops *ops;
	struct ivl__backend *be;
	struct ivl_region rg;
	uint32_t self;
	uint32_t self_epoch;
	uint32_t n_vectors;
	const int *vfd;	     /* own vector eventfds, owned by the backend */
	int ctl_fd;	     /* backend control fd or -1 */
	uint64_t rx_vectors; /* own vectors channels may use (backend.h) */
	int64_t poll_max_ns; /* > 0: polling mode, no vector ever fires */
	int epfd;	     /* ivl_endpoint_fd() */
	int64_t spin_ns;
	struct ivl__log log;
	struct ivl__vwait *vw; /* n_vectors entries */
	pthread_mutex_t lock;  /* backend process/kick_open, channel list */
	struct ivl_channel *channels;
	int ctl_lost;
	char region_name[IVL_REGION_NAME_MAX]; /* from rg.hdr, NUL terminated */
	/* Called after vector v's doorbell was consumed here (the socket
	 * shim wakes its other threads waiting on v, preload/wait_sleepers.c). */
	void (*drained)(uint32_t v);
	/* Per vector, 0 or the wake_to value (layout.h) naming the doorbell
	 * it was redirected to (ivl__ep_redirect_vector); under lock. */
	uint32_t *wake_to;
};

struct ivl_channel {
	struct ivl_endpoint *ep;
	struct ivl_channel *next; /* ep->channels */
	uint32_t slot;
	struct ivl_ctab_own own; /* what our offer took: private, never re-read */
	uint32_t remote_slot;
	uint32_t mode;
	int64_t send_ns;
	int64_t recv_ns;
	int shut_wr;
	int tx_dead;	     /* a send saw the remote gone: later sends fail at once */
	struct ivl__link lk; /* rings, doorbell, liveness (link.h) */
};

/*
 * In a process forked from ep's owner: from now on ep's vector v is heard on
 * a vector of to (an endpoint of this process's own in the same region):
 * ep's fd number for v is made to refer to that vector's eventfd, so every
 * wait on v through ep (and ep's pollable fd) waits on it instead of on the
 * vector the parent and its other children share. Once per vector; later
 * calls return the first answer. Returns the wake_to value (layout.h) that
 * names the new doorbell, for the halves whose remote should ring it, or
 * -errno (-EINVAL the control vector, -EOPNOTSUPP polling mode).
 */
int64_t ivl__ep_redirect_vector(struct ivl_endpoint *ep, uint32_t v, struct ivl_endpoint *to);

/* The integer in environment variable name, or dflt if unset or invalid. */
int64_t ivl__env_i64(const char *name, int64_t dflt);

/* A vector to receive a new channel's doorbells on, among those this
 * process owns (ep->rx_vectors: under the guest agent only one); seed
 * spreads channels over them (endpoint.c). */
uint32_t ivl__ep_pick_vector(struct ivl_endpoint *ep, uint32_t seed);

/* Vector waiting (endpoint.c). */
uint32_t ivl__vwait_snapshot(struct ivl_endpoint *ep, uint32_t v);
int ivl__vwait_block(struct ivl_endpoint *ep, uint32_t v, uint32_t snap, int64_t timeout_ns);

/* Opens a kick handle for (peer, vector), processing daemon messages as
 * needed. Returns 0, -EAGAIN, or -errno. */
int ivl__ep_kick_open(struct ivl_endpoint *ep, uint32_t peer, uint32_t vector, struct ivl__kick *k);
/* ivl__ep_kick_open(), waiting up to timeout_ns for a peer's doorbells that
 * are on their way (its join message not yet read from the daemon); at once
 * -EAGAIN if no daemon connection of ours can bring them. */
int ivl__ep_kick_wait(struct ivl_endpoint *ep, uint32_t peer, uint32_t vector, struct ivl__kick *k,
		      int64_t timeout_ns);
/* Runs the backend's process() if no other thread does. */
void ivl__ep_try_process(struct ivl_endpoint *ep);
/*
 * In a child after fork: ivl_endpoint_fd() becomes a set of the child's
 * own over the vector eventfds only. The inherited set is shared with the
 * parent and holds the daemon connection, which only the parent reads:
 * readable whenever a peer joins or leaves, it kept every forked worker
 * of a pre-fork server (nginx) spinning. Returns 0 or -errno.
 */
int ivl__ep_fork_child(struct ivl_endpoint *ep);

void ivl__ep_link(struct ivl_endpoint *ep, struct ivl_channel *ch);
void ivl__ep_unlink(struct ivl_endpoint *ep, struct ivl_channel *ch);

#endif /* IVLINK_GUEST_LIB_INTERNAL_H */
