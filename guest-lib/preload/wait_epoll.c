/* SPDX-License-Identifier: MIT */
/*
 * Socket shim readiness, epoll_wait(): user-space readiness of the rings
 * beside the kernel's, spin then arm and block. See shim.h, "Readiness".
 */
#include "fd_high.h"
#include "shim.h"
#include "wait.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ivlink/kick.h>
#include <ivlink/region.h>

/* A file the counters of every process's epoll_wait calls are appended to
 * at exit (the O(ready) test reads it; ivlink-run(1)). */
#define SHIM_ENV_EPOLL_STATS "IVLINK_EPOLL_STATS"

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

/*
 * Hot list
 * --------
 * A scan looks at the registrations on the set's hot list only, so that
 * its cost follows what is ready, not what is registered. A registration
 * is put there when it is added or modified, when its connection changes
 * state (shim_regs_retarget) or when its own calls changed what only they
 * see (shim_regs_hot: a shutdown, a blocking wait that disarmed a ring),
 * and when a kick list names its half: a producer that found our ring
 * armed names it there before it rings (layout.h, struct ivl_kick_list;
 * transport/ivlink/kick.h). A registration leaves the list only in a scan
 * made to sleep (arm): not ready, and its rings armed by that very check,
 * so the next arrival, a close or room again kicks, and names it. Armed
 * stays armed across calls: a ring is armed once per time it goes idle,
 * not once per epoll_wait. Until then it stays: level triggered, what
 * was ready is looked at again; a pending connection (rendezvous,
 * connect) or an inherited one (its doorbells are shared with another
 * process) stays while it is so; a readiness-fd registration always.
 *
 * Everything that a kick list cannot show makes the set look at all of
 * its registrations once (e->full): a list that overflowed or looks wrong,
 * a producer whose epoch changed (a peer that left: its connections report
 * a hang-up), a TCP socket event (a FIN or RST of some connection), and
 * at every scan a region formatted too small for kick lists. A hostile
 * list therefore costs time, never an event of ours.
 */

/* Scans without arm after which a registration that was never ready is
 * armed and goes cold all the same; after one such scan when the hot list
 * is longer than SHIM_HOT_BIG (after the ADDs of many connections, or a
 * full scan, in a process that finds something ready at every call). */
#define SHIM_COOL_SCANS 256u
#define SHIM_HOT_BIG	64u

/* Counters for IVLINK_EPOLL_STATS (relaxed atomics: diagnostics). */
static uint64_t st_waits, st_scans, st_checked, st_full, st_kicks;
/* Waits by how many registrations their largest scan looked at: <= 16,
 * <= 1024, more. */
static uint64_t st_by_checked[3];

/* Reads the kick lists for e's endpoints, putting the registrations they
 * name on the hot list. Caller holds the reg lock. */
static void read_kicks(struct shim_epoll *e)
{
	uint32_t slots[IVL_KICK_ENTRIES_MAX];

	for (int i = 0; i < e->n_kpos; i++) {
		struct shim_kpos *k = &e->kpos[i];
		struct ivl_region *rg = &k->sep->ep->rg;
		uint32_t self = ivl_endpoint_id(k->sep->ep);

		/* A region too small for kick lists (layout.h): nothing
		 * names a connection, so every scan looks at all of them. */
		if (!rg->hdr.kick_entries)
			e->full = 1;
		for (uint32_t p = 0; p < rg->hdr.max_peers && p < IVL_PEERS_LIMIT; p++) {
			struct ivl_kick_list *l = ivl_region_kick_list(rg, p, self);
			struct ivl_peer_view pv;
			int n;

			if (ivl_region_peer_view(rg, p, &pv) == 0 && pv.epoch != k->epoch[p]) {
				k->epoch[p] = pv.epoch;
				e->full = 1;
			}
			if (!l)
				continue;
			n = ivl_kick_read(l, rg->hdr.kick_entries, &k->pos[p], slots);
			if (n < 0) {
				e->full = 1;
				continue;
			}
			__atomic_fetch_add(&st_kicks, (uint64_t)n, __ATOMIC_RELAXED);
			for (int j = 0; j < n; j++)
				shim_kmap_mark(e, k->sep, slots[j]);
		}
	}
	if (e->full) {
		e->full = 0;
		__atomic_fetch_add(&st_full, 1, __ATOMIC_RELAXED);
		for (struct shim_reg *r = e->regs; r; r = r->next_e)
			shim_hot_push(r);
	}
}

