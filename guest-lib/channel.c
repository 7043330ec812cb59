/* SPDX-License-Identifier: MIT */
/*
 * Channels: rendezvous through the channel table, the two rings, and the
 * blocking data calls. Backend independent: doorbells go through the kick
 * handle, sleeps through the endpoint's vector waiting (endpoint.c).
 *
 * A channel between us (A) and the remote (B), from layout.h:
 *   tx ring: producer block A.half.tx_prod, data in A's heap,
 *            consumer block B.half.rx_cons;
 *   rx ring: producer block B.half.tx_prod, data in B's heap,
 *            consumer block A.half.rx_cons.
 * Both rings ring B's doorbell for B's half's rx_vector (B sleeps there for
 * data and for space alike), and we sleep on our rx_vector.
 *
 * Peer death (the link's liveness, link.c): ivl_send() and ivl_recv() look
 * at the remote's peer-table entry only on their slow path, when the ring
 * is full or empty, never per message; a message moved on the fast path
 * costs the ring's inline write or read and nothing else. So, as with TCP,
 * a send to a remote that has just died may still succeed while its ring
 * has room, and data it published before it left is read out first; the
 * first send that finds the ring full and every receive that finds it
 * empty report the death, and a send after that fails at once (tx_dead,
 * sticky). The receive side reads on while the remote's section still
 * carries the epoch we matched (rx_alive()); a copy made on the slow path
 * is validated again after it was made, because a new incarnation of the
 * id reuses the section. The fast path does not re-validate: the daemon
 * re-stamps a section only when it hands the id to a new peer, and its
 * reset zeroes the ring indices, so a later read sees an index outside the
 * ring and takes the slow path; what the check would catch is a reset
 * landing during one inline copy, whose bytes then come from inside the
 * region all the same. The rings' check() callback looks at liveness
 * between sleeps, so a blocked call notices within one wake-up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "ring_inline.h"

#define MATCH_POLL_MIN_NS 1000000LL  /* 1 ms */
#define MATCH_POLL_MAX_NS 20000000LL /* 20 ms */

/* ---------------------------------------------------------------- liveness */

static int chan_alive(struct ivl_channel *ch)
{
	return ivl__link_alive(&ch->lk);
}

/* Whether we may still send: our own shutdown first, so that, like a
 * socket, a send after SHUT_WR is -EPIPE even if the remote has gone since.
 * A gone remote is remembered in tx_dead, which the fast path tests. */
static int tx_usable(struct ivl_channel *ch)
{
	int rc;

	if (ch->shut_wr)
		return -EPIPE;
	rc = chan_alive(ch);
	if (rc < 0)
		ch->tx_dead = 1;
	return rc;
}

static int rx_alive(struct ivl_channel *ch)
{
	return ivl__link_rx_alive(&ch->lk);
}

/* Ring errors as the API reports them: corrupt state published by a peer
 * that has since left is a reset, not a protocol error. */
static long map_err(struct ivl_channel *ch, long rc)
{
	if (rc == -EPROTO && chan_alive(ch) < 0)
		return -ECONNRESET;
	if (rc == -ECONNRESET)
		__atomic_store_n(&ch->lk.reset, 1, __ATOMIC_RELAXED);
	return rc;
}

/* No clock read for an infinite timeout. */
static int64_t deadline_of(int64_t timeout_ns)
{
	int64_t now;

	if (timeout_ns < 0)
		return INT64_MAX;
	now = ivl__now_ns();
	if (timeout_ns > INT64_MAX - now)
		return INT64_MAX;
	return now + timeout_ns;
}

static int64_t remaining(int64_t deadline)
{
	int64_t left;

	if (deadline == INT64_MAX)
		return -1;
	left = deadline - ivl__now_ns();
	return left > 0 ? left : 0;
}

/*
 * Waits until the tx ring has room for need (or the wait fails). For
 * IVL_DONTWAIT (or a zero timeout) arms a doorbell and returns 1 if the ring
 * became writable meanwhile, else -EAGAIN. Returns 0 when ready.
 */
