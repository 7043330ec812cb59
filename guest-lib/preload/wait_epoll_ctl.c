/* SPDX-License-Identifier: MIT */
/*
 * Socket shim readiness, epoll registrations: what the kernel watches for
 * each (user space, a readiness fd or the TCP socket), their re-targeting
 * as connections change state, and epoll_ctl(). See shim.h, "Readiness".
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

#include <ivlink/kick.h>
#include <ivlink/region.h>

pthread_mutex_t shim_reg_lock = PTHREAD_MUTEX_INITIALIZER;

/* ------------------------------------------------------------ hot list */

void shim_hot_push(struct shim_reg *r)
{
	struct shim_epoll *e = r->e;

	if (r->hot)
		return;
	r->hot = 1;
	e->n_hot++;
	r->hnext = NULL;
	r->hprev = e->hot_tail;
	if (e->hot_tail)
		e->hot_tail->hnext = r;
	else
		e->hot_head = r;
	e->hot_tail = r;
}

void shim_hot_del(struct shim_reg *r)
{
	struct shim_epoll *e = r->e;

	if (!r->hot)
		return;
	if (r->hprev)
		r->hprev->hnext = r->hnext;
	else
		e->hot_head = r->hnext;
	if (r->hnext)
		r->hnext->hprev = r->hprev;
	else
		e->hot_tail = r->hprev;
	r->hprev = r->hnext = NULL;
	r->hot = 0;
	e->n_hot--;
}

/* ------------------------------------------------------------ kick map */

static uint32_t kmap_hash(const struct shim_ep *sep, uint32_t slot)
{
	return (slot * 0x9e3779b1u) ^ (uint32_t)((uintptr_t)sep >> 6);
}

/* Doubles e's buckets (or makes the first 64); on failure keeps the old
 * ones, which still work, only longer chains. */
static void kmap_grow(struct shim_epoll *e)
{
	uint32_t nb = e->kmap ? (e->kmap_mask + 1) * 2 : 64;
	struct shim_reg **m = calloc(nb, sizeof(*m));

	if (!m)
		return;
	for (uint32_t b = 0; e->kmap && b <= e->kmap_mask; b++)
		while (e->kmap[b]) {
			struct shim_reg *r = e->kmap[b];
			uint32_t h = kmap_hash(r->ksep, r->kslot) & (nb - 1);

			e->kmap[b] = r->knext;
			r->knext = m[h];
			m[h] = r;
		}
	free(e->kmap);
	e->kmap = m;
	e->kmap_mask = nb - 1;
}

/* The read positions of e for sep's kick lists: new ones start at the
 * lists' tails now (whatever was named before is older than the
 * registration, which is checked once anyway). */
static void kpos_add(struct shim_epoll *e, struct shim_ep *sep)
{
	struct ivl_region *rg = &sep->ep->rg;
	uint32_t self = ivl_endpoint_id(sep->ep);
	struct shim_kpos *v, *k;

	for (int i = 0; i < e->n_kpos; i++)
		if (e->kpos[i].sep == sep)
			return;
	v = realloc(e->kpos, sizeof(*v) * (size_t)(e->n_kpos + 1));
	if (!v) {
		e->full = 1; /* no positions: scan everything instead */
		return;
	}
	e->kpos = v;
	k = &v[e->n_kpos++];
	memset(k, 0, sizeof(*k));
	k->sep = sep;
	for (uint32_t p = 0; p < rg->hdr.max_peers && p < IVL_PEERS_LIMIT; p++) {
		struct ivl_kick_list *l = ivl_region_kick_list(rg, p, self);
		struct ivl_peer_view pv;

		k->pos[p] = l ? ivl_kick_tail(l) : 0;
		k->epoch[p] = ivl_region_peer_view(rg, p, &pv) == 0 ? pv.epoch : 0;
	}
}

/* Files r under its connection's endpoint and own half, as they are now. */
static void kmap_file(struct shim_reg *r)
{
	struct shim_epoll *e = r->e;
	struct shim_conn *c = r->c;
	uint32_t h;

	if (r->ksep || !c->sep || c->slot == IVL_SLOT_NONE)
		return;
	if (e->kmap_n >= (e->kmap ? e->kmap_mask + 1 : 0))
		kmap_grow(e);
	if (!e->kmap) {
		e->full = 1;
		return;
	}
	kpos_add(e, c->sep);
	r->ksep = c->sep;
	r->kslot = c->slot;
	h = kmap_hash(r->ksep, r->kslot) & e->kmap_mask;
	r->knext = e->kmap[h];
	e->kmap[h] = r;
	e->kmap_n++;
}

