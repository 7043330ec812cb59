/* SPDX-License-Identifier: MIT */
/*
 * Private header of the shim's connection files (guest-lib/preload/conn*.c):
 * a shim_conn's small accessors, liveness, byte counters, and the calls one
 * file makes into another. The files:
 *
 *   conn.c            objects, shutdown and close
 *   conn_addr.c       addresses: sockaddr parsing, names, channel names
 *   conn_handshake.c  listeners, the client's proposal, the server's
 *                     accept, confirm/withdraw/decline, fallback and replay
 *   conn_io.c         the data path (full and fast), readiness of a ring
 */
#ifndef IVLINK_PRELOAD_CONN_H
#define IVLINK_PRELOAD_CONN_H

#include "shim.h"

#define PENDING_SLICE_NS 5000000LL
#define TCP_PROBE_NS	 50000000LL
#define GONE_FIN_WAIT_MS 200 /* a gone remote's TCP FIN, at most once */

/* ------------------------------------------------------------ accessors */

static inline int get_state(struct shim_conn *c)
{
	return __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
}

/* The link's notifier reports a gone remote only once accelerated: while
 * pending, the remote's epoch may not be final and a fallback handles a
 * remote that left. */
static inline void set_state(struct shim_conn *c, int st)
{
	__atomic_store_n(&c->lk.check_alive, st == SS_ACCEL, __ATOMIC_RELEASE);
	__atomic_store_n(&c->state, st, __ATOMIC_RELEASE);
}

/* The endpoint c's rendezvous and link go through. */
static inline void set_sep(struct shim_conn *c, struct shim_ep *sep)
{
	c->sep = sep;
	c->lk.ep = sep->ep;
}

static inline struct ivl_region *rg_of(struct shim_conn *c)
{
	return &c->sep->ep->rg;
}

static inline uint32_t self_of(struct shim_conn *c)
{
	return ivl_endpoint_id(c->sep->ep);
}

static inline struct ivl_chan_half *own_half(struct shim_conn *c)
{
	return ivl_region_chan(rg_of(c), self_of(c), c->slot);
}

/*
 * A connection shared over fork may be used by the processes in turn (the
 * child writes, the parent reads the answer): each process's ring handle
 * then trails what the others moved. Before using a handle of a connection
 * that went through a fork, on either side, adopt the shared indices (a
 * no-op while no other process moved them). Process-local flags: nothing
 * read from the region decides it. Caller holds the direction's lock.
 */
static inline void adopt_if_shared(struct shim_conn *c, struct ivl_ring *r)
{
	if (c->inherited || c->forked)
		ivl_ring_adopt(r);
}

static inline struct ivl_peer_shim *peer_shim(struct shim_ep *sep)
{
	return &ivl_region_peer(&sep->ep->rg, ivl_endpoint_id(sep->ep))->shim;
}

/* ------------------------------------------------------------ liveness */

/* Liveness of the remote, its doorbell and the rings' notifier are the
 * link's (../link.h), the same code as channel.c's. */
static inline int conn_alive(struct shim_conn *c)
{
	return ivl__link_alive(&c->lk);
}

static inline int rx_alive(struct shim_conn *c)
{
	return ivl__link_rx_alive(&c->lk);
}

/* ------------------------------------------------------------ counters */

/*
 * The peer table's byte counters (ivlinkctl): the fast path adds what it
 * moved to a private count and flushes it, one atomic add to the shared
 * line, every SHIM_STATS_EVERY calls; a locked add per call would cost
 * more than the ring's own publish. The full path (which takes the
 * direction's mutex anyway, and is where a side waits) flushes at every
 * call, and so does the last close. The caller holds (or owns) the
 * direction's guard. A process that _exit()s loses what its fast path did
 * not flush yet (at most SHIM_STATS_EVERY - 1 calls per direction).
 */
#define SHIM_STATS_EVERY 1024u

static inline void flush_tx(struct shim_conn *c)
{
	if (!c->tx_unflushed)
		return;
	__atomic_fetch_add(&peer_shim(c->sep)->tx_bytes, c->tx_unflushed, __ATOMIC_RELAXED);
	c->tx_unflushed = 0;
}

static inline void flush_rx(struct shim_conn *c)
{
	if (!c->rx_unflushed)
		return;
	__atomic_fetch_add(&peer_shim(c->sep)->rx_bytes, c->rx_unflushed, __ATOMIC_RELAXED);
	c->rx_unflushed = 0;
}

static inline void count_tx(struct shim_conn *c, uint64_t n)
{
	c->tx_unflushed += n;
	if (__builtin_expect((++c->tx_calls & (SHIM_STATS_EVERY - 1)) == 0, 0))
		flush_tx(c);
}

static inline void count_rx(struct shim_conn *c, uint64_t n)
{
	c->rx_unflushed += n;
	if (__builtin_expect((++c->rx_calls & (SHIM_STATS_EVERY - 1)) == 0, 0))
		flush_rx(c);
}

/* ------------------------------------------------------------ across files */

/* conn_addr.c */
int shim_sa_parse(const struct sockaddr *sa, socklen_t len, int *fam, uint8_t addr[16],
		  uint16_t *port);
void shim_addr_str(int fam, const uint8_t *a, uint16_t port, char *buf, size_t len);
int shim_local_name(int fd, int *fam, uint8_t a[16], uint16_t *port);
int shim_peer_name(int fd, int *fam, uint8_t a[16], uint16_t *port);
void shim_conn_name(char *out, int fam, const uint8_t *caddr, uint16_t cport, const uint8_t *saddr,
		    uint16_t sport);

/* conn.c */
int shim_peer_vouched(struct shim_ep *sep, uint32_t peer);
/* Closes a server's REDIRECT note, if it has one (conn_handshake.c). */
void shim_redirect_done(struct shim_conn *c);
void shim_close_half(struct shim_conn *c);
void shim_poke(struct shim_ep *sep, uint32_t peer);

/* conn_handshake.c */
void shim_release_half(struct shim_conn *c);
void shim_do_fallback(struct shim_conn *c, uint32_t reason);
int shim_cli_withdraw(struct shim_conn *c, uint32_t reason);
/* A FALLBACK note about c for ivlinkctl, as c's half. */
void shim_fallback_note(struct shim_conn *c, uint32_t reason);

/* conn_io.c */
void shim_pending_wait(struct shim_conn *c, int64_t deadline);

#endif /* IVLINK_PRELOAD_CONN_H */
