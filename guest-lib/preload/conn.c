/* SPDX-License-Identifier: MIT */
/*
 * Socket shim connections: the rendezvous through the region (listeners,
 * proposals, accept/decline, confirm/withdraw), fallback with replay, the
 * ring data path, shutdown and close. See shim.h and layout.h.
 */
#include "shim.h"
#include "rdv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ifaddrs.h>
#include <time.h>

#include <ivlink/region.h>

#include "ring_inline.h"

#define PENDING_SLICE_NS 5000000LL
#define TCP_PROBE_NS	 50000000LL
#define GONE_FIN_WAIT_MS 200 /* a gone remote's TCP FIN, at most once */

/* ------------------------------------------------------------ addresses */

/* Fills family/addr(16)/port(network order) from a sockaddr, folding
 * IPv4-mapped IPv6 into IPv4. Returns 0 or -EAFNOSUPPORT. */
static int sa_parse(const struct sockaddr *sa, socklen_t len, int *fam, uint8_t addr[16],
		    uint16_t *port)
{
	memset(addr, 0, 16);
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s = (const void *)sa;

		*fam = AF_INET;
		memcpy(addr, &s->sin_addr, 4);
		*port = s->sin_port;
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s = (const void *)sa;

		*port = s->sin6_port;
		if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
			*fam = AF_INET;
			memcpy(addr, &s->sin6_addr.s6_addr[12], 4);
		} else {
			*fam = AF_INET6;
			memcpy(addr, &s->sin6_addr, 16);
		}
		return 0;
	}
	return -EAFNOSUPPORT;
}

static void addr_str(int fam, const uint8_t *a, uint16_t port, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	inet_ntop(fam, a, ip, sizeof(ip));
	snprintf(buf, len, fam == AF_INET ? "%s:%u" : "[%s]:%u", ip, ntohs(port));
}

static int local_name(int fd, int *fam, uint8_t a[16], uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	return sa_parse((struct sockaddr *)&ss, len, fam, a, port);
}

static int peer_name(int fd, int *fam, uint8_t a[16], uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	return sa_parse((struct sockaddr *)&ss, len, fam, a, port);
}

/* The channel name of a connection: the client's view, "src>dst". */
static void conn_name(char *out, int fam, const uint8_t *caddr, uint16_t cport,
		      const uint8_t *saddr, uint16_t sport)
{
	if (fam == AF_INET) {
		char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, caddr, a, sizeof(a));
		inet_ntop(AF_INET, saddr, b, sizeof(b));
		snprintf(out, IVL_NAME_MAX, "tcp:%s:%u>%s:%u", a, ntohs(cport), b, ntohs(sport));
	} else {
		uint64_t h = 0xcbf29ce484222325ULL;

		for (int i = 0; i < 16; i++)
			h = (h ^ caddr[i]) * 0x100000001b3ULL;
		for (int i = 0; i < 16; i++)
			h = (h ^ saddr[i]) * 0x100000001b3ULL;
		snprintf(out, IVL_NAME_MAX, "tcp6:%016llx:%u>%u", (unsigned long long)h,
			 ntohs(cport), ntohs(sport));
	}
}

/* ------------------------------------------------------------ objects */

struct shim_conn *shim_conn_new(int fd, int family, int nonblock)
{
	struct shim_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->o.type = SHIM_T_CONN;
	pthread_mutex_init(&c->lock, NULL);
	shim_guard_init(&c->txg);
	shim_guard_init(&c->rxg);
	ivl__link_init(&c->lk, NULL);
	c->lk.check_alive = 0; /* SS_ACCEL sets it (set_state) */
	c->fd = fd;
	c->family = family;
	c->nonblock = nonblock;
	c->slot = IVL_SLOT_NONE;
	c->rcvtimeo_ns = -1;
	c->sndtimeo_ns = -1;
	c->rfd = -1;
	c->cfd = -1;
	c->hidden_tag = (uint64_t)(uintptr_t)&c->hidden_tag;
	return c;
}

void shim_conn_free(struct shim_conn *c)
{
	if (c->sep)
		ivl__link_close_kick(&c->lk);
	if (c->rfd >= 0)
		REAL(close)(c->rfd);
	if (c->cfd >= 0)
		REAL(close)(c->cfd);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->txg.lock);
	pthread_mutex_destroy(&c->rxg.lock);
	free(c);
}

int shim_is_active(int st)
{
	return st == SS_CONNECTING || st == SS_CLI_PENDING || st == SS_SRV_PENDING ||
	       st == SS_ACCEL;
}

static int get_state(struct shim_conn *c)
{
	return __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
}

/* The link's notifier reports a gone remote only once accelerated: while
 * pending, the remote's epoch may not be final and a fallback handles a
 * remote that left. */
static void set_state(struct shim_conn *c, int st)
{
	__atomic_store_n(&c->lk.check_alive, st == SS_ACCEL, __ATOMIC_RELEASE);
	__atomic_store_n(&c->state, st, __ATOMIC_RELEASE);
}

/* The endpoint c's rendezvous and link go through. */
static void set_sep(struct shim_conn *c, struct shim_ep *sep)
{
	c->sep = sep;
	c->lk.ep = sep->ep;
}

static struct ivl_region *rg_of(struct shim_conn *c)
{
	return &c->sep->ep->rg;
}

static uint32_t self_of(struct shim_conn *c)
{
	return ivl_endpoint_id(c->sep->ep);
}

static struct ivl_chan_half *own_half(struct shim_conn *c)
{
	return ivl_region_chan(rg_of(c), self_of(c), c->slot);
}

/*
 * 1 when a new connection with peer may be accelerated: the daemon vouches
 * for its liveness (not a stale entry left UP by an earlier ivlinkd) and we
 * hold a doorbell to ring it. Without one, the connection would move only
 * when a timeout fires (seen at 4 requests/s after a daemon restart).
 */
static int peer_vouched(struct shim_ep *sep, uint32_t peer)
{
	struct ivl_peer_entry *e = ivl_region_peer(&sep->ep->rg, peer);
	struct ivl__kick k;

	if (!e || (__atomic_load_n(&e->daemon_flags, __ATOMIC_ACQUIRE) & IVL_PEER_F_STALE))
		return 0;
	/* A peer that just joined: its doorbells may still be in our daemon
	 * socket (the daemon tells everyone, we may read it later than the
	 * peer connects). 100 ms at most, and only if we read that socket. */
	if (ivl__ep_kick_wait(sep->ep, peer, IVL_CTRL_VECTOR, &k, 100000000LL) < 0)
		return 0;
	sep->ep->ops->kick_close(&k);
	return 1;
}

/*
 * Closes c's own half and forgets it. A half our offer took is released
 * from the private copy in c->own (its pages freed at once if the remote no
 * longer reads it); a note, or a half someone reused, is only closed, and
 * the gc frees what it can.
 */
static void close_half(struct shim_conn *c)
{
	ivl_ctab_drop(rg_of(c), self_of(c), c->slot, &c->own);
	memset(&c->own, 0, sizeof(c->own));
	c->slot = IVL_SLOT_NONE;
}

/*
 * A connection shared over fork may be used by the processes in turn (the
 * child writes, the parent reads the answer): each process's ring handle
 * then trails what the others moved. Before using a handle of a connection
 * that went through a fork, on either side, adopt the shared indices (a
 * no-op while no other process moved them). Process-local flags: nothing
 * read from the region decides it. Caller holds the direction's lock.
 */
static void adopt_if_shared(struct shim_conn *c, struct ivl_ring *r)
{
	if (c->inherited || c->forked)
		ivl_ring_adopt(r);
}

static struct ivl_peer_shim *peer_shim(struct shim_ep *sep)
{
	return &ivl_region_peer(&sep->ep->rg, ivl_endpoint_id(sep->ep))->shim;
}

void shim_count_fallback(struct shim_ep *sep, uint32_t reason)
{
	struct ivl_peer_shim *ps;

	if (!sep)
		return;
	ps = peer_shim(sep);
	__atomic_fetch_add(&ps->fallbacks, 1, __ATOMIC_RELAXED);
	if (reason < IVL_FB_REASONS)
		__atomic_fetch_add(&ps->by_reason[reason], 1, __ATOMIC_RELAXED);
	__atomic_store_n(&ps->last_reason, reason, __ATOMIC_RELAXED);
}