static int wait_tx(struct ivl_channel *ch, size_t need, unsigned flags, int64_t deadline)
{
	struct ivl__link_dir *d = &ch->lk.tx;
	int rc;

	if ((flags & IVL_DONTWAIT) || deadline == 0) {
		ivl__link_arm(d);
		return ivl_ring_writable(&d->ring, need) ? 0 : -EAGAIN;
	}
	ivl__link_wait_prepare(d);
	rc = ivl_ring_wait_writable(&d->ring, need, remaining(deadline));
	return rc < 0 ? (int)map_err(ch, rc) : 0;
}

static int wait_rx(struct ivl_channel *ch, unsigned flags, int64_t deadline)
{
	struct ivl__link_dir *d = &ch->lk.rx;
	int rc;

	if ((flags & IVL_DONTWAIT) || deadline == 0) {
		ivl__link_arm(d);
		return ivl_ring_readable(&d->ring) ? 0 : -EAGAIN;
	}
	ivl__link_wait_prepare(d);
	rc = ivl_ring_wait_readable(&d->ring, remaining(deadline));
	return rc < 0 ? (int)map_err(ch, rc) : 0;
}

/*
 * The receive side found the ring empty with no EOF. A remote that left
 * without one reset us; otherwise wait for news. Returns 0 to read again
 * (also after a reset seen while waiting: the remote may have published
 * data or EOF just before it went), or -errno to give up.
 */
static int wait_rx_more(struct ivl_channel *ch, unsigned flags, int64_t deadline)
{
	int rc = chan_alive(ch);

	if (rc < 0)
		return rc;
	rc = wait_rx(ch, flags, deadline);
	return rc == -ECONNRESET ? 0 : rc;
}

/* A timeout of 0 means "do not wait": deadline 0 marks it. */
static int64_t call_deadline(unsigned flags, int64_t timeout_ns)
{
	if ((flags & IVL_DONTWAIT) || timeout_ns == 0)
		return 0;
	return deadline_of(timeout_ns);
}

/* ---------------------------------------------------------------- open */

/* The slot ivl_ctab_offer() will most likely take: its first FREE half. A
 * concurrent offer may take it first; then the vector is merely a different
 * one, which is harmless. */
static uint32_t predict_slot(struct ivl_endpoint *ep)
{
	for (uint32_t s = 0; s < ep->rg.hdr.chan_slots; s++) {
		struct ivl_chan_half *c = ivl_region_chan(&ep->rg, ep->self, s);

		if (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == IVL_CHAN_FREE)
			return s;
	}
	return 0;
}

/* Rings the remote's control vector: "look at the channel table". */
static void poke_remote(struct ivl_endpoint *ep, uint32_t remote)
{
	struct ivl__kick k;

	if (ivl__ep_kick_open(ep, remote, IVL_CTRL_VECTOR, &k) == 0) {
		ep->ops->kick(&k);
		ep->ops->kick_close(&k);
	}
}

static int wait_match(struct ivl_channel *ch, int64_t deadline, struct ivl_ctab_remote *m)
{
	struct ivl_endpoint *ep = ch->ep;
	int64_t backoff = MATCH_POLL_MIN_NS;

	for (;;) {
		uint32_t snap = ivl__vwait_snapshot(ep, IVL_CTRL_VECTOR);
		int64_t left;
		int rc = ivl_ctab_match(&ep->rg, ep->self, ch->slot, m);

		if (rc != -EAGAIN)
			return rc;
		left = remaining(deadline);
		if (left == 0)
			return -ETIMEDOUT;
		if (left < 0 || left > backoff)
			left = backoff;
		/* The remote rings our control vector once it offered its
		 * half; the back-off polling covers a remote that does not. */
		rc = ivl__vwait_block(ep, IVL_CTRL_VECTOR, snap, left);
		if (rc < 0 && rc != -ETIMEDOUT)
			return rc;
		if (backoff < MATCH_POLL_MAX_NS)
			backoff *= 2;
	}
}

