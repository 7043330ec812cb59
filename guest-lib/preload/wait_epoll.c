/* SPDX-License-Identifier: MIT */
/*
 * Socket shim readiness, epoll_wait(): user-space readiness of the rings
 * beside the kernel's, spin then arm and block. See shim.h, "Readiness".
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

/* Removes the hidden events; returns the app's count. */
static int filter(struct epoll_event *evs, int n, int *ep_fired, int *tcp_fired, int *woken)
{
	int k = 0;

	for (int i = 0; i < n; i++) {
		if (evs[i].data.u64 == shim_hidden_ep_tag) {
			*ep_fired = 1;
			continue;
		}
		/* The set's wake fd: another thread drained a doorbell (the
		 * caller empties it and looks at the rings again). */
		if (evs[i].data.u64 == shim_hidden_ep_tag + 16) {
			*woken = 1;
			continue;
		}
		/* A hidden TCP watch (all share one tag: the wait probes the
		 * TCP sockets of its set). */
		if (evs[i].data.u64 == shim_hidden_ep_tag + 8) {
			*tcp_fired = 1;
			continue;
		}
		evs[k++] = evs[i];
	}
	return k;
}

/* The connections registered in e, with references (caller frees). */
static int epoll_snapshot(struct shim_epoll *e, struct shim_conn ***out)
{
	struct shim_conn **v = NULL;
	int n = 0, cap = 0;

	pthread_mutex_lock(&shim_reg_lock);
	for (struct shim_reg *r = e->regs; r; r = r->next_e)
		cap++;
	if (cap)
		v = malloc(sizeof(*v) * (size_t)cap);
	for (struct shim_reg *r = e->regs; r && v; r = r->next_e) {
		__atomic_fetch_add(&r->c->o.refs, 1, __ATOMIC_ACQ_REL);
		v[n++] = r->c;
	}
	pthread_mutex_unlock(&shim_reg_lock);
	*out = v;
	return n;
}

static void snapshot_free(struct shim_conn **v, int n)
{
	for (int i = 0; i < n; i++)
		shim_put(&v[i]->o);
	free(v);
}

/*
 * One pass over the connections of e: connect completion, pending
 * decisions and their deadlines, TCP probes (probe_tcp), and with sync:
 * publish every readiness fd, arming the rings (the caller is about to
 * sleep). Returns the earliest deadline.
 */
static int64_t epoll_conns(struct shim_epoll *e, int probe_tcp, int sync)
{
	struct shim_conn **v;
	int64_t next = INT64_MAX;
	int n = epoll_snapshot(e, &v);

	for (int i = 0; i < n; i++) {
		struct shim_conn *c = v[i];
		int st = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);

		/* Pending decisions are made here too when their deadline
		 * passed, even for callers that never sleep (timeout 0). */
		if (st == SS_CONNECTING ||
		    ((st == SS_CLI_PENDING || st == SS_SRV_PENDING) && sync) ||
		    (st == SS_CLI_PENDING && ivl__now_ns() >= c->deadline_ns) ||
		    (st == SS_ACCEL && shim_demote_asked(c))) {
			shim_progress(c);
			st = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
		}
		if (st == SS_CLI_PENDING && c->deadline_ns < next)
			next = c->deadline_ns;
		if (c->inherited && !__atomic_load_n(&c->wake_own, __ATOMIC_ACQUIRE) &&
		    next > ivl__now_ns() + SHIM_INHERITED_SLICE_NS)
			next = ivl__now_ns() + SHIM_INHERITED_SLICE_NS;
		if (st == SS_ACCEL && probe_tcp && !c->tcp_hup) {
			char b = 0; /* a MSG_PEEK target: its value is never read */
			ssize_t k = REAL(recv)(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

			if (k == 0)
				c->tcp_hup = 1;
			else if (k < 0 && errno != EAGAIN)
				c->tcp_err = errno;
		}
		if (sync || (probe_tcp && st == SS_ACCEL))
			shim_sync(c);
	}
	snapshot_free(v, n);
	return next;
}

/*
 * What a user-space registration reports now. Level triggered: what is
 * ready. Edge triggered: what is ready, but only when something happened
 * since the last report, as the kernel's wake-up callback would have run:
 * new bytes on the rx ring (its producer's tail moved), a hang-up or an
 * error that was not there, room again after a write found the ring full,
 * or an ADD/MOD (which the kernel answers with what is ready). Each report
 * carries everything that is ready, as the kernel's does. With arm, asks
 * for a doorbell for the next arrival even when bytes are already there
 * (they were reported: only new ones make an edge). Caller holds the reg
 * lock.
 */
