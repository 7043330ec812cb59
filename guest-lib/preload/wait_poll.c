/* SPDX-License-Identifier: MIT */
/*
 * Socket shim readiness, poll() and select(): the rings in user space, the
 * other fds from the kernel, spin then arm and block. See shim.h,
 * "Readiness".
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

struct pslot {
	struct shim_conn *c;
	int st;
};

int shim_poll(struct pollfd *fds, nfds_t nfds, int64_t timeout_ns, const sigset_t *mask)
{
	struct pslot stack_s[64], *ps = stack_s;
	struct pollfd stack_k[80], *kf = stack_k;
	int64_t start = ivl__now_ns(), deadline, spin_until;
	int any = 0, armed = 0, count = 0, nep, wfd = -1;
	int epfds[SHIM_MAX_EPS];

	shim_housekeeping();
	deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
	spin_until = start + shim_cfg.spin_ns;
	if (nfds > 64) {
		ps = calloc(nfds, sizeof(*ps));
		if (!ps)
			return -ENOMEM;
	}
	for (nfds_t i = 0; i < nfds; i++) {
		struct shim_obj *o = shim_get(fds[i].fd);
		struct shim_conn *c = shim_conn_of(o);
		struct shim_epoll *e = shim_epoll_of(o);

		ps[i].c = NULL;
		if (c && shim_is_active(__atomic_load_n(&c->state, __ATOMIC_ACQUIRE))) {
			ps[i].c = c;
			any = 1;
			continue;
		}
		/* A polled epoll set must show its readiness to the kernel. */
		if (e && !e->in_outer)
			shim_epoll_outer(e);
		shim_put(o);
	}
	if (!any) {
		struct timespec ts = {timeout_ns / 1000000000LL, timeout_ns % 1000000000LL};

		if (ps != stack_s)
			free(ps);
		count = REAL(ppoll)(fds, nfds, timeout_ns < 0 ? NULL : &ts, mask);
		return count < 0 ? -errno : count;
	}
	nep = shim_ep_fds(epfds, SHIM_MAX_EPS);
	if (nfds + (nfds_t)nep + nfds + 1 > 80) {
		kf = calloc(nfds * 2 + (nfds_t)nep + 1, sizeof(*kf));
		if (!kf) {
			count = -ENOMEM;
			goto out;
		}
	}
	for (;;) {
		nfds_t nk = 0;
		int64_t now, next = INT64_MAX, t;
		int rc;

		count = 0;
		/* User-space readiness of the rings, kernel readiness of the
		 * rest (timeout 0). */
		for (nfds_t i = 0; i < nfds; i++) {
			struct shim_conn *c = ps[i].c;
			int st = c ? __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) : -1;

			fds[i].revents = 0;
			if (c && (st == SS_CLI_PENDING || st == SS_SRV_PENDING ||
				  (st == SS_ACCEL && shim_demote_asked(c)))) {
				shim_progress(c);
				st = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
				if (st == SS_CLI_PENDING && c->deadline_ns < next)
					next = c->deadline_ns;
			}
			if (c && st == SS_CONNECTING)
				shim_connecting_check(c, 0), st = c->state;
			ps[i].st = st;
			if (c && (st == SS_ACCEL || st == SS_CLI_PENDING || st == SS_SRV_PENDING)) {
				fds[i].revents =
				    (short)shim_conn_revents(c, (unsigned)fds[i].events, armed);
				if (c->inherited &&
				    !__atomic_load_n(&c->wake_own, __ATOMIC_ACQUIRE) &&
				    next > ivl__now_ns() + SHIM_INHERITED_SLICE_NS)
					next = ivl__now_ns() + SHIM_INHERITED_SLICE_NS;
			} else {
				kf[nk] = fds[i];
				kf[nk].revents = 0;
				nk++;
			}
		}
		if (nk) {
			rc = REAL(poll)(kf, nk, 0);
			if (rc < 0) {
				count = -errno;
				goto out;
			}
		}
		for (nfds_t i = 0, k = 0; i < nfds; i++) {
			int st = ps[i].st;

			if (!(ps[i].c &&
			      (st == SS_ACCEL || st == SS_CLI_PENDING || st == SS_SRV_PENDING)))
				fds[i].revents = kf[k++].revents;
			if (fds[i].revents)
				count++;
		}
		now = ivl__now_ns();
		if (count || timeout_ns == 0 || now >= deadline)
			break;
		if (now < spin_until) {
			ivl__cpu_relax();
			continue;
		}
		if (!armed) {
			armed = 1; /* the next pass arms the rings and re-checks */
			/* Registered first: a doorbell for us that another
			 * thread drains writes our wake fd (sleepers above). */
			if (wfd < 0 && (wfd = shim_thread_efd()) >= 0) {
				uint64_t vmask = 0;

				for (nfds_t i = 0; i < nfds; i++)
					if (ps[i].c)
						vmask |= shim_vbit(ps[i].c);
				shim_sleeper_add(wfd, vmask);
			}
			continue;
		}
		/* Block: the other fds, the endpoints' doorbells, and the TCP
		 * sockets of accelerated connections (the peer's FIN/RST). */
		for (nfds_t i = 0; i < nfds; i++) {
			struct shim_conn *c = ps[i].c;

			if (c && ps[i].st == SS_ACCEL && !c->tcp_hup && !c->tcp_err) {
				kf[nk].fd = c->fd;
				kf[nk].events = POLLRDHUP;
				kf[nk].revents = 0;
				nk++;
			}
		}
		for (int j = 0; j < nep; j++) {
			kf[nk].fd = epfds[j];
			kf[nk].events = POLLIN;
			kf[nk].revents = 0;
			nk++;
		}
		if (wfd >= 0) {
			kf[nk].fd = wfd;
			kf[nk].events = POLLIN;
			kf[nk].revents = 0;
			nk++;
		}
		t = (deadline < next ? deadline : next) - now;
		{
			struct timespec ts = {t / 1000000000LL, t % 1000000000LL};
			int64_t until = deadline < next ? deadline : next;

			rc = REAL(ppoll)(kf, nk, until == INT64_MAX ? NULL : &ts, mask);
		}
		if (rc < 0) {
			count = -errno;
			goto out;
		}
		for (nfds_t k = 0; k < nk; k++) {
			if (!kf[k].revents)
				continue;
			for (nfds_t i = 0; i < nfds; i++) {
				struct shim_conn *c = ps[i].c;

				if (c && kf[k].fd == c->fd &&
				    (kf[k].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
					char b = 0; /* a MSG_PEEK target: its value is never read */
					ssize_t r =
					    REAL(recv)(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

					if (r == 0)
						c->tcp_hup = 1;
					else if (r < 0 && errno != EAGAIN)
						c->tcp_err = errno;
				}
			}
		}
		if (wfd >= 0 && kf[nk - 1].revents)
			shim_efd_drain(wfd);
		shim_ep_process_all();
		armed = 0;
	}
out:
	if (wfd >= 0)
		shim_sleeper_del();
	for (nfds_t i = 0; i < nfds; i++)
		if (ps[i].c)
			shim_put(&ps[i].c->o);
	if (ps != stack_s)
		free(ps);
	if (kf != stack_k)
		free(kf);
	return count;
}