/* The remote's doorbell fds may not have arrived from the daemon yet. */
static int open_kick(struct ivl_channel *ch, uint32_t vector, int64_t deadline)
{
	struct ivl_endpoint *ep = ch->ep;

	for (;;) {
		int rc = ivl__link_open_kick(&ch->lk, vector);

		if (rc != -EAGAIN)
			return rc;
		if (remaining(deadline) == 0 || ep->ctl_fd < 0)
			return -ETIMEDOUT;
		if (ep->ctl_fd >= 0) {
			struct pollfd p = {.fd = ep->ctl_fd, .events = POLLIN};

			ivl__poll(&p, 1, 1000000);
		}
	}
}

static int attach_rings(struct ivl_channel *ch, const struct ivl_ctab_remote *m,
			const struct ivl_ctab_params *p)
{
	struct ivl_endpoint *ep = ch->ep;
	struct ivl_chan_half *mine = ivl_region_chan(&ep->rg, ep->self, ch->slot);
	struct ivl_chan_half *theirs = ivl_region_chan(&ep->rg, ch->lk.remote, m->remote_slot);
	struct ivl_notifier n;
	/* Our ring's place from the private copy of the offer: the half's
	 * copy is for the remote, and any region member can rewrite it. */
	void *tx_data = ivl_region_ptr(&ep->rg, ch->own.tx_data_off, ch->own.tx_size);
	void *rx_data = ivl_region_ptr(&ep->rg, m->remote_tx_data_off, m->remote_tx_size);
	int rc;

	if (!mine || !theirs || !tx_data || !rx_data)
		return -EPROTO;
	ivl__link_notifier(&ch->lk.tx, &n);
	rc = ivl_ring_init_producer(&ch->lk.tx.ring, &mine->tx_prod, &theirs->rx_cons, tx_data,
				    ch->own.tx_size, ch->mode, p->max_record, &n);
	if (rc < 0)
		return rc;
	ivl__link_notifier(&ch->lk.rx, &n);
	rc = ivl_ring_init_consumer(&ch->lk.rx.ring, &theirs->tx_prod, &mine->rx_cons, rx_data,
				    m->remote_tx_size, ch->mode, m->remote_max_record, &n);
	if (rc < 0)
		return rc;
	ch->lk.tx.ring.spin_ns = ep->spin_ns;
	ch->lk.rx.ring.spin_ns = ep->spin_ns;
	return 0;
}

int ivl_channel_open(struct ivl_endpoint *ep, const char *name, uint32_t remote_peer,
		     const struct ivl_channel_opts *opts, int64_t timeout_ns,
		     struct ivl_channel **out)
{
	static const struct ivl_channel_opts defaults;
	struct ivl_ctab_params p;
	struct ivl_ctab_remote m;
	struct ivl_channel *ch;
	int64_t deadline = deadline_of(timeout_ns);
	uint32_t slot;
	int rc;

	if (!ep || !name || !out)
		return -EINVAL;
	*out = NULL;
	if (!opts)
		opts = &defaults;
	if (remote_peer >= ep->rg.hdr.max_peers || remote_peer == ep->self)
		return -EINVAL;

	memset(&p, 0, sizeof(p));
	p.name = name;
	p.remote = remote_peer;
	p.mode = opts->mode ? opts->mode : IVL_MODE_STREAM;
	p.ring_size = opts->ring_size ? opts->ring_size : IVL_CHANNEL_RING_DEFAULT;
	if (p.mode == IVL_MODE_MESSAGE)
		p.max_record = opts->max_record ? opts->max_record : p.ring_size / 4;
	p.owner_pid = (uint32_t)getpid();
	slot = predict_slot(ep);
	p.rx_vector = ivl__ep_pick_vector(ep, slot);

	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	ch->ep = ep;
	ivl__link_init(&ch->lk, ep);
	ch->lk.remote = remote_peer;
	ch->mode = p.mode;
	ch->lk.rx_vector = p.rx_vector;
	ch->send_ns = -1;
	ch->recv_ns = -1;

	rc = ivl_ctab_offer(&ep->rg, ep->self, ep->self_epoch, &p, &ch->own);
	if (rc < 0) {
		ivl__logf(&ep->log, IVL_LOG_WARN, "channel '%s' to peer %u: offer failed: %s", name,
			  remote_peer, strerror(-rc));
		free(ch);
		return rc;
	}
	ch->slot = (uint32_t)rc;
	poke_remote(ep, remote_peer);