/* Rings peer's control vector: "look at the channel table". */
static void poke(struct shim_ep *sep, uint32_t peer)
{
	struct ivl__kick k;

	if (ivl__ep_kick_open(sep->ep, peer, IVL_CTRL_VECTOR, &k) == 0) {
		sep->ep->ops->kick(&k);
		sep->ep->ops->kick_close(&k);
	}
}

/* ------------------------------------------------------------ liveness */

/* Liveness of the remote, its doorbell and the rings' notifier are the
 * link's (../link.h), the same code as channel.c's. */
static int conn_alive(struct shim_conn *c)
{
	return ivl__link_alive(&c->lk);
}

static int rx_alive(struct shim_conn *c)
{
	return ivl__link_rx_alive(&c->lk);
}

/* ------------------------------------------------------------ listeners */

static int local_addrs(int fam, uint8_t out[][16], unsigned max)
{
	struct ifaddrs *ifa, *i;
	unsigned n = 0;

	if (getifaddrs(&ifa) < 0)
		return 0;
	for (i = ifa; i && n < max; i = i->ifa_next) {
		int f;
		uint8_t a[16];
		uint16_t p;

		if (!i->ifa_addr ||
		    (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
			continue;
		if (sa_parse(i->ifa_addr,
			     i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
							       : sizeof(struct sockaddr_in6),
			     &f, a, &p) < 0)
			continue;
		if (ivl__shim_addr_loopback(f, a) || (fam == AF_INET && f != AF_INET))
			continue;
		if (f == AF_INET6 && (a[0] == 0xfe && (a[1] & 0xc0) == 0x80))
			continue; /* link local */
		memcpy(out[n++], a, 16);
	}
	freeifaddrs(ifa);
	return (int)n;
}

int shim_listen_publish(struct shim_conn *c)
{
	struct ivl_shim_half sh;
	struct shim_ep *sep;
	char name[IVL_NAME_MAX], as[64];
	int fam, slot;
	uint8_t a[16];
	uint16_t port;

	if (c->state != SS_PLAIN || local_name(c->fd, &fam, a, &port) < 0)
		return 0;
	if (c->opt_unsupported) {
		SHIM_DBG("fd %d: listener not published: unsupported option", c->fd);
		return 0;
	}
	if (!shim_rules_allow(2, fam, a, ntohs(port))) {
		SHIM_DBG("fd %d: listener port %u excluded by rules", c->fd, ntohs(port));
		return 0;
	}
	sep = shim_ep_get();
	if (!sep)
		return 0;
	memset(&sh, 0, sizeof(sh));
	sh.kind = IVL_SHIM_LISTEN;
	sh.procs = 1;
	sh.family = (uint32_t)fam;
	memcpy(sh.laddr, a, 16);
	sh.lport = port;
	sh.owner_pid = (uint32_t)getpid();
	sh.created_unix_ns = (uint64_t)time(NULL) * 1000000000ULL;
	if (ivl__shim_addr_any(fam, a))
		sh.n_addrs = (uint32_t)local_addrs(c->family, sh.addrs, IVL_SHIM_ADDRS);
	snprintf(name, sizeof(name), "listen:%u", ntohs(port));
	slot = ivl_ctab_note(&sep->ep->rg, ivl_endpoint_id(sep->ep), sep->ep->self_epoch,
			     IVL_CHAN_LISTEN, IVL_SLOT_NONE, name, &sh);
	addr_str(fam, a, port, as, sizeof(as));
	if (slot < 0) {
		SHIM_DBG("fd %d: listener %s not published: %s", c->fd, as, strerror(-slot));
		return 0;
	}
	set_sep(c, sep);
	c->slot = (uint32_t)slot;
	c->gen = ivl_region_chan(&sep->ep->rg, ivl_endpoint_id(sep->ep), c->slot)->gen;
	memcpy(c->laddr, a, 16);
	c->lport = port;
	set_state(c, SS_LISTEN);
	__atomic_fetch_add(&peer_shim(sep)->listeners, 1, __ATOMIC_RELAXED);
	shim_active_add(c);
	SHIM_DBG("fd %d: listening on %s, published as slot %u", c->fd, as, c->slot);
	return 0;
}

/* Slots kept free for notes: a server that cannot take a connection must
 * still be able to publish its decline, or the client waits for its
 * timeout. */
#define NOTE_RESERVE 4u

static uint32_t free_slots(struct ivl_region *rg, uint32_t self)
{
	uint32_t n = 0;

	for (uint32_t s = 0; s < rg->hdr.chan_slots; s++)
		if (__atomic_load_n(&ivl_region_chan(rg, self, s)->state, __ATOMIC_RELAXED) ==
		    IVL_CHAN_FREE)
			n++;
	return n;
}

/* 1 if a new channel half (with ring) may be taken, after a gc if needed. */
static int room_for_channel(struct ivl_region *rg, uint32_t self)
{
	if (free_slots(rg, self) > NOTE_RESERVE)
		return 1;
	ivl_ctab_gc(rg, self);
	return free_slots(rg, self) > NOTE_RESERVE;
}

/* ------------------------------------------------------------ client */

/* The source address the kernel will use towards dst (a UDP route probe). */
static int route_src(int fam, const uint8_t *dst, uint8_t src[16])
{
	struct sockaddr_storage ss;
	socklen_t len;
	int s, rc, f;
	uint16_t p;

	memset(&ss, 0, sizeof(ss));
	if (fam == AF_INET) {
		struct sockaddr_in *a = (void *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(9);
		memcpy(&a->sin_addr, dst, 4);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (void *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(9);
		memcpy(&a->sin6_addr, dst, 16);
		len = sizeof(*a);
	}
	s = REAL(socket)(fam, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	rc = REAL(connect)(s, (struct sockaddr *)&ss, len) < 0 ? -errno : 0;
	if (rc == 0)
		rc = local_name(s, &f, src, &p);
	REAL(close)(s);
	return rc;
}

static int bind_src(struct shim_conn *c, int fam, const uint8_t *dst)
{
	struct sockaddr_storage ss;
	uint8_t src[16];
	int rc, f;
	uint16_t p;
	socklen_t len;

	rc = local_name(c->fd, &f, src, &p);
	if (rc < 0)
		return rc;
	if (p != 0 && !ivl__shim_addr_any(f, src))
		return 0; /* the app bound it */
	rc = route_src(fam, dst, src);
	if (rc < 0)
		return rc;
	memset(&ss, 0, sizeof(ss));
	if (c->family == AF_INET) {
		struct sockaddr_in *a = (void *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = p;
		memcpy(&a->sin_addr, src, 4);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (void *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = p;
		if (fam == AF_INET) {
			a->sin6_addr.s6_addr[10] = 0xff;
			a->sin6_addr.s6_addr[11] = 0xff;
			memcpy(&a->sin6_addr.s6_addr[12], src, 4);
		} else {
			memcpy(&a->sin6_addr, src, 16);
		}
		len = sizeof(*a);
	}
	if (REAL(bind)(c->fd, (struct sockaddr *)&ss, len) < 0)
		return -errno;
	return 0;
}

/* Round-robin over the vectors this process owns: under the guest agent
 * that is one vector, and a doorbell on any other would reach nobody. */
static uint32_t conn_vector(struct shim_ep *sep)
{
	static uint32_t next;

	return ivl__ep_pick_vector(sep->ep, __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED));
}

static void fallback_note(struct shim_conn *c, uint32_t kind, uint32_t reason, uint32_t remote,
			  uint32_t peer_slot, uint32_t peer_gen);

/*
 * Takes a channel half with a ring for c towards remote, published with sh
 * (the caller set kind and its own fields; the addresses, as seen from this
 * side, and the common fields are filled here). Closed halves are freed
 * lazily, once their remote closed too: when the heap is full they are
 * collected and the offer tried once more. Returns the slot, -ENOSPC (no
 * slot beyond the reserve for notes) or -errno of ivl_ctab_offer_shim().
 */
static int offer_half(struct shim_conn *c, const char *name, uint32_t remote,
		      struct ivl_shim_half *sh, int fam, const uint8_t *la, uint16_t lport,
		      const uint8_t *ra, uint16_t rport)
{
	struct ivl_ctab_params p;
	int rc;

	memset(&p, 0, sizeof(p));
	p.name = name;
	p.remote = remote;
	p.mode = IVL_MODE_STREAM;
	p.ring_size = shim_cfg.ring_size;
	p.rx_vector = c->lk.rx_vector = conn_vector(c->sep);
	p.owner_pid = (uint32_t)getpid();
	sh->procs = 1;
	sh->family = (uint32_t)fam;
	memcpy(sh->laddr, la, 16);
	memcpy(sh->raddr, ra, 16);
	sh->lport = lport;
	sh->rport = rport;
	sh->owner_pid = (uint32_t)getpid();
	sh->created_unix_ns = (uint64_t)time(NULL) * 1000000000ULL;
	if (!room_for_channel(rg_of(c), self_of(c)))
		return -ENOSPC;
	rc = ivl_ctab_offer_shim(rg_of(c), self_of(c), c->sep->ep->self_epoch, &p, sh, &c->own);
	if (rc == -ENOMEM) {
		ivl_ctab_gc(rg_of(c), self_of(c));
		rc = ivl_ctab_offer_shim(rg_of(c), self_of(c), c->sep->ep->self_epoch, &p, sh,
					 &c->own);
	}
	if (rc >= 0)
		c->gen = c->own.gen;
	return rc;
}

int shim_connect(struct shim_conn *c, const struct sockaddr *sa, socklen_t len)
{
	struct ivl_shim_half sh;
	struct ivl_chan_half *h;
	struct ivl_notifier n;
	struct shim_ep *sep;
	uint32_t server = 0, reason = IVL_FB_NONE;
	int fam, rc, f;
	uint8_t dst[16], src[16];
	uint16_t dport, sport;
	char ds[64];
	void *data;

	if (c->state != SS_PLAIN || sa_parse(sa, len, &fam, dst, &dport) < 0)
		return REAL(connect)(c->fd, sa, len) < 0 ? -errno : 0;
	addr_str(fam, dst, dport, ds, sizeof(ds));
	sep = NULL;
	if (c->opt_unsupported)
		reason = IVL_FB_OPTION;
	else if (!shim_rules_allow(1, fam, dst, ntohs(dport)))
		reason = IVL_FB_RULES;
	else if (!(sep = shim_ep_get()))
		reason = IVL_FB_NO_REGION;
	else if ((rc = ivl__shim_find_listener(&sep->ep->rg, ivl_endpoint_id(sep->ep), fam, dst,
					       dport, &server)) < 0)
		reason = IVL_FB_NO_LISTENER;
	else if (!peer_vouched(sep, server))
		reason = IVL_FB_PEER_STALE;
	else if (bind_src(c, fam, dst) < 0 || local_name(c->fd, &f, src, &sport) < 0)
		reason = IVL_FB_INTERNAL;
	if (reason) {
		SHIM_DBG("fd %d: connect %s: plain TCP (%s)", c->fd, ds, shim_reason_name(reason));
		/* Rules and options are decided before attaching: counted
		 * only if this process is in the region anyway. */
		shim_count_fallback(sep ? sep : shim_ep_own(), reason);
		c->reason = reason;
		set_state(c, SS_FALLBACK);
		return REAL(connect)(c->fd, sa, len) < 0 ? -errno : 0;
	}

	/* The proposal goes up before connect(2): the server's accept() can
	 * only return after our SYN, so it always finds it. */
	set_sep(c, sep);
	c->lk.remote = server;
	memcpy(c->laddr, src, 16);
	memcpy(c->raddr, dst, 16);
	c->lport = sport;
	c->rport = dport;
	conn_name(c->name, fam, src, sport, dst, dport);
	memset(&sh, 0, sizeof(sh));
	sh.kind = IVL_SHIM_PROPOSAL;
	sh.rdv = IVL_RDV_PROPOSED;
	rc = offer_half(c, c->name, server, &sh, fam, src, sport, dst, dport);
	if (rc < 0) {
		SHIM_DBG("fd %d: connect %s: plain TCP (region full: %s)", c->fd, ds,
			 strerror(-rc));
		shim_count_fallback(sep, IVL_FB_REGION_FULL);
		c->reason = IVL_FB_REGION_FULL;
		set_state(c, SS_FALLBACK);
		return REAL(connect)(c->fd, sa, len) < 0 ? -errno : 0;
	}
	c->slot = (uint32_t)rc;
	h = own_half(c);
	memset(&c->dummy_cons, 0, sizeof(c->dummy_cons));
	/* Where we write comes from our private copy of the offer, never
	 * from the half: any region member can rewrite that. */
	data = ivl_region_ptr(rg_of(c), c->own.tx_data_off, c->own.tx_size);
	ivl__link_notifier(&c->lk.tx, &n);
	rc = data ? ivl_ring_init_producer(&c->lk.tx.ring, &h->tx_prod, &c->dummy_cons, data,
					   c->own.tx_size, IVL_MODE_STREAM, 0, &n)
		  : -EPROTO;
	if (rc < 0) {
		close_half(c);
		c->reason = IVL_FB_INTERNAL;
		set_state(c, SS_FALLBACK);
		shim_count_fallback(sep, IVL_FB_INTERNAL);
		return REAL(connect)(c->fd, sa, len) < 0 ? -errno : 0;
	}
	c->lk.tx.ring.spin_ns = shim_cfg.spin_ns;
	set_state(c, SS_CONNECTING);
	shim_active_add(c);
	SHIM_DBG("fd %d: proposal %s to peer %u (slot %u)", c->fd, c->name, server, c->slot);

	if (REAL(connect)(c->fd, sa, len) == 0) {
		c->deadline_ns = ivl__now_ns() + shim_cfg.accept_timeout_ns;
		set_state(c, SS_CLI_PENDING);
		shim_progress_kick();
		return 0;
	}
	rc = -errno;
	if (rc == -EINPROGRESS || rc == -EINTR) {
		c->deadline_ns = ivl__now_ns() + shim_cfg.accept_timeout_ns;
		return rc;
	}
	/* The connection failed: plain TCP behaviour, nothing to undo but the
	 * proposal. */
	pthread_mutex_lock(&c->lock);
	close_half(c);
	set_state(c, SS_PLAIN);
	pthread_mutex_unlock(&c->lock);
	shim_active_del(c);
	SHIM_DBG("fd %d: connect %s failed (%s): proposal withdrawn", c->fd, ds, strerror(-rc));
	return rc;
}

int shim_connecting_check(struct shim_conn *c, int consumed_error)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
	int f, st;
	uint8_t a[16];
	uint16_t port;

	pthread_mutex_lock(&c->lock);
	st = get_state(c);
	if (st != SS_CONNECTING)
		goto out;
	if (!consumed_error &&
	    (REAL(poll)(&pfd, 1, 0) <= 0 || !(pfd.revents & (POLLOUT | POLLERR | POLLHUP))))
		goto out;
	if (peer_name(c->fd, &f, a, &port) == 0) {
		c->deadline_ns = ivl__now_ns() + shim_cfg.accept_timeout_ns;
		set_state(c, SS_CLI_PENDING);
		st = SS_CLI_PENDING;
		shim_progress_kick();
		SHIM_DBG("fd %d: connected, waiting for the server's answer", c->fd);
	} else {
		close_half(c);
		set_state(c, SS_PLAIN);
		st = SS_PLAIN;
		SHIM_DBG("fd %d: non-blocking connect failed: proposal withdrawn", c->fd);
	}
out:
	pthread_mutex_unlock(&c->lock);
	if (st == SS_PLAIN)
		shim_active_del(c);
	if (st != SS_CONNECTING)
		shim_regs_retarget(c);
	return st;
}

/* ------------------------------------------------------------ replay */

/* Writes all of buf to the TCP socket, waiting for room even on a
 * non-blocking socket: the bytes were already accepted from the app. */
static int tcp_write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = REAL(send)(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};

			REAL(poll)(&p, 1, 100);
			continue;
		}
		return n < 0 ? -errno : -EIO;
	}
	return 0;
}

/* Replays every byte of our tx ring (nobody consumed it) over TCP, in
 * order. Caller holds c->lock and the tx lock. */
static int replay_tx(struct shim_conn *c)
{
	struct ivl_ring *r = &c->lk.tx.ring;
	/* Nobody consumed: the peer reads only after CONFIRMED, and the
	 * ring of a fresh offer starts at 0. */
	uint64_t head = 0;
	uint64_t tail = r->p_tail, pos;
	int rc = 0;

	if (tail - head > r->size)
		return -EPROTO;
	for (pos = head; pos < tail && rc == 0;) {
		uint32_t off = (uint32_t)pos & r->mask;
		size_t n = r->size - off;

		if (n > tail - pos)
			n = (size_t)(tail - pos);
		rc = tcp_write_all(c->fd, r->data + off, n);
		pos += n;
	}
	SHIM_DBG("fd %d: replayed %llu bytes over TCP", c->fd, (unsigned long long)(tail - head));
	return rc;
}

/* Publishes a note for ivlinkctl (best effort: no slot, no note). */
static void fallback_note(struct shim_conn *c, uint32_t kind, uint32_t reason, uint32_t remote,
			  uint32_t peer_slot, uint32_t peer_gen)
{
	struct ivl_shim_half sh;
	int slot;

	memset(&sh, 0, sizeof(sh));
	sh.kind = kind;
	sh.reason = reason;
	sh.procs = 1;
	sh.family = (uint32_t)c->family;
	memcpy(sh.laddr, c->laddr, 16);
	memcpy(sh.raddr, c->raddr, 16);
	sh.lport = c->lport;
	sh.rport = c->rport;
	sh.peer_slot = peer_slot;
	sh.peer_gen = peer_gen;
	sh.owner_pid = (uint32_t)getpid();
	sh.created_unix_ns = (uint64_t)time(NULL) * 1000000000ULL;
	slot = ivl_ctab_note(rg_of(c), self_of(c), c->sep->ep->self_epoch, IVL_CHAN_NOTE, remote,
			     c->name[0] ? c->name : "tcp:?", &sh);
	if (slot == -ENOSPC) {
		ivl_ctab_gc(rg_of(c), self_of(c));
		slot = ivl_ctab_note(rg_of(c), self_of(c), c->sep->ep->self_epoch, IVL_CHAN_NOTE,
				     remote, c->name[0] ? c->name : "tcp:?", &sh);
	}
	c->slot = slot < 0 ? IVL_SLOT_NONE : (uint32_t)slot;
}

static void release_half(struct shim_conn *c)
{
	if (c->slot == IVL_SLOT_NONE)
		return;
	close_half(c);
	__atomic_store_n(&shim_gc_pending, 1, __ATOMIC_RELAXED);
}

/*
 * Falls back to TCP: replays our ring, frees our half, leaves a note. The
 * caller holds c->lock and has made the decision final (client: WITHDRAWN
 * CAS; server: saw WITHDRAWN).
 */
static void do_fallback(struct shim_conn *c, uint32_t reason)
{
	char ds[64];
	int rc;

	shim_guard_lock(&c->txg);
	rc = replay_tx(c);
	if (rc == 0 && c->shut_wr)
		REAL(shutdown)(c->fd, SHUT_WR);
	pthread_mutex_unlock(&c->txg.lock);
	if (rc < 0)
		SHIM_DBG("fd %d: replay failed: %s", c->fd, strerror(-rc));
	release_half(c);
	fallback_note(c, IVL_SHIM_FALLBACK, reason, c->lk.remote, IVL_SLOT_NONE, 0);
	c->reason = reason;
	shim_count_fallback(c->sep, reason);
	ivl__link_close_kick(&c->lk);
	set_state(c, SS_FALLBACK);
	poke(c->sep, c->lk.remote);
	addr_str(c->family, c->raddr, c->rport, ds, sizeof(ds));
	SHIM_DBG("fd %d: %s with %s: fell back to TCP (%s)", c->fd,
		 c->is_server ? "accepted" : "connection", ds, shim_reason_name(reason));
}

/* pending: the bytes written while pending (the tx handle's tail, read
 * under its guard before the state became SS_ACCEL). */
static void count_accel(struct shim_conn *c, uint64_t pending)
{
	struct ivl_peer_shim *ps = peer_shim(c->sep);

	__atomic_fetch_add(&ps->accelerated, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&ps->tx_bytes, pending, __ATOMIC_RELAXED);
}

/*
 * The peer table's byte counters (ivlinkctl): the fast path adds what it
 * moved to a private count and flushes it, one atomic add to the shared
 * line, every SHIM_STATS_EVERY calls; a locked add per call would cost
 * more than the ring's own publish. The full path (which takes the
 * direction's mutex anyway, and is where a side waits) flushes at every
 * call, and so does the last close. The caller holds (or owns) the
 * direction's guard. A process that _exit()s loses what its fast path did
 * not flush yet (at most SHIM_STATS_EVERY - 1 calls per direction).
 */
#define SHIM_STATS_EVERY 1024u

static void flush_tx(struct shim_conn *c)
{
	if (!c->tx_unflushed)
		return;
	__atomic_fetch_add(&peer_shim(c->sep)->tx_bytes, c->tx_unflushed, __ATOMIC_RELAXED);
	c->tx_unflushed = 0;
}

static void flush_rx(struct shim_conn *c)
{
	if (!c->rx_unflushed)
		return;
	__atomic_fetch_add(&peer_shim(c->sep)->rx_bytes, c->rx_unflushed, __ATOMIC_RELAXED);
	c->rx_unflushed = 0;
}

static inline void count_tx(struct shim_conn *c, uint64_t n)
{
	c->tx_unflushed += n;
	if (__builtin_expect((++c->tx_calls & (SHIM_STATS_EVERY - 1)) == 0, 0))
		flush_tx(c);
}

static inline void count_rx(struct shim_conn *c, uint64_t n)
{
	c->rx_unflushed += n;
	if (__builtin_expect((++c->rx_calls & (SHIM_STATS_EVERY - 1)) == 0, 0))
		flush_rx(c);
}

/* Client: withdraw unless the decision was already made. Caller holds
 * c->lock. Returns the final state. */
static int cli_withdraw(struct shim_conn *c, uint32_t reason)
{
	struct ivl_chan_half *h = own_half(c);
	uint32_t expect = IVL_RDV_PROPOSED;

	/* The decision word: only clients write it, with this CAS. */
	if (!__atomic_compare_exchange_n(&h->shim.rdv, &expect, IVL_RDV_WITHDRAWN, 0,
					 __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE) &&
	    expect == IVL_RDV_CONFIRMED)
		return SS_CLI_PENDING; /* another process of ours confirmed */
	__atomic_store_n(&h->shim.reason, reason, __ATOMIC_RELAXED);
	do_fallback(c, reason);
	return SS_FALLBACK;
}

static int find_decline(struct shim_conn *c, uint32_t *why)
{
	struct ivl_region *rg = rg_of(c);
	uint32_t self = self_of(c);

	for (uint32_t s = 0; s < rg->hdr.chan_slots; s++) {
		struct ivl_chan_half *h = ivl_region_chan(rg, c->lk.remote, s);

		if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != IVL_CHAN_NOTE)
			continue;
		if (h->remote_peer == self && h->shim.kind == IVL_SHIM_DECLINE &&
		    h->shim.peer_slot == c->slot && h->shim.peer_gen == c->gen) {
			*why = h->shim.reason;
			return 1;
		}
	}
	return 0;
}

static void cli_progress(struct shim_conn *c)
{
	struct ivl_region *rg = rg_of(c);
	struct ivl_ctab_remote m;
	struct ivl_chan_half *mine = own_half(c), *theirs;
	struct ivl_notifier n;
	uint32_t expect = IVL_RDV_PROPOSED, why;
	uint64_t pending;
	void *data;
	int rc;

	rc = ivl_ctab_match(rg, self_of(c), c->slot, &m);
	if (rc == 0) {
		theirs = ivl_region_chan(rg, c->lk.remote, m.remote_slot);
		if (theirs->shim.kind != IVL_SHIM_ACCEPT || theirs->shim.peer_slot != c->slot ||
		    theirs->shim.peer_gen != c->gen) {
			cli_withdraw(c, IVL_FB_PROTO);
			return;
		}
		data = ivl_region_ptr(rg, m.remote_tx_data_off, m.remote_tx_size);
		ivl__link_notifier(&c->lk.rx, &n);
		if (!data ||
		    ivl_ring_init_consumer(&c->lk.rx.ring, &theirs->tx_prod, &mine->rx_cons, data,
					   m.remote_tx_size, IVL_MODE_STREAM, 0, &n) < 0) {
			cli_withdraw(c, IVL_FB_PROTO);
			return;
		}
		c->lk.rx.ring.spin_ns = shim_cfg.spin_ns;
		if (!__atomic_compare_exchange_n(&mine->shim.rdv, &expect, IVL_RDV_CONFIRMED, 0,
						 __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE) &&
		    expect != IVL_RDV_CONFIRMED) {
			do_fallback(c, mine->shim.reason ? mine->shim.reason : IVL_FB_TIMEOUT);
			return;
		}
		c->remote_slot = m.remote_slot;
		c->remote_gen = m.remote_gen;
		c->lk.remote_epoch = m.remote_epoch;
		/* From the private block we wrote against while pending to the
		 * server's: through the ring's call, which moves everything it
		 * reads of the consumer (head, flags, sleep_seq) at once. A
		 * poisoned handle shows as a reset at the next write. */
		shim_guard_lock(&c->txg);
		(void)ivl_ring_set_cons_block(&c->lk.tx.ring, &theirs->rx_cons);
		pending = c->lk.tx.ring.p_tail;
		pthread_mutex_unlock(&c->txg.lock);
		(void)ivl__link_open_kick(&c->lk, m.remote_rx_vector);
		set_state(c, SS_ACCEL);
		count_accel(c, pending);
		poke(c->sep, c->lk.remote);
		/* Bytes written while pending: the server may sleep on them. */
		ivl__link_kick(&c->lk);
		SHIM_DBG("fd %d: %s accelerated (peer %u slot %u)", c->fd, c->name, c->lk.remote,
			 c->remote_slot);
		return;
	}
	if (rc == -ECONNRESET) {
		cli_withdraw(c, IVL_FB_PEER_GONE);
		return;
	}
	if (rc == -EPROTO) {
		cli_withdraw(c, IVL_FB_PROTO);
		return;
	}
	if (find_decline(c, &why)) {
		SHIM_DBG("fd %d: server declined (%s)", c->fd, shim_reason_name(why));
		cli_withdraw(c, IVL_FB_DECLINED);
		return;
	}
	if (ivl__now_ns() >= c->deadline_ns)
		cli_withdraw(c, IVL_FB_TIMEOUT);
}

static void srv_progress(struct shim_conn *c)
{
	struct ivl_chan_half *p = ivl_region_chan(rg_of(c), c->lk.remote, c->remote_slot);
	struct ivl_peer_view pv;
	uint32_t st, gen, rdv;
	uint64_t pending;

	if (ivl_region_peer_view(rg_of(c), c->lk.remote, &pv) < 0 || pv.state != IVL_PEER_UP ||
	    pv.epoch != c->lk.remote_epoch) {
		do_fallback(c, IVL_FB_PEER_GONE);
		return;
	}
	st = __atomic_load_n(&p->state, __ATOMIC_ACQUIRE);
	gen = __atomic_load_n(&p->gen, __ATOMIC_RELAXED);
	rdv = __atomic_load_n(&p->shim.rdv, __ATOMIC_ACQUIRE);
	if (gen == c->remote_gen && (st == IVL_CHAN_OFFERED || st == IVL_CHAN_CLOSED) &&
	    rdv == IVL_RDV_CONFIRMED) {
		/* No owner before SS_ACCEL: the guard only orders this read
		 * after the app thread's pending writes. */
		shim_guard_lock(&c->txg);
		pending = c->lk.tx.ring.p_tail;
		pthread_mutex_unlock(&c->txg.lock);
		set_state(c, SS_ACCEL);
		count_accel(c, pending);
		SHIM_DBG("fd %d: %s accelerated (client confirmed)", c->fd, c->name);
		return;
	}
	if (gen != c->remote_gen || rdv == IVL_RDV_WITHDRAWN ||
	    (st != IVL_CHAN_OFFERED && st != IVL_CHAN_CLOSED))
		do_fallback(c, IVL_FB_WITHDRAWN);
}

void shim_progress(struct shim_conn *c)
{
	int st = get_state(c);

	if (st == SS_CONNECTING) {
		shim_connecting_check(c, 0);
		return;
	}
	if (st != SS_CLI_PENDING && st != SS_SRV_PENDING)
		return;
	pthread_mutex_lock(&c->lock);
	st = get_state(c);
	if (st == SS_CLI_PENDING)
		cli_progress(c);
	else if (st == SS_SRV_PENDING)
		srv_progress(c);
	st = get_state(c);
	pthread_mutex_unlock(&c->lock);
	if (st == SS_FALLBACK || st == SS_ACCEL)
		shim_regs_retarget(c);
}

/* ------------------------------------------------------------ server */

static void srv_decline(struct shim_conn *c, const struct shim_proposal *pr, uint32_t reason)
{
	fallback_note(c, IVL_SHIM_DECLINE, reason, pr->peer, pr->slot, pr->gen);
	c->reason = reason;
	set_state(c, SS_FALLBACK);
	shim_count_fallback(c->sep, reason);
	poke(c->sep, pr->peer);
	SHIM_DBG("fd %d: declined %s (%s)", c->fd, pr->name, shim_reason_name(reason));
}

/* Returns the new connection (with the caller's reference) or NULL when
 * the accepted socket is plain TCP and needs no tracking. */
int shim_accept_attach(struct shim_conn *lc, int nfd, int nonblock)
{
	struct ivl_ctab_remote m;
	struct ivl_shim_half sh;
	struct ivl_chan_half *mine, *theirs;
	struct ivl_notifier n;
	struct shim_proposal pr;
	struct shim_conn *c;
	struct shim_ep *sep = lc->sep;
	int fam, fam2, rc;
	uint8_t la[16], ra[16];
	uint16_t lport, rport;
	void *txd, *rxd;
	int64_t until;

	if (!sep || local_name(nfd, &fam, la, &lport) < 0 ||
	    peer_name(nfd, &fam2, ra, &rport) < 0 || fam != fam2)
		return 0;
	rc = ivl__shim_find_proposal(&sep->ep->rg, ivl_endpoint_id(sep->ep), fam, ra, rport, la,
				     lport, &pr);
	if (rc < 0) {
		shim_count_fallback(sep, rc == -ESTALE ? IVL_FB_WITHDRAWN : IVL_FB_PEER_NO_SHIM);
		SHIM_DBG("fd %d: accepted plain TCP (%s)", nfd,
			 rc == -ESTALE ? "client withdrew" : "client made no proposal");
		return 0;
	}
	c = shim_conn_new(nfd, lc->family, nonblock);
	if (!c)
		return -ENOMEM;
	c->is_server = 1;
	set_sep(c, sep);
	c->lk.remote = pr.peer;
	c->lk.remote_epoch = pr.epoch;
	c->remote_slot = pr.slot;
	c->remote_gen = pr.gen;
	memcpy(c->name, pr.name, sizeof(c->name));
	memcpy(c->laddr, la, 16);
	memcpy(c->raddr, ra, 16);
	c->lport = lport;
	c->rport = rport;
	c->family = fam;
	shim_set(nfd, &c->o);

	if (!shim_rules_allow(2, fam, la, ntohs(lport))) {
		srv_decline(c, &pr, IVL_FB_RULES);
		goto tracked;
	}
	if (!peer_vouched(sep, pr.peer)) {
		srv_decline(c, &pr, IVL_FB_PEER_STALE);
		goto tracked;
	}
	memset(&sh, 0, sizeof(sh));
	sh.kind = IVL_SHIM_ACCEPT;
	sh.peer_slot = pr.slot;
	sh.peer_gen = pr.gen;
	rc = offer_half(c, pr.name, pr.peer, &sh, fam, la, lport, ra, rport);
	if (rc < 0) {
		srv_decline(c, &pr, IVL_FB_REGION_FULL);
		goto tracked;
	}
	c->slot = (uint32_t)rc;
	mine = own_half(c);
	rc = ivl_ctab_match(rg_of(c), self_of(c), c->slot, &m);
	if (rc < 0 || m.remote_slot != pr.slot || m.remote_gen != pr.gen) {
		release_half(c);
		fallback_note(c, IVL_SHIM_FALLBACK, IVL_FB_WITHDRAWN, pr.peer, pr.slot, pr.gen);
		c->reason = IVL_FB_WITHDRAWN;
		set_state(c, SS_FALLBACK);
		shim_count_fallback(sep, IVL_FB_WITHDRAWN);
		goto tracked;
	}
	theirs = ivl_region_chan(rg_of(c), pr.peer, pr.slot);
	txd = ivl_region_ptr(rg_of(c), c->own.tx_data_off, c->own.tx_size);
	rxd = ivl_region_ptr(rg_of(c), m.remote_tx_data_off, m.remote_tx_size);
	ivl__link_notifier(&c->lk.tx, &n);
	rc = txd ? ivl_ring_init_producer(&c->lk.tx.ring, &mine->tx_prod, &theirs->rx_cons, txd,
					  c->own.tx_size, IVL_MODE_STREAM, 0, &n)
		 : -EPROTO;
	ivl__link_notifier(&c->lk.rx, &n);
	if (rc == 0)
		rc = rxd ? ivl_ring_init_consumer(&c->lk.rx.ring, &theirs->tx_prod, &mine->rx_cons,
						  rxd, m.remote_tx_size, IVL_MODE_STREAM, 0, &n)
			 : -EPROTO;
	if (rc < 0) {
		release_half(c);
		srv_decline(c, &pr, IVL_FB_PROTO);
		goto tracked;
	}
	c->lk.tx.ring.spin_ns = shim_cfg.spin_ns;
	c->lk.rx.ring.spin_ns = shim_cfg.spin_ns;
	(void)ivl__link_open_kick(&c->lk, m.remote_rx_vector);
	set_state(c, SS_SRV_PENDING);
	shim_active_add(c);
	shim_progress_kick();
	poke(sep, pr.peer);
	SHIM_DBG("fd %d: accepted %s from peer %u, waiting for confirmation", nfd, pr.name,
		 pr.peer);
	/* A client blocked in read() or poll() confirms within microseconds:
	 * wait that long before returning a pending connection. */
	until = ivl__now_ns() + (shim_cfg.spin_ns > 50000 ? shim_cfg.spin_ns : 50000);
	while (get_state(c) == SS_SRV_PENDING && ivl__now_ns() < until)
		shim_progress(c);
	return 0;
tracked:
	shim_active_add(c);
	return 0;
}

/* ------------------------------------------------------------ data path */

static int64_t deadline_from(int64_t timeout_ns)
{
	return timeout_ns > 0 ? ivl__now_ns() + timeout_ns : INT64_MAX;
}

static int64_t slice_until(int64_t deadline, int64_t slice)
{
	int64_t left = deadline == INT64_MAX ? slice : deadline - ivl__now_ns();

	if (left < 0)
		left = 0;
	return left < slice ? left : slice;
}

/* Waits a little for a pending connection's decision. */
static void pending_wait(struct shim_conn *c, int64_t deadline)
{
	int64_t t =
	    slice_until(deadline, c->inherited ? SHIM_INHERITED_SLICE_NS : PENDING_SLICE_NS);
	uint32_t snap = ivl__vwait_snapshot(c->sep->ep, c->lk.rx_vector);

	shim_progress(c);
	if (get_state(c) != SS_CLI_PENDING && get_state(c) != SS_SRV_PENDING)
		return;
	if (c->state == SS_CLI_PENDING && c->deadline_ns - ivl__now_ns() < t)
		t = c->deadline_ns - ivl__now_ns();
	if (t > 0)
		ivl__vwait_block(c->sep->ep, c->lk.rx_vector, snap, t);
	shim_progress(c);
}

/* Looks at the TCP socket of an accelerated connection: FIN or RST from a
 * peer that went away without closing its rings (killed, or fork-shared). */
static void tcp_probe(struct shim_conn *c)
{
	char b;
	ssize_t n = REAL(recv)(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n == 0)
		__atomic_store_n(&c->tcp_hup, 1, __ATOMIC_RELAXED);
	else if (n < 0 && errno != EAGAIN && errno != EINTR)
		__atomic_store_n(&c->tcp_err, errno, __ATOMIC_RELAXED);
}

static void raise_sigpipe(int flags)
{
	if (!(flags & MSG_NOSIGNAL))
		pthread_kill(pthread_self(), SIGPIPE);
}

ssize_t shim_sendv(struct shim_conn *c, const struct iovec *iov0, int cnt, int flags)
{
	struct iovec stack[IVL__IOV_STACK], *iov = stack, *alloc = NULL;
	size_t total = 0, done = 0;
	int dontwait = c->nonblock || (flags & MSG_DONTWAIT);
	int64_t deadline = deadline_from(c->sndtimeo_ns);
	ssize_t ret;
	int st = get_state(c);

	if (st == SS_CONNECTING)
		st = shim_connecting_check(c, 0);
	if (!shim_is_active(st) || st == SS_CONNECTING)
		return SHIM_PASS;
	if (flags & MSG_OOB)
		return -EOPNOTSUPP;
	ret = ivl__iov_dup(iov0, cnt, stack, &iov, &total);
	if (ret < 0)
		return ret;
	alloc = iov != stack ? iov : NULL;
	shim_guard_lock(&c->txg);
	if (st == SS_ACCEL) {
		adopt_if_shared(c, &c->lk.tx.ring);
		shim_guard_claim(&c->txg, &c->forked);
	}
	for (;;) {
		long n;

		st = get_state(c);
		if (st == SS_FALLBACK) {
			ret = done ? (ssize_t)done : SHIM_PASS;
			break;
		}
		if (c->shut_wr) {
			ret = done ? (ssize_t)done : -EPIPE;
			if (!done)
				raise_sigpipe(flags);
			break;
		}
		if (st == SS_ACCEL && conn_alive(c) < 0) {
			ret = done ? (ssize_t)done : -ECONNRESET;
			break;
		}
		n = total == done ? 0
		    : cnt == 1	  ? ivl__ring_write(&c->lk.tx.ring, iov->iov_base, iov->iov_len, 0)
				  : ivl_ring_writev(&c->lk.tx.ring, iov, cnt, 0);
		if (n > 0) {
			done += (size_t)n;
			if (st == SS_ACCEL)
				count_tx(c, (uint64_t)n);
			if (done == total) {
				ret = (ssize_t)done;
				break;
			}
			ivl__iov_advance(&iov, &cnt, (size_t)n);
			continue;
		}
		if (n == 0 && total == 0) {
			ret = 0;
			break;
		}
		if (n == -EPIPE) {
			ret = done ? (ssize_t)done : -EPIPE;
			if (!done)
				raise_sigpipe(flags);
			break;
		}
		if (n < 0 && n != -EAGAIN) {
			__atomic_store_n(&c->lk.reset, 1, __ATOMIC_RELAXED);
			ret = done ? (ssize_t)done : -ECONNRESET;
			break;
		}
		/* Full. */
		if (done && dontwait) {
			ret = (ssize_t)done;
			break;
		}
		if (dontwait) {
			ivl__link_arm(&c->lk.tx);
			if (ivl_ring_writable(&c->lk.tx.ring, 1))
				continue;
			ret = -EAGAIN;
			break;
		}
		if (ivl__now_ns() >= deadline) {
			ret = done ? (ssize_t)done : -EAGAIN;
			break;
		}
		if (st != SS_ACCEL) {
			pthread_mutex_unlock(&c->txg.lock);
			pending_wait(c, deadline);
			shim_guard_lock(&c->txg);
			continue;
		}
		ivl__link_wait_prepare(&c->lk.tx);
		n = ivl_ring_wait_writable(&c->lk.tx.ring, 1, slice_until(deadline, TCP_PROBE_NS));
		if (n == -ECONNRESET || n == -EPROTO) {
			__atomic_store_n(&c->lk.reset, 1, __ATOMIC_RELAXED);
			ret = done ? (ssize_t)done : -ECONNRESET;
			break;
		}
		if (n == -ETIMEDOUT)
			tcp_probe(c);
	}
	flush_tx(c); /* the full path counts at once, as before the fast one */
	pthread_mutex_unlock(&c->txg.lock);
	free(alloc);
	if (c->rfd >= 0)
		shim_sync(c);
	return ret;
}

/* Copies up to len readable bytes without consuming them. */
static ssize_t ring_peek_copy(struct shim_conn *c, const struct iovec *iov, int cnt)
{
	struct ivl_span sp[2];
	long n = ivl_ring_peek(&c->lk.rx.ring, sp);
	size_t copied = 0, si = 0, so = 0;

	if (n <= 0)
		return n;
	for (int i = 0; i < cnt; i++) {
		size_t io = 0;

		while (io < iov[i].iov_len && si < 2) {
			size_t k = sp[si].len - so;

			if (k > iov[i].iov_len - io)
				k = iov[i].iov_len - io;
			memcpy((uint8_t *)iov[i].iov_base + io, (uint8_t *)sp[si].base + so, k);
			io += k;
			so += k;
			copied += k;
			if (so == sp[si].len) {
				si++;
				so = 0;
				if (si == 2 || sp[si].len == 0)
					si = 2;
			}
		}
	}
	return (ssize_t)copied;
}

ssize_t shim_recvv(struct shim_conn *c, const struct iovec *iov0, int cnt, int flags)
{
	struct iovec stack[IVL__IOV_STACK], *iov = stack, *alloc = NULL;
	size_t total = 0, done = 0;
	int dontwait = c->nonblock || (flags & MSG_DONTWAIT);
	int64_t deadline = deadline_from(c->rcvtimeo_ns);
	int64_t next_probe = 0;
	int gone_seen = 0;
	ssize_t ret;
	int st = get_state(c);

	if (st == SS_CONNECTING)
		st = shim_connecting_check(c, 0);
	if (!shim_is_active(st) || st == SS_CONNECTING)
		return SHIM_PASS;
	if (flags & MSG_OOB)
		return -EOPNOTSUPP;
	/* Pending: nothing can be read until the decision. */
	while (st == SS_CLI_PENDING || st == SS_SRV_PENDING) {
		shim_progress(c);
		st = get_state(c);
		if (st != SS_CLI_PENDING && st != SS_SRV_PENDING)
			break;
		if (dontwait)
			return -EAGAIN;
		if (ivl__now_ns() >= deadline)
			return -EAGAIN;
		pending_wait(c, deadline);
		st = get_state(c);
	}
	if (st != SS_ACCEL)
		return SHIM_PASS;
	ret = ivl__iov_dup(iov0, cnt, stack, &iov, &total);
	if (ret < 0)
		return ret;
	alloc = iov != stack ? iov : NULL;
	shim_guard_lock(&c->rxg);
	adopt_if_shared(c, &c->lk.rx.ring);
	shim_guard_claim(&c->rxg, &c->forked);
	for (;;) {
		long n;

		if (c->shut_rd) {
			ret = (ssize_t)done;
			break;
		}
		if (flags & MSG_PEEK)
			n = ring_peek_copy(c, iov, cnt);
		else
			n = total == done ? 0
			    : cnt == 1 ? ivl__ring_read(&c->lk.rx.ring, iov->iov_base, iov->iov_len)
				       : ivl_ring_readv(&c->lk.rx.ring, iov, cnt);
		if (n > 0) {
			/* Validate after the copy, as channel.c does: the
			 * section must still hold the remote we matched. */
			if (rx_alive(c) < 0) {
				__atomic_store_n(&c->lk.reset, 1, __ATOMIC_RELAXED);
				ret = -ECONNRESET;
				break;
			}
			count_rx(c, (uint64_t)n);
			done += (size_t)n;
			if (!(flags & MSG_WAITALL) || done == total || (flags & MSG_PEEK)) {
				ret = (ssize_t)done;
				break;
			}
			ivl__iov_advance(&iov, &cnt, (size_t)n);
			continue;
		}
		if (n == 0) {
			ret = (ssize_t)done; /* EOF, or an empty read */
			break;
		}
		if (n != -EAGAIN) {
			__atomic_store_n(&c->lk.reset, 1, __ATOMIC_RELAXED);
			ret = done ? (ssize_t)done : -ECONNRESET;
			break;
		}
		/* Empty, no EOF: a remote that left without one reset us. It
		 * may have published its last bytes or EOF between our read
		 * and this look: read once more first. */
		if (conn_alive(c) < 0) {
			if (!gone_seen && rx_alive(c) == 0) {
				gone_seen = 1;
				continue;
			}
			/* Killed or _exit()ed without closing its rings: its
			 * kernel still closed the TCP socket, and a FIN there
			 * is the EOF plain TCP would show. It may trail the
			 * daemon's news: wait for it, once and bounded. A dead
			 * VM sends none: a reset. */
			if (!done && !c->tcp_hup && !c->tcp_err) {
				struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};

				REAL(poll)(&p, 1, GONE_FIN_WAIT_MS);
				tcp_probe(c);
			}
			if (done || (c->tcp_hup && !c->tcp_err)) {
				ret = (ssize_t)done;
			} else {
				__atomic_store_n(&c->lk.reset, 1, __ATOMIC_RELAXED);
				ret = -ECONNRESET;
			}
			break;
		}
		if (__atomic_load_n(&c->tcp_err, __ATOMIC_RELAXED)) {
			ret = done ? (ssize_t)done : -ECONNRESET;
			break;
		}
		if (__atomic_load_n(&c->tcp_hup, __ATOMIC_RELAXED)) {
			ret = (ssize_t)done;
			break;
		}
		if (done) {
			ret = (ssize_t)done;
			break;
		}
		if (dontwait) {
			ivl__link_arm(&c->lk.rx);
			if (ivl_ring_readable(&c->lk.rx.ring))
				continue;
			if (ivl__now_ns() >= next_probe) {
				tcp_probe(c);
				if (c->tcp_hup || c->tcp_err)
					continue;
			}
			ret = -EAGAIN;
			break;
		}
		if (ivl__now_ns() >= deadline) {
			ret = -EAGAIN;
			break;
		}
		ivl__link_wait_prepare(&c->lk.rx);
		n = ivl_ring_wait_readable(&c->lk.rx.ring, slice_until(deadline, TCP_PROBE_NS));
		if (n == -ETIMEDOUT) {
			tcp_probe(c);
			next_probe = ivl__now_ns() + TCP_PROBE_NS;
		} else if (n == -EPROTO) {
			__atomic_store_n(&c->lk.reset, 1, __ATOMIC_RELAXED);
		}
		/* -ECONNRESET (the remote left): the next pass drains what
		 * it published, then reports EOF or the reset. */
	}
	flush_rx(c);
	pthread_mutex_unlock(&c->rxg.lock);
	free(alloc);
	if (c->rfd >= 0)
		shim_sync(c);
	return ret;
}

