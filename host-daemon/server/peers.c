/* SPDX-License-Identifier: MIT */
/* ivlinkd's server: admission (ACL, refusals), peer join and leave, region
 * shrink checks and reaping dead clients. */
#define _GNU_SOURCE
#include "internal.h"

#define REFUSAL_LOG_NS (10 * 1000000000ULL)

/*
 * Whether a refusal of uid may be logged now; if so, *quiet is the number
 * refused since the last line for that uid. A table of the 16 most recent
 * uids: a uid not in it takes the least recently logged entry.
 */
static int refusal_log_ok(struct ivl_server *s, uint32_t uid, uint64_t *quiet)
{
	uint64_t now = (uint64_t)ivl__now_ns();
	struct refusal *r = NULL, *oldest = &s->refusals[0];

	for (size_t i = 0; i < sizeof(s->refusals) / sizeof(s->refusals[0]); i++) {
		struct refusal *e = &s->refusals[i];

		if (e->last_ns && e->uid == uid) {
			r = e;
			break;
		}
		if (e->last_ns < oldest->last_ns)
			oldest = e;
	}
	if (!r) {
		r = oldest;
		r->uid = uid;
		r->last_ns = 0;
		r->quiet = 0;
	}
	if (r->last_ns && now - r->last_ns < REFUSAL_LOG_NS) {
		r->quiet++;
		return 0;
	}
	*quiet = r->quiet;
	r->quiet = 0;
	r->last_ns = now;
	return 1;
}

/* Counts a refused client and logs it, rate-limited per uid. */
void ivl__srv_refused(struct ivl_server *s, uint64_t *counter, const struct ucred *cr,
		      const char *what, const char *why)
{
	uint64_t quiet;

	(*counter)++;
	if (!refusal_log_ok(s, (uint32_t)cr->uid, &quiet))
		return;
	if (quiet)
		ivl__srv_log(s, IVL_LOG_WARN,
			     "refused %s pid %d uid %u gid %u: %s (and %" PRIu64
			     " more from uid %u in the last %llu s, not logged)",
			     what, (int)cr->pid, (unsigned)cr->uid, (unsigned)cr->gid, why, quiet,
			     (unsigned)cr->uid, REFUSAL_LOG_NS / 1000000000ULL);
	else
		ivl__srv_log(s, IVL_LOG_WARN, "refused %s pid %d uid %u gid %u: %s", what,
			     (int)cr->pid, (unsigned)cr->uid, (unsigned)cr->gid, why);
}

int ivl__srv_allowed(const struct ivl_server *s, const struct ucred *cr)
{
	if (!s->cfg.n_allow_uid && !s->cfg.n_allow_gid)
		return 1;
	for (unsigned i = 0; i < s->cfg.n_allow_uid; i++)
		if (s->cfg.allow_uid[i] == cr->uid)
			return 1;
	for (unsigned i = 0; i < s->cfg.n_allow_gid; i++)
		if (s->cfg.allow_gid[i] == cr->gid)
			return 1;
	return 0;
}

/* Lowest id that no client holds and that the table does not show UP (an
 * UP entry without a client is a stale one from a previous daemon). */
static int pick_id(struct ivl_server *s, unsigned *stale)
{
	*stale = 0;
	for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++) {
		struct ivl_peer_view v;

		if (s->peers[id])
			continue;
		if (ivl_region_peer_view(&s->rg, id, &v) == 0 && v.state == IVL_PEER_UP) {
			(*stale)++;
			continue;
		}
		return (int)id;
	}
	return -ENOSPC;
}

void ivl__srv_client_free(struct client *c)
{
	for (unsigned v = 0; v < IVL_VECTORS_LIMIT; v++)
		ivl__srv_efd_unref(c->efd[v]);
	for (uint32_t i = 0; i < c->q_len; i++)
		ivl__srv_efd_unref(c->q[(c->q_head + i) % c->q_cap].fd);
	free(c->q);
	free(c->sbuf);
	if (c->sfd >= 0)
		close(c->sfd);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

struct client *ivl__srv_client_new(enum ep_kind kind, int fd, const struct ucred *cr)
{
	struct client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->kind = kind;
	c->fd = fd;
	c->id = -1;
	c->sfd = -1;
	c->pid = cr->pid;
	c->uid = cr->uid;
	c->gid = cr->gid;
	c->since_real_ns = (uint64_t)ivl__realtime_ns();
	c->since_mono_ns = (uint64_t)ivl__now_ns();
	return c;
}

int ivl__srv_get_cred(struct ivl_server *s, int fd, struct ucred *cr)
{
	socklen_t len = sizeof(*cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cr, &len) < 0) {
		ivl__srv_log(s, IVL_LOG_WARN, "SO_PEERCRED: %s; refusing the client",
			     strerror(errno));
		return -errno;
	}
	return 0;
}