	rc = wait_match(ch, deadline, &m);
	if (rc < 0)
		goto err_close;
	ch->remote_slot = m.remote_slot;
	ch->lk.remote_epoch = m.remote_epoch;
	rc = open_kick(ch, m.remote_rx_vector, deadline);
	if (rc < 0)
		goto err_close;
	rc = attach_rings(ch, &m, &p);
	if (rc < 0)
		goto err_kick;
	/* The remote may have matched before we did and be waiting for
	 * nothing more; a second poke is cheap and covers a remote that
	 * offered after our first one was drained. */
	poke_remote(ep, remote_peer);
	ivl__ep_link(ep, ch);
	ivl__logf(&ep->log, IVL_LOG_DEBUG,
		  "channel '%s': slot %u <-> peer %u slot %u (epoch %u), rx vector %u", name,
		  ch->slot, remote_peer, ch->remote_slot, ch->lk.remote_epoch, ch->lk.rx_vector);
	*out = ch;
	return 0;

err_kick:
	ivl__link_close_kick(&ch->lk);
err_close:
	ivl_ctab_drop(&ep->rg, ep->self, ch->slot, &ch->own);
	if (rc != -ETIMEDOUT)
		ivl__logf(&ep->log, IVL_LOG_WARN, "channel '%s' to peer %u: %s", name, remote_peer,
			  strerror(-rc));
	free(ch);
	return rc;
}

int ivl_channel_close(struct ivl_channel *ch)
{
	struct ivl_endpoint *ep;

	if (!ch)
		return 0;
	ep = ch->ep;
	ivl__ep_unlink(ep, ch);
	/* Our own blocks only: the remote reads what is left, then EOF. */
	ivl_ring_set_flags(&ch->lk.tx.ring, IVL_RING_F_CLOSED);
	ivl_ring_set_cons_flags(&ch->lk.rx.ring, IVL_RING_F_CLOSED);
	ivl_ctab_drop(&ep->rg, ep->self, ch->slot, &ch->own);
	ivl__link_close_kick(&ch->lk);
	free(ch);
	return 0;
}

int ivl_channel_shutdown(struct ivl_channel *ch, int how)
{
	int rc = 0;

	if (!ch || how < IVL_SHUT_RD || how > IVL_SHUT_RDWR)
		return -EINVAL;
	if (how != IVL_SHUT_RD) {
		ch->shut_wr = 1;
		rc = ivl_ring_set_flags(&ch->lk.tx.ring, IVL_RING_F_DONE_WRITING);
	}
	if (how != IVL_SHUT_WR) {
		int rc2 = ivl_ring_set_cons_flags(&ch->lk.rx.ring, IVL_RING_F_CLOSED);

		if (rc == 0)
			rc = rc2;
	}
	/* A failed doorbell only delays the remote by one block slice. */
	return rc == -EINVAL ? rc : 0;
}

void ivl_channel_set_timeouts(struct ivl_channel *ch, int64_t send_ns, int64_t recv_ns)
{
	ch->send_ns = send_ns;
	ch->recv_ns = recv_ns;
}

/* ---------------------------------------------------------------- data */

static ssize_t send_iov(struct ivl_channel *ch, struct iovec *iov, int cnt, size_t total,
			unsigned flags)
{
	struct ivl_ring *r = &ch->lk.tx.ring;
	int64_t deadline = call_deadline(flags, ch->send_ns);
	size_t done = 0;
	long n;
	int rc;

	rc = tx_usable(ch);
	if (rc < 0)
		return rc;
	for (;;) {
		n = ivl_ring_writev(r, iov, cnt, flags & IVL_MORE);
		if (n >= 0) {
			if (ch->mode == IVL_MODE_MESSAGE)
				return n;
			done += (size_t)n;
			if (done == total)
				return (ssize_t)done;
			ivl__iov_advance(&iov, &cnt, (size_t)n);
			if (n > 0)
				continue; /* the ring filled up: the rest waits */
		} else if (n != -EAGAIN) {
			n = map_err(ch, n);
			return done ? (ssize_t)done : n;
		}
		if (done && deadline == 0)
			return (ssize_t)done;
		rc = wait_tx(ch, ch->mode == IVL_MODE_MESSAGE ? total : 1, flags, deadline);
		if (rc < 0)
			return done ? (ssize_t)done : rc;
	}
}

