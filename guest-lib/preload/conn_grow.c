/* SPDX-License-Identifier: MIT */
/*
 * Socket shim connections: ring sizes that adapt like loopback TCP's
 * buffers (issue 12, item 5). A connection starts with IVLINK_RING_SIZE
 * per direction; when a send (or a poll for POLLOUT) finds its tx ring
 * full, the ring moves to an area twice as large in our heap, up to
 * IVLINK_RING_MAX (4 MiB by default, Linux's tcp_wmem maximum), the
 * application's SO_SNDBUF and the remote's SO_RCVBUF (both as the kernel
 * reports them: doubled). A grown ring that has been empty for
 * SHRINK_IDLE_NS moves back to the first size at the next send. A region
 * without free pages just means no growth.
 *
 * A move is the ring's (transport/ring.c, "Moves": the record, the jump of
 * the tail, the consumer's switch and acknowledgement, ordering M1-M3);
 * here are the policy and the pages. The area a move left is freed once
 * the remote switched (ivl_ring_move_pending() == 0), or with the half at
 * close (ivl_ctab_release(), ivl_ctab_gc()) if it never does: a remote
 * that dies or never reads keeps it at most as long as the connection.
 * Only the process that made the move frees it (a child forked meanwhile
 * holds a copy of the handle, not the pages). No move is made while the
 * connection is shared between processes on either side: a process that
 * uses a ring end in turn with another follows the other's indices
 * (ivl_ring_adopt()), and can follow a move only while its record is the
 * latest; a consumer asks for that with IVL_RING_F_NOMOVE before a fork
 * and clears it once it is alone again (shim_rx_share/unshare).
 *
 * While a connection's tx ring is not at its first size, or a move is
 * pending, its sends take the full path (conn_io.c), where the checks
 * below run under the direction's lock.
 */
#include "conn.h"

#include <errno.h>
#include <unistd.h>

#include <ivlink/region.h>

#define SHRINK_IDLE_NS 1000000000LL

/* The largest power of two <= v (v >= 1). */
static uint32_t pow2_floor(uint64_t v)
{
	uint32_t p = 1;

	if (v >= (1u << 31))
		return 1u << 31;
	while ((uint64_t)p * 2 <= v)
		p *= 2;
	return p;
}

/* ------------------------------------------------------------ consumer */

/* The ring's move_map for our rx ring: the remote's new area must lie in
 * its own heap (read once by ring.c, validated here, used as returned). */
static int rx_map(void *ctx, uint64_t off, uint32_t size, uint8_t **data)
{
	struct shim_conn *c = ctx;

	*data = ivl_region_ring_area(rg_of(c), c->lk.remote, off, size);
	if (!*data) {
		shim_log("fd %d: the other side moved its ring outside its heap "
			 "(offset %llu, %u bytes): connection reset",
			 c->fd, (unsigned long long)off, size);
		return -EPROTO;
	}
	SHIM_DBG("fd %d: rx ring now %u bytes", c->fd, size);
	return 0;
}

void shim_rx_attach(struct shim_conn *c)
{
	ivl_ring_set_move_map(&c->lk.rx.ring, rx_map, c);
	if (c->lk.rx.ring.cons)
		__atomic_store_n(&c->lk.rx.ring.cons->rx_max, c->rcvbuf, __ATOMIC_RELAXED);
}

/*
 * Consumer ends shared over fork. Each process keeps its own copy of the
 * rx handle; the one that did not read for a while follows the others'
 * head (ivl_ring_adopt()), which it can only do while the move record is
 * that of the move they followed. So before a fork we ask the remote not
 * to move (IVL_RING_F_NOMOVE, checked in shared() on its side), and
 * once we are alone again, with our handle brought up to date, we let it.
 */
void shim_rx_share(struct shim_conn *c)
{
	struct ivl_ring_cons *cons = c->lk.rx.ring.cons;

	if (!cons || get_state(c) != SS_ACCEL)
		return;
	__atomic_fetch_or(&cons->flags, IVL_RING_F_NOMOVE, __ATOMIC_RELEASE);
	__atomic_store_n(&c->rx_nomove, 1, __ATOMIC_RELAXED);
}

