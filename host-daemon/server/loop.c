/* SPDX-License-Identifier: MIT */
/* ivlinkd's server: the epoll loop, ivl_server_run(). */
#define _GNU_SOURCE
#include "internal.h"

static void do_accept(struct ivl_server *s, int lfd, int status)
{
	for (;;) {
		struct sockaddr_un a;
		socklen_t alen = sizeof(a);
		int fd = accept4(lfd, (struct sockaddr *)&a, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN)
				return;
			if ((errno == EMFILE || errno == ENFILE) && s->spare_fd >= 0) {
				ivl__srv_log(s, IVL_LOG_ERROR,
					     "out of file descriptors; refusing a client");
				close(s->spare_fd);
				fd = accept(lfd, NULL, NULL);
				if (fd >= 0)
					close(fd);
				s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
				return;
			}
			ivl__srv_log(s, IVL_LOG_ERROR, "accept: %s", strerror(errno));
			return;
		}
		if (status)
			ivl__srv_status_accept(s, fd, &a, alen);
		else
			ivl__srv_peer_join(s, fd);
	}
}

static void peer_event(struct client *c, uint32_t events)
{
	char buf[64];
	ssize_t n;

	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		/* Read even on a hang-up, to tell garbage from a plain close. */
		n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0)
			ivl__srv_mark_dead(c, 0, "sent %zd bytes on the server-to-client protocol",
					   n);
		else if (n == 0 || (events & (EPOLLRDHUP | EPOLLHUP)))
			ivl__srv_mark_dead(c, 1, "disconnected");
		else if (errno != EAGAIN && errno != EINTR)
			ivl__srv_mark_dead(c, 1, "recv: %s", strerror(errno));
		else if (events & EPOLLERR)
			ivl__srv_mark_dead(c, 1, "socket error");
	}
}

int ivl_server_run(struct ivl_server *s, int quit_fd)
{
	struct epoll_event evs[64];
	int rc = 0, quit = 0;

	if (!s->started)
		return -EINVAL;
	rc = ivl__srv_ep_add(s, quit_fd, EPOLLIN, &s->quit_tag);
	if (rc < 0)
		return rc;
	while (!quit) {
		int n = epoll_wait(s->epfd, evs, 64, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			ivl__srv_log(s, IVL_LOG_ERROR, "epoll_wait: %s", strerror(-rc));
			break;
		}
		for (int i = 0; i < n; i++) {
			enum ep_kind *tag = evs[i].data.ptr;
			struct client *c = (struct client *)tag;

			switch (*tag) {
			case EP_QUIT:
				quit = 1;
				break;
			case EP_LISTEN:
				do_accept(s, s->listen_fd, 0);
				break;
			case EP_STATUS_LISTEN:
				do_accept(s, s->status_fd, 1);
				break;
			case EP_PEER:
				if (c->dead)
					break;
				if (evs[i].events & EPOLLOUT)
					ivl__srv_flush_peer(s, c);
				peer_event(c, evs[i].events);
				break;
			case EP_INOTIFY:
				ivl__srv_inotify_event(s);
				break;
			case EP_STATUS:
				if (c->dead)
					break;
				if (evs[i].events & (EPOLLHUP | EPOLLERR))
					ivl__srv_mark_dead(c, 1, "hung up");
				else
					ivl__srv_flush_status(s, c);
				break;
			}
		}
		ivl__srv_reap(s);
	}
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, quit_fd, NULL);
	return rc;
}