static void kmap_unfile(struct shim_reg *r)
{
	struct shim_epoll *e = r->e;
	struct shim_reg **pp;

	if (!r->ksep)
		return;
	for (pp = &e->kmap[kmap_hash(r->ksep, r->kslot) & e->kmap_mask]; *pp; pp = &(*pp)->knext)
		if (*pp == r) {
			*pp = r->knext;
			e->kmap_n--;
			break;
		}
	r->ksep = NULL;
	r->knext = NULL;
}

int shim_kmap_mark(struct shim_epoll *e, const struct shim_ep *sep, uint32_t slot)
{
	int n = 0;

	if (!e->kmap)
		return 0;
	for (struct shim_reg *r = e->kmap[kmap_hash(sep, slot) & e->kmap_mask]; r; r = r->knext)
		if (r->ksep == sep && r->kslot == slot) {
			shim_hot_push(r);
			n++;
		}
	return n;
}

/* Whether c's readiness fd needs a new byte per arrival. Caller holds the
 * reg lock. */
static void edges_update(struct shim_conn *c)
{
	int edges = 0;

	for (struct shim_reg *r = c->regs; r; r = r->next_c)
		if (r->target == c->rfd && ((r->ev.events & EPOLLET) || r->e->in_outer))
			edges = 1;
	__atomic_store_n(&c->edges, edges, __ATOMIC_RELAXED);
}

static struct shim_epoll *epoll_obj(int epfd, int create)
{
	struct shim_obj *o = shim_get(epfd);
	struct shim_epoll *e = shim_epoll_of(o);

	if (e)
		return e; /* with a reference */
	if (o || !create) {
		shim_put(o);
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->o.type = SHIM_T_EPOLL;
	e->epfd = epfd;
	e->wake_efd = -1;
	shim_set(epfd, &e->o);
	__atomic_fetch_add(&e->o.refs, 1, __ATOMIC_ACQ_REL);
	return e;
}

/* Adds the endpoint fds, hidden, to an epoll set. Caller holds reg lock. */
void shim_hidden_eps(struct shim_epoll *e)
{
	int fds[SHIM_MAX_EPS], n = shim_ep_fds(fds, SHIM_MAX_EPS);

	for (int i = e->hidden_ep; i < n; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = shim_hidden_ep_tag};

		REAL(epoll_ctl)(e->epfd, EPOLL_CTL_ADD, fds[i], &ev);
	}
	if (n > e->hidden_ep)
		e->hidden_ep = n;
}

/* Whether a registration's readiness can be computed in user space by
 * epoll_wait(): nothing outside the shim's epoll_wait() watches the set
 * (shim.h, "Readiness"). Level triggered, edge triggered and one-shot
 * alike: user_scan() keeps the edges per registration. EPOLLEXCLUSIVE
 * (wake-up of one of several sets) stays the kernel's. */
static int reg_user(const struct shim_reg *r)
{
	return !(r->ev.events & EPOLLEXCLUSIVE) && !r->e->in_outer;
}

/* What the kernel should watch for the app while the rings carry the
 * data: nothing (user space) or the readiness fd; the TCP socket otherwise. */
static int want_target(struct shim_reg *r)
{
	struct shim_conn *c = r->c;
	int st = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);

	if (st == SS_ACCEL || st == SS_CLI_PENDING || st == SS_SRV_PENDING) {
		if (reg_user(r))
			return SHIM_TARGET_USER;
		if (shim_rfd_create(c) == 0)
			return c->rfd;
	}
	return c->fd;
}

/* Registers r's target in the kernel (with the app's events and data), and
 * while the rings carry the data the hidden watches too. Caller holds the
 * reg lock. */