long shim_conn_nread(struct shim_conn *c)
{
	long n = 0;

	if (get_state(c) != SS_ACCEL)
		return -1;
	shim_guard_lock(&c->rxg);
	adopt_if_shared(c, &c->lk.rx.ring);
	if (ivl_ring_readable(&c->lk.rx.ring)) {
		struct ivl_span sp[2];
		long k = ivl_ring_peek(&c->lk.rx.ring, sp);

		n = k > 0 ? k : 0;
	}
	pthread_mutex_unlock(&c->rxg.lock);
	return n;
}

/*
 * Readiness of an active connection as poll bits, for the requested
 * events. With arm, asks for a doorbell for each requested event that is
 * not ready, then re-checks (the caller is about to sleep); with arm > 1
 * also asks for a doorbell for the next arrival when data is already there.
 */
unsigned shim_conn_revents(struct shim_conn *c, unsigned events, int arm_it)
{
	unsigned rev = 0;
	int st = get_state(c);

	if (st == SS_CLI_PENDING || st == SS_SRV_PENDING) {
		if (events & POLLOUT) {
			shim_guard_lock(&c->txg);
			if (ivl_ring_writable(&c->lk.tx.ring, 1))
				rev |= POLLOUT;
			else if (arm_it)
				ivl__link_arm(&c->lk.tx);
			pthread_mutex_unlock(&c->txg.lock);
		}
		return rev;
	}
	if (st != SS_ACCEL)
		return 0;
	if (c->lk.reset || c->tcp_err || rx_alive(c) < 0)
		return POLLIN | POLLOUT | POLLERR | POLLHUP;
	/* Gone but drainable: reads return the rest, then EOF or a reset,
	 * and sends fail at once; nothing would block. */
	if (conn_alive(c) < 0)
		return (POLLIN | POLLOUT | POLLRDHUP | POLLHUP) & (events | POLLHUP);
	if (events & (POLLIN | POLLRDHUP)) {
		shim_guard_lock(&c->rxg);
		adopt_if_shared(c, &c->lk.rx.ring);
		if (ivl_ring_readable(&c->lk.rx.ring) || c->tcp_hup || c->shut_rd) {
			uint32_t f = __atomic_load_n(&c->lk.rx.ring.prod->flags, __ATOMIC_ACQUIRE);

			rev |= POLLIN;
			if ((f & (IVL_RING_F_DONE_WRITING | IVL_RING_F_CLOSED)) || c->tcp_hup)
				rev |= POLLRDHUP;
			/* A readiness fd needs a doorbell for the next arrival
			 * too (a new edge for EPOLLET), data unread or not. */
			if (arm_it > 1)
				ivl__link_arm(&c->lk.rx);
		} else if (arm_it) {
			ivl__link_arm(&c->lk.rx);
			if (ivl_ring_readable(&c->lk.rx.ring))
				rev |= POLLIN;
		}
		pthread_mutex_unlock(&c->rxg.lock);
	}
	if (events & POLLOUT) {
		shim_guard_lock(&c->txg);
		adopt_if_shared(c, &c->lk.tx.ring);
		if (ivl_ring_writable(&c->lk.tx.ring, 1)) {
			rev |= POLLOUT;
		} else if (arm_it) {
			ivl__link_arm(&c->lk.tx);
			if (ivl_ring_writable(&c->lk.tx.ring, 1))
				rev |= POLLOUT;
		}
		pthread_mutex_unlock(&c->txg.lock);
	}
	if ((rev & POLLRDHUP) && c->shut_wr)
		rev |= POLLHUP;
	return rev & (events | POLLERR | POLLHUP);
}

