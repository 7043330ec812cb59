/* SPDX-License-Identifier: MIT */
/*
 * Socket shim connections, the rendezvous through the region: listeners,
 * the client's proposal and confirm/withdraw, the server's accept and
 * decline, and fallback to TCP with the replay of the ring. See conn.h,
 * shim.h ("States of a tracked socket") and layout.h.
 */
#include "conn.h"
#include "rdv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ifaddrs.h>
#include <sys/un.h>
#include <time.h>

#include <ivlink/region.h>

#include "../fd_high.h"
#include "ring_inline.h"

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
		if (shim_sa_parse(i->ifa_addr,
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

/*
 * The host-local sign that a port listens under the shim (shim.h, "Several
 * regions"): an abstract AF_UNIX name per port, bound by a listener
 * published in at least one region, gone with its last process. A client
 * that finds no listener in its regions for a loopback destination tests
 * it: bound means the listener is in regions the client is not in. Any
 * process of this network namespace can bind such a name; it only
 * changes which reason the client counts.
 */
static socklen_t mark_addr(struct sockaddr_un *sa, uint16_t port)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "ivlink-shim-listen:%u",
		     ntohs(port));
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static int listen_mark(uint16_t port)
{
	struct sockaddr_un sa;
	socklen_t len = mark_addr(&sa, port);
	int fd = REAL(socket)(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (REAL(bind)(fd, (struct sockaddr *)&sa, len) < 0) {
		REAL(close)(fd); /* EADDRINUSE: another listener on the port has it */
		return -1;
	}
	return ivl__fd_high(fd);
}

static int listen_marked(uint16_t port)
{
	struct sockaddr_un sa;
	socklen_t len = mark_addr(&sa, port);
	int fd = REAL(socket)(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return 0;
	rc = REAL(connect)(fd, (struct sockaddr *)&sa, len) == 0;
	REAL(close)(fd);
	return rc;
}

/* Publishes the LISTEN record sh in sep's region; returns the slot or
 * -errno. */
static int listen_in(struct shim_conn *c, struct shim_ep *sep, struct ivl_shim_half *sh,
		     const char *as)
{
	char name[IVL_NAME_MAX];
	int slot;

	snprintf(name, sizeof(name), "listen:%u", ntohs(sh->lport));
	slot = ivl_ctab_note(&sep->ep->rg, ivl_endpoint_id(sep->ep), sep->ep->self_epoch,
			     IVL_CHAN_LISTEN, IVL_SLOT_NONE, name, sh);
	if (slot < 0) {
		SHIM_DBG("fd %d: listener %s not published in region '%s': %s", c->fd, as,
			 ivl_endpoint_region(sep->ep), strerror(-slot));
		return slot;
	}
	__atomic_fetch_add(&peer_shim(sep)->listeners, 1, __ATOMIC_RELAXED);
	SHIM_DBG("fd %d: listening on %s, published in region '%s' as slot %d", c->fd, as,
		 ivl_endpoint_region(sep->ep), slot);
	return slot;
}

/* A listener publishes its LISTEN record in every region it is attached
 * to, so that a client in any of them finds it; the first one (list
 * order) is c->sep and c->slot, the others c->lmore. */
int shim_listen_publish(struct shim_conn *c)
{
	struct shim_ep *v[SHIM_REGIONS_MAX];
	struct ivl_shim_half sh;
	char as[64];
	int fam, n;
	uint8_t a[16];
	uint16_t port;

	if (c->state != SS_PLAIN || shim_local_name(c->fd, &fam, a, &port) < 0)
		return 0;
	if (c->opt_unsupported) {
		SHIM_DBG("fd %d: listener not published: unsupported option", c->fd);
		return 0;
	}
	if (!shim_rules_allow(2, fam, a, ntohs(port))) {
		SHIM_DBG("fd %d: listener port %u excluded by rules", c->fd, ntohs(port));
		return 0;
	}
	n = shim_eps_get(v, SHIM_REGIONS_MAX);
	if (!n)
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
	shim_addr_str(fam, a, port, as, sizeof(as));
	if (n > 1)
		c->lmore = calloc((size_t)n - 1, sizeof(*c->lmore));
	for (int i = 0; i < n; i++) {
		int slot = listen_in(c, v[i], &sh, as);

		if (slot < 0)
			continue;
		if (!c->sep) {
			set_sep(c, v[i]);
			c->slot = (uint32_t)slot;
			c->gen = ivl_region_chan(rg_of(c), self_of(c), c->slot)->gen;
		} else if (c->lmore) {
			c->lmore[c->n_lmore].sep = v[i];
			c->lmore[c->n_lmore++].slot = (uint32_t)slot;
		} else {
			ivl_ctab_drop(&v[i]->ep->rg, ivl_endpoint_id(v[i]->ep), (uint32_t)slot,
				      NULL);
		}
	}
	if (!c->sep)
		return 0;
	memcpy(c->laddr, a, 16);
	c->lport = port;
	c->lmark = listen_mark(port);
	set_state(c, SS_LISTEN);
	shim_active_add(c);
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
		rc = shim_local_name(s, &f, src, &p);
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

	rc = shim_local_name(c->fd, &f, src, &p);
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

/*
 * Looks for the destination's listener in each region we are attached to,
 * in the endpoint list's order, and returns the endpoint of the first
 * region that has it (*server: its peer there). NULL with *reason set
 * otherwise: no-region (attached to none), no-shared-region (a loopback
 * destination whose port carries the host-local listener mark: it
 * listens under the shim in other regions only), else no-listener.
 */
static struct shim_ep *find_listener_any(int fam, const uint8_t *dst, uint16_t dport,
					 uint32_t *server, uint32_t *reason)
{
	struct shim_ep *v[SHIM_REGIONS_MAX];
	int n = shim_eps_get(v, SHIM_REGIONS_MAX), self = 0;

	if (!n) {
		*reason = IVL_FB_NO_REGION;
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		int rc = ivl__shim_find_listener(&v[i]->ep->rg, ivl_endpoint_id(v[i]->ep), fam, dst,
						 dport, server);

		if (rc == 0)
			return v[i];
		self |= rc == -ELOOP;
	}
	*reason = !self && ivl__shim_addr_loopback(fam, dst) && listen_marked(dport)
		      ? IVL_FB_NO_SHARED_REGION
		      : IVL_FB_NO_LISTENER;
	return NULL;
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

	if (c->state != SS_PLAIN || shim_sa_parse(sa, len, &fam, dst, &dport) < 0)
		return REAL(connect)(c->fd, sa, len) < 0 ? -errno : 0;
	shim_addr_str(fam, dst, dport, ds, sizeof(ds));
	sep = NULL;
	if (c->opt_unsupported)
		reason = IVL_FB_OPTION;
	else if (!shim_rules_allow(1, fam, dst, ntohs(dport)))
		reason = IVL_FB_RULES;
	else if (!(sep = find_listener_any(fam, dst, dport, &server, &reason)))
		sep = shim_ep_own();
	else if (!shim_peer_vouched(sep, server))
		reason = IVL_FB_PEER_STALE;
	else if (bind_src(c, fam, dst) < 0 || shim_local_name(c->fd, &f, src, &sport) < 0)
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
	shim_conn_name(c->name, fam, src, sport, dst, dport);
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
		shim_close_half(c);
		c->reason = IVL_FB_INTERNAL;
		set_state(c, SS_FALLBACK);
		shim_count_fallback(sep, IVL_FB_INTERNAL);
		return REAL(connect)(c->fd, sa, len) < 0 ? -errno : 0;
	}
	c->lk.tx.ring.spin_ns = shim_cfg.spin_ns;
	set_state(c, SS_CONNECTING);
	SHIM_DBG("fd %d: proposal %s to peer %u (slot %u)", c->fd, c->name, server, c->slot);

	/* On the progress thread's list only once the kernel's connect was
	 * issued: before it, the socket polls writable and hung up (an
	 * unconnected TCP socket), and shim_connecting_check() would take
	 * the connect for failed and withdraw the proposal of a connection
	 * that then succeeds (apps_memcached: one in eight on TCP). */
	if (REAL(connect)(c->fd, sa, len) == 0) {
		c->deadline_ns = ivl__now_ns() + shim_cfg.accept_timeout_ns;
		set_state(c, SS_CLI_PENDING);
		shim_active_add(c);
		shim_progress_kick();
		return 0;
	}
	rc = -errno;
	if (rc == -EINPROGRESS || rc == -EINTR) {
		c->deadline_ns = ivl__now_ns() + shim_cfg.accept_timeout_ns;
		shim_active_add(c);
		return rc;
	}
	/* The connection failed: plain TCP behaviour, nothing to undo but the
	 * proposal. */
	pthread_mutex_lock(&c->lock);
	shim_close_half(c);
	set_state(c, SS_PLAIN);
	pthread_mutex_unlock(&c->lock);
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
	if (shim_peer_name(c->fd, &f, a, &port) == 0) {
		c->deadline_ns = ivl__now_ns() + shim_cfg.accept_timeout_ns;
		set_state(c, SS_CLI_PENDING);
		st = SS_CLI_PENDING;
		shim_progress_kick();
		SHIM_DBG("fd %d: connected, waiting for the server's answer", c->fd);
	} else {
		shim_close_half(c);
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

/* Publishes a note about c in sep's section; returns its slot or
 * IVL_SLOT_NONE (best effort: no slot, no note). */
static uint32_t note_in(struct shim_ep *sep, struct shim_conn *c, uint32_t kind, uint32_t reason,
			uint32_t remote, uint32_t peer_slot, uint32_t peer_gen,
			uint32_t redirect_peer)
{
	struct ivl_region *rg = &sep->ep->rg;
	uint32_t self = ivl_endpoint_id(sep->ep);
	const char *name = c->name[0] ? c->name : "tcp:?";
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
	sh.redirect_peer = redirect_peer;
	sh.owner_pid = (uint32_t)getpid();
	sh.created_unix_ns = (uint64_t)time(NULL) * 1000000000ULL;
	slot = ivl_ctab_note(rg, self, sep->ep->self_epoch, IVL_CHAN_NOTE, remote, name, &sh);
	if (slot == -ENOSPC) {
		ivl_ctab_gc(rg, self);
		slot =
		    ivl_ctab_note(rg, self, sep->ep->self_epoch, IVL_CHAN_NOTE, remote, name, &sh);
	}
	return slot < 0 ? IVL_SLOT_NONE : (uint32_t)slot;
}

/* A note for ivlinkctl (fallback) or for the client (decline), as c's half. */
static void fallback_note(struct shim_conn *c, uint32_t kind, uint32_t reason, uint32_t remote,
			  uint32_t peer_slot, uint32_t peer_gen)
{
	c->slot = note_in(c->sep, c, kind, reason, remote, peer_slot, peer_gen, 0);
}

void shim_fallback_note(struct shim_conn *c, uint32_t reason)
{
	fallback_note(c, IVL_SHIM_FALLBACK, reason, c->lk.remote, IVL_SLOT_NONE, 0);
}

void shim_redirect_done(struct shim_conn *c)
{
	if (!c->rd_sep)
		return;
	if (c->rd_slot != IVL_SLOT_NONE)
		ivl_ctab_close(&c->rd_sep->ep->rg, ivl_endpoint_id(c->rd_sep->ep), c->rd_slot);
	c->rd_sep = NULL;
	c->rd_slot = IVL_SLOT_NONE;
}

void shim_release_half(struct shim_conn *c)
{
	if (c->slot == IVL_SLOT_NONE)
		return;
	shim_close_half(c);
	__atomic_store_n(&shim_gc_pending, 1, __ATOMIC_RELAXED);
}

/*
 * Falls back to TCP: replays our ring, frees our half, leaves a note. The
 * caller holds c->lock and has made the decision final (client: WITHDRAWN
 * CAS; server: saw WITHDRAWN).
 */
void shim_do_fallback(struct shim_conn *c, uint32_t reason)
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
	shim_release_half(c);
	fallback_note(c, IVL_SHIM_FALLBACK, reason, c->lk.remote, IVL_SLOT_NONE, 0);
	c->reason = reason;
	shim_count_fallback(c->sep, reason);
	ivl__link_close_kick(&c->lk);
	set_state(c, SS_FALLBACK);
	shim_poke(c->sep, c->lk.remote);
	shim_addr_str(c->family, c->raddr, c->rport, ds, sizeof(ds));
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

/* Client: withdraw unless the decision was already made. Caller holds
 * c->lock. Returns the final state. */
int shim_cli_withdraw(struct shim_conn *c, uint32_t reason)
{
	struct ivl_chan_half *h = own_half(c);
	uint32_t expect = IVL_RDV_PROPOSED;

	/* The decision word: only clients write it, with this CAS. */
	if (!__atomic_compare_exchange_n(&h->shim.rdv, &expect, IVL_RDV_WITHDRAWN, 0,
					 __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE) &&
	    expect == IVL_RDV_CONFIRMED)
		return SS_CLI_PENDING; /* another process of ours confirmed */
	__atomic_store_n(&h->shim.reason, reason, __ATOMIC_RELAXED);
	shim_do_fallback(c, reason);
	return SS_FALLBACK;
}

/* The server's note about our proposal in the listener peer's section:
 * IVL_SHIM_DECLINE (*val = the reason) or IVL_SHIM_REDIRECT (*val = the
 * peer that accepted); 0 if none. */
static uint32_t find_note(struct shim_conn *c, uint32_t *val)
{
	struct ivl_region *rg = rg_of(c);
	uint32_t self = self_of(c);

	for (uint32_t s = 0; s < rg->hdr.chan_slots; s++) {
		struct ivl_chan_half *h = ivl_region_chan(rg, c->lk.remote, s);
		uint32_t kind;

		if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != IVL_CHAN_NOTE)
			continue;
		kind = __atomic_load_n(&h->shim.kind, __ATOMIC_RELAXED);
		if (h->remote_peer != self || h->shim.peer_slot != c->slot ||
		    h->shim.peer_gen != c->gen)
			continue;
		if (kind == IVL_SHIM_DECLINE) {
			*val = __atomic_load_n(&h->shim.reason, __ATOMIC_RELAXED);
			return kind;
		}
		if (kind == IVL_SHIM_REDIRECT) {
			*val = __atomic_load_n(&h->shim.redirect_peer, __ATOMIC_RELAXED);
			return kind;
		}
	}
	return 0;
}

/*
 * Our proposal was accepted by a process forked from the listener's peer,
 * as a peer of its own (layout.h, rendezvous step 5): match its ACCEPT
 * half in its section, and make it our remote. -EAGAIN while its doorbells
 * have not reached us (the deadline still applies).
 */
static int follow_redirect(struct shim_conn *c, uint32_t to, struct ivl_ctab_remote *m)
{
	uint32_t self = self_of(c);
	int rc;

	if (to >= rg_of(c)->hdr.max_peers || to == self || to == c->lk.remote)
		return -EPROTO;
	if (!shim_peer_vouched(c->sep, to))
		return -EAGAIN;
	rc = ivl_ctab_match_via(rg_of(c), self, c->slot, to, self, m);
	if (rc == 0) {
		SHIM_DBG("fd %d: listener's peer %u handed us to peer %u", c->fd, c->lk.remote, to);
		c->lk.remote = to;
	}
	return rc;
}

static void cli_progress(struct shim_conn *c)
{
	struct ivl_region *rg = rg_of(c);
	struct ivl_ctab_remote m;
	struct ivl_chan_half *mine = own_half(c), *theirs;
	struct ivl_notifier n;
	uint32_t expect = IVL_RDV_PROPOSED, why = 0, note;
	uint64_t pending;
	void *data;
	int rc;

	rc = ivl_ctab_match(rg, self_of(c), c->slot, &m);
	note = rc == -EAGAIN ? find_note(c, &why) : 0;
	if (note == IVL_SHIM_REDIRECT)
		rc = follow_redirect(c, why, &m);
	if (rc == 0) {
		theirs = ivl_region_chan(rg, c->lk.remote, m.remote_slot);
		if (theirs->shim.kind != IVL_SHIM_ACCEPT || theirs->shim.peer_slot != c->slot ||
		    theirs->shim.peer_gen != c->gen) {
			shim_cli_withdraw(c, IVL_FB_PROTO);
			return;
		}
		data = ivl_region_ptr(rg, m.remote_tx_data_off, m.remote_tx_size);
		ivl__link_notifier(&c->lk.rx, &n);
		if (!data ||
		    ivl_ring_init_consumer(&c->lk.rx.ring, &theirs->tx_prod, &mine->rx_cons, data,
					   m.remote_tx_size, IVL_MODE_STREAM, 0, &n) < 0) {
			shim_cli_withdraw(c, IVL_FB_PROTO);
			return;
		}
		c->lk.rx.ring.spin_ns = shim_cfg.spin_ns;
		if (!__atomic_compare_exchange_n(&mine->shim.rdv, &expect, IVL_RDV_CONFIRMED, 0,
						 __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE) &&
		    expect != IVL_RDV_CONFIRMED) {
			shim_do_fallback(c, mine->shim.reason ? mine->shim.reason : IVL_FB_TIMEOUT);
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
		ivl__link_watch_wake(&c->lk, &theirs->wake_to);
		set_state(c, SS_ACCEL);
		count_accel(c, pending);
		shim_poke(c->sep, c->lk.remote);
		/* Bytes written while pending: the server may sleep on them. */
		ivl__link_kick(&c->lk);
		SHIM_DBG("fd %d: %s accelerated (peer %u slot %u)", c->fd, c->name, c->lk.remote,
			 c->remote_slot);
		return;
	}
	if (rc == -ECONNRESET) {
		shim_cli_withdraw(c, IVL_FB_PEER_GONE);
		return;
	}
	if (rc == -EPROTO) {
		shim_cli_withdraw(c, IVL_FB_PROTO);
		return;
	}
	if (note == IVL_SHIM_DECLINE) {
		SHIM_DBG("fd %d: server declined (%s)", c->fd, shim_reason_name(why));
		shim_cli_withdraw(c, IVL_FB_DECLINED);
		return;
	}
	if (ivl__now_ns() >= c->deadline_ns)
		shim_cli_withdraw(c, IVL_FB_TIMEOUT);
}

static void srv_progress(struct shim_conn *c)
{
	struct ivl_chan_half *p = ivl_region_chan(rg_of(c), c->lk.remote, c->remote_slot);
	struct ivl_peer_view pv;
	uint32_t st, gen, rdv;
	uint64_t pending;

	if (ivl_region_peer_view(rg_of(c), c->lk.remote, &pv) < 0 || pv.state != IVL_PEER_UP ||
	    pv.epoch != c->lk.remote_epoch) {
		shim_do_fallback(c, IVL_FB_PEER_GONE);
		shim_redirect_done(c);
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
		shim_redirect_done(c);
		SHIM_DBG("fd %d: %s accelerated (client confirmed)", c->fd, c->name);
		return;
	}
	if (gen != c->remote_gen || rdv == IVL_RDV_WITHDRAWN ||
	    (st != IVL_CHAN_OFFERED && st != IVL_CHAN_CLOSED)) {
		shim_do_fallback(c, IVL_FB_WITHDRAWN);
		shim_redirect_done(c);
	}
}

void shim_progress(struct shim_conn *c)
{
	int st = get_state(c);

	if (st == SS_CONNECTING) {
		shim_connecting_check(c, 0);
		return;
	}
	if (st == SS_ACCEL && shim_demote_asked(c)) {
		shim_demote_answer(c);
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
	shim_poke(c->sep, pr->peer);
	SHIM_DBG("fd %d: declined %s (%s)", c->fd, pr->name, shim_reason_name(reason));
}

/*
 * The endpoint a connection accepted on a listener of lsep lives on. In a
 * process forked from lsep's peer (a pre-fork server's worker) that is an
 * endpoint of our own in the same region (layout.h, rendezvous step 5;
 * one per region: the one of the region the proposal is in):
 * the inherited identity's doorbells are shared with the parent and the
 * other workers (a doorbell would wake whichever reads it first), and
 * only the parent hears of peers that join after the fork. lsep itself
 * when we cannot attach.
 */
static struct shim_ep *accept_ep(struct shim_ep *lsep)
{
	struct shim_ep *own;

	if (!lsep->inherited)
		return lsep;
	own = shim_ep_own_like(lsep);
	return own ? own : lsep;
}

/*
 * The client's proposal for caddr:cport -> saddr:sport in the listener's
 * regions, in list order: 0 with *pr and *sep (the listener's endpoint of
 * that region) set, -ESTALE (withdrawn there; *sep set too) or -ENOENT
 * (*sep: the first region).
 */
static int find_proposal_any(struct shim_conn *lc, int fam, const uint8_t *caddr, uint16_t cport,
			     const uint8_t *saddr, uint16_t sport, struct shim_proposal *pr,
			     struct shim_ep **sep)
{
	for (int i = -1; i < lc->n_lmore; i++) {
		struct shim_ep *s = i < 0 ? lc->sep : lc->lmore[i].sep;
		int rc = ivl__shim_find_proposal(&s->ep->rg, ivl_endpoint_id(s->ep), fam, caddr,
						 cport, saddr, sport, pr);

		if (rc == 0 || rc == -ESTALE) {
			*sep = s;
			return rc;
		}
	}
	*sep = lc->sep;
	return -ENOENT;
}

/*
 * Whether a client that made no proposal in any of the listener's regions
 * is one of those regions' peers (then it runs without the shim:
 * peer-no-shim) or not (no-shared-region). As far as the regions tell: a
 * client on this machine (loopback, or our own local address) is taken as
 * a peer (a guest's processes share its peer; on the host we cannot tell a
 * plain program from a shimmed one of another region, whose own side
 * counts no-shared-region through the listener mark); another address is
 * a peer's if some peer of the regions published it (ivl__shim_addr_known).
 */
static int client_in_regions(struct shim_conn *lc, int fam, const uint8_t *caddr,
			     const uint8_t *saddr)
{
	if (ivl__shim_addr_loopback(fam, caddr) || !memcmp(caddr, saddr, 16))
		return 1;
	for (int i = -1; i < lc->n_lmore; i++) {
		struct shim_ep *s = i < 0 ? lc->sep : lc->lmore[i].sep;

		if (ivl__shim_addr_known(&s->ep->rg, caddr))
			return 1;
	}
	return 0;
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
	struct shim_ep *sep = lc->sep, *asep;
	int fam, fam2, rc;
	uint8_t la[16], ra[16];
	uint16_t lport, rport;
	void *txd, *rxd;
	int64_t until;

	if (!sep || shim_local_name(nfd, &fam, la, &lport) < 0 ||
	    shim_peer_name(nfd, &fam2, ra, &rport) < 0 || fam != fam2)
		return 0;
	rc = find_proposal_any(lc, fam, ra, rport, la, lport, &pr, &sep);
	if (rc < 0) {
		uint32_t why = rc == -ESTALE			    ? IVL_FB_WITHDRAWN
			       : client_in_regions(lc, fam, ra, la) ? IVL_FB_PEER_NO_SHIM
								    : IVL_FB_NO_SHARED_REGION;

		shim_count_fallback(sep, why);
		SHIM_DBG("fd %d: accepted plain TCP (%s)", nfd, shim_reason_name(why));
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
	asep = accept_ep(sep);
	if (!shim_peer_vouched(asep, pr.peer)) {
		srv_decline(c, &pr, IVL_FB_PEER_STALE);
		goto tracked;
	}
	/* Declines go to the listener peer's section, where the client looks;
	 * our half and rings to asep's. */
	set_sep(c, asep);
	memset(&sh, 0, sizeof(sh));
	sh.kind = IVL_SHIM_ACCEPT;
	sh.peer_slot = pr.slot;
	sh.peer_gen = pr.gen;
	rc = offer_half(c, pr.name, pr.peer, &sh, fam, la, lport, ra, rport);
	if (rc < 0) {
		set_sep(c, sep);
		srv_decline(c, &pr, IVL_FB_REGION_FULL);
		goto tracked;
	}
	c->slot = (uint32_t)rc;
	mine = own_half(c);
	rc = ivl_ctab_match_via(rg_of(c), self_of(c), c->slot, pr.peer, ivl_endpoint_id(sep->ep),
				&m);
	if (rc < 0 || m.remote_slot != pr.slot || m.remote_gen != pr.gen) {
		shim_release_half(c);
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
		shim_release_half(c);
		set_sep(c, sep);
		srv_decline(c, &pr, IVL_FB_PROTO);
		goto tracked;
	}
	c->lk.tx.ring.spin_ns = shim_cfg.spin_ns;
	c->lk.rx.ring.spin_ns = shim_cfg.spin_ns;
	(void)ivl__link_open_kick(&c->lk, m.remote_rx_vector);
	ivl__link_watch_wake(&c->lk, &theirs->wake_to);
	set_state(c, SS_SRV_PENDING);
	if (self_of(c) != ivl_endpoint_id(sep->ep)) {
		/* Our half is complete and matched: now tell the client where.
		 * (In a guest a worker's own endpoint keeps the VM's id, with a
		 * vector of its own: the client finds our half where it looks.) */
		c->rd_sep = sep;
		c->rd_slot =
		    note_in(sep, c, IVL_SHIM_REDIRECT, 0, pr.peer, pr.slot, pr.gen, self_of(c));
		SHIM_DBG("fd %d: accepting as peer %u for the listener's peer %u", nfd, self_of(c),
			 ivl_endpoint_id(sep->ep));
	}
	shim_active_add(c);
	shim_progress_kick();
	shim_poke(asep, pr.peer);
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
