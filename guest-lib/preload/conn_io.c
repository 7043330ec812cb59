/* SPDX-License-Identifier: MIT */
/*
 * Socket shim connections, the data path: send/recv on a ring (the full
 * path, with waits, and the fast path of an owned direction), readiness of
 * an accelerated connection for poll/epoll, FIONREAD. See conn.h and
 * shim.h ("Threads and the fd table").
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

/* ------------------------------------------------------------ data path */

static int64_t deadline_from(int64_t timeout_ns)
{
	return timeout_ns > 0 ? ivl__now_ns() + timeout_ns : INT64_MAX;
}

static int64_t slice_until(int64_t deadline, int64_t slice)
{
	int64_t left = deadline == INT64_MAX ? slice : deadline - ivl__now_ns();

	if (left < 0)
		left = 0;
	return left < slice ? left : slice;
}

/* Waits a little for a pending connection's decision. */
void shim_pending_wait(struct shim_conn *c, int64_t deadline)
{
	int64_t t =
	    slice_until(deadline, c->inherited ? SHIM_INHERITED_SLICE_NS : PENDING_SLICE_NS);
	uint32_t snap = ivl__vwait_snapshot(c->sep->ep, c->lk.rx_vector);

	shim_progress(c);
	if (get_state(c) != SS_CLI_PENDING && get_state(c) != SS_SRV_PENDING)
		return;
	if (c->state == SS_CLI_PENDING && c->deadline_ns - ivl__now_ns() < t)
		t = c->deadline_ns - ivl__now_ns();
	if (t > 0)
		ivl__vwait_block(c->sep->ep, c->lk.rx_vector, snap, t);
	shim_progress(c);
}

/*
 * A connection inherited over fork that this process now holds alone (its
 * parent closed its copy: PostgreSQL's postmaster forks a backend for each
 * connection it accepts) still wakes on the owner's vectors, which the
 * parent and every other child forked from it wait on as well: each
 * doorbell would wake them all (eight backends, eight wake-ups per
 * message), and whichever drains it first may take it from the one it was
 * for. So take a doorbell of our own: our own endpoint in the region (a
 * peer of its own on the host, a vector of its own in a guest), heard on
 * the inherited vector's fd (ivl__ep_redirect_vector), and named in our
 * half's wake_to, which the remote reads before it rings (layout.h). Tried
 * at each data call until the connection is ours alone, then decided for
 * good. Caller holds a direction's lock.
 */
static void own_wake(struct shim_conn *c)
{
	struct ivl_chan_half *h = own_half(c);
	struct shim_ep *own;
	int64_t w;

	if (!h || __atomic_load_n(&h->shim.procs, __ATOMIC_ACQUIRE) > 1)
		return;
	c->wake_done = 1;
	own = shim_ep_own_like(c->sep);
	if (!own || own == c->sep)
		return;
	w = ivl__ep_redirect_vector(c->sep->ep, c->lk.rx_vector, own->ep);
	if (w < 0) {
		SHIM_DBG("fd %d: no doorbell of our own: %s", c->fd, strerror((int)-w));
		return;
	}
	/* W1: pairs with W2 (guest-lib/link.c): the store, then a full
	 * fence before the callers look at the rings (this data call, and
	 * every wait re-checks them before it sleeps): either that sees what
	 * a remote published, or the remote's load after its publish sees
	 * the new target. */
	__atomic_store_n(&h->wake_to, (uint32_t)w, __ATOMIC_SEQ_CST);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	c->lk.block_max_ns = 0;
	__atomic_store_n(&c->wake_own, 1, __ATOMIC_RELEASE);
	SHIM_DBG("fd %d: wakes on peer %u vector %u now", c->fd, IVL_WAKE_TO_PEER((uint32_t)w),
		 IVL_WAKE_TO_VECTOR((uint32_t)w));
}

/* Looks at the TCP socket of an accelerated connection: FIN or RST from a
 * peer that went away without closing its rings (killed, or fork-shared). */