/* ------------------------------------------------------------ fast path */

/*
 * Whether c may take a fast path in this direction now: accelerated,
 * owned by the calling thread (so nobody else uses the ring handle), no
 * shutdown or reset to report, and no readiness fd to keep in step (its
 * users go through shim_sync()). A connection shared over fork is never
 * owned. Everything read here is private memory of this process.
 */
static inline int fast_ok(struct shim_conn *c, const struct shim_guard *g,
			  const struct shim_reader *me, int shut)
{
	return __atomic_load_n(&g->owner, __ATOMIC_RELAXED) == me &&
	       __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == SS_ACCEL && !shut &&
	       !__atomic_load_n(&c->lk.reset, __ATOMIC_RELAXED) && c->rfd < 0;
}

/*
 * Why a close() racing a send() in another thread is safe here: the lookup
 * takes no reference, but it runs inside a fast section, and close()
 * removes the fd from the table and then waits in shim_fast_sync() for
 * every section that may have found it, before the table's reference is
 * dropped (wrap.c, forget_fd). So the connection outlives the section;
 * whatever the section wrote went into a ring whose remote reads it before
 * the close's CLOSED flag, as with a send() that returned just before the
 * close() in the kernel. Nothing here blocks: a full ring, a partial write
 * or any flag leaves the section and takes the full path, which takes a
 * reference.
 */
