/* SPDX-License-Identifier: MIT */
/*
 * Endpoints: attaching through a backend, the peer table, the pollable fd,
 * and the per-vector waiting that every blocking call uses.
 *
 * Waiting on a shared vector
 * --------------------------
 * A vector's eventfd is a counter that one read() empties. Several channels
 * of a process may share a vector, and several threads may sleep on them at
 * once (even on one channel: a sender waiting for space and a receiver
 * waiting for data sleep on the same rx_vector). If every sleeper polled and
 * drained the eventfd itself, a thread could drain the doorbell meant for
 * another one that was just about to poll, and that one would sleep a whole
 * block slice. So, per vector:
 *
 *  - gen is a process-local generation: whoever drains the eventfd bumps it
 *    and futex-wakes the threads waiting on it. A sleeper snapshots gen in
 *    the ring's check() callback, which ring.c calls before it advertises
 *    sleep and re-checks the ring; a doorbell meant for that sleeper is rung
 *    after that, so it is drained after the snapshot, and either the sleeper
 *    sees gen changed or it is woken by the futex.
 *  - leader: one sleeper at a time polls the eventfd (and the control
 *    vector's); the others wait on the gen futex. A leader that leaves
 *    without draining bumps gen if anyone waits, so that another one takes
 *    over (V1/V2 below pair so that no follower is left without a leader).
 *  - a drain by a thread that is not the vector's leader (the control
 *    vector, or ivl_endpoint_process()) writes the eventfd back once if a
 *    leader is active: a leader between its gen check and its poll()
 *    would otherwise sleep on an emptied eventfd (V3/V4).
 *
 * So no wake-up is lost, at the price of a spurious wake-up of the other
 * sleepers of a vector when one is rung: channels are spread over the
 * vectors to keep that rare.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fd_high.h"
#include "internal.h"

#define CONNECT_TIMEOUT_DEFAULT_NS 5000000000LL

/* ---------------------------------------------------------------- waiting */

static int futex_wait(uint32_t *word, uint32_t val, int64_t timeout_ns)
{
	struct timespec ts = {.tv_sec = timeout_ns / 1000000000LL,
			      .tv_nsec = timeout_ns % 1000000000LL};

	if (syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, timeout_ns < 0 ? NULL : &ts, NULL,
		    0) == 0)
		return 0;
	return -errno;
}

static void futex_wake_all(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void vw_bump(struct ivl__vwait *w)
{
	/* V1: pairs with V2 in ivl__vwait_block(): a follower that counted
	 * itself in waiters either sees the new gen in futex_wait() or is
	 * woken here. */
	__atomic_fetch_add(&w->gen, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&w->waiters, __ATOMIC_SEQ_CST))
		futex_wake_all(&w->gen);
}

