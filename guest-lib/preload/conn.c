/* SPDX-License-Identifier: MIT */
/*
 * Socket shim connections: the objects (new, free, state), the halves a
 * connection owns in the region, and shutdown and close. The rendezvous is
 * in conn_handshake.c, the data path in conn_io.c; see conn.h, shim.h and
 * layout.h.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ivlink/region.h>

#include "ring_inline.h"

/* ------------------------------------------------------------ objects */

struct shim_conn *shim_conn_new(int fd, int family, int nonblock)
{
	struct shim_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->o.type = SHIM_T_CONN;
	pthread_mutex_init(&c->lock, NULL);
	shim_guard_init(&c->txg);
	shim_guard_init(&c->rxg);
	ivl__link_init(&c->lk, NULL);
	c->lk.check_alive = 0; /* SS_ACCEL sets it (set_state) */
	c->fd = fd;
	c->family = family;
	c->nonblock = nonblock;
	c->slot = IVL_SLOT_NONE;
	c->rd_slot = IVL_SLOT_NONE;
	c->rcvtimeo_ns = -1;
	c->sndtimeo_ns = -1;
	c->rfd = -1;
	c->cfd = -1;
	c->lmark = -1;
	c->hidden_tag = (uint64_t)(uintptr_t)&c->hidden_tag;
	return c;
}

void shim_conn_free(struct shim_conn *c)
{
	if (c->sep)
		ivl__link_close_kick(&c->lk);
	if (c->rfd >= 0)
		REAL(close)(c->rfd);
	if (c->cfd >= 0)
		REAL(close)(c->cfd);
	free(c->lmore);
	if (c->lmark >= 0)
		REAL(close)(c->lmark);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->txg.lock);
	pthread_mutex_destroy(&c->rxg.lock);
	free(c);
}

int shim_is_active(int st)
{
	return st == SS_CONNECTING || st == SS_CLI_PENDING || st == SS_SRV_PENDING ||
	       st == SS_ACCEL || st == SS_DEMOTING;
}

/*
 * 1 when a new connection with peer may be accelerated: the daemon vouches
 * for its liveness (not a stale entry left UP by an earlier ivlinkd) and we
 * hold a doorbell to ring it. Without one, the connection would move only
 * when a timeout fires (seen at 4 requests/s after a daemon restart).
 */
int shim_peer_vouched(struct shim_ep *sep, uint32_t peer)
{
	struct ivl_peer_entry *e = ivl_region_peer(&sep->ep->rg, peer);
	struct ivl__kick k;

	if (!e || (__atomic_load_n(&e->daemon_flags, __ATOMIC_ACQUIRE) & IVL_PEER_F_STALE))
		return 0;
	/* A peer that just joined: its doorbells may still be in our daemon
	 * socket (the daemon tells everyone, we may read it later than the
	 * peer connects). 100 ms at most, and only if we read that socket. */
	if (ivl__ep_kick_wait(sep->ep, peer, IVL_CTRL_VECTOR, &k, 100000000LL) < 0)
		return 0;
	sep->ep->ops->kick_close(&k);
	return 1;
}

/*
 * Closes c's own half and forgets it. A half our offer took is released
 * from the private copy in c->own (its pages freed at once if the remote no
 * longer reads it); a note, or a half someone reused, is only closed, and
 * the gc frees what it can.
 */
void shim_close_half(struct shim_conn *c)
{
	ivl_ctab_drop(rg_of(c), self_of(c), c->slot, &c->own);
	memset(&c->own, 0, sizeof(c->own));
	c->slot = IVL_SLOT_NONE;
}

void shim_count_fallback(struct shim_ep *sep, uint32_t reason)
{
	struct ivl_peer_shim *ps;

	if (!sep)
		return;
	ps = peer_shim(sep);
	__atomic_fetch_add(&ps->fallbacks, 1, __ATOMIC_RELAXED);
	if (reason < IVL_FB_REASONS)
		__atomic_fetch_add(&ps->by_reason[reason], 1, __ATOMIC_RELAXED);
	__atomic_store_n(&ps->last_reason, reason, __ATOMIC_RELAXED);
}

/* Rings peer's control vector: "look at the channel table". */
void shim_poke(struct shim_ep *sep, uint32_t peer)
{
	struct ivl__kick k;

	if (ivl__ep_kick_open(sep->ep, peer, IVL_CTRL_VECTOR, &k) == 0) {
		sep->ep->ops->kick(&k);
		sep->ep->ops->kick_close(&k);
	}
}

/* ------------------------------------------------------------ shutdown, close */