int shim_fast_send(int fd, const void *buf, size_t len, int flags, ssize_t *ret)
{
	struct shim_reader *me = shim_fast_enter();
	struct shim_conn *c;
	struct iovec rest;
	ssize_t more;
	long n;

	if (!me)
		return 0;
	c = shim_conn_of(shim_fast_lookup(fd));
	if (!c || !fast_ok(c, &c->txg, me, c->shut_wr) || len == 0 ||
	    (flags & ~(MSG_NOSIGNAL | MSG_DONTWAIT)))
		goto slow;
	n = ivl__ring_write(&c->lk.tx.ring, buf, len, 0);
	if (n <= 0)
		goto slow; /* nothing written: the full path waits or reports */
	count_tx(c, (uint64_t)n);
	if ((size_t)n == len) {
		shim_fast_leave(me);
		*ret = n;
		return 1;
	}
	/* A partial write (the ring filled up): the rest goes the full way,
	 * which may wait, so with a reference of its own. */
	__atomic_fetch_add(&c->o.refs, 1, __ATOMIC_ACQ_REL);
	shim_fast_leave(me);
	rest = (struct iovec){.iov_base = (uint8_t *)buf + n, .iov_len = len - (size_t)n};
	/* Part was sent: no SIGPIPE for the rest (shim_sendv raises it only
	 * for a call that sent nothing). */
	more = shim_sendv(c, &rest, 1, flags | MSG_NOSIGNAL);
	shim_put(&c->o);
	*ret = more > 0 ? n + more : n;
	return 1;
slow:
	shim_fast_leave(me);
	return 0;
}