static void efd_write(int fd)
{
	uint64_t one = 1;

	while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/*
 * Drains vector v's eventfd. by is the vector whose leader calls (or
 * UINT32_MAX): a leader never re-arms its own vector. Returns 1 if the
 * eventfd had a count.
 */
static int drain(struct ivl_endpoint *ep, uint32_t v, uint32_t by)
{
	uint64_t cnt;

	if (read(ep->vfd[v], &cnt, sizeof(cnt)) != (ssize_t)sizeof(cnt))
		return 0;
	if (v == IVL_CTRL_VECTOR) {
		/* A peer joined or left, or a remote opened a channel: every
		 * sleeper re-runs its check(). */
		for (uint32_t u = 0; u < ep->n_vectors; u++)
			vw_bump(&ep->vw[u]);
		/* V3: the bumps above are SEQ_CST and precede the leader
		 * loads; pairs with V4 (leader CAS, then gen load). */
		for (uint32_t u = 0; u < ep->n_vectors; u++)
			if (u != by && __atomic_load_n(&ep->vw[u].leader, __ATOMIC_SEQ_CST))
				efd_write(ep->vfd[u]);
		ivl__ep_try_process(ep);
	} else {
		vw_bump(&ep->vw[v]);
		if (v != by && __atomic_load_n(&ep->vw[v].leader, __ATOMIC_SEQ_CST))
			efd_write(ep->vfd[v]);
	}
	if (ep->drained)
		ep->drained(v);
	return 1;
}

uint32_t ivl__vwait_snapshot(struct ivl_endpoint *ep, uint32_t v)
{
	return __atomic_load_n(&ep->vw[v].gen, __ATOMIC_SEQ_CST);
}

/* The leader's sleep: poll vector v's eventfd and the control vector's. */
static int lead(struct ivl_endpoint *ep, uint32_t v, int64_t timeout_ns)
{
	struct pollfd p[2] = {{.fd = ep->vfd[v], .events = POLLIN},
			      {.fd = ep->vfd[IVL_CTRL_VECTOR], .events = POLLIN}};
	int n = ivl__poll(p, v == IVL_CTRL_VECTOR ? 1 : 2, timeout_ns);

	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	if (v != IVL_CTRL_VECTOR && (p[1].revents & POLLIN))
		drain(ep, IVL_CTRL_VECTOR, v);
	if (p[0].revents & POLLIN)
		drain(ep, v, v);
	/* Woken, even if another thread drained first: spurious is fine. */
	return 0;
}

int ivl__vwait_block(struct ivl_endpoint *ep, uint32_t v, uint32_t snap, int64_t timeout_ns)
{
	struct ivl__vwait *w = &ep->vw[v];
	int rc;

	for (;;) {
		uint32_t zero = 0;

		if (__atomic_load_n(&w->gen, __ATOMIC_SEQ_CST) != snap)
			return 0;
		/* V4: pairs with V3 in drain(). */
		if (__atomic_compare_exchange_n(&w->leader, &zero, 1, 0, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST)) {
			rc = 0;
			if (__atomic_load_n(&w->gen, __ATOMIC_SEQ_CST) == snap)
				rc = lead(ep, v, timeout_ns);
			__atomic_store_n(&w->leader, 0, __ATOMIC_SEQ_CST);
			/* Hand over: a follower must take the lead. */
			if (__atomic_load_n(&w->waiters, __ATOMIC_SEQ_CST))
				vw_bump(w);
			return rc;
		}
		/* V2: count ourselves, then look at the leader again; pairs
		 * with the leader's store of 0 and load of waiters above. */
		__atomic_fetch_add(&w->waiters, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&w->leader, __ATOMIC_SEQ_CST) == 0) {
			__atomic_fetch_sub(&w->waiters, 1, __ATOMIC_SEQ_CST);
			continue;
		}
		rc = futex_wait(&w->gen, snap, timeout_ns);
		__atomic_fetch_sub(&w->waiters, 1, __ATOMIC_SEQ_CST);
		if (rc == -EAGAIN || rc == 0)
			return 0;
		return rc; /* -ETIMEDOUT, -EINTR */
	}
}

/* ---------------------------------------------------------------- backend */

void ivl__ep_try_process(struct ivl_endpoint *ep)
{
	int rc;

	if (!ep->ops->process || pthread_mutex_trylock(&ep->lock) != 0)
		return;
	rc = ep->ops->process(ep->be);
	if (rc == -ENOTCONN && !ep->ctl_lost) {
		ep->ctl_lost = 1;
		if (ep->ctl_fd >= 0)
			epoll_ctl(ep->epfd, EPOLL_CTL_DEL, ep->ctl_fd, NULL);
	}
	pthread_mutex_unlock(&ep->lock);
}

int ivl__ep_kick_open(struct ivl_endpoint *ep, uint32_t peer, uint32_t vector, struct ivl__kick *k)
{
	int rc;

	pthread_mutex_lock(&ep->lock);
	/* Always catch up with the control messages first: the remote may be
	 * a new incarnation of an id whose previous one's doorbells we still
	 * hold, with its "left" message waiting in our socket. Kicking those
	 * would ring nobody (seen with a client that connected and left just
	 * before the remote took its id). */
	if (ep->ops->process && !ep->ctl_lost)
		ep->ops->process(ep->be);
	rc = ep->ops->kick_open(ep->be, peer, vector, k);
	pthread_mutex_unlock(&ep->lock);
	return rc;
}

int ivl__ep_kick_wait(struct ivl_endpoint *ep, uint32_t peer, uint32_t vector, struct ivl__kick *k,
		      int64_t timeout_ns)
{
	int64_t deadline = ivl__now_ns() + timeout_ns;
	int rc;

	while ((rc = ivl__ep_kick_open(ep, peer, vector, k)) == -EAGAIN) {
		struct pollfd p = {.fd = ep->ctl_fd, .events = POLLIN};

		/* Only a daemon connection we read can still bring them. */
		if (!ep->ops->process || ep->ctl_lost || ep->ctl_fd < 0 ||
		    ivl__now_ns() >= deadline)
			break;
		ivl__poll(&p, 1, 1000000);
	}
	return rc;
}