static void tcp_probe(struct shim_conn *c)
{
	char b = 0; /* a MSG_PEEK target: its value is never read */
	ssize_t n = REAL(recv)(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n == 0)
		__atomic_store_n(&c->tcp_hup, 1, __ATOMIC_RELAXED);
	else if (n < 0 && errno != EAGAIN && errno != EINTR)
		__atomic_store_n(&c->tcp_err, errno, __ATOMIC_RELAXED);
}

/* The state a data call goes on in (a connecting socket is checked
 * first), or SHIM_PASS for the real call, or -EOPNOTSUPP (MSG_OOB). */
static int io_state(struct shim_conn *c, int flags)
{
	int st = get_state(c);

	if (st == SS_CONNECTING)
		st = shim_connecting_check(c, 0);
	if (!shim_is_active(st) || st == SS_CONNECTING)
		return SHIM_PASS;
	if (flags & MSG_OOB)
		return -EOPNOTSUPP;
	return st;
}

static void raise_sigpipe(int flags)
{
	if (!(flags & MSG_NOSIGNAL))
		pthread_kill(pthread_self(), SIGPIPE);
}

ssize_t shim_sendv(struct shim_conn *c, const struct iovec *iov0, int cnt, int flags)
{
	struct iovec stack[IVL__IOV_STACK], *iov = stack, *alloc = NULL;
	size_t total = 0, done = 0;
	int dontwait = c->nonblock || (flags & MSG_DONTWAIT);
	int64_t deadline = deadline_from(c->sndtimeo_ns);
	ssize_t ret;
	int demote = 0;
	int st = io_state(c, flags);

	if (st < 0)
		return st;
	ret = ivl__iov_dup(iov0, cnt, stack, &iov, &total);
	if (ret < 0)
		return ret;
	alloc = iov != stack ? iov : NULL;
	shim_guard_lock(&c->txg);
	if (st == SS_ACCEL) {
		adopt_if_shared(c, &c->lk.tx.ring);
		if (c->inherited && !c->wake_done)
			own_wake(c);
		shim_guard_claim(&c->txg, &c->forked);
	}
	for (;;) {
		long n;

		st = get_state(c);
		if (st == SS_FALLBACK || st == SS_DEMOTING) {
			ret = done ? (ssize_t)done : SHIM_PASS;
			break;
		}
		if (c->shut_wr) {
			ret = done ? (ssize_t)done : -EPIPE;
			if (!done)
				raise_sigpipe(flags);
			break;
		}
		if (st == SS_ACCEL && conn_alive(c) < 0) {
			ret = done ? (ssize_t)done : -ECONNRESET;
			break;
		}
		n = total == done ? 0
		    : cnt == 1	  ? ivl__ring_write(&c->lk.tx.ring, iov->iov_base, iov->iov_len, 0)
				  : ivl_ring_writev(&c->lk.tx.ring, iov, cnt, 0);
		if (n > 0) {
			done += (size_t)n;
			if (st == SS_ACCEL)
				count_tx(c, (uint64_t)n);
			if (done == total) {
				ret = (ssize_t)done;
				break;
			}
			ivl__iov_advance(&iov, &cnt, (size_t)n);
			continue;
		}
		if (n == 0 && total == 0) {
			ret = 0;
			break;
		}
		if (n == -EPIPE) {
			ret = done ? (ssize_t)done : -EPIPE;
			if (!done)
				raise_sigpipe(flags);
			break;
		}
		if (n < 0 && n != -EAGAIN) {
			__atomic_store_n(&c->lk.reset, 1, __ATOMIC_RELAXED);
			ret = done ? (ssize_t)done : -ECONNRESET;
			break;
		}
		/* Full because the remote stopped reading to move the
		 * connection back to TCP (conn_demote.c): answer, then the
		 * rest goes over TCP, after the replay. */
		if (st == SS_ACCEL && shim_demote_asked(c)) {
			ret = done ? (ssize_t)done : SHIM_PASS;
			demote = 1;
			break;
		}
		/* Full: like a kernel socket's SOCK_NOSPACE, owes an EPOLLOUT
		 * edge once there is room (user-space EPOLLET). */
		if (dontwait)
			__atomic_fetch_add(&c->tx_full, 1, __ATOMIC_RELAXED);
		if (done && dontwait) {
			ret = (ssize_t)done;
			break;
		}
		if (dontwait) {
			ivl__link_arm(&c->lk.tx);
			if (ivl_ring_writable(&c->lk.tx.ring, 1))
				continue;
			ret = -EAGAIN;
			break;
		}
		if (ivl__now_ns() >= deadline) {
			ret = done ? (ssize_t)done : -EAGAIN;
			break;
		}
		if (st != SS_ACCEL) {
			pthread_mutex_unlock(&c->txg.lock);
			shim_pending_wait(c, deadline);
			shim_guard_lock(&c->txg);
			continue;
		}
		ivl__link_wait_prepare(&c->lk.tx);
		n = ivl_ring_wait_writable(&c->lk.tx.ring, 1, slice_until(deadline, TCP_PROBE_NS));
		if (n == -ECONNRESET || n == -EPROTO) {
			__atomic_store_n(&c->lk.reset, 1, __ATOMIC_RELAXED);
			ret = done ? (ssize_t)done : -ECONNRESET;
			break;
		}
		if (n == -ETIMEDOUT)
			tcp_probe(c);
	}
	flush_tx(c); /* the full path counts at once, as before the fast one */
	pthread_mutex_unlock(&c->txg.lock);
	free(alloc);
	if (demote)
		shim_progress(c);
	if (c->rfd >= 0)
		shim_sync(c);
	return ret;
}

