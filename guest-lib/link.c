/* SPDX-License-Identifier: MIT */
/*
 * The link below a channel or a shim connection (link.h): liveness of the
 * remote, its doorbell, and the notifier through which the rings kick,
 * check and block. Backend independent: doorbells go through the kick
 * handle, sleeps through the endpoint's vector waiting (endpoint.c).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "internal.h"
#include "link.h"

#define POLL_MIN_NS 10000LL /* polling mode: first back-off, 10 us */
/* Doorbells a link opens for the remote's wake_to in its lifetime: a fork
 * moves it once per process; a remote that keeps rewriting it gets no more
 * (its own wake-ups are what it loses). */
#define WAKE_MOVES_MAX 8

/* A doorbell the remote's wake_to moved us to. The earlier ones stay open
 * until the link closes: another thread may be ringing one. */
struct ivl__link_kick {
	struct ivl__kick k;
	struct ivl__link_kick *next;
};

void ivl__link_init(struct ivl__link *lk, struct ivl_endpoint *ep)
{
	memset(lk, 0, sizeof(*lk));
	lk->ep = ep;
	lk->kick.fd = -1;
	lk->check_alive = 1;
	lk->tx.lk = lk;
	lk->rx.lk = lk;
}

/* ---------------------------------------------------------------- liveness */

int ivl__link_alive(struct ivl__link *lk)
{
	struct ivl_peer_view pv;

	if (__atomic_load_n(&lk->reset, __ATOMIC_RELAXED))
		return -ECONNRESET;
	if (ivl_region_peer_view(&lk->ep->rg, lk->remote, &pv) < 0 || pv.state != IVL_PEER_UP ||
	    pv.epoch != lk->remote_epoch)
		return -ECONNRESET;
	return 0;
}

/* 0 while peer id's section still carries epoch, else -ECONNRESET. */
static int section_intact(struct ivl_region *rg, uint32_t id, uint32_t epoch)
{
	struct ivl_section_hdr *sec = ivl_region_section(rg, id);

	/* Acquire pairs with the release stores of ivl_section_reset(): a
	 * reset in progress has cleared the magic, a finished one changed the
	 * epoch. */
	if (!sec || __atomic_load_n(&sec->magic, __ATOMIC_ACQUIRE) != IVL_SECTION_MAGIC ||
	    __atomic_load_n(&sec->owner_epoch, __ATOMIC_ACQUIRE) != epoch)
		return -ECONNRESET;
	return 0;
}

int ivl__link_rx_alive(struct ivl__link *lk)
{
	if (ivl__link_alive(lk) == 0)
		return 0;
	if (__atomic_load_n(&lk->reset, __ATOMIC_RELAXED))
		return -ECONNRESET;
	return section_intact(&lk->ep->rg, lk->remote, lk->remote_epoch);
}

/* ---------------------------------------------------------------- doorbell */

static int try_open_kick(struct ivl__link *lk, uint32_t vector)
{
	int rc;

	if (__atomic_load_n(&lk->kick_open, __ATOMIC_ACQUIRE))
		return 0;
	rc = ivl__ep_kick_open(lk->ep, lk->remote, vector, &lk->kick);
	if (rc == 0)
		__atomic_store_n(&lk->kick_open, 1, __ATOMIC_RELEASE);
	return rc;
}

int ivl__link_open_kick(struct ivl__link *lk, uint32_t vector)
{
	__atomic_store_n(&lk->remote_rx_vector, vector, __ATOMIC_RELAXED);
	return try_open_kick(lk, vector);
}

void ivl__link_watch_wake(struct ivl__link *lk, const uint32_t *wake_to)
{
	lk->remote_wake = wake_to;
}

void ivl__link_close_kick(struct ivl__link *lk)
{
	struct ivl__link_kick *m;

	__atomic_store_n(&lk->kick_moved, NULL, __ATOMIC_RELEASE);
	while ((m = lk->kicks_old) != NULL) {
		lk->kicks_old = m->next;
		lk->ep->ops->kick_close(&m->k);
		free(m);
	}
	lk->wake_seen = 0;
	lk->wake_moves = 0;
	if (!__atomic_load_n(&lk->kick_open, __ATOMIC_ACQUIRE))
		return;
	lk->ep->ops->kick_close(&lk->kick);
	__atomic_store_n(&lk->kick_open, 0, __ATOMIC_RELEASE);
}

/*
 * Opens the doorbell the remote's wake_to names, if it changed. One thread
 * at a time (wake_busy); the others ring the current one meanwhile.
 *
 * W2: the seq_cst load of wake_to comes after the ring's publish and its
 * load of the remote's sleep_seq (both seq_cst, F2 in transport/ring.c).
 * It pairs with W1 in the owner (preload/conn_io.c: a seq_cst store of
 * wake_to, then a re-check of its rings before it sleeps again): either
 * the owner's re-check sees what we published, or this load sees the new
 * target. A stale target is rung only for a sleep the owner ended itself.
 */
