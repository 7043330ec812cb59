/* SPDX-License-Identifier: MIT */
/* ivlinkd's server: the status socket (ivlinkctl's requests and replies). */
#define _GNU_SOURCE
#include "internal.h"

/*
 * The status protocol. A status client connects; the daemon sends one text
 * reply, "ivlinkd-status 1\n" then one record per line ("daemon", "socket",
 * "region", "stats", "client" ..., "end"), the first byte carrying a
 * read-only fd of the region, and closes. Readers skip lines they do not
 * know, so a line added later (as "stats" was) breaks no older ivlinkctl.
 *
 * A client asks for more with the name it binds its own socket to before
 * connecting, which ivlinkd learns from accept() together with the
 * connection: the abstract name "\0" STATUS_REQ_PREFIX "REQUEST/anything"
 * (ivlinkctl adds its pid and a counter, so that two clients never collide).
 * The one request is "reset-stats": the "stats" counters are reset before
 * the reply is built, and the reply carries a "reset-stats ok" line after the
 * header. Carried with the connection, a request is never late and costs no
 * wait: ivlinkd need not read from status clients (it never did), and an
 * older ivlinkctl, which binds no name, is served exactly as before. An
 * older ivlinkd ignores the name: its reply has no "stats" line, which tells
 * the new client that it cannot reset. Only clients that pass the
 * allow-list get this far, as for the status itself.
 *
 * The other request is "vector/P/V/" (decimal P < max_peers, V < vectors):
 * a peer of this region that closed the eventfds it was sent for peers it
 * had no channel with (libivlink keeps those of a few peers only, so that a
 * process's fd count does not grow with the region's peers) asks for peer
 * P's vector V when it opens a channel to P. The reply is
 * "ivlinkd-vector 1 id=P vector=V epoch=E\n" "end\n" with the eventfd on its
 * first byte, or "ivlinkd-vector 1 error=ENOENT\n" "end\n" when P is not
 * up. Only a live peer of the region, or a process of a live peer's user (a
 * forked child using its parent's endpoint), is served: the peer was sent
 * that fd at its join already, and its user can open the peer's fds in
 * /proc, so the request gives nobody anything new. An older ivlinkd answers with the
 * plain status (no fd of a vector): the client then keeps every fd.
 */
#define STATUS_REQ_PREFIX "ivlink-status-req/"

enum status_req { REQ_NONE, REQ_RESET, REQ_VECTOR };

/* A decimal number of at most 5 digits ending at '/', or -1. */
static long req_num(const char **p, const char *end)
{
	long v = 0;
	int n = 0;

	while (*p < end && **p >= '0' && **p <= '9' && n < 5) {
		v = v * 10 + (**p - '0');
		(*p)++;
		n++;
	}
	if (n == 0 || *p >= end || **p != '/')
		return -1;
	(*p)++;
	return v;
}

/* The request a new status client's bound name carries (REQ_NONE for none
 * or one we do not know, which is ignored); for REQ_VECTOR, *peer and *vec
 * (unchecked against the region: the caller does that). */
static enum status_req status_request(const struct sockaddr_un *a, socklen_t alen, long *peer,
				      long *vec)
{
	static const char reset[] = STATUS_REQ_PREFIX "reset-stats/";
	static const char vector[] = STATUS_REQ_PREFIX "vector/";
	size_t off = offsetof(struct sockaddr_un, sun_path);

	if (alen < off + 1 || a->sun_path[0] != '\0')
		return REQ_NONE;
	const char *name = a->sun_path + 1, *end = (const char *)a + alen;
	size_t len = (size_t)(end - name);

	if (len >= sizeof(reset) - 1 && memcmp(name, reset, sizeof(reset) - 1) == 0)
		return REQ_RESET;
	if (len >= sizeof(vector) - 1 && memcmp(name, vector, sizeof(vector) - 1) == 0) {
		const char *p = name + sizeof(vector) - 1;

		*peer = req_num(&p, end);
		*vec = *peer < 0 ? -1 : req_num(&p, end);
		return *vec < 0 ? REQ_NONE : REQ_VECTOR;
	}
	return REQ_NONE;
}

