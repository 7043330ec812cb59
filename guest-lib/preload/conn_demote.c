/* SPDX-License-Identifier: MIT */
/*
 * Socket shim connections passed between processes: demotion of an
 * accelerated connection back to TCP (layout.h, rendezvous step 6).
 *
 * An accelerated connection is a kernel TCP socket that carries no data
 * plus a ring pair. A process that receives its fd (SCM_RIGHTS) or runs
 * after an execve knows nothing of the rings and would see a silent TCP
 * socket. So the process about to give the fd away (D) moves it back to
 * TCP first, in sendmsg() and execve() (wrap.c):
 *
 *  - D stops using both rings (state SS_DEMOTING: reads go to the kernel,
 *    sends wait) and publishes its final tx tail and rx head in its half,
 *    then rings the remote P;
 *  - P, at its next socket call, readiness scan or blocked wait, stops too
 *    and answers with its own final tail and head;
 *  - each side writes to the TCP socket the bytes of its own tx ring that
 *    the other never read (from the other's published rx head to its own
 *    tail: still in its own ring memory, so nothing is read back from the
 *    other side), then is plain TCP. Every byte arrives once, in order:
 *    what was read from the ring first, then the replay, then new sends.
 *
 * Neither side reads the other's ring after it stopped, so nothing waits
 * for the other's application to read. D waits for the answer at most
 * the rendezvous timeout plus a second; a P that is dead or never answers
 * makes D reset the connection (reason demote-reset): P's kernel sees a
 * reset, the receiver of the fd an error or EOF, never a hang.
 *
 * Everything read from the other's half is read once into a struct dm_rec,
 * checked (the half still has the gen we matched, the record names our
 * half's gen, the head lies between what the other had already released
 * and our own tail) and only that copy is used.
 */
#include "conn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ivlink/region.h>

/* How long an fd about to leave waits for the other processes of ours that
 * hold the connection (a fork's parent about to close its copy). */
#define SHARED_WAIT_MS 500

/* A replay that makes no progress for this long (the other side does not
 * read its TCP socket) gives up and resets the connection. */
#define DM_STALL_NS 5000000000LL
#define DM_SLICE_NS 2000000LL

struct dm_rec {
	uint32_t state, gen;
	uint64_t tx_tail, rx_head;
};

/* Reads the remote's demotion record once. 1 with *r when the remote half
 * (still the one we matched) carries a request or an answer about ours. */
static int read_remote(struct shim_conn *c, struct dm_rec *r)
{
	struct ivl_chan_half *h = ivl_region_chan(rg_of(c), c->lk.remote, c->remote_slot);

	if (!h)
		return 0;
	/* Acquire: pairs with the release store of dm.state in publish(); the
	 * other fields were written before it. */
	r->state = __atomic_load_n(&h->shim.dm.state, __ATOMIC_ACQUIRE);
	if (r->state != IVL_DM_REQ && r->state != IVL_DM_ACK)
		return 0;
	r->gen = __atomic_load_n(&h->shim.dm.gen, __ATOMIC_RELAXED);
	r->tx_tail = __atomic_load_n(&h->shim.dm.tx_tail, __ATOMIC_RELAXED);
	r->rx_head = __atomic_load_n(&h->shim.dm.rx_head, __ATOMIC_RELAXED);
	/* Read after the record: a half reused since then has a new gen. */
	if (__atomic_load_n(&h->gen, __ATOMIC_ACQUIRE) != c->remote_gen || r->gen != c->gen)
		return 0;
	return 1;
}

int shim_demote_asked(struct shim_conn *c)
{
	struct dm_rec r;

	return get_state(c) == SS_ACCEL && c->sep && c->remote_slot != IVL_SLOT_NONE &&
	       read_remote(c, &r);
}

/* Publishes our final indices in our own half (private copies: the ring
 * handles' own tail and head), then rings the remote. Caller holds both
 * guards and has stopped both rings. */
static void publish(struct shim_conn *c, uint32_t state)
{
	struct ivl_chan_half *h = own_half(c);

	if (h) {
		__atomic_store_n(&h->shim.dm.gen, c->remote_gen, __ATOMIC_RELAXED);
		__atomic_store_n(&h->shim.dm.tx_tail, c->lk.tx.ring.p_tail, __ATOMIC_RELAXED);
		__atomic_store_n(&h->shim.dm.rx_head, c->lk.rx.ring.c_head, __ATOMIC_RELAXED);
		/* Release: pairs with the acquire load in read_remote(). */
		__atomic_store_n(&h->shim.dm.state, state, __ATOMIC_RELEASE);
	}
	ivl__link_kick(&c->lk);
	shim_poke(c->sep, c->lk.remote);
}