/* Copies up to len readable bytes without consuming them. */
static ssize_t ring_peek_copy(struct shim_conn *c, const struct iovec *iov, int cnt)
{
	struct ivl_span sp[2];
	long n = ivl_ring_peek(&c->lk.rx.ring, sp);
	size_t copied = 0, si = 0, so = 0;

	if (n <= 0)
		return n;
	for (int i = 0; i < cnt; i++) {
		size_t io = 0;

		while (io < iov[i].iov_len && si < 2) {
			size_t k = sp[si].len - so;

			if (k > iov[i].iov_len - io)
				k = iov[i].iov_len - io;
			memcpy((uint8_t *)iov[i].iov_base + io, (uint8_t *)sp[si].base + so, k);
			io += k;
			so += k;
			copied += k;
			if (so == sp[si].len) {
				si++;
				so = 0;
				if (si == 2 || sp[si].len == 0)
					si = 2;
			}
		}
	}
	return (ssize_t)copied;
}

ssize_t shim_recvv(struct shim_conn *c, const struct iovec *iov0, int cnt, int flags)
{
	struct iovec stack[IVL__IOV_STACK], *iov = stack, *alloc = NULL;
	size_t total = 0, done = 0;
	int dontwait = c->nonblock || (flags & MSG_DONTWAIT);
	int64_t deadline = deadline_from(c->rcvtimeo_ns);
	int64_t next_probe = 0;
	int gone_seen = 0, demote = 0;
	ssize_t ret;
	int st = io_state(c, flags);

	if (st < 0)
		return st;
	/* Pending: nothing can be read until the decision. */
	while (st == SS_CLI_PENDING || st == SS_SRV_PENDING) {
		shim_progress(c);
		st = get_state(c);
		if (st != SS_CLI_PENDING && st != SS_SRV_PENDING)
			break;
		if (dontwait)
			return -EAGAIN;
		if (ivl__now_ns() >= deadline)
			return -EAGAIN;
		shim_pending_wait(c, deadline);
		st = get_state(c);
	}
	if (st != SS_ACCEL)
		return SHIM_PASS;
	ret = ivl__iov_dup(iov0, cnt, stack, &iov, &total);
	if (ret < 0)
		return ret;
	alloc = iov != stack ? iov : NULL;
	shim_guard_lock(&c->rxg);
	adopt_if_shared(c, &c->lk.rx.ring);
	if (c->inherited && !c->wake_done)
		own_wake(c);
	shim_guard_claim(&c->rxg, &c->forked);
	for (;;) {
		long n;

		/* Moving back to TCP (conn_demote.c): the ring's unread bytes
		 * come again over TCP, so they are not read here. */
		if (get_state(c) != SS_ACCEL) {
			ret = done ? (ssize_t)done : SHIM_PASS;
			break;
		}
		if (c->shut_rd) {
			ret = (ssize_t)done;
			break;
		}
		if (flags & MSG_PEEK)
			n = ring_peek_copy(c, iov, cnt);
		else
			n = total == done ? 0
			    : cnt == 1 ? ivl__ring_read(&c->lk.rx.ring, iov->iov_base, iov->iov_len)
				       : ivl_ring_readv(&c->lk.rx.ring, iov, cnt);
		if (n > 0) {
			/* Validate after the copy, as channel.c does: the
			 * section must still hold the remote we matched. */
			if (rx_alive(c) < 0) {
				__atomic_store_n(&c->lk.reset, 1, __ATOMIC_RELAXED);
				ret = -ECONNRESET;
				break;
			}
			count_rx(c, (uint64_t)n);
			done += (size_t)n;
			if (!(flags & MSG_WAITALL) || done == total || (flags & MSG_PEEK)) {
				ret = (ssize_t)done;
				break;
			}
			ivl__iov_advance(&iov, &cnt, (size_t)n);
			continue;
		}
		if (n == 0) {
			ret = (ssize_t)done; /* EOF, or an empty read */
			break;
		}
		if (n != -EAGAIN) {
			__atomic_store_n(&c->lk.reset, 1, __ATOMIC_RELAXED);
			ret = done ? (ssize_t)done : -ECONNRESET;
			break;
		}
		/* Empty because the remote asked to move back to TCP: answer,
		 * then read the kernel socket. */
		if (shim_demote_asked(c)) {
			ret = done ? (ssize_t)done : SHIM_PASS;
			demote = 1;
			break;
		}
		/* Empty, no EOF: a remote that left without one reset us. It
		 * may have published its last bytes or EOF between our read
		 * and this look: read once more first. */
		if (conn_alive(c) < 0) {
			if (!gone_seen && rx_alive(c) == 0) {
				gone_seen = 1;
				continue;
			}
			/* Killed or _exit()ed without closing its rings: its
			 * kernel still closed the TCP socket, and a FIN there
			 * is the EOF plain TCP would show. It may trail the
			 * daemon's news: wait for it, once and bounded. A dead
			 * VM sends none: a reset. */
			if (!done && !c->tcp_hup && !c->tcp_err) {
				struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};

				REAL(poll)(&p, 1, GONE_FIN_WAIT_MS);
				tcp_probe(c);
			}
			if (done || (c->tcp_hup && !c->tcp_err)) {
				ret = (ssize_t)done;
			} else {
				__atomic_store_n(&c->lk.reset, 1, __ATOMIC_RELAXED);
				ret = -ECONNRESET;
			}
			break;
		}
		if (__atomic_load_n(&c->tcp_err, __ATOMIC_RELAXED)) {
			ret = done ? (ssize_t)done : -ECONNRESET;
			break;
		}
		if (__atomic_load_n(&c->tcp_hup, __ATOMIC_RELAXED)) {
			ret = (ssize_t)done;
			break;
		}
		if (done) {
			ret = (ssize_t)done;
			break;
		}
		if (dontwait) {
			ivl__link_arm(&c->lk.rx);
			if (ivl_ring_readable(&c->lk.rx.ring))
				continue;
			if (ivl__now_ns() >= next_probe) {
				tcp_probe(c);
				if (c->tcp_hup || c->tcp_err)
					continue;
			}
			ret = -EAGAIN;
			break;
		}
		if (ivl__now_ns() >= deadline) {
			ret = -EAGAIN;
			break;
		}
		ivl__link_wait_prepare(&c->lk.rx);
		n = ivl_ring_wait_readable(&c->lk.rx.ring, slice_until(deadline, TCP_PROBE_NS));
		if (n == -ETIMEDOUT) {
			tcp_probe(c);
			next_probe = ivl__now_ns() + TCP_PROBE_NS;
		} else if (n == -EPROTO) {
			__atomic_store_n(&c->lk.reset, 1, __ATOMIC_RELAXED);
		}
		/* -ECONNRESET (the remote left): the next pass drains what
		 * it published, then reports EOF or the reset. */
	}
	flush_rx(c);
	pthread_mutex_unlock(&c->rxg.lock);
	free(alloc);
	if (demote)
		shim_progress(c);
	if (c->rfd >= 0)
		shim_sync(c);
	return ret;
}