void ivl__ep_link(struct ivl_endpoint *ep, struct ivl_channel *ch)
{
	pthread_mutex_lock(&ep->lock);
	ch->next = ep->channels;
	ep->channels = ch;
	pthread_mutex_unlock(&ep->lock);
}

void ivl__ep_unlink(struct ivl_endpoint *ep, struct ivl_channel *ch)
{
	pthread_mutex_lock(&ep->lock);
	for (struct ivl_channel **pp = &ep->channels; *pp; pp = &(*pp)->next) {
		if (*pp == ch) {
			*pp = ch->next;
			break;
		}
	}
	pthread_mutex_unlock(&ep->lock);
}

/* ---------------------------------------------------------------- API */

static int is_socket(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/*
 * Splits a URI into a backend and its target. "auto" picks, in this order:
 * the host daemon's default socket if it exists (a host process), else the
 * guest backend (ivlink-guestd if its socket exists, else the ivshmem device
 * through VFIO, else the device by polling).
 */
static int pick_backend(const char *uri, const struct ivl__backend_ops **ops, const char **target)
{
	static const struct {
		const char *scheme;
		const struct ivl__backend_ops *ops;
	} schemes[] = {
	    {"host:", &ivl__backend_host},
	    {"vfio:", &ivl__backend_vfio},
	    {"poll:", &ivl__backend_poll},
	    {"guest:", &ivl__backend_guest},
	};

	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		size_t n = strlen(schemes[i].scheme);

		if (strncmp(uri, schemes[i].scheme, n) == 0) {
			*ops = schemes[i].ops;
			*target = uri + n;
			return 0;
		}
	}
	if (strcmp(uri, "vfio") == 0 || strcmp(uri, "poll") == 0) {
		*ops = uri[0] == 'v' ? &ivl__backend_vfio : &ivl__backend_poll;
		*target = "";
		return 0;
	}
	if (strcmp(uri, "auto") == 0) {
		if (is_socket(IVL_ENDPOINT_DEFAULT)) {
			*ops = &ivl__backend_host;
			*target = IVL_ENDPOINT_DEFAULT;
		} else {
			*ops = &ivl__backend_guest;
			*target = "";
		}
		return 0;
	}
	if (uri[0] == '/' || uri[0] == '.') {
		*ops = &ivl__backend_host;
		*target = uri;
		return 0;
	}
	return -EINVAL;
}

int64_t ivl__env_i64(const char *name, int64_t dflt)
{
	const char *s = getenv(name);
	char *end;
	long long v;

	if (!s || !*s)
		return dflt;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return dflt;
	return v;
}

static void write_self_entry(struct ivl_endpoint *ep, const char *name, uint32_t kind)
{
	struct ivl_peer_entry *e = ivl_region_peer(&ep->rg, ep->self);
	char host[IVL_PEER_NAME_MAX];

	/* In a guest the peer is the VM, shared by all its processes: its
	 * host name is the natural default. */
	if (!name && kind != IVL_BACKEND_HOST && gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		name = host;
	}
	memset(e->name, 0, sizeof(e->name));
	if (name)
		memcpy(e->name, name, strnlen(name, sizeof(e->name) - 1));
	e->backend = kind;
	e->self_pid = (uint32_t)getpid();
	__atomic_store_n(&e->self_epoch, ep->self_epoch, __ATOMIC_RELEASE);
}

/* A new epoll set over our own vector eventfds (data: the vector), the fd
 * ivl_endpoint_fd() returns; the control fd is added by the caller. */
static int vectors_epoll(struct ivl_endpoint *ep)
{
	int fd = ivl__fd_high(epoll_create1(EPOLL_CLOEXEC));

	if (fd < 0)
		return -errno;
	for (uint32_t v = 0; v < ep->n_vectors; v++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = v};

		if (epoll_ctl(fd, EPOLL_CTL_ADD, ep->vfd[v], &ev) < 0) {
			int rc = -errno;

			close(fd);
			return rc;
		}
	}
	return fd;
}

