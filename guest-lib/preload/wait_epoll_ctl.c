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

#include <ivlink/region.h>

pthread_mutex_t shim_reg_lock = PTHREAD_MUTEX_INITIALIZER;

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
	for (struct shim_reg *r = c->regs; r; r = r->next_c)
		moved |= reg_move(r);
	pthread_mutex_unlock(&shim_reg_lock);
	if (moved)
		shim_sync(c);
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

	for (pp = &r->c->regs; *pp; pp = &(*pp)->next_c)
		if (*pp == r) {
			*pp = r->next_c;
			break;
		}
	for (pp = &r->e->regs; *pp; pp = &(*pp)->next_e)
		if (*pp == r) {
			*pp = r->next_e;
			break;
		}
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
	for (r = e->regs; r; r = r->next_e)
		if (r->fd == fd && r->c == c)
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