long shim_conn_nread(struct shim_conn *c)
{
	long n = 0;

	if (get_state(c) != SS_ACCEL)
		return -1;
	shim_guard_lock(&c->rxg);
	adopt_if_shared(c, &c->lk.rx.ring);
	if (ivl_ring_readable(&c->lk.rx.ring)) {
		struct ivl_span sp[2];
		long k = ivl_ring_peek(&c->lk.rx.ring, sp);

		n = k > 0 ? k : 0;
	}
	pthread_mutex_unlock(&c->rxg.lock);
	return n;
}

/*
 * Readiness of an active connection as poll bits, for the requested
 * events. With arm, asks for a doorbell for each requested event that is
 * not ready, then re-checks (the caller is about to sleep); with arm > 1
 * also asks for a doorbell for the next arrival when data is already there.
 */
/*
 * The room that makes a connection writable for poll and epoll: as for a
 * kernel TCP socket (sk_stream_is_writeable(): free space at least half
 * of what is queued), a writer woken for room finds a good part of the
 * ring, not the few bytes the peer has just read: a quarter of it. Sends
 * themselves take any room there is.
 */
static size_t wspace(const struct shim_conn *c)
{
	return c->own.tx_size >= 4 ? c->own.tx_size / 4 : 1;
}

unsigned shim_conn_revents(struct shim_conn *c, unsigned events, int arm_it)
{
	unsigned rev = 0;
	int st = get_state(c);

	if (st == SS_CLI_PENDING || st == SS_SRV_PENDING) {
		if (events & POLLOUT) {
			shim_guard_lock(&c->txg);
			if (ivl_ring_writable(&c->lk.tx.ring, wspace(c)))
				rev |= POLLOUT;
			else if (arm_it)
				ivl__link_arm(&c->lk.tx);
			pthread_mutex_unlock(&c->txg.lock);
		}
		return rev;
	}
	if (st != SS_ACCEL)
		return 0;
	if (c->lk.reset || c->tcp_err || rx_alive(c) < 0)
		return POLLIN | POLLOUT | POLLERR | POLLHUP;
	/* Gone but drainable: reads return the rest, then EOF or a reset,
	 * and sends fail at once; nothing would block. */
	if (conn_alive(c) < 0)
		return (POLLIN | POLLOUT | POLLRDHUP | POLLHUP) & (events | POLLHUP);
	if (events & (POLLIN | POLLRDHUP)) {
		shim_guard_lock(&c->rxg);
		adopt_if_shared(c, &c->lk.rx.ring);
		if (ivl_ring_readable(&c->lk.rx.ring) || c->tcp_hup || c->shut_rd) {
			uint32_t f = __atomic_load_n(&c->lk.rx.ring.prod->flags, __ATOMIC_ACQUIRE);

			rev |= POLLIN;
			if ((f & (IVL_RING_F_DONE_WRITING | IVL_RING_F_CLOSED)) || c->tcp_hup)
				rev |= POLLRDHUP;
			/* A readiness fd needs a doorbell for the next arrival
			 * too (a new edge for EPOLLET), data unread or not. */
			if (arm_it > 1)
				ivl__link_arm(&c->lk.rx);
		} else if (arm_it) {
			ivl__link_arm(&c->lk.rx);
			if (ivl_ring_readable(&c->lk.rx.ring))
				rev |= POLLIN;
		}
		pthread_mutex_unlock(&c->rxg.lock);
	}
	if (events & POLLOUT) {
		shim_guard_lock(&c->txg);
		adopt_if_shared(c, &c->lk.tx.ring);
		if (ivl_ring_writable(&c->lk.tx.ring, wspace(c))) {
			rev |= POLLOUT;
		} else if (arm_it) {
			ivl__link_arm(&c->lk.tx);
			if (ivl_ring_writable(&c->lk.tx.ring, wspace(c)))
				rev |= POLLOUT;
		}
		pthread_mutex_unlock(&c->txg.lock);
	}
	if ((rev & POLLRDHUP) && c->shut_wr)
		rev |= POLLHUP;
	return rev & (events | POLLERR | POLLHUP);
}