static unsigned user_events(struct shim_reg *r, int st, int arm)
{
	struct shim_conn *c = r->c;
	unsigned want = r->ev.events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI), rev;
	uint64_t tail;
	uint32_t full;
	int edge;

	if (!(r->ev.events & EPOLLET))
		return shim_conn_revents(c, want, arm);
	rev = shim_conn_revents(c, want, arm ? 2 : 0);
	if (!rev)
		return 0;
	/* Read once, used only to tell "changed": a peer that rewrites it
	 * can cost its own connection an event, nothing else. */
	tail = st == SS_ACCEL ? __atomic_load_n(&c->lk.rx.ring.prod->tail, __ATOMIC_ACQUIRE) : 0;
	full = __atomic_load_n(&c->tx_full, __ATOMIC_RELAXED);
	edge = r->et_force || ((rev & (EPOLLIN | EPOLLRDHUP)) && tail != r->et_tail) ||
	       (rev & ~r->et_rev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ||
	       ((rev & EPOLLOUT) && full != r->et_full);
	if (!edge)
		return 0;
	r->et_force = 0;
	r->et_tail = tail;
	r->et_full = full;
	r->et_rev = rev;
	return rev;
}

/*
 * The user-space registrations of e (shim.h, "Readiness"): writes the
 * events of those that are ready to evs (at most max), starting where the
 * last scan left off so that a few busy connections cannot hide the rest.
 * With arm, asks for a doorbell for every event that is not ready (the
 * caller is about to sleep), having registered the caller as a sleeper on
 * the set's vectors with wake_fd (if >= 0). Readiness-fd registrations get
 * their fd brought up to date instead. *slow is set when some connection needs the
 * snapshot pass (epoll_conns: connect and rendezvous progress, inherited
 * connections), *rings when some connection's data is on the rings.
 */
static int user_scan(struct shim_epoll *e, struct epoll_event *evs, int max, int arm, int wake_fd,
		     int *slow, int *rings)
{
	unsigned count = 0, skip;
	uint64_t vmask = 0;
	int n = 0;

	pthread_mutex_lock(&shim_reg_lock);
	for (struct shim_reg *r = e->regs; r; r = r->next_e) {
		count++;
		vmask |= shim_vbit(r->c);
	}
	/* Registered before any ring is armed, with every vector of the set
	 * (the reg lock keeps the set as it is until the arming is done). */
	if (arm && wake_fd >= 0)
		shim_sleeper_add(wake_fd, vmask);
	skip = count ? e->rot++ % count : 0;
	for (unsigned pass = 0; pass < 2; pass++) {
		unsigned i = 0;

		for (struct shim_reg *r = e->regs; r; r = r->next_e, i++) {
			struct shim_conn *c = r->c;
			int st = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
			unsigned rev;

			if (pass == 0 ? i < skip : i >= skip)
				continue;
			if (st == SS_CONNECTING || st == SS_CLI_PENDING || st == SS_SRV_PENDING ||
			    (c->inherited && st == SS_ACCEL) ||
			    (st == SS_ACCEL && shim_demote_asked(c)))
				*slow = 1;
			if (st == SS_ACCEL || st == SS_CLI_PENDING || st == SS_SRV_PENDING)
				*rings = 1;
			if (r->target != SHIM_TARGET_USER) {
				if (r->target == c->rfd && st == SS_ACCEL)
					shim_sync(c);
				continue;
			}
			if (n == max || r->oneshot_off)
				continue;
			rev = user_events(r, st, arm);
			if (rev) {
				evs[n].events = rev;
				evs[n].data = r->ev.data;
				n++;
				if (r->ev.events & EPOLLONESHOT)
					r->oneshot_off = 1;
			}
		}
	}
	pthread_mutex_unlock(&shim_reg_lock);
	return n;
}