/* The reply to a vector request: the eventfd of peer's vector, to a live
 * peer of the region only. */
static int build_vector(struct ivl_server *s, struct client *sc, const struct ucred *cr, long peer,
			long vec)
{
	const struct client *asker = NULL, *c = NULL;
	char *b = malloc(128);

	if (!b)
		return -ENOMEM;
	/* A peer, or a process of a peer's user (a forked child using its
	 * parent's endpoint), which could open that peer's fds in /proc. */
	for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++)
		if (s->peers[id] && !s->peers[id]->dead &&
		    (s->peers[id]->pid == cr->pid || s->peers[id]->uid == cr->uid))
			asker = s->peers[id];
	if (peer >= 0 && peer < (long)s->rg.hdr.max_peers && vec >= 0 &&
	    vec < (long)s->rg.hdr.n_vectors && s->peers[peer] && !s->peers[peer]->dead)
		c = s->peers[peer];
	sc->sfd = -1;
	if (!asker) {
		ivl__srv_log(s, IVL_LOG_WARN,
			     "vector request from pid %d, which is no peer of the region: refused",
			     (int)cr->pid);
		snprintf(b, 128, "ivlinkd-vector 1 error=EPERM\nend\n");
	} else if (!c || !c->efd[vec]) {
		snprintf(b, 128, "ivlinkd-vector 1 error=ENOENT\nend\n");
	} else {
		sc->sfd = fcntl(c->efd[vec]->fd, F_DUPFD_CLOEXEC, 0);
		if (sc->sfd < 0) {
			free(b);
			return -errno;
		}
		snprintf(b, 128, "ivlinkd-vector 1 id=%ld vector=%ld epoch=%u\nend\n", peer, vec,
			 c->epoch);
	}
	sc->sbuf = b;
	sc->slen = strlen(b);
	return 0;
}

static void stats_reset(struct ivl_server *s, const struct ucred *cr)
{
	uint64_t resets = s->stats.resets + 1;

	memset(&s->stats, 0, sizeof(s->stats));
	s->stats.resets = resets;
	s->stats.since_real_ns = (uint64_t)ivl__realtime_ns();
	ivl__srv_log(s, IVL_LOG_INFO, "statistics reset by pid %d uid %u", (int)cr->pid,
		     (unsigned)cr->uid);
}

static int sb_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int sb_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
		if ((size_t)n < *cap - *len) {
			*len += (size_t)n;
			return 0;
		}
		char *nb = realloc(*buf, *cap * 2 + (size_t)n);

		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = *cap * 2 + (size_t)n;
	}
}

/* Copies a path for the one-line-per-record status format. */
static void line_safe(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < len && src[i]; i++)
		dst[i] = (src[i] == '\n' || src[i] == '\r') ? '?' : src[i];
	dst[i] = '\0';
}