/* ------------------------------------------------------------ fast path */

/*
 * Whether c may take a fast path in this direction now: accelerated,
 * owned by the calling thread (so nobody else uses the ring handle), no
 * shutdown or reset to report, and no readiness fd to keep in step (its
 * users go through shim_sync()). A connection shared over fork is never
 * owned. Everything read here is private memory of this process.
 */
static inline int fast_ok(struct shim_conn *c, const struct shim_guard *g,
			  const struct shim_reader *me, int shut)
{
	return __atomic_load_n(&g->owner, __ATOMIC_RELAXED) == me &&
	       __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == SS_ACCEL && !shut &&
	       !__atomic_load_n(&c->lk.reset, __ATOMIC_RELAXED) && c->rfd < 0;
}

/*
 * Why a close() racing a send() in another thread is safe here: the lookup
 * takes no reference, but it runs inside a fast section, and close()
 * removes the fd from the table and then waits in shim_fast_sync() for
 * every section that may have found it, before the table's reference is
 * dropped (wrap.c, forget_fd). So the connection outlives the section;
 * whatever the section wrote went into a ring whose remote reads it before
 * the close's CLOSED flag, as with a send() that returned just before the
 * close() in the kernel. Nothing here blocks: a full ring, a partial write
 * or any flag leaves the section and takes the full path, which takes a
 * reference.
 */
