/* SPDX-License-Identifier: MIT */
/* ivlink-bench: the server role, one test per connection. */
#define _GNU_SOURCE
#include "ivb.h"

/* ------------------------------------------------------------ server */

static int serve_one(struct conn *c, uint8_t *buf, bool *end)
{
	struct wire_hdr h;
	struct wire_res r = {.magic = WIRE_MAGIC};
	int64_t t0, c0;
	int rc;

	rc = ivb_conn_recv(c, &h, sizeof(h));
	if (rc <= 0)
		return rc < 0 ? rc : -ECONNRESET;
	if (h.magic != WIRE_MAGIC || h.size > MAX_MSG)
		return -EPROTO;
	t0 = ivl__now_ns();
	c0 = bench_cpu_ns();
	switch (h.op) {
	case OP_LAT:
		for (uint64_t i = 0; i < h.count; i++) {
			rc = ivb_conn_recv(c, buf, h.size);
			if (rc <= 0)
				break;
			rc = ivb_conn_send(c, buf, h.size);
			if (rc < 0)
				break;
			r.msgs++;
			r.bytes += h.size;
		}
		break;
	case OP_TPUT:
		for (;;) {
			rc = ivb_conn_recv(c, buf, h.size ? h.size : 1);
			if (rc <= 0)
				break;
			r.msgs++;
			r.bytes += h.size;
		}
		break;
	case OP_END:
		*end = true;
		rc = 0;
		break;
	default:
		return -EPROTO;
	}
	r.elapsed_ns = (uint64_t)(ivl__now_ns() - t0);
	r.cpu_ns = (uint64_t)(bench_cpu_ns() - c0);
	r.status = rc < 0 ? rc : 0;
	rc = ivb_conn_send(c, &r, sizeof(r));
	return rc < 0 ? rc : r.status;
}

int ivb_run_server(const struct mode_def *m)
{
	struct ivl_endpoint *ep = NULL;
	uint8_t *buf = malloc(MAX_MSG);
	int lfd = -1, rc = 0;
	long peer = -1;
	bool end = false;

	if (!buf)
		return -ENOMEM;
	if (m->kind == K_NATIVE) {
		char want[32];

		rc = ivb_native_open("ivb-s", ivb_opt.spin_set ? ivb_opt.spin_ns : m->spin_ns, &ep);
		if (rc < 0) {
			ivb_msg("server: endpoint %s: %s",
				ivb_opt.endpoint ? ivb_opt.endpoint : "(default)", strerror(-rc));
			goto out;
		}
		printf("IVB-READY peer=%u\n", ivl_endpoint_id(ep));
		fflush(stdout);
		snprintf(want, sizeof(want), "ivb-c%u", ivl_endpoint_id(ep));
		/* A client told the server's id names itself after it (so
		 * that several servers can share a region); one that found
		 * the server by name (--peer auto) has the generic name. */
		peer = ivb_native_find_peer(ep, want, "ivb-c");
		if (peer < 0) {
			rc = (int)peer;
			ivb_msg("server: no client peer named %s within %u s", want,
				ivb_opt.timeout_s);
			goto out;
		}
	} else {
		struct sockaddr_storage ss;
		socklen_t len;
		int one = 1;

		rc = ivb_parse_addr(ivb_opt.listen	? ivb_opt.listen
				    : m->kind == K_UNIX ? "ivb.sock"
							: "127.0.0.1:0",
				    m->kind, &ss, &len);
		if (rc < 0) {
			ivb_msg("server: bad --listen address");
			goto out;
		}
		lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lfd < 0) {
			rc = -errno;
			goto out;
		}
		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (m->kind == K_UNIX)
			unlink(((struct sockaddr_un *)&ss)->sun_path);
		if (bind(lfd, (struct sockaddr *)&ss, len) < 0 || listen(lfd, 16) < 0) {
			rc = -errno;
			ivb_msg("server: bind/listen: %s", strerror(errno));
			goto out;
		}
		len = sizeof(ss);
		getsockname(lfd, (struct sockaddr *)&ss, &len);
		if (m->kind == K_UNIX)
			printf("IVB-READY path=%s\n", ((struct sockaddr_un *)&ss)->sun_path);
		else
			printf("IVB-READY port=%u\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
		fflush(stdout);
	}

	for (unsigned k = 0; !end; k++) {
		struct conn c = {.kind = m->kind, .fd = -1};

		if (m->kind == K_NATIVE) {
			rc = ivb_native_channel(ep, (uint32_t)peer, k, &c);
			if (rc < 0) {
				ivb_msg("server: channel ivb%u: %s", k, strerror(-rc));
				break;
			}
		} else {
			struct pollfd pfd = {.fd = lfd, .events = POLLIN};

			rc = poll(&pfd, 1, (int)ivb_opt.timeout_s * 1000);
			if (rc <= 0) {
				rc = rc == 0 ? -ETIMEDOUT : -errno;
				ivb_msg("server: no connection within %u s", ivb_opt.timeout_s);
				break;
			}
			c.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (c.fd < 0) {
				rc = -errno;
				break;
			}
			ivb_sock_timeouts(c.fd, ivb_opt.timeout_s);
		}
		rc = serve_one(&c, buf, &end);
		ivb_conn_close(&c);
		if (rc < 0) {
			ivb_msg("server: test %u: %s", k, strerror(-rc));
			break;
		}
	}
out:
	if (lfd >= 0)
		close(lfd);
	ivl_endpoint_close(ep);
	free(buf);
	return rc;
}