int shim_fast_recv(int fd, void *buf, size_t len, int flags, ssize_t *ret)
{
	struct shim_reader *me = shim_fast_enter();
	struct shim_conn *c;
	long n;

	if (!me)
		return 0;
	c = shim_conn_of(shim_fast_lookup(fd));
	if (!c || !fast_ok(c, &c->rxg, me, c->shut_rd) || len == 0 || (flags & ~MSG_DONTWAIT))
		goto slow;
	/* No re-validation of the remote after the copy, as in ivl_recv()
	 * (channel.c's file comment says why). */
	n = ivl__ring_read(&c->lk.rx.ring, buf, len);
	if (n <= 0)
		goto slow; /* empty or EOF: the full path decides */
	count_rx(c, (uint64_t)n);
	shim_fast_leave(me);
	*ret = n;
	return 1;
slow:
	shim_fast_leave(me);
	return 0;
}

/* ------------------------------------------------------------ shutdown, close */

int shim_shutdown(struct shim_conn *c, int how)
{
	int st = get_state(c);

	if (st != SS_ACCEL && st != SS_CLI_PENDING && st != SS_SRV_PENDING)
		return SHIM_PASS;
	if (how != SHUT_RD) {
		shim_guard_lock(&c->txg);
		c->shut_wr = 1;
		ivl_ring_set_flags(&c->lk.tx.ring, IVL_RING_F_DONE_WRITING);
		pthread_mutex_unlock(&c->txg.lock);
	}
	if (how != SHUT_WR && st == SS_ACCEL) {
		shim_guard_lock(&c->rxg);
		c->shut_rd = 1;
		ivl_ring_set_cons_flags(&c->lk.rx.ring, IVL_RING_F_CLOSED);
		pthread_mutex_unlock(&c->rxg.lock);
	}
	/* The TCP socket follows, except while pending: a fallback must
	 * still be able to replay over it (do_fallback shuts it then). */
	if (get_state(c) == SS_ACCEL && REAL(shutdown)(c->fd, how) < 0)
		return -errno;
	if (c->rfd >= 0)
		shim_sync(c);
	return 0;
}