static int reg_install(struct shim_reg *r, int target)
{
	if (target >= 0 && REAL(epoll_ctl)(r->e->epfd, EPOLL_CTL_ADD, target, &r->ev) < 0)
		return -errno;
	if (target != r->fd) {
		struct epoll_event hev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET,
					  .data.u64 = shim_hidden_ep_tag + 8};

		if (REAL(epoll_ctl)(r->e->epfd, EPOLL_CTL_ADD, r->fd, &hev) == 0)
			r->hidden_tcp = 1;
		shim_hidden_eps(r->e);
	}
	if (target >= 0 && target == r->c->rfd)
		__atomic_fetch_add(&r->c->rfd_regs, 1, __ATOMIC_RELAXED);
	r->target = target;
	/* The rings carry its data: its doorbells and kicks matter now, and
	 * the next scan looks at it. */
	if (target != r->fd && !r->ringed) {
		r->ringed = 1;
		r->e->n_ring++;
		r->e->vmask |= shim_vbit(r->c);
		kmap_file(r);
	}
	shim_hot_push(r);
	return 0;
}

static void reg_uninstall(struct shim_reg *r)
{
	if (r->target >= 0)
		REAL(epoll_ctl)(r->e->epfd, EPOLL_CTL_DEL, r->target, NULL);
	if (r->target >= 0 && r->target == r->c->rfd)
		__atomic_fetch_sub(&r->c->rfd_regs, 1, __ATOMIC_RELAXED);
	if (r->hidden_tcp)
		REAL(epoll_ctl)(r->e->epfd, EPOLL_CTL_DEL, r->fd, NULL);
	r->hidden_tcp = 0;
	if (r->ringed) {
		r->ringed = 0;
		r->e->n_ring--;
	}
	kmap_unfile(r);
}

/* Moves r to the target it should have now; returns whether it moved.
 * Caller holds the reg lock. */
static int reg_move(struct shim_reg *r)
{
	int t = want_target(r);

	if (t == r->target)
		return 0;
	reg_uninstall(r);
	reg_install(r, t);
	return 1;
}

void shim_regs_retarget(struct shim_conn *c)
{
	int moved = 0;

	pthread_mutex_lock(&shim_reg_lock);
	for (struct shim_reg *r = c->regs; r; r = r->next_c) {
		moved |= reg_move(r);
		/* Filed again under the half the connection has now. */
		kmap_unfile(r);
		if (r->ringed)
			kmap_file(r);
		shim_hot_push(r);
	}
	pthread_mutex_unlock(&shim_reg_lock);
	if (moved)
		shim_sync(c);
}

void shim_regs_hot(struct shim_conn *c)
{
	pthread_mutex_lock(&shim_reg_lock);
	for (struct shim_reg *r = c->regs; r; r = r->next_c)
		shim_hot_push(r);
	pthread_mutex_unlock(&shim_reg_lock);
}

/* e is watched from outside its epoll_wait() from now on (nested in another
 * set, or polled): its user-space registrations move to readiness fds, and
 * every registration needs an edge per arrival. */
void shim_epoll_outer(struct shim_epoll *e)
{
	pthread_mutex_lock(&shim_reg_lock);
	if (e->in_outer) {
		pthread_mutex_unlock(&shim_reg_lock);
		return;
	}
	e->in_outer = 1;
	for (struct shim_reg *r = e->regs; r; r = r->next_e) {
		reg_move(r);
		edges_update(r->c);
		/* Lock order: reg lock, then the connection's locks. */
		shim_sync(r->c);
	}
	pthread_mutex_unlock(&shim_reg_lock);
}

static void reg_unlink(struct shim_reg *r)
{
	struct shim_reg **pp;

	shim_hot_del(r);
	kmap_unfile(r);

	for (pp = &r->c->regs; *pp; pp = &(*pp)->next_c)
		if (*pp == r) {
			*pp = r->next_c;
			break;
		}
	/* The set's list is doubly linked: closing N connections costs N. */
	if (r->prev_e)
		r->prev_e->next_e = r->next_e;
	else
		r->e->regs = r->next_e;
	if (r->next_e)
		r->next_e->prev_e = r->prev_e;
	r->next_e = r->prev_e = NULL;
}

void shim_regs_drop(struct shim_conn *c)
{
	pthread_mutex_lock(&shim_reg_lock);
	while (c->regs) {
		struct shim_reg *r = c->regs;

		reg_uninstall(r);
		reg_unlink(r);
		shim_put(&r->c->o);
		free(r);
	}
	pthread_mutex_unlock(&shim_reg_lock);
}

