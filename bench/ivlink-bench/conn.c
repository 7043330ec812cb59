/* SPDX-License-Identifier: MIT */
/* ivlink-bench: the test connections: wire header and result, TCP/UNIX addresses
 * and sockets, native channels. */
#define _GNU_SOURCE
#include "ivb.h"

int ivb_conn_send(struct conn *c, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (c->kind != K_NATIVE)
		return bench_send_all(c->fd, buf, len);
	while (len > 0) {
		ssize_t n = ivl_send(c->ch, p, len, 0);

		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Receives exactly len bytes. Returns 1, 0 at a clean end of stream before
 * the first byte, -ECONNRESET at an end of stream inside the message, or
 * -errno. */
int ivb_conn_recv(struct conn *c, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n;

		if (c->kind == K_NATIVE) {
			n = ivl_recv(c->ch, p + got, len - got, IVL_WAITALL);
			if (n < 0)
				return (int)n;
		} else {
			n = recv(c->fd, p + got, len - got, MSG_WAITALL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
		}
		if (n == 0)
			return got == 0 ? 0 : -ECONNRESET;
		got += (size_t)n;
	}
	return 1;
}

int ivb_conn_shutdown_wr(struct conn *c)
{
	if (c->kind == K_NATIVE)
		return ivl_channel_shutdown(c->ch, IVL_SHUT_WR);
	return shutdown(c->fd, SHUT_WR) < 0 ? -errno : 0;
}

void ivb_conn_close(struct conn *c)
{
	if (c->ch)
		ivl_channel_close(c->ch);
	if (c->fd >= 0)
		close(c->fd);
	c->ch = NULL;
	c->fd = -1;
}

void ivb_sock_timeouts(int fd, uint32_t secs)
{
	struct timeval tv = {.tv_sec = secs};
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	/* Refused on UNIX sockets: harmless. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ------------------------------------------------------------ addresses */

/* "[HOST:]PORT" or "unix:PATH" into a sockaddr. */
int ivb_parse_addr(const char *s, enum kind kind, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (kind == K_UNIX) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;

		if (strncmp(s, "unix:", 5) == 0)
			s += 5;
		if (strlen(s) >= sizeof(un->sun_path))
			return -ENAMETOOLONG;
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, s);
		*len = sizeof(*un);
		return 0;
	}
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	char host[64] = "0.0.0.0";
	const char *colon = strrchr(s, ':');
	const char *port = s;
	char *end;
	unsigned long p;

	if (colon) {
		size_t hl = (size_t)(colon - s);

		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, hl);
		host[hl] = 0;
		port = colon + 1;
	}
	p = strtoul(port, &end, 10);
	if (*port == 0 || *end || p > 65535)
		return -EINVAL;
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)p);
	if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
		return -EINVAL;
	*len = sizeof(*in);
	return 0;
}

/* ------------------------------------------------------------ native */

int ivb_native_open(const char *name, int64_t spin_ns, struct ivl_endpoint **ep)
{
	struct ivl_endpoint_opts eo = {0};

	eo.uri = ivb_opt.endpoint; /* NULL: $IVLINK_ENDPOINT or the default */
	eo.name = name;
	eo.spin_ns = spin_ns;
	eo.connect_timeout_ns = (int64_t)ivb_opt.timeout_s * 1000000000LL;
	return ivl_endpoint_open(ep, &eo);
}

/* Waits for exactly one UP peer (other than us) named want or, when alt is
 * not NULL, alt; returns its id or -ETIMEDOUT. */
long ivb_native_find_peer(struct ivl_endpoint *ep, const char *want, const char *alt)
{
	int64_t deadline = ivl__now_ns() + (int64_t)ivb_opt.timeout_s * 1000000000LL;
	uint32_t self = ivl_endpoint_id(ep);
	struct ivl_peer_info pi[64];

	for (;;) {
		int n = ivl_endpoint_peers(ep, pi, 64);
		long found = -1;
		int count = 0;

		for (int i = 0; i < n && i < 64; i++) {
			if (pi[i].id != self && (strcmp(pi[i].name, want) == 0 ||
						 (alt && strcmp(pi[i].name, alt) == 0))) {
				found = pi[i].id;
				count++;
			}
		}
		if (count == 1)
			return found;
		if (ivl__now_ns() > deadline)
			return -ETIMEDOUT;
		ivl_endpoint_process(ep);
		usleep(2000);
	}
}

int ivb_native_channel(struct ivl_endpoint *ep, uint32_t peer, unsigned k, struct conn *c)
{
	struct ivl_channel_opts co = {0};
	int64_t to = (int64_t)ivb_opt.timeout_s * 1000000000LL;
	char name[32];
	int rc;

	co.mode = IVL_MODE_STREAM;
	co.ring_size = NATIVE_RING;
	snprintf(name, sizeof(name), "ivb%u", k);
	rc = ivl_channel_open(ep, name, peer, &co, to, &c->ch);
	if (rc == 0)
		ivl_channel_set_timeouts(c->ch, to, to);
	c->kind = K_NATIVE;
	c->fd = -1;
	return rc;
}
