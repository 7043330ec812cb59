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
 */
#define STATUS_REQ_PREFIX "ivlink-status-req/"

/* The request a new status client's bound name carries: 1 for
 * "reset-stats", 0 for none (or one we do not know, which is ignored). */
static int status_request(const struct sockaddr_un *a, socklen_t alen)
{
	static const char want[] = STATUS_REQ_PREFIX "reset-stats/";
	size_t off = offsetof(struct sockaddr_un, sun_path);

	return alen >= off + 1 + sizeof(want) - 1 && a->sun_path[0] == '\0' &&
	       memcmp(a->sun_path + 1, want, sizeof(want) - 1) == 0;
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
	int reset = 0;

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
	if (status_request(a, alen)) {
		stats_reset(s, &cr);
		reset = 1;
	}
	if (build_status(s, c, reset) < 0 || ivl__srv_ep_add(s, fd, 0, c) < 0) {
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
