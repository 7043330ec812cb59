/* SPDX-License-Identifier: MIT */
/* ivlinkd's server: every client's bounded output queue (protocol messages with
 * their fds, status text) and the control doorbell. */
#define _GNU_SOURCE
#include "internal.h"

void ivl__srv_mark_dead(struct client *c, int quiet, const char *fmt, ...)
{
	va_list ap;

	if (c->dead)
		return;
	c->dead = 1;
	c->dead_quiet = quiet;
	va_start(ap, fmt);
	vsnprintf(c->dead_why, sizeof(c->dead_why), fmt, ap);
	va_end(ap);
}

static void set_out(struct ivl_server *s, struct client *c, int on)
{
	struct epoll_event ev = {.events = (c->kind == EP_PEER ? EPOLLIN | EPOLLRDHUP : 0) |
					   (on ? EPOLLOUT : 0),
				 .data.ptr = c};

	if (c->out_armed == on)
		return;
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
		ivl__srv_mark_dead(c, 0, "epoll_ctl: %s", strerror(errno));
		return;
	}
	c->out_armed = on;
}

void ivl__srv_enqueue(struct ivl_server *s, struct client *c, int64_t val, struct efd_ref *fd)
{
	if (c->dead)
		return;
	if (c->q_len >= s->queue_limit) {
		s->stats.queue_kills++;
		ivl__srv_mark_dead(
		    c, 0, "output queue full (%u messages): the client does not read", c->q_len);
		return;
	}
	if (c->q_len == c->q_cap) {
		uint32_t ncap = c->q_cap ? c->q_cap * 2 : 64;
		struct msg *nq = malloc(sizeof(*nq) * ncap);

		if (!nq) {
			ivl__srv_mark_dead(c, 0, "out of memory for its output queue");
			return;
		}
		for (uint32_t i = 0; i < c->q_len; i++)
			nq[i] = c->q[(c->q_head + i) % c->q_cap];
		free(c->q);
		c->q = nq;
		c->q_cap = ncap;
		c->q_head = 0;
	}
	if (fd)
		fd->refs++;
	c->q[(c->q_head + c->q_len) % c->q_cap] = (struct msg){.val = val, .fd = fd};
	c->q_len++;
}

static int send_one(int sock, const void *buf, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : (int)n;
}

void ivl__srv_flush_peer(struct ivl_server *s, struct client *c)
{
	while (c->q_len && !c->dead) {
		struct msg *m = &c->q[c->q_head];
		int64_t le = (int64_t)htole64((uint64_t)m->val);
		/* The fd goes with the first byte; the rest of a message cut
		 * by a partial send goes without it. */
		int fd = m->fd && c->q_off == 0 ? m->fd->fd : -1;
		int n = send_one(c->fd, (char *)&le + c->q_off, sizeof(le) - c->q_off, fd);

		if (n == -EAGAIN) {
			set_out(s, c, 1);
			return;
		}
		if (n < 0) {
			/* EPIPE/ECONNRESET: it left. ETOOMANYREFS: too many fds
			 * in flight to clients that do not read. Either way
			 * this client cannot get a consistent stream any more. */
			ivl__srv_mark_dead(c, n == -EPIPE || n == -ECONNRESET, "send failed: %s",
					   strerror(-n));
			return;
		}
		c->q_off += (uint32_t)n;
		if (c->q_off < sizeof(le))
			continue;
		ivl__srv_efd_unref(m->fd);
		c->q_head = (c->q_head + 1) % c->q_cap;
		c->q_len--;
		c->q_off = 0;
	}
	if (!c->dead)
		set_out(s, c, 0);
}

void ivl__srv_flush_status(struct ivl_server *s, struct client *c)
{
	while (c->soff < c->slen && !c->dead) {
		int n = send_one(c->fd, c->sbuf + c->soff, c->slen - c->soff, c->sfd);

		if (n == -EAGAIN) {
			set_out(s, c, 1);
			return;
		}
		if (n < 0) {
			ivl__srv_mark_dead(c, 1, "status send failed: %s", strerror(-n));
			return;
		}
		if (c->sfd >= 0) {
			close(c->sfd);
			c->sfd = -1;
		}
		c->soff += (size_t)n;
	}
	ivl__srv_mark_dead(c, 1, "status sent");
}

/* Rings a peer's control vector: its table view changed. */
void ivl__srv_ring_ctrl(struct ivl_server *s, struct client *c)
{
	uint64_t one = 1;
	ssize_t n;

	do
		n = write(c->efd[IVL_CTRL_VECTOR]->fd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
	/* EAGAIN means the counter is saturated: a wake-up is pending anyway. */
	if (n < 0 && errno != EAGAIN)
		ivl__srv_log(s, IVL_LOG_WARN, "peer %d: cannot ring control vector: %s", c->id,
			     strerror(errno));
}