static int build_status(struct ivl_server *s, struct client *sc, int reset_done)
{
	size_t cap = 1024, len = 0;
	char *b = malloc(cap);
	uint64_t mono = (uint64_t)ivl__now_ns();
	char path[PATH_MAX];
	int rc = 0;

	if (!b)
		return -ENOMEM;
	b[0] = '\0';
	rc |= sb_printf(&b, &len, &cap, "ivlinkd-status 1\n");
	if (reset_done)
		rc |= sb_printf(&b, &len, &cap, "reset-stats ok\n");
	rc |=
	    sb_printf(&b, &len, &cap,
		      "daemon pid=%d version=" IVL_VERSION " gen=%" PRIu64 " uptime_s=%" PRIu64
		      " peers=%u max_peers=%u vectors=%u queue_limit=%u refused_acl=%" PRIu64
		      " refused_full=%" PRIu64 " refused_status=%" PRIu64 "\n",
		      (int)getpid(), s->rg.hdr.daemon_gen, (mono - s->start_mono_ns) / 1000000000u,
		      s->n_peers, s->rg.hdr.max_peers, s->rg.hdr.n_vectors, s->queue_limit,
		      s->refused_acl, s->refused_full, s->refused_status);
	line_safe(path, sizeof(path), s->socket_path);
	rc |= sb_printf(&b, &len, &cap, "socket %s\n", path);
	line_safe(path, sizeof(path), s->file_path ? s->file_path : "-");
	rc |= sb_printf(&b, &len, &cap,
			"region kind=%s size=%" PRIu64 " reattached=%d sealed=%d shrinks=%" PRIu64
			" file=%s\n",
			s->kind, s->rg.hdr.region_size, s->reattached, s->sealed, s->shrinks, path);
	rc |= sb_printf(&b, &len, &cap,
			"stats since_unix=%" PRIu64 " resets=%" PRIu64 " joins=%" PRIu64
			" leaves=%" PRIu64 " refused_acl=%" PRIu64 " refused_full=%" PRIu64
			" refused_status=%" PRIu64 " queue_kills=%" PRIu64 " shrinks=%" PRIu64 "\n",
			s->stats.since_real_ns / 1000000000u, s->stats.resets, s->stats.joins,
			s->stats.leaves, s->stats.refused_acl, s->stats.refused_full,
			s->stats.refused_status, s->stats.queue_kills, s->stats.shrinks);
	for (uint32_t id = 0; id < s->rg.hdr.max_peers; id++) {
		struct client *c = s->peers[id];

		if (!c || c->dead)
			continue;
		rc |= sb_printf(&b, &len, &cap,
				"client id=%d pid=%d uid=%u gid=%u epoch=%u since_unix=%" PRIu64
				" age_s=%" PRIu64 " vectors=%u queued=%u\n",
				c->id, (int)c->pid, (unsigned)c->uid, (unsigned)c->gid, c->epoch,
				c->since_real_ns / 1000000000u,
				(mono - c->since_mono_ns) / 1000000000u, s->rg.hdr.n_vectors,
				c->q_len);
	}
	rc |= sb_printf(&b, &len, &cap, "end\n");
	if (rc) {
		free(b);
		return -ENOMEM;
	}
	sc->sbuf = b;
	sc->slen = len;
	/* A read-only open of the region, so that ivlinkctl can map it but
	 * cannot write it even by mistake. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", s->shm_fd);
	sc->sfd = open(path, O_RDONLY | O_CLOEXEC);
	if (sc->sfd < 0)
		ivl__srv_log(s, IVL_LOG_WARN,
			     "cannot reopen the region read-only for a status client: %s",
			     strerror(errno));
	return 0;
}

void ivl__srv_status_accept(struct ivl_server *s, int fd, const struct sockaddr_un *a,
			    socklen_t alen)
{
	struct ucred cr;
	struct client *c;
	long peer = -1, vec = -1;
	enum status_req req;
	int rc;

	if (ivl__srv_get_cred(s, fd, &cr) < 0)
		goto err_close;
	if (!ivl__srv_allowed(s, &cr)) {
		s->stats.refused_status++;
		ivl__srv_refused(s, &s->refused_status, &cr, "status client",
				 "not in the allow-list");
		goto err_close;
	}
	c = ivl__srv_client_new(EP_STATUS, fd, &cr);
	if (!c)
		goto err_close;
	req = status_request(a, alen, &peer, &vec);
	if (req == REQ_RESET)
		stats_reset(s, &cr);
	if (req == REQ_VECTOR)
		rc = build_vector(s, c, &cr, peer, vec);
	else
		rc = build_status(s, c, req == REQ_RESET);
	if (rc < 0 || ivl__srv_ep_add(s, fd, 0, c) < 0) {
		ivl__srv_log(s, IVL_LOG_ERROR, "cannot serve status client pid %d", (int)cr.pid);
		c->fd = -1;
		ivl__srv_client_free(c);
		goto err_close;
	}
	c->next = s->clients;
	s->clients = c;
	ivl__srv_log(s, IVL_LOG_DEBUG, "status client pid %d uid %u", (int)cr.pid,
		     (unsigned)cr.uid);
	ivl__srv_flush_status(s, c);
	return;
err_close:
	close(fd);
}