/* The last reference of this process to an accelerated half. */
static void accel_release(struct shim_conn *c)
{
	struct ivl_chan_half *h = own_half(c);

	shim_guard_lock(&c->txg);
	flush_tx(c);
	pthread_mutex_unlock(&c->txg.lock);
	shim_guard_lock(&c->rxg);
	flush_rx(c);
	pthread_mutex_unlock(&c->rxg.lock);
	if (!h)
		return;
	if (__atomic_sub_fetch(&h->shim.procs, 1, __ATOMIC_ACQ_REL) != 0) {
		c->slot = IVL_SLOT_NONE; /* another process holds it */
		return;
	}
	shim_guard_lock(&c->txg);
	ivl_ring_set_flags(&c->lk.tx.ring, IVL_RING_F_CLOSED);
	pthread_mutex_unlock(&c->txg.lock);
	shim_guard_lock(&c->rxg);
	ivl_ring_set_cons_flags(&c->lk.rx.ring, IVL_RING_F_CLOSED);
	pthread_mutex_unlock(&c->rxg.lock);
	close_half(c);
	__atomic_store_n(&shim_gc_pending, 1, __ATOMIC_RELAXED);
}

void shim_conn_last_close(struct shim_conn *c)
{
	int st;
	int64_t until;

	/* A server still waiting for the client's decision waits for it
	 * (bounded): its ring may hold bytes that only a replay delivers. */
	until = ivl__now_ns() + shim_cfg.accept_timeout_ns + 500000000LL;
	while (get_state(c) == SS_SRV_PENDING && ivl__now_ns() < until)
		pending_wait(c, until);
	pthread_mutex_lock(&c->lock);
	st = get_state(c);
	c->closing = 1;
	switch (st) {
	case SS_CONNECTING:
		release_half(c);
		break;
	case SS_CLI_PENDING:
		/* Closing before the server answered: withdraw, replay. */
		if (cli_withdraw(c, IVL_FB_WITHDRAWN) == SS_CLI_PENDING) {
			set_state(c, SS_ACCEL);
			accel_release(c);
		}
		release_half(c);
		break;
	case SS_SRV_PENDING:
		do_fallback(c, IVL_FB_TIMEOUT);
		release_half(c);
		break;
	case SS_ACCEL:
		accel_release(c);
		c->slot = IVL_SLOT_NONE;
		break;
	case SS_LISTEN:
	case SS_FALLBACK:
		if (c->slot != IVL_SLOT_NONE && c->sep) {
			struct ivl_chan_half *h = own_half(c);

			if (h && __atomic_sub_fetch(&h->shim.procs, 1, __ATOMIC_ACQ_REL) == 0)
				release_half(c);
			c->slot = IVL_SLOT_NONE;
		}
		break;
	default:
		break;
	}
	set_state(c, SS_PLAIN);
	pthread_mutex_unlock(&c->lock);
	shim_regs_drop(c);
	shim_active_del(c);
}