/*
 * The slow path of ivl_send(): the inline write returned n (< 0, or a
 * partial stream write). Liveness, the deadline and the waiting are here
 * only; the rest of the buffer goes on through send_iov().
 */
static IVL__RING_COLD ssize_t send_slow(struct ivl_channel *ch, const void *buf, size_t len,
					unsigned flags, long n)
{
	struct iovec iov;
	ssize_t rest;
	int rc;

	if (n < 0 && n != -EAGAIN)
		return map_err(ch, n);
	rc = tx_usable(ch);
	if (rc < 0)
		return n > 0 ? n : rc;
	if (n < 0)
		n = 0;
	iov = (struct iovec){.iov_base = (uint8_t *)buf + n, .iov_len = len - (size_t)n};
	rest = send_iov(ch, &iov, 1, len - (size_t)n, flags);
	if (n == 0)
		return rest;
	return rest < 0 ? n : n + rest;
}

/*
 * One buffer: the ring's inline write, with no liveness check, no deadline
 * and no iovec; only a full ring, an error or a partial stream write goes
 * on to send_slow(). shut_wr, tx_dead and reset are private words: a send
 * after SHUT_WR, or after a call saw the remote gone, fails at once.
 */
ssize_t ivl_send(struct ivl_channel *ch, const void *buf, size_t len, unsigned flags)
{
	long n;

	if (ivl__unlikely(!ch || (len && !buf)))
		return -EINVAL;
	if (ivl__unlikely(ch->shut_wr | ch->tx_dead |
			  __atomic_load_n(&ch->lk.reset, __ATOMIC_RELAXED)))
		return ch->shut_wr ? -EPIPE : -ECONNRESET;
	n = ivl__ring_write(&ch->lk.tx.ring, buf, len, flags & IVL_MORE);
	if (ivl__likely(n >= 0 && (ch->mode == IVL_MODE_MESSAGE || (size_t)n == len)))
		return n;
	return send_slow(ch, buf, len, flags, n);
}

ssize_t ivl_sendv(struct ivl_channel *ch, const struct iovec *iov, int iovcnt, unsigned flags)
{
	struct iovec stack[IVL__IOV_STACK], *v;
	size_t total;
	ssize_t n;

	if (!ch)
		return -EINVAL;
	n = ivl__iov_dup(iov, iovcnt, stack, &v, &total);
	if (n < 0)
		return n;
	n = send_iov(ch, v, iovcnt, total, flags);
	if (v != stack)
		free(v);
	return n;
}

static ssize_t recv_iov(struct ivl_channel *ch, struct iovec *iov, int cnt, size_t cap,
			unsigned flags)
{
	struct ivl_ring *r = &ch->lk.rx.ring;
	int64_t deadline = call_deadline(flags, ch->recv_ns);
	size_t done = 0;
	long n;
	int rc;

	rc = rx_alive(ch);
	if (rc < 0)
		return rc;
	for (;;) {
		n = ivl_ring_readv(r, iov, cnt);
		if (n > 0 || (n == 0 && ch->mode == IVL_MODE_MESSAGE)) {
			/* Validate after the copy: the bytes came from a
			 * section that is only trustworthy while it holds
			 * the incarnation we matched. */
			rc = rx_alive(ch);
			if (rc < 0)
				return rc;
			if (ch->mode == IVL_MODE_MESSAGE)
				return n;
			done += (size_t)n;
			if (!(flags & IVL_WAITALL) || done == cap)
				return (ssize_t)done;
			ivl__iov_advance(&iov, &cnt, (size_t)n);
			continue;
		}
		if (n == 0)
			return (ssize_t)done; /* end of stream */
		if (n != -EAGAIN) {
			n = map_err(ch, n);
			return done ? (ssize_t)done : n;
		}
		rc = wait_rx_more(ch, flags, deadline);
		if (rc < 0)
			return done ? (ssize_t)done : rc;
	}
}