void ivl__srv_peer_join(struct ivl_server *s, int fd)
{
	struct ivl_peer_entry *e;
	struct ivl_peer_view v;
	struct client *c;
	struct ucred cr;
	unsigned stale;
	uint32_t next;
	long ep;
	int id;

	if (ivl__srv_get_cred(s, fd, &cr) < 0)
		goto err_close;
	if (!ivl__srv_allowed(s, &cr)) {
		s->stats.refused_acl++;
		ivl__srv_refused(s, &s->refused_acl, &cr, "client", "not in the allow-list");
		goto err_close;
	}
	id = pick_id(s, &stale);
	if (id < 0) {
		char why[160];

		snprintf(why, sizeof(why),
			 "all %u peer ids in use (%u connected, %u stale; see --max-peers, "
			 "--reclaim-stale)",
			 s->rg.hdr.max_peers, s->n_peers, stale);
		s->stats.refused_full++;
		ivl__srv_refused(s, &s->refused_full, &cr, "client", why);
		goto err_close;
	}
	c = ivl__srv_client_new(EP_PEER, fd, &cr);
	if (!c) {
		ivl__srv_log(s, IVL_LOG_ERROR, "out of memory; refusing client pid %d",
			     (int)cr.pid);
		goto err_close;
	}
	c->id = id;
	for (unsigned vec = 0; vec < s->rg.hdr.n_vectors; vec++) {
		c->efd[vec] = ivl__srv_efd_new();
		if (!c->efd[vec]) {
			ivl__srv_log(s, IVL_LOG_ERROR, "eventfd: %s; refusing client pid %d",
				     strerror(errno), (int)cr.pid);
			goto err_free;
		}
	}
	if (ivl__srv_ep_add(s, fd, EPOLLIN | EPOLLRDHUP, c) < 0) {
		ivl__srv_log(s, IVL_LOG_ERROR, "epoll_ctl: %s; refusing client pid %d",
			     strerror(errno), (int)cr.pid);
		goto err_free;
	}

	/* Reset the section before the peer goes UP, stamped with the epoch
	 * that peer_set() is about to give it, so that nobody ever sees an UP
	 * peer whose section belongs to an older incarnation. */
	e = ivl_region_peer(&s->rg, (uint32_t)id);
	ivl_region_peer_view(&s->rg, (uint32_t)id, &v);
	next = v.epoch + 1 ? v.epoch + 1 : 1; /* peer_set() skips 0 the same way */
	ivl_section_reset(&s->rg, (uint32_t)id, next);
	e->joined_unix_ns = c->since_real_ns;
	e->left_unix_ns = 0;
	ep = ivl_region_peer_set(&s->rg, (uint32_t)id, IVL_PEER_UP, (uint32_t)cr.pid,
				 (uint32_t)cr.uid, s->rg.hdr.n_vectors);
	if (ep != (long)next) {
		/* Someone scribbled on the epoch between our read and the set
		 * (ivshmem cannot stop a hostile peer). Re-stamp the section. */
		ivl__srv_log(s, IVL_LOG_WARN, "peer %d: epoch changed under us (%u, now %ld)", id,
			     next, ep);
		ivl_section_reset(&s->rg, (uint32_t)id, (uint32_t)ep);
	}
	c->epoch = (uint32_t)ep;
	s->peers[id] = c;
	s->n_peers++;
	s->stats.joins++;
	c->next = s->clients;
	s->clients = c;

	/* The handshake, in the order QEMU's ivshmem device expects it. */
	ivl__srv_enqueue(s, c, 0, NULL);
	ivl__srv_enqueue(s, c, id, NULL);
	ivl__srv_enqueue(s, c, -1, &s->shm_ref);
	for (uint32_t o = 0; o < s->rg.hdr.max_peers; o++) {
		struct client *p = s->peers[o];

		if (!p || p == c || p->dead)
			continue;
		for (unsigned vec = 0; vec < s->rg.hdr.n_vectors; vec++)
			ivl__srv_enqueue(s, c, p->id, p->efd[vec]);
		for (unsigned vec = 0; vec < s->rg.hdr.n_vectors; vec++)
			ivl__srv_enqueue(s, p, id, c->efd[vec]);
		ivl__srv_ring_ctrl(s, p);
	}
	for (unsigned vec = 0; vec < s->rg.hdr.n_vectors; vec++)
		ivl__srv_enqueue(s, c, id, c->efd[vec]);

	ivl__srv_log(s, IVL_LOG_INFO,
		     "peer %d joined: pid %d uid %u gid %u, epoch %u (%u/%u peers)", id,
		     (int)cr.pid, (unsigned)cr.uid, (unsigned)cr.gid, c->epoch, s->n_peers,
		     s->rg.hdr.max_peers);
	return;
err_free:
	c->fd = -1;
	ivl__srv_client_free(c);
err_close:
	close(fd);
}

