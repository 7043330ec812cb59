/* SPDX-License-Identifier: MIT */
/* ivlink-bench: the client role: latency and throughput tests, CPU cost. */
#define _GNU_SOURCE
#include "ivb.h"

/* ------------------------------------------------------------ client */

struct client {
	const struct mode_def *m;
	struct ivl_endpoint *ep;
	uint32_t peer;
	struct sockaddr_storage ss;
	socklen_t sslen;
	unsigned k;
	uint8_t *buf;
	int64_t *samples;
	const char *row;
};

static int client_connect(struct client *cl, struct conn *c)
{
	int64_t deadline = ivl__now_ns() + (int64_t)ivb_opt.timeout_s * 1000000000LL;

	c->kind = cl->m->kind;
	c->fd = -1;
	c->ch = NULL;
	if (cl->m->kind == K_NATIVE)
		return ivb_native_channel(cl->ep, cl->peer, cl->k++, c);
	/* Retry while the server is not up yet: in VMs the two sides boot
	 * independently. */
	for (;;) {
		c->fd = socket(cl->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0)
			return -errno;
		ivb_sock_timeouts(c->fd, ivb_opt.timeout_s);
		if (connect(c->fd, (struct sockaddr *)&cl->ss, cl->sslen) == 0)
			return 0;
		int err = errno;

		close(c->fd);
		c->fd = -1;
		if ((err != ECONNREFUSED && err != ENOENT && err != EHOSTUNREACH &&
		     err != ENETUNREACH && err != ETIMEDOUT) ||
		    ivl__now_ns() > deadline)
			return -err;
		usleep(100000);
	}
}

static int client_finish(struct conn *c, struct wire_res *r)
{
	int rc = ivb_conn_recv(c, r, sizeof(*r));

	if (rc <= 0)
		return rc < 0 ? rc : -ECONNRESET;
	if (r->magic != WIRE_MAGIC)
		return -EPROTO;
	return r->status;
}

static uint64_t warmup_of(uint64_t iters)
{
	uint64_t w = iters / 10;

	return w < 20 ? 20 : w > 1000 ? 1000 : w;
}

static int client_lat(struct client *cl, uint32_t size, struct lat_row *row)
{
	struct conn c;
	uint64_t n = ivb_opt.iters, w = warmup_of(n);
	struct wire_hdr h = {.magic = WIRE_MAGIC, .op = OP_LAT, .size = size, .count = n + w};
	struct wire_res r;
	int64_t t, prev, c0 = 0, c1;
	double sum = 0;
	int rc;

	rc = client_connect(cl, &c);
	if (rc < 0)
		return rc;
	rc = ivb_conn_send(&c, &h, sizeof(h));
	memset(cl->buf, 0xa5, size);
	prev = ivl__now_ns();
	for (uint64_t i = 0; rc >= 0 && i < n + w; i++) {
		if (i == w) {
			c0 = bench_cpu_ns();
			prev = ivl__now_ns();
		}
		rc = ivb_conn_send(&c, cl->buf, size);
		if (rc < 0)
			break;
		rc = ivb_conn_recv(&c, cl->buf, size);
		if (rc <= 0) {
			rc = rc < 0 ? rc : -ECONNRESET;
			break;
		}
		t = ivl__now_ns();
		if (i >= w)
			cl->samples[i - w] = t - prev;
		prev = t;
	}
	c1 = bench_cpu_ns();
	if (rc >= 0)
		rc = client_finish(&c, &r);
	ivb_conn_close(&c);
	if (rc < 0)
		return rc;

	memset(row, 0, sizeof(*row));
	snprintf(row->mode, sizeof(row->mode), "%s", cl->row);
	row->size = size;
	row->n = n;
	for (uint64_t i = 0; i < n; i++)
		sum += (double)cl->samples[i];
	bench_sort_i64(cl->samples, n);
	row->have_pct = true;
	row->min = cl->samples[0];
	row->p50 = bench_pct(cl->samples, n, 0.50);
	row->p90 = bench_pct(cl->samples, n, 0.90);
	row->p99 = bench_pct(cl->samples, n, 0.99);
	row->p999 = bench_pct(cl->samples, n, 0.999);
	row->max = cl->samples[n - 1];
	row->avg = sum / (double)n;
	row->have_cdf = true;
	for (int i = 0; i < NQ; i++)
		row->cdf[i] = i == 0 ? row->min : bench_pct(cl->samples, n, cdf_q(i));
	row->cli_cpu_ns = (double)(c1 - c0) / (double)n;
	/* The server's figure covers the warm-up too: per echoed message. */
	row->srv_cpu_ns = r.msgs ? (double)r.cpu_ns / (double)r.msgs : 0;
	return 0;
}