void shim_rx_unshare(struct shim_conn *c)
{
	struct ivl_chan_half *mine;

	if (!__atomic_load_n(&c->rx_nomove, __ATOMIC_RELAXED))
		return;
	mine = own_half(c);
	if (!mine || __atomic_load_n(&mine->shim.procs, __ATOMIC_ACQUIRE) > 1)
		return;
	/* A fork in another thread counts itself in under this lock. */
	pthread_mutex_lock(&shim_active_lock);
	if (__atomic_load_n(&mine->shim.procs, __ATOMIC_ACQUIRE) == 1 && c->lk.rx.ring.cons) {
		__atomic_fetch_and(&c->lk.rx.ring.cons->flags, ~IVL_RING_F_NOMOVE,
				   __ATOMIC_RELEASE);
		__atomic_store_n(&c->rx_nomove, 0, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&shim_active_lock);
}

void shim_bufsize_set(struct shim_conn *c, int name)
{
	int v = 0;
	socklen_t len = sizeof(v);

	/* What the kernel made of it (doubled, capped by [wr]mem_max), as
	 * getsockopt() reports it to the application. */
	if (REAL(getsockopt)(c->fd, SOL_SOCKET, name, &v, &len) < 0 || v <= 0)
		return;
	if (name == SO_SNDBUF) {
		__atomic_store_n(&c->sndbuf, (uint32_t)v, __ATOMIC_RELAXED);
		return;
	}
	__atomic_store_n(&c->rcvbuf, (uint32_t)v, __ATOMIC_RELAXED);
	shim_guard_lock(&c->rxg);
	if (c->lk.rx.ring.cons)
		__atomic_store_n(&c->lk.rx.ring.cons->rx_max, (uint32_t)v, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&c->rxg.lock);
}

/* ------------------------------------------------------------ producer */

/* How large our tx ring may grow: the configured cap, our SO_SNDBUF, the
 * remote's SO_RCVBUF (advice from its half, read once and clamped). */
static uint32_t tx_cap(struct shim_conn *c)
{
	uint32_t cap = shim_cfg.ring_max;
	uint32_t snd = __atomic_load_n(&c->sndbuf, __ATOMIC_RELAXED);
	uint32_t rmax = __atomic_load_n(&c->lk.tx.ring.cons->rx_max, __ATOMIC_RELAXED);

	if (snd && pow2_floor(snd) < cap)
		cap = pow2_floor(snd);
	if (rmax >= IVL_PAGE_SIZE && pow2_floor(rmax) < cap)
		cap = pow2_floor(rmax);
	return cap;
}

/* Shared between processes, ours (our handles of the tx ring) or the
 * remote's (IVL_RING_F_NOMOVE on its consumer block, or its count): no
 * moves. */
static int shared(struct shim_conn *c)
{
	struct ivl_chan_half *mine = own_half(c);
	struct ivl_chan_half *theirs = ivl_region_chan(rg_of(c), c->lk.remote, c->remote_slot);

	return __atomic_load_n(&c->forked, __ATOMIC_RELAXED) || !mine || !theirs ||
	       (__atomic_load_n(&c->lk.tx.ring.cons->flags, __ATOMIC_ACQUIRE) &
		IVL_RING_F_NOMOVE) ||
	       __atomic_load_n(&mine->shim.procs, __ATOMIC_RELAXED) > 1 ||
	       __atomic_load_n(&theirs->shim.procs, __ATOMIC_RELAXED) > 1;
}

/* Read by the fast path of the direction's owner (conn_io.c). */
static void note_sizes(struct shim_conn *c)
{
	__atomic_store_n(&c->tx_moved, c->own.tx_size != shim_cfg.ring_size || c->own.tx_old_pages,
			 __ATOMIC_RELAXED);
}

/* Moves our tx ring to a new area of size bytes. 1 if moved, 0 if not
 * (no pages, or the ring refused: nothing changed). */
static int move_to(struct shim_conn *c, uint32_t size)
{
	struct ivl_region *rg = rg_of(c);
	struct ivl_chan_half *h = own_half(c);
	uint32_t pages = size / IVL_PAGE_SIZE;
	int64_t off = ivl_section_alloc(rg, self_of(c), pages);
	void *data;

	if (off <= 0 || !h)
		return 0; /* region full: no growth, no error */
	data = ivl_region_ptr(rg, (uint64_t)off, size);
	if (!data || ivl_ring_move(&c->lk.tx.ring, data, (uint64_t)off, size) < 0) {
		ivl_section_free(rg, self_of(c), (uint64_t)off, pages);
		return 0;
	}
	c->own.tx_old_off = c->own.tx_data_off;
	c->own.tx_old_pages = c->own.tx_pages;
	c->own.tx_data_off = (uint64_t)off;
	c->own.tx_size = size;
	c->own.tx_pages = pages;
	c->grow_pid = getpid();
	/* The half's copies, for ivl_ctab_gc() and ivlinkctl (never read
	 * back by us). */
	__atomic_store_n(&h->tx_old_off, c->own.tx_old_off, __ATOMIC_RELAXED);
	__atomic_store_n(&h->tx_old_pages, c->own.tx_old_pages, __ATOMIC_RELAXED);
	__atomic_store_n(&h->tx_data_off, c->own.tx_data_off, __ATOMIC_RELAXED);
	__atomic_store_n(&h->tx_size, size, __ATOMIC_RELAXED);
	__atomic_store_n(&h->tx_pages, pages, __ATOMIC_RELAXED);
	note_sizes(c);
	SHIM_DBG("fd %d: tx ring now %u bytes", c->fd, size);
	return 1;
}

/* Frees the area of a move the remote has followed; a copy inherited over
 * fork is not ours to free. */
static void old_area_done(struct shim_conn *c)
{
	struct ivl_chan_half *h;

	if (!c->own.tx_old_pages)
		return;
	if (c->grow_pid == getpid()) {
		if (ivl_ring_move_pending(&c->lk.tx.ring) != 0)
			return;
		ivl_section_free(rg_of(c), self_of(c), c->own.tx_old_off, c->own.tx_old_pages);
	}
	h = own_half(c);
	if (h) {
		__atomic_store_n(&h->tx_old_pages, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&h->tx_old_off, 0, __ATOMIC_RELAXED);
	}
	c->own.tx_old_pages = 0;
	c->own.tx_old_off = 0;
	note_sizes(c);
}

void shim_tx_tick(struct shim_conn *c)
{
	struct ivl_ring *r = &c->lk.tx.ring;

	if (!__atomic_load_n(&c->tx_moved, __ATOMIC_RELAXED))
		return;
	old_area_done(c);
	if (c->own.tx_old_pages || c->own.tx_size <= shim_cfg.ring_size || r->error ||
	    ivl__now_ns() - c->tx_full_ns < SHRINK_IDLE_NS)
		return;
	/* Idle for a while and empty: back to the first size. */
	if (ivl_ring_writable(r, c->own.tx_size) && ivl_ring_free(r) == c->own.tx_size &&
	    !shared(c))
		move_to(c, shim_cfg.ring_size);
}

int shim_tx_grow(struct shim_conn *c)
{
	uint32_t size = c->own.tx_size;

	c->tx_full_ns = ivl__now_ns();
	old_area_done(c);
	if (c->own.tx_old_pages || size >= shim_cfg.ring_max || size > (1u << 29) ||
	    size * 2 > tx_cap(c) || c->lk.tx.ring.error || shared(c))
		return 0;
	return move_to(c, size * 2);
}

void shim_tx_old_release(struct shim_conn *c)
{
	/* At close: a finished move's area is freed now; a pending one goes
	 * with the half (own.tx_old_*), unless it is a forked copy. */
	if (c->own.tx_old_pages && c->grow_pid != getpid())
		c->own.tx_old_pages = 0;
	else if (c->own.tx_old_pages && c->lk.tx.ring.data)
		old_area_done(c);
}