int ivl_endpoint_open(struct ivl_endpoint **out, const struct ivl_endpoint_opts *opts)
{
	static const struct ivl_endpoint_opts defaults;
	struct ivl__attach_info info;
	struct ivl_endpoint *ep;
	struct ivl_peer_view pv;
	const char *uri, *target = NULL;
	int64_t timeout, deadline;
	int rc;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!opts)
		opts = &defaults;
	uri = opts->uri ? opts->uri : getenv(IVL_ENV_ENDPOINT);
	if (!uri || !*uri)
		uri = "auto";

	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	ep->log.fn = opts->log;
	ep->log.ctx = opts->log_ctx;
	ep->epfd = -1;
	rc = pick_backend(uri, &ep->ops, &target);
	if (rc < 0) {
		ivl__logf(&ep->log, IVL_LOG_ERROR, "endpoint '%s': bad URI", uri);
		free(ep);
		return rc;
	}
	if (opts->spin_ns > 0)
		ep->spin_ns = opts->spin_ns;
	else if (opts->spin_ns < 0)
		ep->spin_ns = 0;
	else
		ep->spin_ns = ivl__env_i64(IVL_ENV_SPIN_NS, IVL_SPIN_NS_DEFAULT);
	if (ep->spin_ns < 0)
		ep->spin_ns = 0;
	timeout =
	    opts->connect_timeout_ns > 0 ? opts->connect_timeout_ns : CONNECT_TIMEOUT_DEFAULT_NS;
	deadline = ivl__now_ns() + timeout;

	memset(&info, 0, sizeof(info));
	rc = ep->ops->attach(&ep->be, target, timeout, &ep->log, &info);
	if (rc < 0)
		goto err_free;
	rc = ivl_region_attach(&ep->rg, info.base, info.size);
	if (rc < 0)
		goto err_detach;
	rc = -EPROTO;
	if (info.self_id >= ep->rg.hdr.max_peers || info.n_vectors != ep->rg.hdr.n_vectors)
		goto err_detach;
	ep->self = info.self_id;
	memcpy(ep->region_name, ep->rg.hdr.name, sizeof(ep->region_name));
	ep->region_name[sizeof(ep->region_name) - 1] = '\0';
	ep->n_vectors = info.n_vectors;
	ep->vfd = info.vector_fds;
	ep->ctl_fd = info.ctl_fd;
	ep->poll_max_ns = info.poll_max_ns;
	ep->rx_vectors = info.rx_vectors;
	if (ep->n_vectors < 64)
		ep->rx_vectors &= (1ULL << ep->n_vectors) - 1;
	if (!ep->rx_vectors) /* all but the control vector, if there are more */
		ep->rx_vectors =
		    ep->n_vectors > 1
			? (ep->n_vectors >= 64 ? ~1ULL : ((1ULL << ep->n_vectors) - 1) & ~1ULL)
			: 1ULL;

	/* The daemon marks us UP before the handshake; wait briefly all the
	 * same, for daemons that do it later. */
	for (;;) {
		rc = ivl_region_peer_view(&ep->rg, ep->self, &pv);
		if (rc < 0)
			goto err_detach;
		if (pv.state == IVL_PEER_UP && ivl_section_check(&ep->rg, ep->self) == 0)
			break;
		if (ivl__now_ns() >= deadline) {
			ivl__logf(&ep->log, IVL_LOG_ERROR, "peer %u never became UP", ep->self);
			rc = -EPROTO;
			goto err_detach;
		}
		usleep(1000);
	}
	ep->self_epoch = pv.epoch;
	write_self_entry(ep, opts->name, info.backend_kind);

	ep->vw = aligned_alloc(IVL_CACHELINE, sizeof(*ep->vw) * ep->n_vectors);
	rc = -ENOMEM;
	if (!ep->vw)
		goto err_detach;
	memset(ep->vw, 0, sizeof(*ep->vw) * ep->n_vectors);
	rc = pthread_mutex_init(&ep->lock, NULL);
	if (rc) {
		rc = -rc;
		goto err_vw;
	}

	ep->epfd = vectors_epoll(ep);
	if (ep->epfd < 0) {
		rc = ep->epfd;
		ep->epfd = -1;
		goto err_lock;
	}
	if (ep->ctl_fd >= 0) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};

		if (epoll_ctl(ep->epfd, EPOLL_CTL_ADD, ep->ctl_fd, &ev) < 0) {
			rc = -errno;
			goto err_epoll;
		}
	}
	ivl__logf(&ep->log, IVL_LOG_INFO, "attached via %s as peer %u (epoch %u, %u vectors)",
		  info.mode ? info.mode : ep->ops->name, ep->self, ep->self_epoch, ep->n_vectors);
	*out = ep;
	return 0;