/* The set's wake fd, hidden in it (created on first sleep); -1 if none. */
static int epoll_wake_fd(struct shim_epoll *e)
{
	pthread_mutex_lock(&shim_reg_lock);
	if (e->wake_efd < 0) {
		int fd = ivl__fd_high(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = shim_hidden_ep_tag + 16};

		if (fd >= 0 && REAL(epoll_ctl)(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			REAL(close)(fd);
			fd = -1;
		}
		e->wake_efd = fd;
	}
	pthread_mutex_unlock(&shim_reg_lock);
	return e->wake_efd;
}

/* Takes the endpoint fds out of a set again. Caller holds reg lock. */
static void unhide_eps(struct shim_epoll *e)
{
	int fds[SHIM_MAX_EPS], n = shim_ep_fds(fds, SHIM_MAX_EPS);

	for (int i = 0; i < e->hidden_ep && i < n; i++)
		REAL(epoll_ctl)(e->epfd, EPOLL_CTL_DEL, fds[i], NULL);
	e->hidden_ep = 0;
}

/*
 * A set the shim knows that holds none of its connections any more (they
 * were closed; libuv and others keep their loop's set for good): the kernel
 * answers alone, but what the shim registered in the set must neither
 * reach the app (its data is the shim's tag) nor keep it awake. The
 * endpoint fds leave the set; the wake fd stays (another thread may still
 * be inside the slow path with it) and is filtered.
 */
static int plain_wait(struct shim_epoll *e, int epfd, struct epoll_event *evs, int max,
		      int timeout_ms, const sigset_t *mask)
{
	int64_t deadline =
	    timeout_ms < 0 ? INT64_MAX : ivl__now_ns() + (int64_t)timeout_ms * 1000000LL;

	pthread_mutex_lock(&shim_reg_lock);
	if (!e->regs && !e->nested && e->hidden_ep)
		unhide_eps(e);
	pthread_mutex_unlock(&shim_reg_lock);
	for (;;) {
		int ep_fired = 0, tcp_fired = 0, woken = 0, t = timeout_ms, n;

		if (timeout_ms > 0) {
			int64_t left = deadline - ivl__now_ns();

			t = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
		}
		n = mask ? REAL(epoll_pwait)(epfd, evs, max, t, mask)
			 : REAL(epoll_wait)(epfd, evs, max, t);
		if (n <= 0)
			return n < 0 ? -errno : 0;
		n = filter(evs, n, &ep_fired, &tcp_fired, &woken);
		if (woken)
			shim_efd_drain(e->wake_efd);
		if (ep_fired)
			shim_ep_process_all();
		if (n > 0 || t == 0)
			return n;
	}
}

int shim_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout_ms,
		    const sigset_t *mask)
{
	struct shim_obj *o = shim_get(epfd);
	struct shim_epoll *e = shim_epoll_of(o);
	int64_t start, deadline, spin_until;
	int arm = 0, last = 0, wfd = -1, n;

	shim_housekeeping();
	if (e && !e->regs && !e->nested && max > 0) {
		n = plain_wait(e, epfd, evs, max, timeout_ms, mask);
		shim_put(o);
		return n;
	}
	if (!e || (!e->regs && !e->nested) || max <= 0) {
		shim_put(o);
		n = mask ? REAL(epoll_pwait)(epfd, evs, max, timeout_ms, mask)
			 : REAL(epoll_wait)(epfd, evs, max, timeout_ms);
		return n < 0 ? -errno : n;
	}
	pthread_mutex_lock(&shim_reg_lock);
	shim_hidden_eps(e);
	pthread_mutex_unlock(&shim_reg_lock);
	start = ivl__now_ns();
	deadline = timeout_ms < 0 ? INT64_MAX : start + (int64_t)timeout_ms * 1000000LL;
	spin_until = start + shim_cfg.spin_ns;
	for (;;) {
		int ep_fired = 0, tcp_fired = 0, woken = 0, slow = 0, rings = 0, t = 0, nu, nk;
		int64_t now, next = INT64_MAX;

		/* With arm, the rings are armed before they are checked, so a
		 * doorbell rung after this check wakes the sleep below: ours,
		 * or, drained by another thread, the wake fd registered here
		 * first. */
		if (arm && wfd < 0)
			wfd = epoll_wake_fd(e);
		nu = user_scan(e, evs, max, arm, wfd, &slow, &rings);
		if (slow) {
			next = epoll_conns(e, 0, arm);
			/* Connections that became accelerated just now may
			 * hold data already (no doorbell will come for it):
			 * look again, armed, before sleeping. */
			if (arm && !nu)
				nu = user_scan(e, evs, max, arm, wfd, &slow, &rings);
		}
		/* Nothing on the rings (every connection fell back to TCP,
		 * or only listeners): all readiness is the kernel's, and
		 * spinning would only take the CPU from the peer that is
		 * to answer. Sleep in the kernel at once, as without the
		 * shim. */
		if (!rings && !slow && !nu)
			arm = 1;
		now = ivl__now_ns();
		if (arm && !nu && now < deadline) {
			int64_t until = deadline < next ? deadline : next;
			int64_t left = until == INT64_MAX ? -1 : until - now;

			t = left < 0 ? -1 : (int)((left + 999999) / 1000000);
		}
		nk = 0;
		if (nu < max) {
			nk = mask ? REAL(epoll_pwait)(epfd, evs + nu, max - nu, t, mask)
				  : REAL(epoll_wait)(epfd, evs + nu, max - nu, t);
			if (nk < 0) {
				n = nu ? nu : -errno;
				break;
			}
			nk = filter(evs + nu, nk, &ep_fired, &tcp_fired, &woken);
		}
		n = nu + nk;
		if (woken)
			shim_efd_drain(e->wake_efd);
		if (ep_fired || tcp_fired) {
			if (tcp_fired)
				epoll_conns(e, 1, 0);
			shim_ep_process_all();
		}
		if (n > 0 || last)
			break;
		now = ivl__now_ns();
		if (timeout_ms == 0 || now >= deadline) {
			/* One last look after processing doorbells. */
			if (!(ep_fired || tcp_fired))
				break;
			last = 1;
			arm = 0;
			continue;
		}
		/* Spin for the budget, then arm and sleep; a doorbell that
		 * woke us was consumed, so the rings are armed again. */
		arm = now >= spin_until;
		if (!arm)
			ivl__cpu_relax();
	}
	if (wfd >= 0)
		shim_sleeper_del();
	shim_put(o);
	return n;
}