/* The other's head must lie between what it had already released (our
 * cached copy of its head) and our tail: anything else is hostile. */
static int head_valid(const struct ivl_ring *tx, uint64_t head)
{
	uint64_t low = tx->p_head_cache;

	return head - low <= tx->p_tail - low;
}

/* The other side's TCP end closed or reset, or its peer left. */
static int remote_gone(struct shim_conn *c)
{
	char b = 0; /* a MSG_PEEK target: its value is never read */
	ssize_t n;

	if (ivl__link_alive(&c->lk) < 0)
		return 1;
	n = REAL(recv)(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Waits (bounded) for the remote's answer. */
static int wait_answer(struct shim_conn *c, struct dm_rec *r)
{
	int64_t t = shim_cfg.accept_timeout_ns + 1000000000LL;
	int64_t deadline = ivl__now_ns() + (t < 2000000000LL ? 2000000000LL : t);

	for (;;) {
		uint32_t snap = ivl__vwait_snapshot(c->sep->ep, c->lk.rx_vector);

		if (read_remote(c, r))
			return 0;
		if (remote_gone(c))
			return -ECONNRESET;
		if (ivl__now_ns() >= deadline)
			return -ETIMEDOUT;
		ivl__vwait_block(c->sep->ep, c->lk.rx_vector, snap, DM_SLICE_NS);
	}
}

/* Writes our tx ring's bytes [from, tail) to the TCP socket, in order,
 * waiting for room even on a non-blocking socket (the app's sends were
 * accepted), but giving up after DM_STALL_NS without progress. */
static int replay(struct shim_conn *c, uint64_t from)
{
	struct ivl_ring *r = &c->lk.tx.ring;
	uint64_t pos = from, tail = r->p_tail;
	int64_t stall = ivl__now_ns() + DM_STALL_NS;

	while (pos != tail) {
		uint32_t off = (uint32_t)pos & r->mask;
		size_t n = r->size - off;
		ssize_t k;

		if (n > tail - pos)
			n = (size_t)(tail - pos);
		k = REAL(send)(c->fd, r->data + off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k > 0) {
			pos += (uint64_t)k;
			stall = ivl__now_ns() + DM_STALL_NS;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = {.fd = c->fd, .events = POLLOUT};

			if (ivl__now_ns() >= stall)
				return -ETIMEDOUT;
			REAL(poll)(&p, 1, 100);
			continue;
		}
		return k < 0 ? -errno : -EIO;
	}
	SHIM_DBG("fd %d: demoted: replayed %llu bytes over TCP", c->fd,
		 (unsigned long long)(tail - from));
	return 0;
}

/*
 * Resets the TCP connection: a connect() to AF_UNSPEC makes the kernel
 * send an RST (tcp_disconnect()), so a live remote sees ECONNRESET; a
 * remote that already closed or died has sent its FIN or RST, and a
 * shutdown makes our side's readers see EOF and writers EPIPE.
 */
static void reset_tcp(struct shim_conn *c, int gone)
{
	struct sockaddr sa;

	if (!gone) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_family = AF_UNSPEC;
		if (REAL(connect)(c->fd, &sa, sizeof(sa)) == 0)
			return;
	}
	REAL(shutdown)(c->fd, SHUT_RDWR);
}

/* Plain TCP from now on. D frees its half at once (P has answered or never
 * will); P keeps its half until it closes the connection (shim.h), so that
 * D can still read the answer. Caller holds c->lock and the tx guard. */
static void finish(struct shim_conn *c, uint32_t reason, int release)
{
	c->reason = reason;
	if (release) {
		shim_release_half(c);
		shim_fallback_note(c, reason);
	} else {
		struct ivl_chan_half *h = own_half(c);

		if (h)
			__atomic_store_n(&h->shim.reason, reason, __ATOMIC_RELAXED);
	}
	shim_count_fallback(c->sep, reason);
	if (c->shut_wr)
		REAL(shutdown)(c->fd, SHUT_WR);
	set_state(c, SS_FALLBACK);
	SHIM_DBG("fd %d: moved back to TCP (%s)", c->fd, shim_reason_name(reason));
}

/*
 * Stops both rings of c and publishes state (REQ or ACK). Returns with
 * c->lock and the tx guard held (sends wait for the replay), the rx guard
 * released (reads go to the kernel socket from now on). *asked: the remote
 * had already published its record (*r).
 */
static int stop(struct shim_conn *c, uint32_t state, struct dm_rec *r)
{
	int asked;

	shim_guard_lock(&c->rxg);
	shim_guard_lock(&c->txg);
	set_state(c, SS_DEMOTING);
	flush_tx(c);
	flush_rx(c);
	asked = read_remote(c, r);
	publish(c, state);
	pthread_mutex_unlock(&c->rxg.lock);
	return asked;
}

/* The rest after stop(): the replay, or a reset. */
static void complete(struct shim_conn *c, int rc, const struct dm_rec *r, int release)
{
	int gone = rc == -ECONNRESET;

	if (rc == 0 && !head_valid(&c->lk.tx.ring, r->rx_head))
		rc = -EPROTO;
	if (rc == 0)
		rc = replay(c, r->rx_head);
	if (rc < 0) {
		SHIM_DBG("fd %d: demotion failed (%s): reset", c->fd, strerror(-rc));
		reset_tcp(c, gone);
		finish(c, IVL_FB_DEMOTE_RESET, 1);
	} else {
		finish(c, IVL_FB_DEMOTED, release);
	}
	pthread_mutex_unlock(&c->txg.lock);
	pthread_mutex_unlock(&c->lock);
	shim_regs_retarget(c);
}

void shim_demote_answer(struct shim_conn *c)
{
	struct dm_rec r;

	pthread_mutex_lock(&c->lock);
	if (get_state(c) != SS_ACCEL || !read_remote(c, &r)) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	stop(c, IVL_DM_ACK, &r);
	complete(c, 0, &r, 0);
}

/* D: moves c back to TCP before its fd leaves the process. */
static void demote(struct shim_conn *c)
{
	struct dm_rec r;
	int rc = 0;

	pthread_mutex_lock(&c->lock);
	if (get_state(c) != SS_ACCEL || !c->sep || c->remote_slot == IVL_SLOT_NONE) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	/* Still held by another process of ours (a fork): that one goes on
	 * using the rings in turn (shim.h), and a demotion here would pull
	 * them from under it. A fork+exec server (socat fork + EXEC nofork,
	 * tcpserver, inetd style) forks, then its parent closes its copy
	 * while the child may already be in execve: so wait a little for the
	 * other holders to let go (SHARED_WAIT_MS). If they do not, the fd
	 * leaves as it is (a known limit). */
	if ((c->inherited || c->forked) && own_half(c)) {
		int64_t until = ivl__now_ns() + SHARED_WAIT_MS * 1000000LL;

		while (__atomic_load_n(&own_half(c)->shim.procs, __ATOMIC_ACQUIRE) > 1 &&
		       ivl__now_ns() < until)
			usleep(1000);
		if (__atomic_load_n(&own_half(c)->shim.procs, __ATOMIC_ACQUIRE) > 1) {
			SHIM_DBG("fd %d: shared with another process: not moved to TCP", c->fd);
			pthread_mutex_unlock(&c->lock);
			return;
		}
	}
	/* Both sides demoting at once: each takes the other's request as
	 * the answer. */
	if (!stop(c, IVL_DM_REQ, &r))
		rc = wait_answer(c, &r);
	complete(c, rc, &r, 1);
}

static void demote_fd(int fd)
{
	struct shim_obj *o = shim_get(fd);
	struct shim_conn *c = shim_conn_of(o);

	/* A rendezvous still pending (a pre-fork server's child that execs
	 * right after accept: socat fork + EXEC nofork, tcpserver) is settled
	 * first, for at most the accept timeout and a second: it ends
	 * accelerated (then moved back to TCP here) or on TCP already. */
	if (c) {
		int64_t until = ivl__now_ns() + shim_cfg.accept_timeout_ns + 1000000000LL;
		int st;

		while (((st = get_state(c)) == SS_CLI_PENDING || st == SS_SRV_PENDING) &&
		       ivl__now_ns() < until)
			shim_pending_wait(c, until);
		if (get_state(c) == SS_ACCEL)
			demote(c);
	}
	shim_put(o);
}

void shim_demote_msg(const struct msghdr *m)
{
	if (!m || !m->msg_control || m->msg_controllen < sizeof(struct cmsghdr))
		return;
	/* The app's buffer, read once per header: the kernel reads it after
	 * us, and a bad one fails there with EINVAL as without the shim. */
	for (struct cmsghdr *h = CMSG_FIRSTHDR((struct msghdr *)m); h;
	     h = CMSG_NXTHDR((struct msghdr *)m, h)) {
		size_t len = h->cmsg_len;

		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS || len < CMSG_LEN(0))
			continue;
		for (size_t i = 0; i < (len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
			demote_fd(fd);
		}
	}
}

void shim_demote_exec(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		int fl;

		if (*end || end == e->d_name || fd < 0 || fd == dirfd(d))
			continue;
		fl = REAL(fcntl)((int)fd, F_GETFD);
		/* Close-on-exec fds go away at exec: nothing to move. */
		if (fl >= 0 && !(fl & FD_CLOEXEC))
			demote_fd((int)fd);
	}
	closedir(d);
}