err_epoll:
	close(ep->epfd);
err_lock:
	pthread_mutex_destroy(&ep->lock);
err_vw:
	free(ep->vw);
err_detach:
	ep->ops->detach(ep->be);
err_free:
	free(ep);
	return rc;
}

void ivl_endpoint_close(struct ivl_endpoint *ep)
{
	if (!ep)
		return;
	while (ep->channels)
		ivl_channel_close(ep->channels);
	/*
	 * No linger is needed: the daemon keeps a gone peer's section intact
	 * until its id is handed out again, so the remotes still read the data
	 * and the EOF we published, then see our GONE epoch.
	 */
	close(ep->epfd);
	pthread_mutex_destroy(&ep->lock);
	free(ep->vw);
	free(ep->wake_to);
	ep->ops->detach(ep->be);
	free(ep);
}

uint32_t ivl_endpoint_id(const struct ivl_endpoint *ep)
{
	return ep->self;
}

static void fill_info(struct ivl_endpoint *ep, uint32_t id, const struct ivl_peer_view *pv,
		      struct ivl_peer_info *o)
{
	struct ivl_peer_entry *e = ivl_region_peer(&ep->rg, id);

	memset(o, 0, sizeof(*o));
	o->id = id;
	o->state = pv->state;
	o->epoch = pv->epoch;
	o->pid = __atomic_load_n(&e->pid, __ATOMIC_RELAXED);
	o->backend = __atomic_load_n(&e->backend, __ATOMIC_RELAXED);
	o->self_pid = __atomic_load_n(&e->self_pid, __ATOMIC_RELAXED);
	o->joined_unix_ns = __atomic_load_n(&e->joined_unix_ns, __ATOMIC_RELAXED);
	o->left_unix_ns = __atomic_load_n(&e->left_unix_ns, __ATOMIC_RELAXED);
	memcpy(o->name, e->name, sizeof(o->name));
	o->name[sizeof(o->name) - 1] = '\0';
	o->is_self = id == ep->self;
}

int ivl_endpoint_peers(struct ivl_endpoint *ep, struct ivl_peer_info *out, size_t n)
{
	int live = 0;

	if (!ep || (n && !out))
		return -EINVAL;
	for (uint32_t id = 0; id < ep->rg.hdr.max_peers; id++) {
		struct ivl_peer_view pv;

		if (ivl_region_peer_view(&ep->rg, id, &pv) < 0 || pv.state != IVL_PEER_UP)
			continue;
		if ((size_t)live < n)
			fill_info(ep, id, &pv, &out[live]);
		live++;
	}
	return live;
}

int ivl_endpoint_peer(struct ivl_endpoint *ep, uint32_t id, struct ivl_peer_info *out)
{
	struct ivl_peer_view pv;
	int rc;

	if (!ep || !out || id >= ep->rg.hdr.max_peers)
		return -EINVAL;
	rc = ivl_region_peer_view(&ep->rg, id, &pv);
	if (rc < 0)
		return rc;
	fill_info(ep, id, &pv, out);
	return 0;
}

/* Spreads channels over the vectors this process owns (all but the control
 * vector, or the one the guest agent gave us), so that few share a wake-up. */
uint32_t ivl__ep_pick_vector(struct ivl_endpoint *ep, uint32_t slot)
{
	uint32_t n = (uint32_t)__builtin_popcountll(ep->rx_vectors), k;

	if (n == 0)
		return IVL_CTRL_VECTOR;
	k = slot % n;
	for (uint32_t v = 0; v < 64; v++) {
		if (!(ep->rx_vectors & (1ULL << v)))
			continue;
		if (k-- == 0)
			return v;
	}
	return IVL_CTRL_VECTOR;
}

int ivl_endpoint_fd(struct ivl_endpoint *ep)
{
	return ep->epfd;
}

int ivl__ep_fork_child(struct ivl_endpoint *ep)
{
	int fd = vectors_epoll(ep);

	if (fd < 0)
		return fd;
	/* The inherited set is the parent's too (one open file description):
	 * closing our copy leaves it to the parent. */
	close(ep->epfd);
	ep->epfd = fd;
	/* Redirections are the parent's: ours come with our own doorbells. */
	free(ep->wake_to);
	ep->wake_to = NULL;
	return 0;
}