/*
 * The slow path of ivl_recv(): the inline read returned n (< 0, or a
 * partial read that IVL_WAITALL wants completed). Liveness, the deadline
 * and the waiting are here only.
 */
static IVL__RING_COLD ssize_t recv_slow(struct ivl_channel *ch, void *buf, size_t len,
					unsigned flags, long n)
{
	struct iovec iov;
	ssize_t rest;

	if (n < 0 && n != -EAGAIN)
		return map_err(ch, n);
	if (n > 0 && rx_alive(ch) < 0)
		return -ECONNRESET; /* copied from a section since reused */
	if (n < 0)
		n = 0;
	iov = (struct iovec){.iov_base = (uint8_t *)buf + n, .iov_len = len - (size_t)n};
	rest = recv_iov(ch, &iov, 1, len - (size_t)n, flags);
	if (n == 0)
		return rest;
	return rest < 0 ? n : n + rest;
}

/*
 * One buffer: the ring's inline read, with no liveness check and no
 * deadline; an empty ring, an error or the rest of an IVL_WAITALL goes on
 * to recv_slow(), where recv_iov() checks liveness and waits. A stream's
 * end (0 from the ring) is returned at once. The file comment says why the
 * fast path does not validate the copy again.
 */
ssize_t ivl_recv(struct ivl_channel *ch, void *buf, size_t len, unsigned flags)
{
	long n;

	if (ivl__unlikely(!ch || (len && !buf)))
		return -EINVAL;
	if (ivl__unlikely(__atomic_load_n(&ch->lk.reset, __ATOMIC_RELAXED)))
		return -ECONNRESET;
	n = ivl__ring_read(&ch->lk.rx.ring, buf, len);
	if (ivl__likely(n > 0 || (n == 0 && ch->mode == IVL_MODE_MESSAGE))) {
		if (ivl__likely(ch->mode == IVL_MODE_MESSAGE || !(flags & IVL_WAITALL) ||
				(size_t)n == len))
			return n;
	} else if (n == 0) {
		return 0; /* end of stream */
	}
	return recv_slow(ch, buf, len, flags, n);
}

ssize_t ivl_recvv(struct ivl_channel *ch, const struct iovec *iov, int iovcnt, unsigned flags)
{
	struct iovec stack[IVL__IOV_STACK], *v;
	size_t total;
	ssize_t n;

	if (!ch)
		return -EINVAL;
	n = ivl__iov_dup(iov, iovcnt, stack, &v, &total);
	if (n < 0)
		return n;
	n = recv_iov(ch, v, iovcnt, total, flags);
	if (v != stack)
		free(v);
	return n;
}

ssize_t ivl_reserve(struct ivl_channel *ch, size_t len, struct ivl_span sp[2], unsigned flags)
{
	int64_t deadline = call_deadline(flags, ch->send_ns);
	long n;
	int rc;

	if (!sp)
		return -EINVAL;
	rc = tx_usable(ch);
	if (rc < 0)
		return rc;
	for (;;) {
		n = ivl__ring_reserve(&ch->lk.tx.ring, len, sp);
		if (n != -EAGAIN)
			return n < 0 ? map_err(ch, n) : n;
		rc = wait_tx(ch, ch->mode == IVL_MODE_MESSAGE ? len : 1, flags, deadline);
		if (rc < 0)
			return rc;
	}
}

int ivl_commit(struct ivl_channel *ch, size_t len, unsigned flags)
{
	return (int)map_err(ch, ivl__ring_commit(&ch->lk.tx.ring, len, flags & IVL_MORE));
}

int ivl_flush(struct ivl_channel *ch)
{
	return (int)map_err(ch, ivl_ring_flush(&ch->lk.tx.ring));
}

ssize_t ivl_peek(struct ivl_channel *ch, struct ivl_span sp[2], unsigned flags)
{
	int64_t deadline = call_deadline(flags, ch->recv_ns);
	long n;
	int rc;

	if (!sp)
		return -EINVAL;
	rc = rx_alive(ch);
	if (rc < 0)
		return rc;
	for (;;) {
		n = ivl__ring_peek(&ch->lk.rx.ring, sp);
		if (n != -EAGAIN)
			return n < 0 ? map_err(ch, n) : n;
		rc = wait_rx_more(ch, flags, deadline);
		if (rc < 0)
			return rc;
	}
}

