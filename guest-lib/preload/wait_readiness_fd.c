/* SPDX-License-Identifier: MIT */
/*
 * Socket shim readiness, the readiness fds: a socketpair per connection
 * whose state mirrors the rings' for kernel-side watchers (sets nested in
 * others or polled, EPOLLEXCLUSIVE registrations). See shim.h, "Readiness".
 */
#include "fd_high.h"
#include "shim.h"
#include "wait.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ivlink/region.h>

int shim_rfd_create(struct shim_conn *c)
{
	int sv[2], one = 1;

	if (c->rfd >= 0)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* The smallest send buffer: filling it (not writable) takes one or
	 * two small writes. */
	sv[0] = ivl__fd_high(sv[0]);
	sv[1] = ivl__fd_high(sv[1]);
	REAL(setsockopt)(sv[0], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one));
	c->cfd = sv[1];
	__atomic_store_n(&c->rfd, sv[0], __ATOMIC_RELEASE);
	return 0;
}

/* Empties a socketpair end holding `queued` bytes (SIZE_MAX: unknown).
 * One recv() takes them all when they fit in the buffer: a stream socket
 * returns what is queued, so no second call has to find it empty. */
static void drain(int fd, size_t queued)
{
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = REAL(recv)(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0 || (n < (ssize_t)sizeof(buf) && (size_t)n >= queued))
			return;
		queued = (size_t)n >= queued ? 0 : queued - (size_t)n;
	}
}

void shim_sync(struct shim_conn *c)
{
	unsigned ev;
	int st, rd, wr;

	/* Only registrations that watch the readiness fd need it current. */
	if (__atomic_load_n(&c->rfd, __ATOMIC_ACQUIRE) < 0 ||
	    !__atomic_load_n(&c->rfd_regs, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&c->lock);
	st = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
	if (st != SS_ACCEL && st != SS_CLI_PENDING && st != SS_SRV_PENDING) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	ev = shim_conn_revents(c, POLLIN | POLLOUT | POLLRDHUP, 2);
	rd = !!(ev & (POLLIN | POLLERR | POLLHUP));
	wr = !!(ev & (POLLOUT | POLLERR));
	if (rd) {
		/* The producer's tail itself: the handle's cached tail is
		 * only refreshed when the ring looks empty. */
		uint64_t tail = st == SS_ACCEL
				    ? __atomic_load_n(&c->lk.rx.ring.prod->tail, __ATOMIC_ACQUIRE)
				    : 0;

		/* A byte per new ring event: each is a new edge for EPOLLET
		 * (and for an epoll set nested in another, whose outer set
		 * sees an edge per arrival as with a kernel socket). Level
		 * triggered sets need only the first. */
		if (!c->r_bytes ||
		    (tail != c->r_mark && __atomic_load_n(&c->edges, __ATOMIC_RELAXED))) {
			if (REAL(send)(c->cfd, "r", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
				c->r_bytes++;
			c->r_mark = tail;
		}
	} else if (c->r_bytes) {
		drain(c->rfd, (size_t)c->r_bytes);
		c->r_bytes = 0;
	}
	if ((ev & (POLLRDHUP | POLLERR)) && !c->r_hup) {
		REAL(shutdown)(c->cfd, SHUT_WR);
		c->r_hup = 1;
	}
	if (wr && c->w_full) {
		drain(c->cfd, SIZE_MAX);
		c->w_full = 0;
	} else if (!wr && !c->w_full) {
		static const char junk[1024];

		while (REAL(send)(c->rfd, junk, sizeof(junk), MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
			;
		c->w_full = 1;
	}
	pthread_mutex_unlock(&c->lock);
}