int shim_shutdown(struct shim_conn *c, int how)
{
	int st = get_state(c);

	if (st != SS_ACCEL && st != SS_CLI_PENDING && st != SS_SRV_PENDING)
		return SHIM_PASS;
	if (how != SHUT_RD) {
		shim_guard_lock(&c->txg);
		c->shut_wr = 1;
		ivl_ring_set_flags(&c->lk.tx.ring, IVL_RING_F_DONE_WRITING);
		pthread_mutex_unlock(&c->txg.lock);
	}
	if (how != SHUT_WR && st == SS_ACCEL) {
		shim_guard_lock(&c->rxg);
		c->shut_rd = 1;
		ivl_ring_set_cons_flags(&c->lk.rx.ring, IVL_RING_F_CLOSED);
		pthread_mutex_unlock(&c->rxg.lock);
	}
	/* The TCP socket follows, except while pending: a fallback must
	 * still be able to replay over it (do_fallback shuts it then). */
	if (get_state(c) == SS_ACCEL && REAL(shutdown)(c->fd, how) < 0)
		return -errno;
	if (c->rfd >= 0)
		shim_sync(c);
	return 0;
}

/* The last reference of this process to an accelerated half. */
static void accel_release(struct shim_conn *c)
{
	struct ivl_chan_half *h = own_half(c);

	shim_guard_lock(&c->txg);
	flush_tx(c);
	pthread_mutex_unlock(&c->txg.lock);
	shim_guard_lock(&c->rxg);
	flush_rx(c);
	pthread_mutex_unlock(&c->rxg.lock);
	if (!h)
		return;
	if (__atomic_sub_fetch(&h->shim.procs, 1, __ATOMIC_ACQ_REL) != 0) {
		c->slot = IVL_SLOT_NONE; /* another process holds it */
		return;
	}
	shim_guard_lock(&c->txg);
	ivl_ring_set_flags(&c->lk.tx.ring, IVL_RING_F_CLOSED);
	pthread_mutex_unlock(&c->txg.lock);
	shim_guard_lock(&c->rxg);
	ivl_ring_set_cons_flags(&c->lk.rx.ring, IVL_RING_F_CLOSED);
	pthread_mutex_unlock(&c->rxg.lock);
	shim_close_half(c);
	__atomic_store_n(&shim_gc_pending, 1, __ATOMIC_RELAXED);
}

void shim_conn_last_close(struct shim_conn *c)
{
	int st;
	int64_t until;

	/* A server still waiting for the client's decision waits for it
	 * (bounded): its ring may hold bytes that only a replay delivers. */
	until = ivl__now_ns() + shim_cfg.accept_timeout_ns + 500000000LL;
	while (get_state(c) == SS_SRV_PENDING && ivl__now_ns() < until)
		shim_pending_wait(c, until);
	pthread_mutex_lock(&c->lock);
	st = get_state(c);
	c->closing = 1;
	switch (st) {
	case SS_CONNECTING:
		shim_release_half(c);
		break;
	case SS_CLI_PENDING:
		/* Closing before the server answered: withdraw, replay. */
		if (shim_cli_withdraw(c, IVL_FB_WITHDRAWN) == SS_CLI_PENDING) {
			set_state(c, SS_ACCEL);
			accel_release(c);
		}
		shim_release_half(c);
		break;
	case SS_SRV_PENDING:
		shim_do_fallback(c, IVL_FB_TIMEOUT);
		shim_release_half(c);
		shim_redirect_done(c);
		break;
	case SS_ACCEL:
		accel_release(c);
		c->slot = IVL_SLOT_NONE;
		break;
	case SS_LISTEN:
		for (int i = 0; i < c->n_lmore; i++) {
			struct shim_lrec *l = &c->lmore[i];
			struct ivl_region *rg = &l->sep->ep->rg;
			uint32_t self = ivl_endpoint_id(l->sep->ep);
			struct ivl_chan_half *h = ivl_region_chan(rg, self, l->slot);

			if (h && __atomic_sub_fetch(&h->shim.procs, 1, __ATOMIC_ACQ_REL) == 0) {
				ivl_ctab_drop(rg, self, l->slot, NULL); /* a record: no pages */
				__atomic_store_n(&shim_gc_pending, 1, __ATOMIC_RELAXED);
			}
		}
		/* lmore itself stays until the object goes: an accept() in
		 * another thread may still walk it. */
		if (c->lmark >= 0)
			REAL(close)(c->lmark);
		c->lmark = -1;
		/* fall through */
	case SS_FALLBACK:
		if (c->slot != IVL_SLOT_NONE && c->sep) {
			struct ivl_chan_half *h = own_half(c);

			if (h && __atomic_sub_fetch(&h->shim.procs, 1, __ATOMIC_ACQ_REL) == 0)
				shim_release_half(c);
			c->slot = IVL_SLOT_NONE;
		}
		break;
	default:
		break;
	}
	set_state(c, SS_PLAIN);
	pthread_mutex_unlock(&c->lock);
	shim_regs_drop(c);
	shim_active_del(c);
}