/* Whether c needs the snapshot pass (epoll_conns) to move on. */
static int conn_slow(struct shim_conn *c, int st)
{
	return st == SS_CONNECTING || st == SS_CLI_PENDING || st == SS_SRV_PENDING ||
	       (c->inherited && st == SS_ACCEL) || (st == SS_ACCEL && shim_demote_asked(c));
}

/* The connections of e's hot registrations (all of them with every), with
 * references (caller frees). */
static int epoll_snapshot(struct shim_epoll *e, int every, struct shim_conn ***out)
{
	struct shim_conn **v = NULL;
	int n = 0, cap = 0;

	pthread_mutex_lock(&shim_reg_lock);
	for (struct shim_reg *r = every ? e->regs : e->hot_head; r;
	     r = every ? r->next_e : r->hnext)
		cap++;
	if (cap)
		v = malloc(sizeof(*v) * (size_t)cap);
	for (struct shim_reg *r = every ? e->regs : e->hot_head; r && v;
	     r = every ? r->next_e : r->hnext) {
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
 * One pass over the connections of e's hot registrations (every one with
 * probe_tcp, which also makes the next scan look at all of them):
 * connect completion, pending decisions and their deadlines, TCP probes
 * (probe_tcp), and with sync: publish every readiness fd (the caller is
 * about to sleep). Returns the earliest deadline.
 */
static int64_t epoll_conns(struct shim_epoll *e, int probe_tcp, int sync)
{
	struct shim_conn **v;
	int64_t next = INT64_MAX;
	int n = epoll_snapshot(e, probe_tcp, &v);

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
	if (probe_tcp) {
		pthread_mutex_lock(&shim_reg_lock);
		e->full = 1;
		pthread_mutex_unlock(&shim_reg_lock);
	}
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
 * The user-space registrations of e on its hot list (shim.h, "Readiness";
 * above, "Hot list"), after the kick lists put there what they name:
 * writes the events of those that are ready to evs (at most max). Those
 * it reports go to the end of the list, after those it did not reach, so
 * that a few busy connections cannot hide the rest. With arm, asks for a
 * doorbell for every event that is not ready (the caller is about to
 * sleep), having registered the caller as a sleeper on the set's vectors
 * with wake_fd (if >= 0), and lets those registrations go cold.
 * Readiness-fd registrations get their fd brought up to date instead.
 * *slow is set when some connection needs the snapshot pass (epoll_conns:
 * connect and rendezvous progress, inherited connections), *rings when
 * some connection's data is on the rings. *checked counts what it looked
 * at.
 */
static int user_scan(struct shim_epoll *e, struct epoll_event *evs, int max, int arm, int wake_fd,
		     int *slow, int *rings, unsigned *checked)
{
	struct shim_reg *r, *next, *keep = NULL, *keep_tail = NULL;
	unsigned cool_after;
	int n = 0;

	pthread_mutex_lock(&shim_reg_lock);
	/* Registered before any ring is armed, with every vector of the set
	 * (the reg lock keeps the set as it is until the arming is done). */
	if (arm && wake_fd >= 0)
		shim_sleeper_add(wake_fd, e->vmask);
	read_kicks(e);
	cool_after = e->n_hot > SHIM_HOT_BIG ? 1 : SHIM_COOL_SCANS;
	if (e->n_ring > 0)
		*rings = 1;
	for (r = e->hot_head; r; r = next) {
		struct shim_conn *c = r->c;
		int st, stay, cool = 0;
		unsigned rev;

		next = r->hnext;
		if (n == max)
			break;
		st = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
		shim_hot_del(r);
		stay = conn_slow(c, st);
		if (stay)
			*slow = 1;
		if (st == SS_ACCEL || st == SS_CLI_PENDING || st == SS_SRV_PENDING)
			*rings = 1;
		if (r->target != SHIM_TARGET_USER) {
			/* The kernel watches the TCP socket: nothing to look
			 * at. A readiness fd is kept current at every scan. */
			if (r->target == c->rfd && r->target >= 0) {
				if (st == SS_ACCEL)
					shim_sync(c);
				stay = 1;
			}
		} else if (!r->oneshot_off) {
			(*checked)++;
			rev = user_events(r, st, arm);
			/* A process that never sleeps never makes a scan with
			 * arm: a registration idle for that long is armed
			 * anyway (the next arrival costs its producer a
			 * doorbell, as it would a sleeper's). */
			if (!rev && !arm && ++r->misses >= cool_after) {
				rev = user_events(r, st, 1);
				if (!rev)
					cool = 1;
			}
			if (rev)
				r->misses = 0;
			if (rev) {
				evs[n].events = rev;
				evs[n].data = r->ev.data;
				n++;
				if (r->ev.events & EPOLLONESHOT)
					r->oneshot_off = 1;
				else
					stay = 1;
			} else if (!arm && !cool) {
				stay = 1; /* spinning: no doorbell asked for */
			} else {
				r->misses = 0;
			}
		}
		if (stay) {
			/* Off the list for now, kept in order on a side list. */
			r->hot = 1;
			e->n_hot++;
			r->hprev = keep_tail;
			r->hnext = NULL;
			if (keep_tail)
				keep_tail->hnext = r;
			else
				keep = r;
			keep_tail = r;
		}
	}
	/* What it did not reach first, then what it kept. */
	if (keep) {
		keep->hprev = e->hot_tail;
		if (e->hot_tail)
			e->hot_tail->hnext = keep;
		else
			e->hot_head = keep;
		e->hot_tail = keep_tail;
	}
	pthread_mutex_unlock(&shim_reg_lock);
	__atomic_fetch_add(&st_scans, 1, __ATOMIC_RELAXED);
	return n;
}

void shim_epoll_stats_dump(void)
{
	const char *path = getenv(SHIM_ENV_EPOLL_STATS);
	char line[256];
	int fd, len;

	if (!path || !*path)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	len = snprintf(
	    line, sizeof(line),
	    "pid %d epoll_waits %llu scans %llu checked %llu kicks %llu full %llu "
	    "waits_checked_le16 %llu waits_checked_le1024 %llu waits_checked_more %llu\n",
	    (int)getpid(), (unsigned long long)__atomic_load_n(&st_waits, __ATOMIC_RELAXED),
	    (unsigned long long)__atomic_load_n(&st_scans, __ATOMIC_RELAXED),
	    (unsigned long long)__atomic_load_n(&st_checked, __ATOMIC_RELAXED),
	    (unsigned long long)__atomic_load_n(&st_kicks, __ATOMIC_RELAXED),
	    (unsigned long long)__atomic_load_n(&st_full, __ATOMIC_RELAXED),
	    (unsigned long long)__atomic_load_n(&st_by_checked[0], __ATOMIC_RELAXED),
	    (unsigned long long)__atomic_load_n(&st_by_checked[1], __ATOMIC_RELAXED),
	    (unsigned long long)__atomic_load_n(&st_by_checked[2], __ATOMIC_RELAXED));
	if (len > 0 && REAL(write)(fd, line, (size_t)len) < 0) {
		/* Diagnostics only: nothing to do about a failed write. */
	}
	REAL(close)(fd);
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
	unsigned most = 0; /* registrations the largest scan looked at */

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
		unsigned checked = 0;

		/* With arm, the rings are armed before they are checked, so a
		 * doorbell rung after this check wakes the sleep below: ours,
		 * or, drained by another thread, the wake fd registered here
		 * first. */
		if (arm && wfd < 0)
			wfd = epoll_wake_fd(e);
		nu = user_scan(e, evs, max, arm, wfd, &slow, &rings, &checked);
		if (slow) {
			next = epoll_conns(e, 0, arm);
			/* Connections that became accelerated just now may
			 * hold data already (no doorbell will come for it):
			 * look again, armed, before sleeping. */
			if (arm && !nu) {
				most = checked > most ? checked : most;
				checked = 0;
				nu = user_scan(e, evs, max, arm, wfd, &slow, &rings, &checked);
			}
		}
		most = checked > most ? checked : most;
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
			int64_t left;

			/* A deferred sweep of every connection (core.c). */
			if (shim_sweep_due() < until)
				until = shim_sweep_due() > now ? shim_sweep_due() : now;
			left = until == INT64_MAX ? -1 : until - now;

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
		if (ep_fired || tcp_fired ||
		    (shim_sweep_due() != INT64_MAX && shim_sweep_due() <= ivl__now_ns())) {
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
	__atomic_fetch_add(&st_waits, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&st_checked, most, __ATOMIC_RELAXED);
	__atomic_fetch_add(&st_by_checked[most <= 16	 ? 0
					  : most <= 1024 ? 1
							 : 2],
			   1, __ATOMIC_RELAXED);
	return n;
}