int ivl_release(struct ivl_channel *ch, size_t len, unsigned flags)
{
	int rc = rx_alive(ch);

	/* The peeked bytes were read in place: they were only valid if the
	 * remote is still the incarnation we matched. */
	if (rc < 0)
		return rc;
	return (int)map_err(ch, ivl__ring_release(&ch->lk.rx.ring, len, flags & IVL_MORE));
}

/* ---------------------------------------------------------------- poll, stats */

unsigned ivl_channel_poll(struct ivl_channel *ch, unsigned events)
{
	unsigned ready = 0;
	uint32_t pflags;

	if (rx_alive(ch) < 0 || ch->lk.tx.ring.error || ch->lk.rx.ring.error)
		return IVL_POLLERR | (events & (IVL_POLLIN | IVL_POLLOUT));
	/* Gone but drainable: reads return the rest, then EOF or a reset,
	 * and sends fail at once; nothing would block. */
	if (chan_alive(ch) < 0)
		return IVL_POLLHUP | (events & (IVL_POLLIN | IVL_POLLOUT));
	pflags = __atomic_load_n(&ch->lk.rx.ring.prod->flags, __ATOMIC_ACQUIRE);
	if (pflags & (IVL_RING_F_DONE_WRITING | IVL_RING_F_CLOSED | IVL_RING_F_ABORT))
		ready |= IVL_POLLHUP;
	if (events & IVL_POLLIN) {
		if (!ivl_ring_readable(&ch->lk.rx.ring)) {
			ivl__link_arm(&ch->lk.rx);
			if (ivl_ring_readable(&ch->lk.rx.ring))
				ready |= IVL_POLLIN;
		} else {
			ready |= IVL_POLLIN;
		}
	}
	if (events & IVL_POLLOUT) {
		size_t need = ch->mode == IVL_MODE_MESSAGE ? 0 : 1;

		if (!ivl_ring_writable(&ch->lk.tx.ring, need)) {
			ivl__link_arm(&ch->lk.tx);
			if (ivl_ring_writable(&ch->lk.tx.ring, need))
				ready |= IVL_POLLOUT;
		} else {
			ready |= IVL_POLLOUT;
		}
	}
	return ready;
}

static uint64_t ld64(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

int ivl_channel_stats(struct ivl_channel *ch, struct ivl_channel_stats *st)
{
	struct ivl_ring *tx, *rx;
	uint64_t head, tail;

	if (!ch || !st)
		return -EINVAL;
	tx = &ch->lk.tx.ring;
	rx = &ch->lk.rx.ring;
	memset(st, 0, sizeof(*st));
	st->tx_bytes = ld64(&tx->p_tail);
	st->tx_msgs = ld64(&tx->p_msgs);
	st->rx_bytes = ld64(&rx->c_head);
	st->rx_msgs = ld64(&rx->c_msgs);
	st->kicks_sent = ld64(&tx->kicks) + ld64(&rx->kicks);
	st->kicks_suppressed = ivl_ring_kicks_suppressed(tx) + ivl_ring_kicks_suppressed(rx);
	st->sleeps = ld64(&ch->lk.tx.sleeps) + ld64(&ch->lk.rx.sleeps);
	st->tx_ring_size = tx->size;
	st->rx_ring_size = rx->size;
	head = ld64(&tx->cons->head);
	st->tx_fill = (uint32_t)(st->tx_bytes - head > tx->size ? tx->size : st->tx_bytes - head);
	tail = ld64(&rx->prod->tail);
	st->rx_fill = (uint32_t)(tail - st->rx_bytes > rx->size ? rx->size : tail - st->rx_bytes);
	st->remote_peer = ch->lk.remote;
	st->remote_epoch = ch->lk.remote_epoch;
	st->slot = ch->slot;
	st->rx_vector = ch->lk.rx_vector;
	st->mode = ch->mode;
	return 0;
}