void shim_epoll_drop(struct shim_epoll *e)
{
	pthread_mutex_lock(&shim_reg_lock);
	while (e->regs) {
		struct shim_reg *r = e->regs;

		reg_unlink(r);
		shim_put(&r->c->o);
		free(r);
	}
	free(e->kmap);
	e->kmap = NULL;
	e->kmap_n = 0;
	free(e->kpos);
	e->kpos = NULL;
	e->n_kpos = 0;
	pthread_mutex_unlock(&shim_reg_lock);
}

int shim_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	struct shim_obj *o = shim_get(fd);
	struct shim_conn *c = shim_conn_of(o);
	struct shim_epoll *e;
	struct shim_reg *r;
	int rc = 0;

	if (!c) {
		struct shim_epoll *inner = shim_epoll_of(o);

		rc = REAL(epoll_ctl)(epfd, op, fd, ev) < 0 ? -errno : 0;
		/* An epoll set that holds shimmed fds, nested in another: the
		 * outer one must wake on the doorbells too. */
		if (rc == 0 && op == EPOLL_CTL_ADD && inner)
			shim_epoll_outer(inner);
		if (rc == 0 && op == EPOLL_CTL_ADD && inner &&
		    (inner->hidden_ep || inner->nested)) {
			e = epoll_obj(epfd, 1);
			if (e) {
				pthread_mutex_lock(&shim_reg_lock);
				e->nested = 1;
				shim_hidden_eps(e);
				pthread_mutex_unlock(&shim_reg_lock);
				shim_put(&e->o);
			}
		}
		shim_put(o);
		return rc;
	}
	e = epoll_obj(epfd, 1);
	if (!e) {
		shim_put(o);
		return REAL(epoll_ctl)(epfd, op, fd, ev) < 0 ? -errno : 0;
	}
	pthread_mutex_lock(&shim_reg_lock);
	/* The connection's own list (one entry, as a rule), not the set's. */
	for (r = c->regs; r; r = r->next_c)
		if (r->fd == fd && r->e == e)
			break;
	switch (op) {
	case EPOLL_CTL_ADD:
		if (r) {
			rc = -EEXIST;
			break;
		}
		r = calloc(1, sizeof(*r));
		if (!r) {
			rc = -ENOMEM;
			break;
		}
		r->c = c;
		r->e = e;
		r->fd = fd;
		r->ev = ev ? *ev : (struct epoll_event){0};
		r->et_force = 1; /* the kernel reports what is ready at ADD */
		rc = reg_install(r, want_target(r));
		if (rc < 0) {
			free(r);
			break;
		}
		__atomic_fetch_add(&c->o.refs, 1, __ATOMIC_ACQ_REL);
		r->next_c = c->regs;
		c->regs = r;
		r->next_e = e->regs;
		r->prev_e = NULL;
		if (e->regs)
			e->regs->prev_e = r;
		e->regs = r;
		edges_update(c);
		break;
	case EPOLL_CTL_MOD:
		if (!r) {
			rc = REAL(epoll_ctl)(epfd, op, fd, ev) < 0 ? -errno : 0;
			break;
		}
		if (ev)
			r->ev = *ev;
		/* As the kernel: a MOD re-arms a one-shot registration and
		 * reports what is ready now, edge triggered or not. */
		r->et_force = 1;
		r->oneshot_off = 0;
		shim_hot_push(r);
		/* A change of kind (user space <-> kernel) moves the registration;
		 * otherwise the kernel's copy, if any, takes the new events. */
		if (!reg_move(r) && r->target >= 0)
			rc = REAL(epoll_ctl)(epfd, EPOLL_CTL_MOD, r->target, &r->ev) < 0 ? -errno
											 : 0;
		edges_update(c);
		break;
	case EPOLL_CTL_DEL:
		if (!r) {
			rc = REAL(epoll_ctl)(epfd, op, fd, ev) < 0 ? -errno : 0;
			break;
		}
		reg_uninstall(r);
		reg_unlink(r);
		edges_update(c);
		shim_put(&c->o);
		free(r);
		break;
	default:
		rc = REAL(epoll_ctl)(epfd, op, fd, ev) < 0 ? -errno : 0;
	}
	pthread_mutex_unlock(&shim_reg_lock);
	if (rc == 0 && op != EPOLL_CTL_DEL)
		shim_sync(c);
	shim_put(&e->o);
	shim_put(o);
	return rc;
}
