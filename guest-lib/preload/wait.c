/* SPDX-License-Identifier: MIT */
/*
 * Socket shim readiness: readiness fds (epoll), epoll registrations and
 * their re-targeting, and the poll/select/epoll wait loops (spin, arm,
 * block). See shim.h, "Readiness".
 */
#include "fd_high.h"
#include "shim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ivlink/region.h>

#define MAX_EPS 8

pthread_mutex_t shim_reg_lock = PTHREAD_MUTEX_INITIALIZER;

/* ------------------------------------------------------------ readiness fd */

static int rfd_create(struct shim_conn *c)
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
		uint64_t tail =
		    st == SS_ACCEL ? __atomic_load_n(&c->lk.rx.ring.prod->tail, __ATOMIC_ACQUIRE) : 0;

		/* A byte per new ring event: each is a new edge for EPOLLET
		 * (and for an epoll set nested in another, whose outer set
		 * sees an edge per arrival as with a kernel socket). Level
		 * triggered sets need only the first. */
		if (!c->r_bytes || (tail != c->r_mark && __atomic_load_n(&c->edges, __ATOMIC_RELAXED))) {
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

/* ------------------------------------------------------------ sleepers */

/*
 * Doorbells are eventfd counters that one read() empties, and every wait of
 * the process watches them. In a process with several threads waiting (an
 * event loop per thread, each with its own epoll set; threads in poll), the
 * thread that drains a doorbell is not always the one whose connection it
 * was rung for, and readiness computed in user space is seen by no one
 * else. So a wait registers a wake eventfd (its epoll set's, or its
 * thread's for poll) and the vectors of its connections before it arms the
 * rings and sleeps, and whoever consumes a doorbell (libivlink calls
 * shim_doorbell_drained()) writes the wake fd of every other registered
 * thread waiting on that vector (all of them for the control vector), which
 * then looks again. The registration comes before the arming, and the
 * doorbell after it, so the drainer finds the sleeper registered (both
 * under sleepers_lock).
 */
struct shim_sleeper {
	int efd;
	int on;		/* in the list */
	uint64_t vmask; /* vectors of the connections it waits on */
	pid_t tid;
	struct shim_sleeper *next;
};

static pthread_mutex_t sleepers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shim_sleeper *sleepers;
/* A thread waits in one call at a time: one node per thread. It lives in
 * thread-local storage, and a thread that ends inside a wait (cancelled)
 * leaves the list through the key's destructor. */
static __thread struct shim_sleeper my_node;
static __thread int my_efd = -1; /* poll's wake fd */
static pthread_key_t thread_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void sleeper_del(void);

static void thread_gone(void *arg)
{
	(void)arg;
	sleeper_del();
	if (my_efd >= 0)
		REAL(close)(my_efd);
	my_efd = -1;
}

static void key_make(void)
{
	pthread_key_create(&thread_key, thread_gone);
}

static pid_t self_tid(void)
{
	if (!my_node.tid) {
		my_node.tid = (pid_t)syscall(SYS_gettid);
		pthread_once(&key_once, key_make);
		pthread_setspecific(thread_key, (void *)1);
	}
	return my_node.tid;
}

/* This thread's wake fd for poll, created on first use. */
static int thread_efd(void)
{
	if (my_efd < 0)
		my_efd = ivl__fd_high(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
	return my_efd;
}

/* The bit of a connection's rx vector in a sleeper's mask. */
static uint64_t vbit(const struct shim_conn *c)
{
	return c->lk.rx_vector < 64 ? 1ULL << c->lk.rx_vector : ~0ULL;
}

/* Registers this thread as sleeping on vmask, woken through efd. */
static void sleeper_add(int efd, uint64_t vmask)
{
	struct shim_sleeper *s = &my_node;

	self_tid();
	pthread_mutex_lock(&sleepers_lock);
	if (!s->on) {
		s->next = sleepers;
		sleepers = s;
		s->on = 1;
	}
	s->efd = efd;
	s->vmask = vmask;
	pthread_mutex_unlock(&sleepers_lock);
}

static void sleeper_del(void)
{
	struct shim_sleeper *s = &my_node;

	if (!s->on)
		return;
	pthread_mutex_lock(&sleepers_lock);
	for (struct shim_sleeper **pp = &sleepers; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	s->on = 0;
	pthread_mutex_unlock(&sleepers_lock);
}

void shim_doorbell_drained(uint32_t v)
{
	static const uint64_t one = 1;
	uint64_t bit = v == IVL_CTRL_VECTOR || v >= 64 ? ~0ULL : 1ULL << v;
	pid_t me = self_tid();

	pthread_mutex_lock(&sleepers_lock);
	for (struct shim_sleeper *s = sleepers; s; s = s->next)
		if (s->tid != me && (s->vmask & bit) &&
		    REAL(write)(s->efd, &one, sizeof(one)) < 0) {
			/* EAGAIN: the counter is full, a wake-up is pending. */
		}
	pthread_mutex_unlock(&sleepers_lock);
}

/* The other threads are gone in a child: so are their registrations. */
void shim_sleepers_fork_child(void)
{
	pthread_mutex_init(&sleepers_lock, NULL);
	sleepers = NULL;
	my_node.on = 0;
	my_node.tid = 0;
}

static void efd_drain(int fd)
{
	uint64_t v;

	if (REAL(read)(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing was written. */
	}
}

/* ------------------------------------------------------------ registrations */

/* Whether c's readiness fd needs a new byte per arrival. Caller holds the
 * reg lock. */
static void edges_update(struct shim_conn *c)
{
	int edges = 0;

	for (struct shim_reg *r = c->regs; r; r = r->next_c)
		if ((r->ev.events & EPOLLET) || r->e->in_outer)
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
static void hidden_eps(struct shim_epoll *e)
{
	int fds[MAX_EPS], n = shim_ep_fds(fds, MAX_EPS);

	for (int i = e->hidden_ep; i < n; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = shim_hidden_ep_tag};

		REAL(epoll_ctl)(e->epfd, EPOLL_CTL_ADD, fds[i], &ev);
	}
	if (n > e->hidden_ep)
		e->hidden_ep = n;
}

/* Whether a registration's readiness can be computed in user space by
 * epoll_wait(): level triggered, and nothing outside the shim's
 * epoll_wait() watches the set (shim.h, "Readiness"). */
static int reg_user(const struct shim_reg *r)
{
	return !(r->ev.events & (EPOLLET | EPOLLONESHOT)) && !r->e->in_outer;
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
		if (rfd_create(c) == 0)
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
		hidden_eps(r->e);
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
				hidden_eps(e);
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
		/* A change of kind (LT <-> ET/ONESHOT) moves the registration;
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

/* ------------------------------------------------------------ epoll_wait */

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
		    (st == SS_CLI_PENDING && ivl__now_ns() >= c->deadline_ns)) {
			shim_progress(c);
			st = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
		}
		if (st == SS_CLI_PENDING && c->deadline_ns < next)
			next = c->deadline_ns;
		if (c->inherited && next > ivl__now_ns() + SHIM_INHERITED_SLICE_NS)
			next = ivl__now_ns() + SHIM_INHERITED_SLICE_NS;
		if (st == SS_ACCEL && probe_tcp && !c->tcp_hup) {
			char b;
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
		vmask |= vbit(r->c);
	}
	/* Registered before any ring is armed, with every vector of the set
	 * (the reg lock keeps the set as it is until the arming is done). */
	if (arm && wake_fd >= 0)
		sleeper_add(wake_fd, vmask);
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
			    (c->inherited && st == SS_ACCEL))
				*slow = 1;
			if (st == SS_ACCEL || st == SS_CLI_PENDING || st == SS_SRV_PENDING)
				*rings = 1;
			if (r->target != SHIM_TARGET_USER) {
				if (r->target == c->rfd && st == SS_ACCEL)
					shim_sync(c);
				continue;
			}
			if (n == max)
				continue;
			rev = shim_conn_revents(
			    c, r->ev.events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI), arm);
			if (rev) {
				evs[n].events = rev;
				evs[n].data = r->ev.data;
				n++;
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
	int fds[MAX_EPS], n = shim_ep_fds(fds, MAX_EPS);

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
	int64_t deadline = timeout_ms < 0 ? INT64_MAX
					  : ivl__now_ns() + (int64_t)timeout_ms * 1000000LL;

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
			efd_drain(e->wake_efd);
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
	hidden_eps(e);
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
			efd_drain(e->wake_efd);
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
		sleeper_del();
	shim_put(o);
	return n;
}

/* ------------------------------------------------------------ poll */

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
	int epfds[MAX_EPS];

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
	nep = shim_ep_fds(epfds, MAX_EPS);
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
			if (c && (st == SS_CLI_PENDING || st == SS_SRV_PENDING)) {
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
				if (c->inherited && next > ivl__now_ns() + SHIM_INHERITED_SLICE_NS)
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
			if (wfd < 0 && (wfd = thread_efd()) >= 0) {
				uint64_t vmask = 0;

				for (nfds_t i = 0; i < nfds; i++)
					if (ps[i].c)
						vmask |= vbit(ps[i].c);
				sleeper_add(wfd, vmask);
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
					char b;
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
			efd_drain(wfd);
		shim_ep_process_all();
		armed = 0;
	}
out:
	if (wfd >= 0)
		sleeper_del();
	for (nfds_t i = 0; i < nfds; i++)
		if (ps[i].c)
			shim_put(&ps[i].c->o);
	if (ps != stack_s)
		free(ps);
	if (kf != stack_k)
		free(kf);
	return count;
}
