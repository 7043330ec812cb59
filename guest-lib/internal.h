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
	 * shim wakes its other threads waiting on v, preload/wait.c). */
	void (*drained)(uint32_t v);
};

/* One direction of a channel: a ring handle plus its notifier context. */
struct ivl__chan_dir {
	struct ivl_ring ring;
	struct ivl_channel *ch;
	uint32_t snap; /* vector generation seen by check(), used by block() */
	uint64_t sleeps;
	int64_t poll_ns; /* polling mode: current back-off, 0 at each new wait */
	int armed;	 /* sleep_seq made odd by ivl_channel_poll()/DONTWAIT */
};

struct ivl_channel {
	struct ivl_endpoint *ep;
	struct ivl_channel *next; /* ep->channels */
	uint32_t slot;
	struct ivl_ctab_own own; /* what our offer took: private, never re-read */
	uint32_t remote;
	uint32_t remote_slot;
	uint32_t remote_epoch;
	uint32_t rx_vector;
	uint32_t mode;
	struct ivl__kick kick; /* remote's rx_vector doorbell */
	int64_t send_ns;
	int64_t recv_ns;
	int reset; /* sticky -ECONNRESET */
	int shut_wr;
	struct ivl__chan_dir tx; /* producer */
	struct ivl__chan_dir rx; /* consumer */
};

/* transport/os.h's ivl__now_ns() under its older name, for the callers
 * not yet renamed (channel.c); new code calls ivl__now_ns(). */
static inline int64_t ivl__now_mono_ns(void)
{
	return ivl__now_ns();
}

/* The integer in environment variable name, or dflt if unset or invalid. */
int64_t ivl__env_i64(const char *name, int64_t dflt);

/* ivl_ring_arm() / ivl_ring_disarm() (ring.c, which holds the handshake),
 * recording in *armed whether a disarm is due. */
static inline void ivl__ring_arm(struct ivl_ring *r, int *armed)
{
	ivl_ring_arm(r);
	*armed = 1;
}

static inline void ivl__ring_disarm(struct ivl_ring *r, int *armed)
{
	if (!*armed)
		return;
	ivl_ring_disarm(r);
	*armed = 0;
}

/*
 * 0 while peer id's section still carries epoch, else -ECONNRESET. The
 * daemon keeps a gone peer's section intact until it hands the id out again
 * (and re-stamps it with the new epoch first), so what a remote published
 * before it left, its last bytes and its EOF, stays readable while this
 * holds (channel.c, the shim).
 */
int ivl__section_intact(struct ivl_region *rg, uint32_t id, uint32_t epoch);

/* A vector to receive a new channel's doorbells on, among those this
 * process owns (ep->rx_vectors: under the guest agent only one); seed
 * spreads channels over them (endpoint.c). */
uint32_t ivl__ep_pick_vector(struct ivl_endpoint *ep, uint32_t seed);

/* Drops the first n bytes of an iovec array in place (channel.c, the
 * shim's conn.c). */
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

/* Vector waiting (endpoint.c). */
uint32_t ivl__vwait_snapshot(struct ivl_endpoint *ep, uint32_t v);
int ivl__vwait_block(struct ivl_endpoint *ep, uint32_t v, uint32_t snap, int64_t timeout_ns);

/* Opens a kick handle for (peer, vector), processing daemon messages as
 * needed. Returns 0, -EAGAIN, or -errno. */
int ivl__ep_kick_open(struct ivl_endpoint *ep, uint32_t peer, uint32_t vector, struct ivl__kick *k);
/* ivl__ep_kick_open(), waiting up to timeout_ns for a peer's doorbells that
 * are on their way (its join message not yet read from the daemon); at once
 * -EAGAIN if no daemon connection of ours can bring them. */
int ivl__ep_kick_wait(struct ivl_endpoint *ep, uint32_t peer, uint32_t vector,
		      struct ivl__kick *k, int64_t timeout_ns);
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