int64_t ivl__ep_redirect_vector(struct ivl_endpoint *ep, uint32_t v, struct ivl_endpoint *to)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = v};
	uint32_t tv;
	int64_t rc;

	if (v >= ep->n_vectors || v >= 64 || v == IVL_CTRL_VECTOR)
		return -EINVAL;
	if (ep->poll_max_ns > 0 || to->poll_max_ns > 0)
		return -EOPNOTSUPP; /* no doorbell to hear anyway */
	pthread_mutex_lock(&ep->lock);
	if (ep->wake_to && ep->wake_to[v]) {
		rc = ep->wake_to[v];
		goto out;
	}
	/* The same vector number when it is one of to's (the host: a peer of
	 * its own has them all), else the one to was given (a guest agent's). */
	tv = to->rx_vectors & (1ULL << v) ? v : ivl__ep_pick_vector(to, v);
	rc = -EINVAL;
	if (tv == IVL_CTRL_VECTOR || tv >= to->n_vectors)
		goto out;
	rc = -ENOMEM;
	if (!ep->wake_to && !(ep->wake_to = calloc(ep->n_vectors, sizeof(*ep->wake_to))))
		goto out;
	/* The pollable set holds the file, not the number: out with the
	 * shared eventfd, in with ours under the same number. */
	epoll_ctl(ep->epfd, EPOLL_CTL_DEL, ep->vfd[v], NULL);
	rc = dup3(to->vfd[tv], ep->vfd[v], O_CLOEXEC) < 0 ? -errno : 0;
	epoll_ctl(ep->epfd, EPOLL_CTL_ADD, ep->vfd[v], &ev);
	if (rc == 0) {
		ep->wake_to[v] = IVL_WAKE_TO(to->self, tv);
		rc = ep->wake_to[v];
	}
out:
	pthread_mutex_unlock(&ep->lock);
	return rc;
}

/*
 * Drains the vectors whose eventfd has a count, as the endpoint's own epoll
 * set reports them: one epoll_wait() instead of a read() per vector, most
 * of which would find nothing (a shim process wakes on every doorbell).
 * evs holds the first n events already taken from the set. Returns the
 * number of vectors drained.
 */
static int drain_fired(struct ivl_endpoint *ep, struct epoll_event *evs, int n)
{
	int events = 0;

	for (;;) {
		for (int i = 0; i < n; i++)
			if (evs[i].data.u32 < ep->n_vectors)
				events += drain(ep, evs[i].data.u32, UINT32_MAX);
		if (n != 64)
			break;
		n = epoll_wait(ep->epfd, evs, 64, 0);
	}
	if (n < 0) /* EINTR, or no epoll set: look at every vector */
		for (uint32_t v = 0; v < ep->n_vectors; v++)
			events += drain(ep, v, UINT32_MAX);
	return events;
}

int ivl_endpoint_process(struct ivl_endpoint *ep)
{
	struct epoll_event evs[64];
	int events = 0;
	int was_lost = ep->ctl_lost;
	/* What fired first, so that a doorbell alone costs no read of the
	 * daemon connection (EAGAIN): that is read when it is readable, or
	 * always where there is none to watch (a guest's peer table). */
	int n = epoll_wait(ep->epfd, evs, 64, 0), ctl = n < 0 || ep->ctl_fd < 0;

	for (int i = 0; i < n; i++)
		if (evs[i].data.u32 == UINT32_MAX)
			ctl = 1;
	if (ep->ops->process && ctl) {
		int rc;

		pthread_mutex_lock(&ep->lock);
		rc = ep->ctl_lost ? 0 : ep->ops->process(ep->be);
		if (rc == -ENOTCONN && !ep->ctl_lost) {
			ep->ctl_lost = 1;
			if (ep->ctl_fd >= 0)
				epoll_ctl(ep->epfd, EPOLL_CTL_DEL, ep->ctl_fd, NULL);
		}
		pthread_mutex_unlock(&ep->lock);
		if (rc > 0)
			events += rc;
	}
	events += drain_fired(ep, evs, n);
	if (!was_lost && ep->ctl_lost)
		return -ENOTCONN;
	return events;
}