int shim_fast_send(int fd, const void *buf, size_t len, int flags, ssize_t *ret)
{
	struct shim_reader *me = shim_fast_enter();
	struct shim_conn *c;
	struct iovec rest;
	ssize_t more;
	long n;

	if (!me)
		return 0;
	c = shim_conn_of(shim_fast_lookup(fd));
	if (!c || !fast_ok(c, &c->txg, me, c->shut_wr) || len == 0 ||
	    (flags & ~(MSG_NOSIGNAL | MSG_DONTWAIT)))
		goto slow;
	n = ivl__ring_write_stream(&c->lk.tx.ring, buf, len, 0);
	if (n <= 0)
		goto slow; /* nothing written: the full path waits or reports */
	count_tx(c, (uint64_t)n);
	if ((size_t)n == len) {
		shim_fast_leave(me);
		*ret = n;
		return 1;
	}
	/* A partial write (the ring filled up): the rest goes the full way,
	 * which may wait, so with a reference of its own. */
	__atomic_fetch_add(&c->o.refs, 1, __ATOMIC_ACQ_REL);
	shim_fast_leave(me);
	rest = (struct iovec){.iov_base = (uint8_t *)buf + n, .iov_len = len - (size_t)n};
	/* Part was sent: no SIGPIPE for the rest (shim_sendv raises it only
	 * for a call that sent nothing). */
	more = shim_sendv(c, &rest, 1, flags | MSG_NOSIGNAL);
	shim_put(&c->o);
	*ret = more > 0 ? n + more : n;
	return 1;
slow:
	shim_fast_leave(me);
	return 0;
}

int shim_fast_recv(int fd, void *buf, size_t len, int flags, ssize_t *ret)
{
	struct shim_reader *me = shim_fast_enter();
	struct shim_conn *c;
	long n;

	if (!me)
		return 0;
	c = shim_conn_of(shim_fast_lookup(fd));
	if (!c || !fast_ok(c, &c->rxg, me, c->shut_rd) || len == 0 || (flags & ~MSG_DONTWAIT))
		goto slow;
	/* No re-validation of the remote after the copy, as in ivl_recv()
	 * (channel.c's file comment says why). */
	n = ivl__ring_read_stream(&c->lk.rx.ring, buf, len);
	if (n <= 0)
		goto slow; /* empty or EOF: the full path decides */
	count_rx(c, (uint64_t)n);
	shim_fast_leave(me);
	*ret = n;
	return 1;
slow:
	shim_fast_leave(me);
	return 0;
}