static int client_tput(struct client *cl, uint32_t size, struct tput_row *row)
{
	struct conn c;
	int64_t dur = (int64_t)ivb_opt.duration_ms * 1000000LL;
	struct wire_hdr h = {
	    .magic = WIRE_MAGIC, .op = OP_TPUT, .size = size, .duration_ns = (uint64_t)dur};
	struct wire_res r;
	int64_t t0, c0, c1;
	uint64_t sent = 0;
	int rc;

	rc = client_connect(cl, &c);
	if (rc < 0)
		return rc;
	memset(cl->buf, 0x5a, size);
	rc = ivb_conn_send(&c, &h, sizeof(h));
	t0 = ivl__now_ns();
	c0 = bench_cpu_ns();
	while (rc >= 0) {
		rc = ivb_conn_send(&c, cl->buf, size);
		sent++;
		/* The clock is read every few messages: at 64 B a clock read
		 * per send would be a visible share of the native path. */
		if ((sent & 15) == 0 && ivl__now_ns() - t0 >= dur)
			break;
	}
	if (rc >= 0)
		rc = ivb_conn_shutdown_wr(&c);
	c1 = bench_cpu_ns();
	if (rc >= 0)
		rc = client_finish(&c, &r);
	ivb_conn_close(&c);
	if (rc < 0)
		return rc;
	if (r.msgs != sent)
		return -EPROTO;
	memset(row, 0, sizeof(*row));
	snprintf(row->mode, sizeof(row->mode), "%s", cl->row);
	row->size = size;
	row->msgs = r.msgs;
	row->bytes = r.bytes;
	row->ns = (int64_t)r.elapsed_ns;
	row->snd_cpu_ns = (double)(c1 - c0);
	row->rcv_cpu_ns = (double)r.cpu_ns;
	return 0;
}

int ivb_run_client(const struct mode_def *m)
{
	struct client cl = {.m = m, .row = ivb_opt.name ? ivb_opt.name : m->name};
	int rc = 0;

	cl.buf = malloc(MAX_MSG);
	cl.samples = calloc(ivb_opt.iters, sizeof(int64_t));
	if (!cl.buf || !cl.samples) {
		rc = -ENOMEM;
		goto out;
	}
	if (m->kind == K_NATIVE) {
		char name[32];
		long peer;

		bool autopeer = !ivb_opt.peer || strcmp(ivb_opt.peer, "auto") == 0;

		if (autopeer)
			snprintf(name, sizeof(name), "ivb-c");
		else
			snprintf(name, sizeof(name), "ivb-c%ld", strtol(ivb_opt.peer, NULL, 0));
		rc = ivb_native_open(name, ivb_opt.spin_set ? ivb_opt.spin_ns : m->spin_ns, &cl.ep);
		if (rc < 0) {
			ivb_msg("client: endpoint %s: %s",
				ivb_opt.endpoint ? ivb_opt.endpoint : "(default)", strerror(-rc));
			goto out;
		}
		if (autopeer) {
			peer = ivb_native_find_peer(cl.ep, "ivb-s", NULL);
			if (peer < 0) {
				rc = (int)peer;
				ivb_msg("client: no single server peer named ivb-s within %u s",
					ivb_opt.timeout_s);
				goto out;
			}
		} else {
			peer = strtol(ivb_opt.peer, NULL, 0);
		}
		cl.peer = (uint32_t)peer;
	} else {
		if (!ivb_opt.connect) {
			ivb_msg("client: --connect ADDR is required for mode %s", m->name);
			rc = -EINVAL;
			goto out;
		}
		rc = ivb_parse_addr(ivb_opt.connect, m->kind, &cl.ss, &cl.sslen);
		if (rc < 0) {
			ivb_msg("client: bad --connect address %s", ivb_opt.connect);
			goto out;
		}
	}
	for (uint32_t i = 0; i < ivb_opt.n_lat_sizes && rc >= 0; i++) {
		struct lat_row *row = &ivb_store.lat[ivb_store.n_lat];

		rc = client_lat(&cl, ivb_opt.lat_sizes[i], row);
		if (rc < 0)
			ivb_msg("client: %s latency %u B: %s", cl.row, ivb_opt.lat_sizes[i],
				strerror(-rc));
		else if (ivb_store.n_lat + 1 < MAX_ROWS)
			ivb_store.n_lat++;
	}
	for (uint32_t i = 0; i < ivb_opt.n_tput_sizes && rc >= 0; i++) {
		struct tput_row rep[MAX_REPEAT];
		uint32_t n = 0;

		/* A shared machine stalls a window now and then: the median
		 * of a few repetitions (by rate) is the figure reported. */
		for (; n < ivb_opt.repeat && rc >= 0; n++) {
			rc = client_tput(&cl, ivb_opt.tput_sizes[i], &rep[n]);
			if (rc < 0)
				ivb_msg("client: %s throughput %u B: %s", cl.row,
					ivb_opt.tput_sizes[i], strerror(-rc));
		}
		if (rc < 0)
			break;
		for (uint32_t a = 1; a < n; a++)
			for (uint32_t b = a; b > 0 && ivb_t_gbps(&rep[b - 1]) > ivb_t_gbps(&rep[b]);
			     b--) {
				struct tput_row t = rep[b];

				rep[b] = rep[b - 1];
				rep[b - 1] = t;
			}
		if (ivb_store.n_tput + 1 < MAX_ROWS)
			ivb_store.tput[ivb_store.n_tput++] = rep[n / 2];
	}
	if (rc >= 0) {
		struct conn c;
		struct wire_hdr h = {.magic = WIRE_MAGIC, .op = OP_END};
		struct wire_res r;

		rc = client_connect(&cl, &c);
		if (rc >= 0) {
			rc = ivb_conn_send(&c, &h, sizeof(h));
			if (rc >= 0)
				rc = client_finish(&c, &r);
			ivb_conn_close(&c);
		}
	}
	ivb_print_result_lines(stdout, &ivb_store);
	fflush(stdout);
out:
	ivl_endpoint_close(cl.ep);
	free(cl.buf);
	free(cl.samples);
	return rc;
}