static void wake_follow(struct ivl__link *lk)
{
	uint32_t w = __atomic_load_n(lk->remote_wake, __ATOMIC_SEQ_CST);
	struct ivl__link_kick *m;
	int zero = 0, rc;

	if (w == __atomic_load_n(&lk->wake_seen, __ATOMIC_ACQUIRE) ||
	    !__atomic_compare_exchange_n(&lk->wake_busy, &zero, 1, 0, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		return;
	if (w == lk->wake_seen)
		goto out;
	if (!(w & IVL_WAKE_TO_SET)) { /* back to the owner's rx_vector */
		__atomic_store_n(&lk->kick_moved, NULL, __ATOMIC_RELEASE);
		__atomic_store_n(&lk->wake_seen, w, __ATOMIC_RELEASE);
		goto out;
	}
	if (lk->wake_moves >= WAKE_MOVES_MAX) {
		__atomic_store_n(&lk->wake_seen, w, __ATOMIC_RELEASE);
		goto out;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		goto out; /* try again at the next doorbell */
	m->k.fd = -1;
	/* The backend validates peer and vector against the region's. */
	rc = ivl__ep_kick_open(lk->ep, IVL_WAKE_TO_PEER(w), IVL_WAKE_TO_VECTOR(w), &m->k);
	if (rc < 0) {
		free(m);
		/* -EAGAIN: a peer that just joined, try again next time; any
		 * other error: a target we cannot ring, keep the current one. */
		if (rc != -EAGAIN)
			__atomic_store_n(&lk->wake_seen, w, __ATOMIC_RELEASE);
		goto out;
	}
	lk->wake_moves++;
	m->next = lk->kicks_old;
	lk->kicks_old = m;
	__atomic_store_n(&lk->kick_moved, &m->k, __ATOMIC_RELEASE);
	__atomic_store_n(&lk->wake_seen, w, __ATOMIC_RELEASE);
out:
	__atomic_store_n(&lk->wake_busy, 0, __ATOMIC_RELEASE);
}

int ivl__link_kick(struct ivl__link *lk)
{
	const struct ivl__kick *k;

	if (lk->remote_wake)
		wake_follow(lk);
	k = __atomic_load_n(&lk->kick_moved, __ATOMIC_ACQUIRE);
	if (k)
		return lk->ep->ops->kick(k);
	/* The remote's doorbells may have been unknown when the link was
	 * made (a peer that just joined): open them now. */
	if (!__atomic_load_n(&lk->kick_open, __ATOMIC_ACQUIRE) &&
	    try_open_kick(lk, __atomic_load_n(&lk->remote_rx_vector, __ATOMIC_RELAXED)) < 0)
		return 0;
	return lk->ep->ops->kick(&lk->kick);
}

/* ---------------------------------------------------------------- notifier */

static int n_kick(void *ctx)
{
	struct ivl__link_dir *d = ctx;

	return ivl__link_kick(d->lk);
}

/* Called by ring.c before it advertises sleep and re-checks the ring: the
 * generation snapshot taken here is what block() compares against, so a
 * doorbell rung after the re-check is never lost (endpoint.c). The snapshot
 * comes before the liveness check so that a control doorbell rung after a
 * peer left is not missed either. */
static int n_check(void *ctx)
{
	struct ivl__link_dir *d = ctx;
	struct ivl__link *lk = d->lk;

	d->snap = ivl__vwait_snapshot(lk->ep, lk->rx_vector);
	if (!__atomic_load_n(&lk->check_alive, __ATOMIC_ACQUIRE))
		return 0;
	return ivl__link_alive(lk);
}

static int n_block(void *ctx, int64_t timeout_ns)
{
	struct ivl__link_dir *d = ctx;
	struct ivl__link *lk = d->lk;
	struct ivl_endpoint *ep = lk->ep;

	__atomic_store_n(&d->sleeps, d->sleeps + 1, __ATOMIC_RELAXED);
	if (ep->poll_max_ns > 0) {
		/* Polling mode: no doorbell will ever wake us, so sleep a
		 * doubling back-off (POLL_MIN_NS to the backend's bound) and
		 * let ring.c re-check; a vector eventfd can still be written
		 * locally (another thread's drain), which only shortens it. */
		d->poll_ns = d->poll_ns ? d->poll_ns * 2 : POLL_MIN_NS;
		if (d->poll_ns > ep->poll_max_ns)
			d->poll_ns = ep->poll_max_ns;
		if (timeout_ns < 0 || timeout_ns > d->poll_ns)
			timeout_ns = d->poll_ns;
	}
	if (lk->block_max_ns > 0 && (timeout_ns < 0 || timeout_ns > lk->block_max_ns))
		timeout_ns = lk->block_max_ns;
	return ivl__vwait_block(ep, lk->rx_vector, d->snap, timeout_ns);
}

void ivl__link_notifier(struct ivl__link_dir *d, struct ivl_notifier *n)
{
	n->kick = n_kick;
	n->check = n_check;
	n->block = n_block;
	n->ctx = d;
}

void ivl__link_arm(struct ivl__link_dir *d)
{
	ivl_ring_arm(&d->ring);
	d->armed = 1;
}

void ivl__link_disarm(struct ivl__link_dir *d)
{
	if (!d->armed)
		return;
	ivl_ring_disarm(&d->ring);
	d->armed = 0;
}

void ivl__link_wait_prepare(struct ivl__link_dir *d)
{
	ivl__link_disarm(d);
	d->poll_ns = 0;
}

/* ---------------------------------------------------------------- iovec */

int ivl__iov_dup(const struct iovec *iov, int cnt, struct iovec stack[IVL__IOV_STACK],
		 struct iovec **out, size_t *total)
{
	struct iovec *v = stack;

	*total = 0;
	*out = stack;
	if (cnt < 0 || (cnt && !iov))
		return -EINVAL;
	for (int i = 0; i < cnt; i++) {
		if (iov[i].iov_len > (size_t)SSIZE_MAX - *total)
			return -EINVAL;
		*total += iov[i].iov_len;
	}
	if (cnt > IVL__IOV_STACK) {
		v = malloc(sizeof(*v) * (size_t)cnt);
		if (!v)
			return -ENOMEM;
	}
	if (cnt)
		memcpy(v, iov, sizeof(*v) * (size_t)cnt);
	*out = v;
	return 0;
}