static void peer_leave(struct ivl_server *s, struct client *c)
{
	struct ivl_peer_entry *e = ivl_region_peer(&s->rg, (uint32_t)c->id);
	long ep;

	e->left_unix_ns = (uint64_t)ivl__realtime_ns();
	ep = ivl_region_peer_set(&s->rg, (uint32_t)c->id, IVL_PEER_GONE, 0, 0, 0);
	/* The section is NOT wiped here: a section belongs to its id and no
	 * other peer can use it, so reclaiming it early gains nothing, while
	 * the remotes may still be draining what the peer published before it
	 * left (its last data and EOF). ivl__srv_peer_join() resets it whole before the
	 * id is handed out again; the GONE epoch already tells the remotes to
	 * stop trusting it once they have read what is there. */
	s->peers[c->id] = NULL;
	s->n_peers--;
	s->stats.leaves++;
	for (uint32_t o = 0; o < s->rg.hdr.max_peers; o++) {
		struct client *p = s->peers[o];

		if (!p || p->dead)
			continue;
		ivl__srv_enqueue(s, p, c->id, NULL);
		ivl__srv_ring_ctrl(s, p);
	}
	ivl__srv_log(s, c->dead_quiet ? IVL_LOG_INFO : IVL_LOG_WARN,
		     "peer %d left (pid %d): %s; GONE at epoch %ld (%u/%u peers)", c->id,
		     (int)c->pid, c->dead_why, ep, s->n_peers, s->rg.hdr.max_peers);
}

/*
 * A named or hugetlbfs region file whose size someone changed (a client
 * holds a read-write fd; a local user may own the file): put the size back
 * before anyone else touches the lost pages, and the header with it, from
 * our private copy (the pages beyond the new end read as zeros, which every
 * reader validates). A client's region guard may have restored the size
 * first (its SIGBUS handler), so any size change we did not make counts.
 */
static void check_region(struct ivl_server *s, int changed)
{
	uint64_t faults = ivl__guard_faults(s->base);
	struct stat st;

	if (s->sealed || s->shm_fd < 0 || fstat(s->shm_fd, &st) < 0)
		return;
	if (!changed && (uint64_t)st.st_size >= s->cfg.size && faults == s->guard_faults)
		return;
	s->guard_faults = faults;
	if ((uint64_t)st.st_size < s->cfg.size) {
		if (ftruncate(s->shm_fd, (off_t)s->cfg.size) < 0) {
			ivl__srv_log(s, IVL_LOG_ERROR,
				     "region %s shrunk to %lld bytes; cannot restore it: %s",
				     s->file_path ? s->file_path : s->kind, (long long)st.st_size,
				     strerror(errno));
			return;
		}
		s->own_truncs++;
	}
	s->shrinks++;
	s->stats.shrinks++;
	if (memcmp(s->base, &s->rg.hdr, sizeof(s->rg.hdr)))
		memcpy(s->base, &s->rg.hdr, sizeof(s->rg.hdr));
	ivl__srv_log(
	    s, IVL_LOG_ERROR,
	    "region %s: its size was changed (now %lld bytes) by a client or a local user; "
	    "size %" PRIu64 " restored, lost contents read as zeros (%" PRIu64 " time(s))",
	    s->file_path ? s->file_path : s->kind, (long long)st.st_size, s->cfg.size, s->shrinks);
}

/* Drains the inotify fd; a size change someone else made is checked. */
void ivl__srv_inotify_event(struct ivl_server *s)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int events = 0;
	ssize_t n;

	while ((n = read(s->ino_fd, buf, sizeof(buf))) > 0)
		for (char *p = buf; p < buf + n;
		     p += sizeof(struct inotify_event) + ((struct inotify_event *)p)->len)
			events++;
	if (s->own_truncs >= events) {
		s->own_truncs -= events;
		return;
	}
	s->own_truncs = 0;
	check_region(s, 1);
}

/* Removes dead clients (announcing peers' leaves, which may kill others
 * whose queues overflow) and flushes pending output, until stable. */
void ivl__srv_reap(struct ivl_server *s)
{
	int again = 1;

	check_region(s, 0);
	while (again) {
		struct client **pp = &s->clients;

		again = 0;
		while (*pp) {
			struct client *c = *pp;

			if (!c->dead) {
				pp = &c->next;
				continue;
			}
			*pp = c->next;
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
			if (c->kind == EP_PEER)
				peer_leave(s, c);
			else if (!c->dead_quiet)
				ivl__srv_log(s, IVL_LOG_WARN, "status client pid %d: %s",
					     (int)c->pid, c->dead_why);
			ivl__srv_client_free(c);
		}
		for (struct client *c = s->clients; c; c = c->next) {
			if (c->kind == EP_PEER && c->q_len && !c->out_armed)
				ivl__srv_flush_peer(s, c);
			if (c->dead)
				again = 1;
		}
	}
}
