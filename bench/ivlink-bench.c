/* SPDX-License-Identifier: MIT */
/*
 * ivlink-bench: what ivlink buys an application, against the sockets it
 * replaces, measured in one run (issue 6). Where ivlink-ring-bench measures
 * the bare ring inside one forked process pair, this tool measures whole
 * transports as an application sees them: the native API (libivlink through
 * ivlinkd, or the guest backend inside a VM), TCP, UNIX sockets, and TCP run
 * under the socket shim (ivlink-run).
 *
 * Every measurement is a client process talking to a server process through
 * one transport ("mode"):
 *
 *   latency     the client sends SIZE bytes, the server echoes them; one
 *               sample per round trip (CLOCK_MONOTONIC), percentiles by
 *               nearest rank, after a discarded warm-up.
 *   throughput  the client sends SIZE-byte messages for DURATION, one send
 *               call each, then shuts down writing; the server receives
 *               them one message at a time until end of stream. Rates are
 *               the receiver's bytes over the receiver's elapsed time.
 *   CPU cost    each process reads its own CLOCK_PROCESS_CPUTIME_ID around
 *               its side of every test (spinning, copies, system calls and
 *               wake-ups all count); the server sends its figure back. Per
 *               message = CPU / messages; per byte = CPU / bytes.
 *
 * Each test runs on a connection of its own (a TCP/UNIX connection, or a
 * native channel named "ivb<k>"), opened with a 32-byte header saying what
 * to do, and closed with the server's 48-byte result. So the same client
 * and server work between two host processes and between two VMs (--role).
 *
 * Without --role the tool orchestrates a host run: it starts a private
 * ivlinkd (for the native modes) and, per mode, a server and a client
 * (itself, re-executed, pinned to two CPUs), collects the client's result
 * lines, and prints/writes everything. With --from it only aggregates result
 * lines from files, e.g. the serial consoles of the guests (ivlink-libvirt
 * bench). The result lines ("IVB ...", see print_result_lines()) are the
 * only interface between the roles, so a row measured in a VM and a row
 * measured on the host are handled by the same code.
 *
 * Ratios are always against baselines of the same run (design.md): tcp on
 * the host, vm-tcp in the VMs. The CPU goal (>= 90% less CPU per
 * message than TCP) is reported, never asserted: a shared machine must not
 * fail a build on a measurement.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/ivlink.h>

#include "bench_common.h"

/* ------------------------------------------------------------ parameters */

#define MAX_SIZES   16
#define MAX_MODES   8
#define MAX_ROWS    256
#define MAX_MSG	    (1u << 20)	  /* largest message size accepted */
#define WIRE_MAGIC  0x31425649u	  /* "IVB1" */
#define SPIN_LONG   10000000000LL /* ivlink-spin: 10 s, i.e. never sleeps */
#define NATIVE_RING (1u << 20)

/* Default and --quick run lengths. The default run of every host mode takes
 * about a minute on the 2-vCPU reference machine; --quick a few seconds. */
#define ITERS_DEFAULT	    10000u
#define ITERS_QUICK	    300u
#define DURATION_DEFAULT_MS 300u
#define DURATION_QUICK_MS   40u
#define TIMEOUT_DEFAULT_S   60u
#define REPEAT_DEFAULT	    3u
#define MAX_REPEAT	    9u

static const uint32_t lat_sizes_default[] = {64, 1024, 16384};
static const uint32_t tput_sizes_default[] = {64, 256, 1024, 4096, 16384, 65536, 262144, 1048576};
static const uint32_t tput_sizes_quick[] = {64, 1024, 16384, 262144, 1048576};

/* Quantiles of the latency CDF lines and plots: min, every percent, then
 * the tail. */
#define NQ 104
static double cdf_q(int i)
{
	static const double tail[] = {0.995, 0.999, 0.9999, 1.0};

	if (i == 0)
		return 0.0;
	if (i < 100)
		return i / 100.0;
	return tail[i - 100];
}

enum kind { K_NATIVE, K_TCP, K_UNIX };

struct mode_def {
	const char *name;
	enum kind kind;
	int64_t spin_ns; /* native: endpoint spin budget (0: library default) */
	bool shim;	 /* run both ends under ivlink-run */
	const char *what;
};

static const struct mode_def mode_defs[] = {
    {"ivlink", K_NATIVE, 0, false, "native API, library default spin budget then sleep"},
    {"ivlink-spin", K_NATIVE, SPIN_LONG, false, "native API, waits spin (never sleep)"},
    {"ivlink-block", K_NATIVE, -1, false, "native API, waits sleep at once (doorbells)"},
    {"tcp", K_TCP, 0, false, "TCP over loopback, TCP_NODELAY (baseline)"},
    {"unix", K_UNIX, 0, false, "UNIX stream socket"},
    {"shim-tcp", K_TCP, 0, true, "TCP under ivlink-run (socket shim)"},
};
#define N_MODE_DEFS (sizeof(mode_defs) / sizeof(mode_defs[0]))
static const char *const host_modes_default = "ivlink,ivlink-spin,ivlink-block,tcp,unix,shim-tcp";

/* ------------------------------------------------------------ results */

struct lat_row {
	char mode[32];
	uint32_t size;
	uint64_t n;
	bool have_pct; /* false for rows that carry min/avg/max only */
	int64_t min, p50, p90, p99, p999, max;
	double avg;
	double cli_cpu_ns, srv_cpu_ns; /* per round trip */
	bool have_cdf;
	int64_t cdf[NQ];
};

struct tput_row {
	char mode[32];
	uint32_t size;
	uint64_t msgs, bytes;
	int64_t ns;		       /* receiver's elapsed time */
	double snd_cpu_ns, rcv_cpu_ns; /* whole test, each end */
};

struct store {
	struct lat_row lat[MAX_ROWS];
	size_t n_lat;
	struct tput_row tput[MAX_ROWS];
	size_t n_tput;
	char skipped[MAX_MODES * 2][160];
	size_t n_skipped;
	char failed[MAX_MODES * 2][160];
	size_t n_failed;
	char meta[16][2][128]; /* key, value: from --from files and the run */
	size_t n_meta;
};

/* ------------------------------------------------------------ options */

struct opts {
	const char *role; /* NULL, "server", "client" */
	char modes[256];
	const char *mode; /* --mode (roles) */
	const char *name; /* row name of a client's results */
	const char *listen, *connect, *endpoint, *peer;
	const char *daemon, *ivlink_run, *out, *label;
	const char *from[16];
	int n_from;
	uint32_t iters, duration_ms, timeout_s, repeat;
	uint32_t lat_sizes[MAX_SIZES], n_lat_sizes;
	uint32_t tput_sizes[MAX_SIZES], n_tput_sizes;
	int cpu, cpus[2];
	int64_t spin_ns;
	bool spin_set, quick, plot, json_stdout;
};

static struct opts o;
static struct store st;
static char self_exe[PATH_MAX];
static char tmpdir[PATH_MAX];
static pid_t daemon_pid = -1;

static void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("ivlink-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* snprintf that says when the result did not fit (paths built from
 * arguments): 0 or -ENAMETOOLONG. */
static int fmt(char *buf, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
static int fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, len, f, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static const struct mode_def *mode_find(const char *name)
{
	for (size_t i = 0; i < N_MODE_DEFS; i++)
		if (strcmp(mode_defs[i].name, name) == 0)
			return &mode_defs[i];
	return NULL;
}

/* ------------------------------------------------------------ wire */

enum op { OP_LAT = 1, OP_TPUT = 2, OP_END = 3 };

struct wire_hdr {
	uint32_t magic;
	uint32_t op;
	uint32_t size;
	uint32_t reserved;
	uint64_t count;	      /* OP_LAT: round trips to echo */
	uint64_t duration_ns; /* OP_TPUT: informative */
};

struct wire_res {
	uint32_t magic;
	int32_t status; /* 0 or -errno of the server's side */
	uint64_t msgs;
	uint64_t bytes;
	uint64_t elapsed_ns;
	uint64_t cpu_ns;
	uint64_t reserved;
};

_Static_assert(sizeof(struct wire_hdr) == 32, "header is 32 bytes on the wire");
_Static_assert(sizeof(struct wire_res) == 48, "result is 48 bytes on the wire");

/* One test's connection: a socket or a native channel. */
struct conn {
	enum kind kind;
	int fd;
	struct ivl_channel *ch;
};

static int conn_send(struct conn *c, const void *buf, size_t len)
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
static int conn_recv(struct conn *c, void *buf, size_t len)
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

static int conn_shutdown_wr(struct conn *c)
{
	if (c->kind == K_NATIVE)
		return ivl_channel_shutdown(c->ch, IVL_SHUT_WR);
	return shutdown(c->fd, SHUT_WR) < 0 ? -errno : 0;
}

static void conn_close(struct conn *c)
{
	if (c->ch)
		ivl_channel_close(c->ch);
	if (c->fd >= 0)
		close(c->fd);
	c->ch = NULL;
	c->fd = -1;
}

static void sock_timeouts(int fd, uint32_t secs)
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
static int parse_addr(const char *s, enum kind kind, struct sockaddr_storage *ss, socklen_t *len)
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

static int native_open(const char *name, int64_t spin_ns, struct ivl_endpoint **ep)
{
	struct ivl_endpoint_opts eo = {0};

	eo.uri = o.endpoint; /* NULL: $IVLINK_ENDPOINT or the default */
	eo.name = name;
	eo.spin_ns = spin_ns;
	eo.connect_timeout_ns = (int64_t)o.timeout_s * 1000000000LL;
	return ivl_endpoint_open(ep, &eo);
}

/* Waits for exactly one UP peer (other than us) named want or, when alt is
 * not NULL, alt; returns its id or -ETIMEDOUT. */
static long native_find_peer(struct ivl_endpoint *ep, const char *want, const char *alt)
{
	int64_t deadline = bench_now_ns() + (int64_t)o.timeout_s * 1000000000LL;
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
		if (bench_now_ns() > deadline)
			return -ETIMEDOUT;
		ivl_endpoint_process(ep);
		usleep(2000);
	}
}

static int native_channel(struct ivl_endpoint *ep, uint32_t peer, unsigned k, struct conn *c)
{
	struct ivl_channel_opts co = {0};
	int64_t to = (int64_t)o.timeout_s * 1000000000LL;
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

/* ------------------------------------------------------------ server */

static int serve_one(struct conn *c, uint8_t *buf, bool *end)
{
	struct wire_hdr h;
	struct wire_res r = {.magic = WIRE_MAGIC};
	int64_t t0, c0;
	int rc;

	rc = conn_recv(c, &h, sizeof(h));
	if (rc <= 0)
		return rc < 0 ? rc : -ECONNRESET;
	if (h.magic != WIRE_MAGIC || h.size > MAX_MSG)
		return -EPROTO;
	t0 = bench_now_ns();
	c0 = bench_cpu_ns();
	switch (h.op) {
	case OP_LAT:
		for (uint64_t i = 0; i < h.count; i++) {
			rc = conn_recv(c, buf, h.size);
			if (rc <= 0)
				break;
			rc = conn_send(c, buf, h.size);
			if (rc < 0)
				break;
			r.msgs++;
			r.bytes += h.size;
		}
		break;
	case OP_TPUT:
		for (;;) {
			rc = conn_recv(c, buf, h.size ? h.size : 1);
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
	r.elapsed_ns = (uint64_t)(bench_now_ns() - t0);
	r.cpu_ns = (uint64_t)(bench_cpu_ns() - c0);
	r.status = rc < 0 ? rc : 0;
	rc = conn_send(c, &r, sizeof(r));
	return rc < 0 ? rc : r.status;
}

static int run_server(const struct mode_def *m)
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

		rc = native_open("ivb-s", o.spin_set ? o.spin_ns : m->spin_ns, &ep);
		if (rc < 0) {
			msg("server: endpoint %s: %s", o.endpoint ? o.endpoint : "(default)",
			    strerror(-rc));
			goto out;
		}
		printf("IVB-READY peer=%u\n", ivl_endpoint_id(ep));
		fflush(stdout);
		snprintf(want, sizeof(want), "ivb-c%u", ivl_endpoint_id(ep));
		/* A client told the server's id names itself after it (so
		 * that several servers can share a region); one that found
		 * the server by name (--peer auto) has the generic name. */
		peer = native_find_peer(ep, want, "ivb-c");
		if (peer < 0) {
			rc = (int)peer;
			msg("server: no client peer named %s within %u s", want, o.timeout_s);
			goto out;
		}
	} else {
		struct sockaddr_storage ss;
		socklen_t len;
		int one = 1;

		rc = parse_addr(o.listen	    ? o.listen
				: m->kind == K_UNIX ? "ivb.sock"
						    : "127.0.0.1:0",
				m->kind, &ss, &len);
		if (rc < 0) {
			msg("server: bad --listen address");
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
			msg("server: bind/listen: %s", strerror(errno));
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
			rc = native_channel(ep, (uint32_t)peer, k, &c);
			if (rc < 0) {
				msg("server: channel ivb%u: %s", k, strerror(-rc));
				break;
			}
		} else {
			struct pollfd pfd = {.fd = lfd, .events = POLLIN};

			rc = poll(&pfd, 1, (int)o.timeout_s * 1000);
			if (rc <= 0) {
				rc = rc == 0 ? -ETIMEDOUT : -errno;
				msg("server: no connection within %u s", o.timeout_s);
				break;
			}
			c.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (c.fd < 0) {
				rc = -errno;
				break;
			}
			sock_timeouts(c.fd, o.timeout_s);
		}
		rc = serve_one(&c, buf, &end);
		conn_close(&c);
		if (rc < 0) {
			msg("server: test %u: %s", k, strerror(-rc));
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
	int64_t deadline = bench_now_ns() + (int64_t)o.timeout_s * 1000000000LL;

	c->kind = cl->m->kind;
	c->fd = -1;
	c->ch = NULL;
	if (cl->m->kind == K_NATIVE)
		return native_channel(cl->ep, cl->peer, cl->k++, c);
	/* Retry while the server is not up yet: in VMs the two sides boot
	 * independently. */
	for (;;) {
		c->fd = socket(cl->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0)
			return -errno;
		sock_timeouts(c->fd, o.timeout_s);
		if (connect(c->fd, (struct sockaddr *)&cl->ss, cl->sslen) == 0)
			return 0;
		int err = errno;

		close(c->fd);
		c->fd = -1;
		if ((err != ECONNREFUSED && err != ENOENT && err != EHOSTUNREACH &&
		     err != ENETUNREACH && err != ETIMEDOUT) ||
		    bench_now_ns() > deadline)
			return -err;
		usleep(100000);
	}
}

static int client_finish(struct conn *c, struct wire_res *r)
{
	int rc = conn_recv(c, r, sizeof(*r));

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
	uint64_t n = o.iters, w = warmup_of(n);
	struct wire_hdr h = {.magic = WIRE_MAGIC, .op = OP_LAT, .size = size, .count = n + w};
	struct wire_res r;
	int64_t t, prev, c0 = 0, c1;
	double sum = 0;
	int rc;

	rc = client_connect(cl, &c);
	if (rc < 0)
		return rc;
	rc = conn_send(&c, &h, sizeof(h));
	memset(cl->buf, 0xa5, size);
	prev = bench_now_ns();
	for (uint64_t i = 0; rc >= 0 && i < n + w; i++) {
		if (i == w) {
			c0 = bench_cpu_ns();
			prev = bench_now_ns();
		}
		rc = conn_send(&c, cl->buf, size);
		if (rc < 0)
			break;
		rc = conn_recv(&c, cl->buf, size);
		if (rc <= 0) {
			rc = rc < 0 ? rc : -ECONNRESET;
			break;
		}
		t = bench_now_ns();
		if (i >= w)
			cl->samples[i - w] = t - prev;
		prev = t;
	}
	c1 = bench_cpu_ns();
	if (rc >= 0)
		rc = client_finish(&c, &r);
	conn_close(&c);
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
	int64_t dur = (int64_t)o.duration_ms * 1000000LL;
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
	rc = conn_send(&c, &h, sizeof(h));
	t0 = bench_now_ns();
	c0 = bench_cpu_ns();
	while (rc >= 0) {
		rc = conn_send(&c, cl->buf, size);
		sent++;
		/* The clock is read every few messages: at 64 B a clock read
		 * per send would be a visible share of the native path. */
		if ((sent & 15) == 0 && bench_now_ns() - t0 >= dur)
			break;
	}
	if (rc >= 0)
		rc = conn_shutdown_wr(&c);
	c1 = bench_cpu_ns();
	if (rc >= 0)
		rc = client_finish(&c, &r);
	conn_close(&c);
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

static void print_result_lines(FILE *f, const struct store *s);
static double t_gbps(const struct tput_row *t);

static int run_client(const struct mode_def *m)
{
	struct client cl = {.m = m, .row = o.name ? o.name : m->name};
	int rc = 0;

	cl.buf = malloc(MAX_MSG);
	cl.samples = calloc(o.iters, sizeof(int64_t));
	if (!cl.buf || !cl.samples) {
		rc = -ENOMEM;
		goto out;
	}
	if (m->kind == K_NATIVE) {
		char name[32];
		long peer;

		bool autopeer = !o.peer || strcmp(o.peer, "auto") == 0;

		if (autopeer)
			snprintf(name, sizeof(name), "ivb-c");
		else
			snprintf(name, sizeof(name), "ivb-c%ld", strtol(o.peer, NULL, 0));
		rc = native_open(name, o.spin_set ? o.spin_ns : m->spin_ns, &cl.ep);
		if (rc < 0) {
			msg("client: endpoint %s: %s", o.endpoint ? o.endpoint : "(default)",
			    strerror(-rc));
			goto out;
		}
		if (autopeer) {
			peer = native_find_peer(cl.ep, "ivb-s", NULL);
			if (peer < 0) {
				rc = (int)peer;
				msg("client: no single server peer named ivb-s within %u s",
				    o.timeout_s);
				goto out;
			}
		} else {
			peer = strtol(o.peer, NULL, 0);
		}
		cl.peer = (uint32_t)peer;
	} else {
		if (!o.connect) {
			msg("client: --connect ADDR is required for mode %s", m->name);
			rc = -EINVAL;
			goto out;
		}
		rc = parse_addr(o.connect, m->kind, &cl.ss, &cl.sslen);
		if (rc < 0) {
			msg("client: bad --connect address %s", o.connect);
			goto out;
		}
	}
	for (uint32_t i = 0; i < o.n_lat_sizes && rc >= 0; i++) {
		struct lat_row *row = &st.lat[st.n_lat];

		rc = client_lat(&cl, o.lat_sizes[i], row);
		if (rc < 0)
			msg("client: %s latency %u B: %s", cl.row, o.lat_sizes[i], strerror(-rc));
		else if (st.n_lat + 1 < MAX_ROWS)
			st.n_lat++;
	}
	for (uint32_t i = 0; i < o.n_tput_sizes && rc >= 0; i++) {
		struct tput_row rep[MAX_REPEAT];
		uint32_t n = 0;

		/* A shared machine stalls a window now and then: the median
		 * of a few repetitions (by rate) is the figure reported. */
		for (; n < o.repeat && rc >= 0; n++) {
			rc = client_tput(&cl, o.tput_sizes[i], &rep[n]);
			if (rc < 0)
				msg("client: %s throughput %u B: %s", cl.row, o.tput_sizes[i],
				    strerror(-rc));
		}
		if (rc < 0)
			break;
		for (uint32_t a = 1; a < n; a++)
			for (uint32_t b = a; b > 0 && t_gbps(&rep[b - 1]) > t_gbps(&rep[b]); b--) {
				struct tput_row t = rep[b];

				rep[b] = rep[b - 1];
				rep[b - 1] = t;
			}
		if (st.n_tput + 1 < MAX_ROWS)
			st.tput[st.n_tput++] = rep[n / 2];
	}
	if (rc >= 0) {
		struct conn c;
		struct wire_hdr h = {.magic = WIRE_MAGIC, .op = OP_END};
		struct wire_res r;

		rc = client_connect(&cl, &c);
		if (rc >= 0) {
			rc = conn_send(&c, &h, sizeof(h));
			if (rc >= 0)
				rc = client_finish(&c, &r);
			conn_close(&c);
		}
	}
	print_result_lines(stdout, &st);
	fflush(stdout);
out:
	ivl_endpoint_close(cl.ep);
	free(cl.buf);
	free(cl.samples);
	return rc;
}

/* ------------------------------------------------------------ result lines */

static void print_cdf(FILE *f, const struct lat_row *l)
{
	fprintf(f, "IVB cdf mode=%s size=%u v=", l->mode, l->size);
	for (int i = 0; i < NQ; i++)
		fprintf(f, "%s%" PRId64, i ? "," : "", l->cdf[i]);
	fputc('\n', f);
}

/*
 * The result lines, one result each, "IVB <kind> key=value ...":
 *   IVB lat  mode= size= n= min= p50= p90= p99= p999= max= avg= cli_cpu_ns=
 *            srv_cpu_ns=        (ns; the CPU figures per round trip)
 *   IVB cdf  mode= size= v=Q0,...,Q103   (latency at the quantiles of cdf_q())
 *   IVB tput mode= size= msgs= bytes= ns= snd_cpu_ns= rcv_cpu_ns=   (ns: the
 *            receiver's elapsed time; CPU: each end, whole test)
 *   IVB meta KEY=VALUE ...      (run metadata, e.g. accel=tcg)
 *   IVB skip mode= reason=      (a mode that could not run; '_' for spaces)
 * A lat line may carry only n, min, avg, max (rows measured by other tools,
 * e.g. ivlink-vfio-probe's doorbell round trips).
 */
static void print_result_lines(FILE *f, const struct store *s)
{
	for (size_t i = 0; i < s->n_lat; i++) {
		const struct lat_row *l = &s->lat[i];

		fprintf(f,
			"IVB lat mode=%s size=%u n=%" PRIu64 " min=%" PRId64 " p50=%" PRId64
			" p90=%" PRId64 " p99=%" PRId64 " p999=%" PRId64 " max=%" PRId64
			" avg=%.0f cli_cpu_ns=%.0f srv_cpu_ns=%.0f\n",
			l->mode, l->size, l->n, l->min, l->p50, l->p90, l->p99, l->p999, l->max,
			l->avg, l->cli_cpu_ns, l->srv_cpu_ns);
		if (l->have_cdf)
			print_cdf(f, l);
	}
	for (size_t i = 0; i < s->n_tput; i++) {
		const struct tput_row *t = &s->tput[i];

		fprintf(f,
			"IVB tput mode=%s size=%u msgs=%" PRIu64 " bytes=%" PRIu64 " ns=%" PRId64
			" snd_cpu_ns=%.0f rcv_cpu_ns=%.0f\n",
			t->mode, t->size, t->msgs, t->bytes, t->ns, t->snd_cpu_ns, t->rcv_cpu_ns);
	}
}

/* Value of key in a line of "key=value" words, copied into out. */
static bool kv(const char *line, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);

	for (const char *p = line; (p = strstr(p, key)) != NULL; p += kl) {
		if ((p == line || p[-1] == ' ') && p[kl] == '=') {
			size_t n = strcspn(p + kl + 1, " \r\n");

			if (n >= len)
				n = len - 1;
			memcpy(out, p + kl + 1, n);
			out[n] = 0;
			return true;
		}
	}
	return false;
}

static bool kv_i64(const char *line, const char *key, int64_t *v)
{
	char buf[32], *end;

	if (!kv(line, key, buf, sizeof(buf)) || !buf[0])
		return false;
	*v = (int64_t)strtod(buf, &end);
	return *end == 0;
}

static void add_note(char (*list)[160], size_t *n, size_t max, const char *mode, const char *why)
{
	if (*n < max)
		fmt(list[(*n)++], 160, "%s: %s", mode, why);
}

static void add_meta(const char *key, const char *val)
{
	for (size_t i = 0; i < st.n_meta; i++) {
		if (strcmp(st.meta[i][0], key) == 0) {
			snprintf(st.meta[i][1], sizeof(st.meta[i][1]), "%s", val);
			return;
		}
	}
	if (st.n_meta < sizeof(st.meta) / sizeof(st.meta[0])) {
		snprintf(st.meta[st.n_meta][0], sizeof(st.meta[0][0]), "%s", key);
		snprintf(st.meta[st.n_meta][1], sizeof(st.meta[0][1]), "%s", val);
		st.n_meta++;
	}
}

static struct lat_row *find_lat(const char *mode, uint32_t size)
{
	for (size_t i = 0; i < st.n_lat; i++)
		if (st.lat[i].size == size && strcmp(st.lat[i].mode, mode) == 0)
			return &st.lat[i];
	return NULL;
}

static struct tput_row *find_tput(const char *mode, uint32_t size)
{
	for (size_t i = 0; i < st.n_tput; i++)
		if (st.tput[i].size == size && strcmp(st.tput[i].mode, mode) == 0)
			return &st.tput[i];
	return NULL;
}

/* Parses one result line (anything before "IVB " is ignored, e.g. a console
 * prefix). Returns true if it was one. A repeated (mode, size) replaces the
 * earlier row. */
static bool parse_result_line(const char *raw)
{
	const char *line = strstr(raw, "IVB ");
	char mode[32], buf[160];
	int64_t v;

	if (!line)
		return false;
	line += 4;
	if (strncmp(line, "meta ", 5) == 0) {
		const char *p = line + 5;

		while (*p) {
			char key[64];
			size_t n = strcspn(p, "= \r\n");

			if (p[n] != '=' || n == 0 || n >= sizeof(key))
				break;
			memcpy(key, p, n);
			key[n] = 0;
			if (kv(line, key, buf, sizeof(buf))) {
				for (char *q = buf; *q; q++)
					if (*q == '_')
						*q = ' ';
				add_meta(key, buf);
			}
			p += n + 1 + strcspn(p + n + 1, " \r\n");
			p += strspn(p, " \r\n");
		}
		return true;
	}
	if (!kv(line, "mode", mode, sizeof(mode)))
		return false;
	if (strncmp(line, "skip ", 5) == 0) {
		if (!kv(line, "reason", buf, sizeof(buf)))
			snprintf(buf, sizeof(buf), "skipped");
		for (char *q = buf; *q; q++)
			if (*q == '_')
				*q = ' ';
		add_note(st.skipped, &st.n_skipped, MAX_MODES * 2, mode, buf);
		return true;
	}
	if (!kv_i64(line, "size", &v) || v < 0 || v > (int64_t)MAX_MSG)
		return false;
	uint32_t size = (uint32_t)v;

	if (strncmp(line, "lat ", 4) == 0) {
		struct lat_row *l = find_lat(mode, size);

		if (!l) {
			if (st.n_lat >= MAX_ROWS)
				return false;
			l = &st.lat[st.n_lat++];
		}
		memset(l, 0, sizeof(*l));
		snprintf(l->mode, sizeof(l->mode), "%s", mode);
		l->size = size;
		if (kv_i64(line, "n", &v))
			l->n = (uint64_t)v;
		kv_i64(line, "min", &l->min);
		kv_i64(line, "max", &l->max);
		if (kv_i64(line, "avg", &v))
			l->avg = (double)v;
		l->have_pct = kv_i64(line, "p50", &l->p50) && kv_i64(line, "p90", &l->p90) &&
			      kv_i64(line, "p99", &l->p99) && kv_i64(line, "p999", &l->p999);
		if (kv_i64(line, "cli_cpu_ns", &v))
			l->cli_cpu_ns = (double)v;
		if (kv_i64(line, "srv_cpu_ns", &v))
			l->srv_cpu_ns = (double)v;
		return true;
	}
	if (strncmp(line, "cdf ", 4) == 0) {
		struct lat_row *l = find_lat(mode, size);
		const char *p = strstr(line, " v=");
		int i;

		if (!l || !p)
			return false;
		p += 3;
		for (i = 0; i < NQ && *p; i++) {
			char *end;

			l->cdf[i] = strtoll(p, &end, 10);
			if (end == p)
				break;
			p = *end == ',' ? end + 1 : end;
		}
		l->have_cdf = i == NQ;
		return true;
	}
	if (strncmp(line, "tput ", 5) == 0) {
		struct tput_row *t = find_tput(mode, size);
		int64_t a = 0, b = 0;

		if (!t) {
			if (st.n_tput >= MAX_ROWS)
				return false;
			t = &st.tput[st.n_tput++];
		}
		memset(t, 0, sizeof(*t));
		snprintf(t->mode, sizeof(t->mode), "%s", mode);
		t->size = size;
		if (kv_i64(line, "msgs", &v))
			t->msgs = (uint64_t)v;
		if (kv_i64(line, "bytes", &v))
			t->bytes = (uint64_t)v;
		kv_i64(line, "ns", &t->ns);
		kv_i64(line, "snd_cpu_ns", &a);
		kv_i64(line, "rcv_cpu_ns", &b);
		t->snd_cpu_ns = (double)a;
		t->rcv_cpu_ns = (double)b;
		return true;
	}
	return false;
}

static int read_result_file(const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char line[4096];
	int n = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		n += parse_result_line(line);
	if (f != stdin)
		fclose(f);
	return n;
}

/* ------------------------------------------------------------ derived */

/* Baseline of a row: TCP of the same place (host or VMs). */
static const char *baseline_of(const char *mode)
{
	return strncmp(mode, "vm-", 3) == 0 ? "vm-tcp" : "tcp";
}

static double t_msgs_per_s(const struct tput_row *t)
{
	return t->ns > 0 ? (double)t->msgs * 1e9 / (double)t->ns : 0;
}

static double t_gbps(const struct tput_row *t)
{
	return t->ns > 0 ? (double)t->bytes / (double)t->ns : 0;
}

static double t_cpu_per_msg(const struct tput_row *t, int which) /* 0 snd, 1 rcv, 2 both */
{
	double c = which == 0	? t->snd_cpu_ns
		   : which == 1 ? t->rcv_cpu_ns
				: t->snd_cpu_ns + t->rcv_cpu_ns;

	return t->msgs ? c / (double)t->msgs : 0;
}

static double t_cpu_per_byte(const struct tput_row *t, int which)
{
	double c = which == 0	? t->snd_cpu_ns
		   : which == 1 ? t->rcv_cpu_ns
				: t->snd_cpu_ns + t->rcv_cpu_ns;

	return t->bytes ? c / (double)t->bytes : 0;
}

/* Percent less CPU per message than the baseline (negative: more);
 * NAN without a baseline. */
static double cpu_pct_less(double mine, double base)
{
	return base > 0 && mine > 0 ? 100.0 * (1.0 - mine / base) : NAN;
}

/* Ordered list of the distinct modes of the rows, in order of appearance. */
static size_t row_modes(char (*out)[32], size_t max)
{
	size_t n = 0;

	for (size_t k = 0; k < st.n_lat + st.n_tput; k++) {
		const char *m = k < st.n_lat ? st.lat[k].mode : st.tput[k - st.n_lat].mode;
		size_t j;

		for (j = 0; j < n && strcmp(out[j], m) != 0; j++)
			;
		if (j == n && n < max)
			snprintf(out[n++], 32, "%s", m);
	}
	return n;
}

/* ------------------------------------------------------------ human table */

static void size_str(char *buf, size_t len, uint32_t size)
{
	if (size >= (1u << 20) && size % (1u << 20) == 0)
		snprintf(buf, len, "%u MiB", size >> 20);
	else if (size >= 1024 && size % 1024 == 0)
		snprintf(buf, len, "%u KiB", size >> 10);
	else
		snprintf(buf, len, "%u B", size);
}

static void us(char *buf, size_t len, bool have, double ns)
{
	if (!have)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f", ns / 1000.0);
}

static void print_human(FILE *f)
{
	char modes[MAX_ROWS][32];
	size_t nm = row_modes(modes, MAX_ROWS);
	char sz[16], a[16], b[16], c[16], d[16], e[16], g[16], h[16];

	fprintf(f, "ivlink-bench results");
	for (size_t i = 0; i < st.n_meta; i++)
		fprintf(f, "%s %s=%s", i ? "," : ":", st.meta[i][0], st.meta[i][1]);
	fprintf(
	    f, "\n\nRound-trip latency in us (percentiles of n round trips); CPU us per round "
	       "trip on each end;\nspeed-up = baseline p50 / p50 (baseline: tcp, in VMs vm-tcp)\n");
	fprintf(f, "%-14s %8s %7s %8s %8s %8s %8s %9s %8s %8s %8s\n", "mode", "size", "n", "p50",
		"p90", "p99", "p99.9", "max", "cpu-cli", "cpu-srv", "speed-up");
	for (size_t mi = 0; mi < nm; mi++) {
		for (size_t i = 0; i < st.n_lat; i++) {
			const struct lat_row *l = &st.lat[i];
			const struct lat_row *base = find_lat(baseline_of(l->mode), l->size);
			char ratio[16] = "-";

			if (strcmp(l->mode, modes[mi]) != 0)
				continue;
			size_str(sz, sizeof(sz), l->size);
			us(a, sizeof(a), l->have_pct, (double)l->p50);
			us(b, sizeof(b), l->have_pct, (double)l->p90);
			us(c, sizeof(c), l->have_pct, (double)l->p99);
			us(d, sizeof(d), l->have_pct, (double)l->p999);
			us(e, sizeof(e), l->max > 0, (double)l->max);
			us(g, sizeof(g), l->cli_cpu_ns > 0, l->cli_cpu_ns);
			us(h, sizeof(h), l->srv_cpu_ns > 0, l->srv_cpu_ns);
			if (base && base->have_pct && l->have_pct && l->p50 > 0)
				snprintf(ratio, sizeof(ratio), "%.2fx",
					 (double)base->p50 / (double)l->p50);
			else if (!l->have_pct && l->avg > 0)
				snprintf(a, sizeof(a), "avg %.1f", l->avg / 1000.0);
			fprintf(f, "%-14s %8s %7" PRIu64 " %8s %8s %8s %8s %9s %8s %8s %8s\n",
				l->mode, sz, l->n, a, b, c, d, e, g, h, ratio);
		}
	}
	fprintf(f, "\nThroughput, one-way, one send/recv call per message; CPU ns per message "
		   "(sender, receiver, both);\nvs base = GB/s over the baseline's; CPU less = "
		   "CPU per message below the baseline's\n");
	fprintf(f, "%-14s %8s %11s %8s %9s %9s %9s %10s %8s %9s\n", "mode", "size", "msgs/s",
		"GB/s", "cpu-snd", "cpu-rcv", "cpu-both", "cpu ns/B", "vs base", "CPU less");
	for (size_t mi = 0; mi < nm; mi++) {
		for (size_t i = 0; i < st.n_tput; i++) {
			const struct tput_row *t = &st.tput[i];
			const struct tput_row *base = find_tput(baseline_of(t->mode), t->size);
			char r1[16] = "-", r2[16] = "-";

			if (strcmp(t->mode, modes[mi]) != 0)
				continue;
			size_str(sz, sizeof(sz), t->size);
			if (base && base != t && t_gbps(base) > 0)
				snprintf(r1, sizeof(r1), "%.2fx", t_gbps(t) / t_gbps(base));
			if (base && base != t) {
				double p =
				    cpu_pct_less(t_cpu_per_msg(t, 2), t_cpu_per_msg(base, 2));

				if (!isnan(p))
					snprintf(r2, sizeof(r2), "%.0f%%", p);
			}
			fprintf(f, "%-14s %8s %11.0f %8.3f %9.0f %9.0f %9.0f %10.3f %8s %9s\n",
				t->mode, sz, t_msgs_per_s(t), t_gbps(t), t_cpu_per_msg(t, 0),
				t_cpu_per_msg(t, 1), t_cpu_per_msg(t, 2), t_cpu_per_byte(t, 2), r1,
				r2);
		}
	}
	/* The goal, per mode: CPU per 64-byte message (throughput)
	 * and per 64-byte round trip, against the same run's TCP. */
	fprintf(f, "\nGoal (issue 6): >= 90%% less CPU per message than TCP (reported, not "
		   "asserted)\n");
	for (size_t mi = 0; mi < nm; mi++) {
		const char *m = modes[mi], *bm = baseline_of(m);
		const struct tput_row *t = find_tput(m, 64), *tb = find_tput(bm, 64);
		const struct lat_row *l = find_lat(m, 64), *lb = find_lat(bm, 64);

		if (strcmp(m, bm) == 0 || strcmp(m, "unix") == 0)
			continue;
		if (t && tb) {
			double p = cpu_pct_less(t_cpu_per_msg(t, 2), t_cpu_per_msg(tb, 2));

			fprintf(
			    f,
			    "  %-14s 64 B stream:     %6.1f%% less CPU per message than %s: %s\n",
			    m, p, bm, p >= 90 ? "met" : "not met");
		}
		if (l && lb && l->cli_cpu_ns > 0 && lb->cli_cpu_ns > 0) {
			double p = cpu_pct_less(l->cli_cpu_ns + l->srv_cpu_ns,
						lb->cli_cpu_ns + lb->srv_cpu_ns);

			fprintf(f,
				"  %-14s 64 B round trip: %6.1f%% less CPU per round trip than %s: "
				"%s\n",
				m, p, bm, p >= 90 ? "met" : "not met");
		}
	}
	for (size_t i = 0; i < st.n_skipped; i++)
		fprintf(f, "skipped %s\n", st.skipped[i]);
	for (size_t i = 0; i < st.n_failed; i++)
		fprintf(f, "FAILED %s\n", st.failed[i]);
}

/* ------------------------------------------------------------ files */

static FILE *open_out(const char *name, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", o.out, name);
	f = fopen(path, "w");
	if (!f)
		msg("cannot write %s: %s", path, strerror(errno));
	return f;
}

/* JSON number, or null for a figure that does not exist (NAN). */
static void jnum(FILE *f, const char *key, double v, bool comma)
{
	if (isnan(v) || isinf(v))
		fprintf(f, "\"%s\": null%s", key, comma ? ", " : "");
	else
		fprintf(f, "\"%s\": %.6g%s", key, v, comma ? ", " : "");
}

static void jstr(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static int write_csv(void)
{
	char path[PATH_MAX];
	FILE *f;

	f = open_out("latency.csv", path, sizeof(path));
	if (!f)
		return -errno;
	fprintf(f, "mode,size,n,min_ns,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,avg_ns,"
		   "cli_cpu_ns_per_rtt,srv_cpu_ns_per_rtt,p50_speedup_vs_base\n");
	for (size_t i = 0; i < st.n_lat; i++) {
		const struct lat_row *l = &st.lat[i];
		const struct lat_row *b = find_lat(baseline_of(l->mode), l->size);

		fprintf(f, "%s,%u,%" PRIu64 ",%" PRId64 ",", l->mode, l->size, l->n, l->min);
		if (l->have_pct)
			fprintf(f, "%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",", l->p50,
				l->p90, l->p99, l->p999);
		else
			fprintf(f, ",,,,");
		fprintf(f, "%" PRId64 ",%.0f,%.0f,%.0f,", l->max, l->avg, l->cli_cpu_ns,
			l->srv_cpu_ns);
		if (b && b->have_pct && l->have_pct && l->p50 > 0)
			fprintf(f, "%.4f", (double)b->p50 / (double)l->p50);
		fputc('\n', f);
	}
	fclose(f);

	f = open_out("latency_cdf.csv", path, sizeof(path));
	if (!f)
		return -errno;
	fprintf(f, "mode,size,quantile,ns\n");
	for (size_t i = 0; i < st.n_lat; i++) {
		const struct lat_row *l = &st.lat[i];

		for (int q = 0; l->have_cdf && q < NQ; q++)
			fprintf(f, "%s,%u,%.4f,%" PRId64 "\n", l->mode, l->size, cdf_q(q),
				l->cdf[q]);
	}
	fclose(f);

	f = open_out("throughput.csv", path, sizeof(path));
	if (!f)
		return -errno;
	fprintf(f, "mode,size,msgs,bytes,seconds,msgs_per_s,gbps,snd_cpu_ns_per_msg,"
		   "rcv_cpu_ns_per_msg,cpu_ns_per_msg,snd_cpu_ns_per_byte,rcv_cpu_ns_per_byte,"
		   "gbps_vs_base,cpu_pct_less_than_base\n");
	for (size_t i = 0; i < st.n_tput; i++) {
		const struct tput_row *t = &st.tput[i];
		const struct tput_row *b = find_tput(baseline_of(t->mode), t->size);

		fprintf(f, "%s,%u,%" PRIu64 ",%" PRIu64 ",%.6f,%.0f,%.6f,%.1f,%.1f,%.1f,%.5f,%.5f,",
			t->mode, t->size, t->msgs, t->bytes, (double)t->ns / 1e9, t_msgs_per_s(t),
			t_gbps(t), t_cpu_per_msg(t, 0), t_cpu_per_msg(t, 1), t_cpu_per_msg(t, 2),
			t_cpu_per_byte(t, 0), t_cpu_per_byte(t, 1));
		if (b && t_gbps(b) > 0) {
			double p = cpu_pct_less(t_cpu_per_msg(t, 2), t_cpu_per_msg(b, 2));

			fprintf(f, "%.4f,", t_gbps(t) / t_gbps(b));
			if (!isnan(p))
				fprintf(f, "%.2f", p);
		} else {
			fputc(',', f);
		}
		fputc('\n', f);
	}
	fclose(f);
	return 0;
}

static const char *const plot_files[] = {"latency_cdf.png", "throughput.png", "cpu.png"};

static int write_json(bool plotted)
{
	char path[PATH_MAX], modes[MAX_ROWS][32];
	size_t nm = row_modes(modes, MAX_ROWS);
	FILE *f = open_out("results.json", path, sizeof(path));

	if (!f)
		return -errno;
	fprintf(f, "{\"tool\": \"ivlink-bench\", \"schema\": 1,\n \"meta\": {");
	for (size_t i = 0; i < st.n_meta; i++) {
		fprintf(f, "%s", i ? ", " : "");
		jstr(f, st.meta[i][0]);
		fprintf(f, ": ");
		jstr(f, st.meta[i][1]);
	}
	fprintf(f, "},\n \"modes\": [");
	for (size_t i = 0; i < nm; i++) {
		fprintf(f, "%s", i ? ", " : "");
		jstr(f, modes[i]);
	}
	fprintf(f, "],\n \"skipped\": [");
	for (size_t i = 0; i < st.n_skipped; i++) {
		fprintf(f, "%s", i ? ", " : "");
		jstr(f, st.skipped[i]);
	}
	fprintf(f, "],\n \"failed\": [");
	for (size_t i = 0; i < st.n_failed; i++) {
		fprintf(f, "%s", i ? ", " : "");
		jstr(f, st.failed[i]);
	}
	fprintf(f, "],\n \"latency\": [");
	for (size_t i = 0; i < st.n_lat; i++) {
		const struct lat_row *l = &st.lat[i];
		const struct lat_row *b = find_lat(baseline_of(l->mode), l->size);

		fprintf(f, "%s\n  {\"mode\": ", i ? "," : "");
		jstr(f, l->mode);
		fprintf(f, ", \"baseline\": ");
		jstr(f, baseline_of(l->mode));
		fprintf(f, ", \"size\": %u, \"n\": %" PRIu64 ", ", l->size, l->n);
		jnum(f, "min_ns", (double)l->min, true);
		jnum(f, "p50_ns", l->have_pct ? (double)l->p50 : NAN, true);
		jnum(f, "p90_ns", l->have_pct ? (double)l->p90 : NAN, true);
		jnum(f, "p99_ns", l->have_pct ? (double)l->p99 : NAN, true);
		jnum(f, "p999_ns", l->have_pct ? (double)l->p999 : NAN, true);
		jnum(f, "max_ns", (double)l->max, true);
		jnum(f, "avg_ns", l->avg, true);
		jnum(f, "cli_cpu_ns_per_rtt", l->cli_cpu_ns > 0 ? l->cli_cpu_ns : NAN, true);
		jnum(f, "srv_cpu_ns_per_rtt", l->srv_cpu_ns > 0 ? l->srv_cpu_ns : NAN, true);
		jnum(f, "p50_speedup_vs_base",
		     b && b->have_pct && l->have_pct && l->p50 > 0 ? (double)b->p50 / (double)l->p50
								   : NAN,
		     true);
		jnum(
		    f, "cpu_pct_less_than_base",
		    b && b != l && l->cli_cpu_ns > 0 && b->cli_cpu_ns > 0
			? cpu_pct_less(l->cli_cpu_ns + l->srv_cpu_ns, b->cli_cpu_ns + b->srv_cpu_ns)
			: NAN,
		    false);
		fprintf(f, "}");
	}
	fprintf(f, "],\n \"throughput\": [");
	for (size_t i = 0; i < st.n_tput; i++) {
		const struct tput_row *t = &st.tput[i];
		const struct tput_row *b = find_tput(baseline_of(t->mode), t->size);

		fprintf(f, "%s\n  {\"mode\": ", i ? "," : "");
		jstr(f, t->mode);
		fprintf(f, ", \"baseline\": ");
		jstr(f, baseline_of(t->mode));
		fprintf(f, ", \"size\": %u, \"msgs\": %" PRIu64 ", \"bytes\": %" PRIu64 ", ",
			t->size, t->msgs, t->bytes);
		jnum(f, "seconds", (double)t->ns / 1e9, true);
		jnum(f, "msgs_per_s", t_msgs_per_s(t), true);
		jnum(f, "gbps", t_gbps(t), true);
		jnum(f, "snd_cpu_ns_per_msg", t_cpu_per_msg(t, 0), true);
		jnum(f, "rcv_cpu_ns_per_msg", t_cpu_per_msg(t, 1), true);
		jnum(f, "cpu_ns_per_msg", t_cpu_per_msg(t, 2), true);
		jnum(f, "snd_cpu_ns_per_byte", t_cpu_per_byte(t, 0), true);
		jnum(f, "rcv_cpu_ns_per_byte", t_cpu_per_byte(t, 1), true);
		jnum(f, "gbps_vs_base", b && t_gbps(b) > 0 ? t_gbps(t) / t_gbps(b) : NAN, true);
		jnum(f, "cpu_pct_less_than_base",
		     b && b != t ? cpu_pct_less(t_cpu_per_msg(t, 2), t_cpu_per_msg(b, 2)) : NAN,
		     false);
		fprintf(f, "}");
	}
	/* One goal entry per non-baseline mode with a 64 B throughput row. */
	fprintf(f, "],\n \"goals\": [");
	bool first = true;

	for (size_t mi = 0; mi < nm; mi++) {
		const char *m = modes[mi], *bm = baseline_of(m);
		const struct tput_row *t = find_tput(m, 64), *tb = find_tput(bm, 64);
		double p;

		if (strcmp(m, bm) == 0 || !t || !tb)
			continue;
		p = cpu_pct_less(t_cpu_per_msg(t, 2), t_cpu_per_msg(tb, 2));
		fprintf(f, "%s\n  {\"goal\": \"cpu_per_msg_64b_pct_less_than_tcp\", \"mode\": ",
			first ? "" : ",");
		jstr(f, m);
		fprintf(f, ", \"baseline\": ");
		jstr(f, bm);
		fprintf(f, ", \"target\": 90, ");
		jnum(f, "value", p, true);
		fprintf(f, "\"met\": %s}", !isnan(p) && p >= 90 ? "true" : "false");
		first = false;
	}
	fprintf(f, "],\n \"files\": [\"latency.csv\", \"latency_cdf.csv\", \"throughput.csv\"");
	for (size_t i = 0; plotted && i < sizeof(plot_files) / sizeof(plot_files[0]); i++)
		fprintf(f, ", \"%s\"", plot_files[i]);
	fprintf(f, "]}\n");
	fclose(f);
	return 0;
}

/* Space-separated modes that have rows for a panel, for gnuplot's
 * "for [m in ...]": a curve without a single point is an error there. */
enum panel { P_CDF, P_TPUT, P_RTT_CPU };

static void panel_modes(char *buf, size_t len, enum panel p, uint32_t size)
{
	char modes[MAX_ROWS][32];
	size_t nm = row_modes(modes, MAX_ROWS);

	buf[0] = 0;
	for (size_t i = 0; i < nm; i++) {
		bool has = false;

		for (size_t k = 0; k < st.n_lat && p != P_TPUT; k++) {
			const struct lat_row *l = &st.lat[k];

			if (strcmp(l->mode, modes[i]) == 0 &&
			    (p == P_CDF ? l->have_cdf && l->size == size : l->cli_cpu_ns > 0))
				has = true;
		}
		for (size_t k = 0; k < st.n_tput && p == P_TPUT; k++)
			if (strcmp(st.tput[k].mode, modes[i]) == 0 && st.tput[k].msgs > 0)
				has = true;
		if (has && strlen(buf) + strlen(modes[i]) + 2 < len) {
			strcat(buf, buf[0] ? " " : "");
			strcat(buf, modes[i]);
		}
	}
}

/* One panel: the plot command over the modes with data, or an empty frame
 * saying there is none. */
static void plot_panel(FILE *f, const char *modes, const char *plot)
{
	if (!modes[0]) {
		fprintf(f, "set label 1 'no data in this run' at graph 0.35,0.5\n"
			   "plot [1:2][1:2] -1 notitle\nunset label 1\n");
		return;
	}
	fprintf(f, "modes = \"%s\"\n%s\n", modes, plot);
}

/* gnuplot: a script next to the CSV files, run there. Modes and sizes are
 * written into the script so that each curve filters its rows. */
static int write_plots(void)
{
	char path[PATH_MAX], list[2048], cmd[512];
	uint32_t lsz[MAX_SIZES * 2];
	size_t nl = 0;
	pid_t pid;
	int status;
	FILE *f;

	/* Latency sizes with a CDF (rows from other tools have none). */
	for (size_t i = 0; i < st.n_lat; i++) {
		size_t j;

		if (!st.lat[i].have_cdf)
			continue;
		for (j = 0; j < nl && lsz[j] != st.lat[i].size; j++)
			;
		if (j == nl && nl < MAX_SIZES * 2)
			lsz[nl++] = st.lat[i].size;
	}
	for (size_t i = 1; i < nl; i++)
		for (size_t j = i; j > 0 && lsz[j - 1] > lsz[j]; j--) {
			uint32_t t = lsz[j];

			lsz[j] = lsz[j - 1];
			lsz[j - 1] = t;
		}
	f = open_out("plots.gp", path, sizeof(path));
	if (!f)
		return -errno;
	fprintf(f, "# SPDX-License-Identifier: MIT\n"
		   "# Written by ivlink-bench: plots of the CSV files in this folder.\n"
		   "set datafile separator comma\n"
		   "set terminal pngcairo size 1500,520 font 'sans,10'\n"
		   "set grid\nset key below horizontal font 'sans,9'\n");
	/* Latency CDF, one panel per size. */
	fprintf(f,
		"set output 'latency_cdf.png'\nset multiplot layout 1,%zu title "
		"'Round-trip latency CDF (ivlink-bench)'\n"
		"set logscale x\nset xlabel 'round trip (us)'\nset ylabel 'fraction of round "
		"trips'\nset yrange [0:1]\n",
		nl ? nl : 1);
	for (size_t s = 0; s < nl || s == 0; s++) {
		uint32_t size = nl ? lsz[s] : 64;

		fprintf(f, "set title '%u bytes'\n", size);
		panel_modes(list, sizeof(list), P_CDF, size);
		snprintf(cmd, sizeof(cmd),
			 "plot for [m in modes] 'latency_cdf.csv' using "
			 "(strcol(1) eq m && $2 == %u ? $4/1000.0 : NaN):3 with lines lw 2 title m",
			 size);
		plot_panel(f, nl ? list : "", cmd);
	}
	fprintf(f, "unset multiplot\nunset logscale\nset yrange [*:*]\n");
	/* Throughput vs size: GB/s and messages/s. */
	panel_modes(list, sizeof(list), P_TPUT, 0);
	fprintf(f, "set output 'throughput.png'\nset multiplot layout 1,2 title 'One-way "
		   "throughput vs message size (ivlink-bench)'\n"
		   "set logscale x 2\nset logscale y 10\nset xlabel 'message size (bytes)'\n"
		   "set xtics ('64' 64, '256' 256, '1K' 1024, '4K' 4096, '16K' 16384, "
		   "'64K' 65536, '256K' 262144, '1M' 1048576)\n"
		   "set title 'GB/s'\nset ylabel 'GB/s (10^9 bytes/s)'\n");
	plot_panel(f, list,
		   "plot for [m in modes] 'throughput.csv' using (strcol(1) eq m ? $2 : NaN):7 "
		   "with linespoints lw 2 title m");
	fprintf(f, "set title 'messages/s'\nset ylabel 'messages/s'\n");
	plot_panel(f, list,
		   "plot for [m in modes] 'throughput.csv' using (strcol(1) eq m ? $2 : NaN):6 "
		   "with linespoints lw 2 title m");
	fprintf(f, "unset multiplot\n");
	/* CPU per message (throughput) and per round trip (latency). */
	fprintf(f, "set output 'cpu.png'\nset multiplot layout 1,2 title 'CPU cost, both ends "
		   "(ivlink-bench)'\n"
		   "set title 'CPU per message, one-way stream'\nset ylabel 'CPU ns per message "
		   "(sender + receiver)'\n");
	plot_panel(f, list,
		   "plot for [m in modes] 'throughput.csv' using (strcol(1) eq m ? $2 : NaN):10 "
		   "with linespoints lw 2 title m");
	fprintf(f, "set title 'CPU per round trip'\nset ylabel 'CPU ns per round trip (client + "
		   "server)'\n");
	panel_modes(list, sizeof(list), P_RTT_CPU, 0);
	plot_panel(f, list,
		   "plot for [m in modes] 'latency.csv' using (strcol(1) eq m && $11 > 0 ? $2 : "
		   "NaN):($11+$12) with linespoints lw 2 title m");
	fprintf(f, "unset multiplot\n");
	fclose(f);

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (chdir(o.out) < 0)
			_exit(127);
		execlp("gnuplot", "gnuplot", "plots.gp", (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		msg("gnuplot failed (exit %d)%s", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
		    WIFEXITED(status) && WEXITSTATUS(status) == 127
			? ": not installed? (scripts/ivl-deps plot)"
			: "");
		return -EIO;
	}
	return 0;
}

static int mkdir_p(const char *dir)
{
	char buf[PATH_MAX];

	if (fmt(buf, sizeof(buf), "%s", dir) < 0)
		return -ENAMETOOLONG;
	for (char *p = buf + 1;; p++) {
		char c = *p;

		if (c != '/' && c != 0)
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = c;
		if (c == 0)
			return 0;
	}
}

static int write_outputs(void)
{
	bool plotted = false;
	int rc;

	rc = mkdir_p(o.out);
	if (rc < 0) {
		msg("cannot create %s: %s", o.out, strerror(-rc));
		return rc;
	}
	rc = write_csv();
	if (rc == 0 && o.plot)
		plotted = write_plots() == 0;
	if (rc == 0)
		rc = write_json(plotted);
	if (rc == 0) {
		char path[PATH_MAX];
		FILE *f = open_out("results.txt", path, sizeof(path));

		if (f) {
			print_human(f);
			fclose(f);
		}
		/* The result lines again, so that a run can be re-reported
		 * (--from results.ivb) or merged with another. */
		f = open_out("results.ivb", path, sizeof(path));
		if (f) {
			fprintf(f, "IVB meta");
			for (size_t i = 0; i < st.n_meta; i++) {
				fprintf(f, " %s=", st.meta[i][0]);
				for (const char *q = st.meta[i][1]; *q; q++)
					fputc(*q == ' ' ? '_' : *q, f);
			}
			fputc('\n', f);
			print_result_lines(f, &st);
			for (size_t i = 0; i < st.n_skipped; i++) {
				char mode[32];

				snprintf(mode, sizeof(mode), "%.*s",
					 (int)strcspn(st.skipped[i], ":"), st.skipped[i]);
				fprintf(f, "IVB skip mode=%s reason=", mode);
				for (const char *q = st.skipped[i] + strlen(mode) + 2; *q; q++)
					fputc(*q == ' ' ? '_' : *q, f);
				fputc('\n', f);
			}
			fclose(f);
		}
		msg("wrote %s/{results.json,results.txt,latency.csv,latency_cdf.csv,"
		    "throughput.csv%s}",
		    o.out, plotted ? ",latency_cdf.png,throughput.png,cpu.png" : "");
	}
	return rc;
}

/* ------------------------------------------------------------ host run */

#define MAX_CHILDREN 4
static pid_t children[MAX_CHILDREN];

static void track(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] <= 0) {
			children[i] = pid;
			return;
		}
}

static void untrack(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

/* Stops a process we started: TERM, then KILL after a grace period. */
static void stop_pid(pid_t pid, int grace_ms)
{
	int status;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < grace_ms / 10; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			untrack(pid);
			return;
		}
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	untrack(pid);
}

static void rm_tmpdir(void)
{
	char path[PATH_MAX + 64];
	const char *names[] = {"ivlinkd.sock", "ivlinkd.sock.ctl", "unix.sock", "ivlinkd.log"};

	if (!tmpdir[0])
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	rmdir(tmpdir);
	tmpdir[0] = 0;
}

static void cleanup(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		stop_pid(children[i], 500);
	if (daemon_pid > 0)
		stop_pid(daemon_pid, 2000);
	daemon_pid = -1;
	rm_tmpdir();
}

static void on_signal(int sig)
{
	/* kill(2) is async-signal safe; the children's own timeouts and the
	 * daemon's handling of SIGTERM do the rest. */
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] > 0)
			kill(children[i], SIGTERM);
	if (daemon_pid > 0)
		kill(daemon_pid, SIGTERM);
	_exit(128 + sig);
}

/* Starts argv with stdout on a pipe (returned in *out_fd). */
static pid_t spawn(char *const argv[], int *out_fd, int cpu)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int err = errno;

		close(p[0]);
		close(p[1]);
		return -err;
	}
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		/* Pinning here covers ivlink-run too, whatever it does. */
		bench_pin_to(cpu);
		execvp(argv[0], argv);
		fprintf(stderr, "ivlink-bench: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	*out_fd = p[0];
	track(pid);
	return pid;
}

/* Reads one line from fd within the deadline. Returns its length, 0 at EOF,
 * -ETIMEDOUT. A byte at a time: these are a handful of short lines. */
static int read_line(int fd, char *buf, size_t len, int64_t deadline)
{
	size_t n = 0;

	while (n + 1 < len) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = (deadline - bench_now_ns()) / 1000000;
		ssize_t r;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left) <= 0)
			continue;
		r = read(fd, buf + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (buf[n] == '\n') {
			n++;
			break;
		}
		n++;
	}
	buf[n] = 0;
	return (int)n;
}

static int start_daemon(char *endpoint, size_t len)
{
	char path[PATH_MAX], sock[PATH_MAX + 32], logp[PATH_MAX + 32];
	const char *bin = o.daemon;
	int64_t deadline;
	pid_t pid;

	if (!bin) {
		char dir[PATH_MAX];

		snprintf(dir, sizeof(dir), "%s", self_exe);
		*strrchr(dir, '/') = 0;
		if (fmt(path, sizeof(path), "%s/../host-daemon/ivlinkd", dir) < 0)
			return -ENAMETOOLONG;
		bin = path;
	}
	if (access(bin, X_OK) < 0)
		return -ENOENT;
	snprintf(sock, sizeof(sock), "%s/ivlinkd.sock", tmpdir);
	snprintf(logp, sizeof(logp), "%s/ivlinkd.log", tmpdir);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execl(bin, bin, "-F", "-S", sock, "-l", "64M", "--log-level=warn", (char *)NULL);
		_exit(127);
	}
	daemon_pid = pid;
	deadline = bench_now_ns() + 10000000000LL;
	for (;;) {
		struct stat sb;
		int status;

		if (stat(sock, &sb) == 0 && S_ISSOCK(sb.st_mode))
			break;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			daemon_pid = -1;
			msg("ivlinkd (%s) exited at start; see its log above", bin);
			return -ECHILD;
		}
		if (bench_now_ns() > deadline)
			return -ETIMEDOUT;
		usleep(10000);
	}
	return fmt(endpoint, len, "host:%s", sock);
}

static void join_sizes(char *buf, size_t len, const uint32_t *s, uint32_t n)
{
	buf[0] = 0;
	for (uint32_t i = 0; i < n; i++)
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%u", i ? "," : "", s[i]);
}

/* Runs one mode: a server, then a client, both re-executions of this
 * program (under ivlink-run for the shim). Returns 0 or -errno. */
static int run_mode(const struct mode_def *m, const char *endpoint, const char *ivlink_run)
{
	char *sargv[32], *cargv[40], ready[256], line[4096], val[PATH_MAX];
	char iters[16], dur[16], rep[16], tmo[16], scpu[8], ccpu[8], lsz[128], tsz[192],
	    addr[PATH_MAX];
	int sn = 0, cn = 0, sfd = -1, cfd = -1, status, rc = 0, lines = 0;
	pid_t spid, cpid = -1;
	int64_t deadline;

	snprintf(iters, sizeof(iters), "%u", o.iters);
	snprintf(dur, sizeof(dur), "%u", o.duration_ms);
	snprintf(rep, sizeof(rep), "%u", o.repeat);
	snprintf(tmo, sizeof(tmo), "%u", o.timeout_s);
	snprintf(scpu, sizeof(scpu), "%d", o.cpus[1]);
	snprintf(ccpu, sizeof(ccpu), "%d", o.cpus[0]);
	join_sizes(lsz, sizeof(lsz), o.lat_sizes, o.n_lat_sizes);
	join_sizes(tsz, sizeof(tsz), o.tput_sizes, o.n_tput_sizes);

	if (m->shim) {
		sargv[sn++] = (char *)ivlink_run;
		cargv[cn++] = (char *)ivlink_run;
	}
	sargv[sn++] = self_exe;
	cargv[cn++] = self_exe;
	sargv[sn++] = "--role";
	sargv[sn++] = "server";
	cargv[cn++] = "--role";
	cargv[cn++] = "client";
	sargv[sn++] = "--mode";
	sargv[sn++] = (char *)m->name;
	cargv[cn++] = "--mode";
	cargv[cn++] = (char *)m->name;
	sargv[sn++] = "--timeout";
	sargv[sn++] = tmo;
	cargv[cn++] = "--timeout";
	cargv[cn++] = tmo;
	cargv[cn++] = "--iters";
	cargv[cn++] = iters;
	cargv[cn++] = "--duration";
	cargv[cn++] = dur;
	cargv[cn++] = "--lat-sizes";
	cargv[cn++] = lsz;
	cargv[cn++] = "--tput-sizes";
	cargv[cn++] = tsz;
	cargv[cn++] = "--no-table";
	cargv[cn++] = "--repeat";
	cargv[cn++] = rep;
	if (m->kind == K_NATIVE) {
		sargv[sn++] = "--endpoint";
		sargv[sn++] = (char *)endpoint;
		cargv[cn++] = "--endpoint";
		cargv[cn++] = (char *)endpoint;
	} else if (m->kind == K_UNIX) {
		fmt(addr, sizeof(addr), "unix:%s/unix.sock", tmpdir);
		sargv[sn++] = "--listen";
		sargv[sn++] = addr;
	} else {
		sargv[sn++] = "--listen";
		sargv[sn++] = "127.0.0.1:0";
	}
	sargv[sn] = NULL;

	spid = spawn(sargv, &sfd, o.cpus[1]);
	if (spid < 0)
		return (int)spid;
	deadline = bench_now_ns() + (int64_t)o.timeout_s * 1000000000LL;
	for (;;) {
		rc = read_line(sfd, ready, sizeof(ready), deadline);
		if (rc <= 0) {
			msg("%s: the server did not get ready (%s)", m->name,
			    rc == 0 ? "it exited" : "timeout");
			rc = rc == 0 ? -ECHILD : rc;
			goto out;
		}
		/* ivlink-run may print its own lines first. */
		if (strncmp(ready, "IVB-READY ", 10) == 0)
			break;
	}
	if (kv(ready, "peer", val, sizeof(val))) {
		cargv[cn++] = "--peer";
		cargv[cn++] = val;
	} else if (kv(ready, "port", val, sizeof(val))) {
		fmt(addr, sizeof(addr), "127.0.0.1:%s", val);
		cargv[cn++] = "--connect";
		cargv[cn++] = addr;
	} else if (kv(ready, "path", val, sizeof(val))) {
		fmt(addr, sizeof(addr), "unix:%s", val);
		cargv[cn++] = "--connect";
		cargv[cn++] = addr;
	}
	cargv[cn] = NULL;
	cpid = spawn(cargv, &cfd, o.cpus[0]);
	if (cpid < 0) {
		rc = (int)cpid;
		goto out;
	}
	/* Generous: every test's timeout could be spent once. */
	deadline =
	    bench_now_ns() +
	    (int64_t)(o.timeout_s * 2u + (o.n_lat_sizes + o.n_tput_sizes) * 5u) * 1000000000LL;
	while ((rc = read_line(cfd, line, sizeof(line), deadline)) > 0)
		lines += parse_result_line(line);
	if (rc < 0)
		msg("%s: the client timed out", m->name);
	if (waitpid(cpid, &status, 0) == cpid) {
		untrack(cpid);
		cpid = -1;
		if (rc == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
			rc = -ECHILD;
	}
out:
	if (cpid > 0)
		stop_pid(cpid, 500);
	/* A server that got its END exits by itself; give it a moment. */
	for (int i = 0; i < 200; i++) {
		if (waitpid(spid, &status, WNOHANG) == spid) {
			untrack(spid);
			spid = -1;
			break;
		}
		usleep(10000);
	}
	if (spid > 0)
		stop_pid(spid, 500);
	if (sfd >= 0)
		close(sfd);
	if (cfd >= 0)
		close(cfd);
	return rc < 0 ? rc : lines > 0 ? 0 : -ENODATA;
}

/* The machine is shared: its load next to the figures says how much to
 * trust them. */
static void load_meta(const char *key)
{
	char buf[128] = "";
	FILE *f = fopen("/proc/loadavg", "r");

	if (!f)
		return;
	if (fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = 0;
		/* The three averages only. */
		char *p = buf;

		for (int i = 0; i < 3 && p; i++)
			p = strchr(p + 1, ' ');
		if (p)
			*p = 0;
		add_meta(key, buf);
	}
	fclose(f);
}

static void host_meta(void)
{
	char buf[256] = "unknown", date[64];
	struct utsname u;
	time_t now = time(NULL);
	FILE *f = fopen("/proc/cpuinfo", "r");

	if (f) {
		char line[512];

		while (fgets(line, sizeof(line), f)) {
			if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
				snprintf(buf, sizeof(buf), "%s", strchr(line, ':') + 2);
				buf[strcspn(buf, "\n")] = 0;
				break;
			}
		}
		fclose(f);
	}
	add_meta("cpu", buf);
	snprintf(buf, sizeof(buf), "%ld", sysconf(_SC_NPROCESSORS_ONLN));
	add_meta("cpus", buf);
	if (uname(&u) == 0) {
		add_meta("host", u.nodename);
		add_meta("kernel", u.release);
	}
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
	add_meta("date", date);
	add_meta("label", o.label ? o.label : "host");
	snprintf(buf, sizeof(buf), "%u", o.iters);
	add_meta("iters", buf);
	snprintf(buf, sizeof(buf), "%u", o.duration_ms);
	add_meta("duration_ms", buf);
	add_meta("quick", o.quick ? "yes" : "no");
	snprintf(buf, sizeof(buf), "%u", o.repeat);
	add_meta("repeat", buf);
	load_meta("loadavg_start");
	snprintf(buf, sizeof(buf), "%d,%d", o.cpus[0], o.cpus[1]);
	add_meta("pinned_cpus", buf);
}

static int run_host(void)
{
	char endpoint[PATH_MAX + 8] = "", runpath[PATH_MAX] = "", *save = NULL;
	bool daemon_tried = false;
	int failures = 0, ran = 0;

	snprintf(tmpdir, sizeof(tmpdir), "%s/ivlink-bench.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		msg("mkdtemp: %s", strerror(errno));
		tmpdir[0] = 0;
		return 1;
	}
	host_meta();
	if (o.endpoint)
		snprintf(endpoint, sizeof(endpoint), "%s", o.endpoint);
	if (o.ivlink_run) {
		snprintf(runpath, sizeof(runpath), "%s", o.ivlink_run);
	} else {
		char dir[PATH_MAX];

		snprintf(dir, sizeof(dir), "%s", self_exe);
		*strrchr(dir, '/') = 0;
		fmt(runpath, sizeof(runpath), "%s/../guest-lib/preload/ivlink-run", dir);
	}

	for (char *name = strtok_r(o.modes, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		const struct mode_def *m = mode_find(name);
		int rc;

		if (!m) {
			msg("unknown mode %s (see --help)", name);
			return 2;
		}
		if (m->shim && access(runpath, X_OK) < 0) {
			add_note(
			    st.skipped, &st.n_skipped, MAX_MODES * 2, m->name,
			    "ivlink-run not found (build guest-lib/preload or --ivlink-run PATH)");
			msg("skipping %s: no ivlink-run at %s", m->name, runpath);
			continue;
		}
		if ((m->kind == K_NATIVE || m->shim) && !endpoint[0]) {
			if (!daemon_tried) {
				daemon_tried = true;
				rc = start_daemon(endpoint, sizeof(endpoint));
				if (rc < 0)
					msg("no ivlinkd for the native modes: %s (--daemon PATH or "
					    "--endpoint URI)",
					    strerror(-rc));
				else
					setenv(IVL_ENV_ENDPOINT, endpoint, 1);
			}
			if (!endpoint[0]) {
				add_note(st.skipped, &st.n_skipped, MAX_MODES * 2, m->name,
					 "no ivlinkd (--daemon PATH or --endpoint URI)");
				continue;
			}
		}
		msg("running %s ...", m->name);
		rc = run_mode(m, endpoint, runpath);
		ran++;
		if (rc < 0) {
			char why[128];

			snprintf(why, sizeof(why), "failed: %s", strerror(-rc));
			add_note(st.failed, &st.n_failed, MAX_MODES * 2, m->name, why);
			failures++;
		}
	}
	cleanup();
	load_meta("loadavg_end");
	print_human(stdout);
	if (o.out && write_outputs() < 0)
		failures++;
	return failures || ran == 0 ? 1 : 0;
}

/* ------------------------------------------------------------ command line */

static void usage(FILE *f)
{
	fputs("NAME\n"
	      "    ivlink-bench - latency, throughput and CPU cost of ivlink against sockets\n"
	      "\n"
	      "SYNOPSIS\n"
	      "    ivlink-bench [--quick] [--modes LIST] [--out DIR] [OPTIONS]\n"
	      "    ivlink-bench --role server --mode MODE [--listen ADDR] [--endpoint URI]\n"
	      "    ivlink-bench --role client --mode MODE [--connect ADDR | --peer ID|auto]\n"
	      "                 [--name ROW] [--out DIR]\n"
	      "    ivlink-bench --from FILE... [--out DIR]\n"
	      "\n"
	      "DESCRIPTION\n"
	      "    Measures, in one run and between two processes, what an application sees\n"
	      "    of each transport (\"mode\"):\n"
	      "      latency     round trips of SIZE bytes (client sends, server echoes):\n"
	      "                  p50, p90, p99, p99.9 and max, and a CDF, per size;\n"
	      "      throughput  SIZE-byte messages one way, one send and one receive call\n"
	      "                  per message, for a fixed time: messages/s and GB/s\n"
	      "                  (10^9 bytes/s), measured at the receiver;\n"
	      "      CPU cost    CPU time (CLOCK_PROCESS_CPUTIME_ID: user + system, spinning\n"
	      "                  included) of each end, per message, per byte and per round\n"
	      "                  trip.\n"
	      "    Ratios are against the baseline of the same run: tcp on the host, vm-tcp\n"
	      "    for rows measured in VMs. The issue's goal, >= 90% less CPU per message\n"
	      "    than TCP, is printed as met / not met and never affects the exit status.\n"
	      "\n"
	      "    Without --role or --from, a host run: ivlink-bench starts a private\n"
	      "    ivlinkd (for the native and shim modes), then per mode a server and a\n"
	      "    client process (this program re-executed, pinned to two CPUs), collects\n"
	      "    the results, prints a table and with --out writes CSV, JSON and PNG plots.\n"
	      "    A mode that cannot run here (no ivlinkd, no ivlink-run) is skipped with\n"
	      "    the reason; one that fails makes the exit status 1.\n"
	      "\n"
	      "MODES\n"
	      "    ivlink        native API (libivlink) through ivlinkd, stream channel,\n"
	      "                  the library's default wait: spin 20 us, then sleep\n"
	      "    ivlink-spin   native API, waits spin and never sleep (endpoint spin_ns\n"
	      "                  10 s): lowest latency, a core per waiting end\n"
	      "    ivlink-block  native API, waits sleep at once (spin_ns < 0): every wake-up\n"
	      "                  is a doorbell (eventfd on the host, MSI-X in a guest)\n"
	      "    tcp           TCP over 127.0.0.1, TCP_NODELAY: the baseline\n"
	      "    unix          UNIX stream socket\n"
	      "    shim-tcp      the tcp mode with both ends run under ivlink-run (the socket\n"
	      "                  shim), when built: BUILD/guest-lib/preload/ivlink-run or\n"
	      "                  --ivlink-run PATH\n"
	      "    Default: "
	      "ivlink,ivlink-spin,ivlink-block,tcp,unix,shim-tcp"
	      ".\n"
	      "\n"
	      "OPTIONS\n"
	      "    --modes LIST        comma-separated modes of a host run\n"
	      "    --quick             short run for CI: "
	      "300 round trips per size, 40 ms\n"
	      "                        per throughput size, sizes 64 B, 1 KiB, 16 KiB,\n"
	      "                        256 KiB, 1 MiB\n"
	      "    --iters N           round trips per latency size (default 10000)\n"
	      "    --duration MS       sending time per throughput size (default 300)\n"
	      "    --repeat N          throughput runs per size, the median (by GB/s)\n"
	      "                        reported (default 3; --quick 1)\n"
	      "    --lat-sizes LIST    latency message sizes (default 64,1024,16384)\n"
	      "    --tput-sizes LIST   throughput message sizes, at most 1048576 (default\n"
	      "                        64,256,1024,4096,16384,65536,262144,1048576)\n"
	      "    --cpus C,S          pin client to CPU C and server to CPU S (default 0,1\n"
	      "                        with two CPUs or more; \"none\": no pinning)\n"
	      "    --out DIR           write results.json, results.txt, results.ivb,\n"
	      "                        latency.csv, latency_cdf.csv, throughput.csv and\n"
	      "                        latency_cdf.png, throughput.png, cpu.png\n"
	      "    --no-plot           no PNGs (gnuplot: scripts/ivl-deps plot)\n"
	      "    --label NAME        run label in the metadata (default host)\n"
	      "    --daemon PATH       ivlinkd to start (default BUILD/host-daemon/ivlinkd)\n"
	      "    --endpoint URI      use this endpoint instead of a private daemon:\n"
	      "                        host:/path/to/ivlinkd.sock, or vfio:... / auto in a\n"
	      "                        guest (default $IVLINK_ENDPOINT)\n"
	      "    --ivlink-run PATH   the shim's wrapper for mode shim-tcp\n"
	      "    --timeout SEC       give up on a silent peer after SEC (default 60)\n"
	      "    -h, --help          show this help and exit\n"
	      "        --version       show the version and exit\n"
	      "\n"
	      "ROLES (between VMs, or by hand)\n"
	      "    --role server       serve tests until the client ends: prints\n"
	      "                        \"IVB-READY port=P|path=P|peer=ID\" once listening\n"
	      "    --role client       run every test against the server and print one\n"
	      "                        result line per result on stdout (see RESULT LINES)\n"
	      "                        and the table on stderr (--no-table: not)\n"
	      "    --mode MODE         the transport of a role (one of MODES)\n"
	      "    --listen ADDR       server: [HOST:]PORT (tcp; default 127.0.0.1:0) or\n"
	      "                        unix:PATH\n"
	      "    --connect ADDR      client: HOST:PORT or unix:PATH; retried until the\n"
	      "                        server is up or the timeout passes\n"
	      "    --peer ID|auto      client, native modes: the server's peer id; auto\n"
	      "                        (default) finds the one peer named ivb-s\n"
	      "    --spin-ns NS        native: endpoint spin budget, overriding the mode's\n"
	      "    --name ROW          client: the row name of its results (e.g. vm-tcp)\n"
	      "    --cpu N             pin this process to CPU N\n"
	      "    --from FILE...      read result lines from FILEs (\"-\": stdin; anything\n"
	      "                        before \"IVB \" on a line is ignored, so serial console\n"
	      "                        logs work) and report them\n"
	      "\n"
	      "RESULT LINES\n"
	      "    IVB lat  mode= size= n= min= p50= p90= p99= p999= max= avg= cli_cpu_ns=\n"
	      "             srv_cpu_ns=          nanoseconds; CPU per round trip, each end\n"
	      "    IVB cdf  mode= size= v=...    latency at quantiles 0, 0.01 .. 0.99,\n"
	      "                                  0.995, 0.999, 0.9999, 1\n"
	      "    IVB tput mode= size= msgs= bytes= ns= snd_cpu_ns= rcv_cpu_ns=\n"
	      "                                  receiver's elapsed ns; CPU of each end\n"
	      "    IVB meta KEY=VALUE...         run metadata ('_' reads as a space)\n"
	      "    IVB skip mode= reason=        a mode that could not run\n"
	      "\n"
	      "FILES (--out DIR)\n"
	      "    latency.csv       mode,size,n,min_ns,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,\n"
	      "                      avg_ns,cli_cpu_ns_per_rtt,srv_cpu_ns_per_rtt,\n"
	      "                      p50_speedup_vs_base\n"
	      "    latency_cdf.csv   mode,size,quantile,ns\n"
	      "    throughput.csv    mode,size,msgs,bytes,seconds,msgs_per_s,gbps,\n"
	      "                      snd_cpu_ns_per_msg,rcv_cpu_ns_per_msg,cpu_ns_per_msg,\n"
	      "                      snd_cpu_ns_per_byte,rcv_cpu_ns_per_byte,gbps_vs_base,\n"
	      "                      cpu_pct_less_than_base\n"
	      "    results.json      {tool, schema, meta{}, modes[], skipped[], failed[],\n"
	      "                      latency[] and throughput[] (the CSV columns as keys,\n"
	      "                      plus baseline), goals[] {goal, mode, baseline, target,\n"
	      "                      value, met}, files[]}; a figure that does not exist\n"
	      "                      is null\n"
	      "    results.txt       the table; results.ivb the result lines\n"
	      "    *.png             latency CDF per size (a curve per mode), throughput vs\n"
	      "                      size, CPU per message and per round trip; plots.gp\n"
	      "                      redraws them\n"
	      "\n"
	      "EXIT STATUS\n"
	      "    0 every mode that could run ran; 1 a mode or an output failed; 2 usage.\n"
	      "\n"
	      "EXAMPLES\n"
	      "    ivlink-bench --quick --out /tmp/ivb          # every host mode, briefly\n"
	      "    ivlink-bench --modes ivlink-block,tcp --out build/bench-results\n"
	      "    # between two VMs (vm-configs/libvirt/ivlink-libvirt bench does this):\n"
	      "    east$ ivlink-bench --role server --mode tcp --listen 0.0.0.0:7300\n"
	      "    west$ ivlink-bench --role client --mode tcp --connect 192.0.2.2:7300 \\\n"
	      "              --name vm-tcp\n"
	      "    host$ ivlink-bench --from west.log --out build/libvirt-run/bench\n",
	      f);
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int parse_sizes(const char *s, uint32_t *out, uint32_t *n)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", s);
	*n = 0;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (*n >= MAX_SIZES || parse_u32(t, 1, MAX_MSG, &out[*n]) < 0)
			return -EINVAL;
		(*n)++;
	}
	return *n ? 0 : -EINVAL;
}

enum {
	OPT_MODES = 256,
	OPT_QUICK,
	OPT_ITERS,
	OPT_DURATION,
	OPT_LAT_SIZES,
	OPT_TPUT_SIZES,
	OPT_CPUS,
	OPT_OUT,
	OPT_NO_PLOT,
	OPT_LABEL,
	OPT_DAEMON,
	OPT_ENDPOINT,
	OPT_IVLINK_RUN,
	OPT_TIMEOUT,
	OPT_ROLE,
	OPT_MODE,
	OPT_LISTEN,
	OPT_CONNECT,
	OPT_PEER,
	OPT_SPIN_NS,
	OPT_NAME,
	OPT_CPU,
	OPT_FROM,
	OPT_NO_TABLE,
	OPT_REPEAT,
	OPT_VERSION,
};

static bool no_table;

static int parse_opts(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"modes", 1, NULL, OPT_MODES},
	    {"quick", 0, NULL, OPT_QUICK},
	    {"iters", 1, NULL, OPT_ITERS},
	    {"duration", 1, NULL, OPT_DURATION},
	    {"lat-sizes", 1, NULL, OPT_LAT_SIZES},
	    {"tput-sizes", 1, NULL, OPT_TPUT_SIZES},
	    {"cpus", 1, NULL, OPT_CPUS},
	    {"out", 1, NULL, OPT_OUT},
	    {"no-plot", 0, NULL, OPT_NO_PLOT},
	    {"label", 1, NULL, OPT_LABEL},
	    {"daemon", 1, NULL, OPT_DAEMON},
	    {"endpoint", 1, NULL, OPT_ENDPOINT},
	    {"ivlink-run", 1, NULL, OPT_IVLINK_RUN},
	    {"timeout", 1, NULL, OPT_TIMEOUT},
	    {"role", 1, NULL, OPT_ROLE},
	    {"mode", 1, NULL, OPT_MODE},
	    {"listen", 1, NULL, OPT_LISTEN},
	    {"connect", 1, NULL, OPT_CONNECT},
	    {"peer", 1, NULL, OPT_PEER},
	    {"spin-ns", 1, NULL, OPT_SPIN_NS},
	    {"name", 1, NULL, OPT_NAME},
	    {"cpu", 1, NULL, OPT_CPU},
	    {"from", 1, NULL, OPT_FROM},
	    {"no-table", 0, NULL, OPT_NO_TABLE},
	    {"repeat", 1, NULL, OPT_REPEAT},
	    {"help", 0, NULL, 'h'},
	    {"version", 0, NULL, OPT_VERSION},
	    {NULL, 0, NULL, 0},
	};
	bool iters_set = false, dur_set = false, tput_set = false;
	int c, li = 0;

	snprintf(o.modes, sizeof(o.modes), "%s", host_modes_default);
	o.timeout_s = TIMEOUT_DEFAULT_S;
	o.plot = true;
	o.cpu = -1;
	o.cpus[0] = o.cpus[1] = -1;
	if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
		o.cpus[0] = 0;
		o.cpus[1] = 1;
	}
	memcpy(o.lat_sizes, lat_sizes_default, sizeof(lat_sizes_default));
	o.n_lat_sizes = sizeof(lat_sizes_default) / sizeof(lat_sizes_default[0]);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", lo, &li)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("ivlink-bench " IVL_VERSION "\n");
			exit(0);
		case ':':
			msg("option '%s' needs an argument", argv[optind - 1]);
			goto hint;
		case '?':
			if (optopt)
				msg("unknown option '-%c'", optopt);
			else
				msg("unknown option '%s'", argv[optind - 1]);
			goto hint;
		case OPT_MODES:
			snprintf(o.modes, sizeof(o.modes), "%s", optarg);
			break;
		case OPT_QUICK:
			o.quick = true;
			break;
		case OPT_ITERS:
			if (parse_u32(optarg, 10, 100000000, &o.iters) < 0)
				goto bad;
			iters_set = true;
			break;
		case OPT_DURATION:
			if (parse_u32(optarg, 1, 600000, &o.duration_ms) < 0)
				goto bad;
			dur_set = true;
			break;
		case OPT_LAT_SIZES:
			if (parse_sizes(optarg, o.lat_sizes, &o.n_lat_sizes) < 0)
				goto bad;
			break;
		case OPT_TPUT_SIZES:
			if (parse_sizes(optarg, o.tput_sizes, &o.n_tput_sizes) < 0)
				goto bad;
			tput_set = true;
			break;
		case OPT_CPUS:
			if (strcmp(optarg, "none") == 0)
				o.cpus[0] = o.cpus[1] = -1;
			else if (sscanf(optarg, "%d,%d", &o.cpus[0], &o.cpus[1]) != 2)
				goto bad;
			break;
		case OPT_OUT:
			o.out = optarg;
			break;
		case OPT_NO_PLOT:
			o.plot = false;
			break;
		case OPT_LABEL:
			o.label = optarg;
			break;
		case OPT_DAEMON:
			o.daemon = optarg;
			break;
		case OPT_ENDPOINT:
			o.endpoint = optarg;
			break;
		case OPT_IVLINK_RUN:
			o.ivlink_run = optarg;
			break;
		case OPT_TIMEOUT:
			if (parse_u32(optarg, 1, 86400, &o.timeout_s) < 0)
				goto bad;
			break;
		case OPT_ROLE:
			if (strcmp(optarg, "server") != 0 && strcmp(optarg, "client") != 0)
				goto bad;
			o.role = optarg;
			break;
		case OPT_MODE:
			o.mode = optarg;
			break;
		case OPT_LISTEN:
			o.listen = optarg;
			break;
		case OPT_CONNECT:
			o.connect = optarg;
			break;
		case OPT_PEER:
			o.peer = optarg;
			break;
		case OPT_SPIN_NS:
			o.spin_ns = strtoll(optarg, NULL, 0);
			o.spin_set = true;
			break;
		case OPT_NAME:
			o.name = optarg;
			break;
		case OPT_CPU:
			o.cpu = atoi(optarg);
			break;
		case OPT_FROM:
			if (o.n_from >= 16)
				goto bad;
			o.from[o.n_from++] = optarg;
			break;
		case OPT_NO_TABLE:
			no_table = true;
			break;
		case OPT_REPEAT:
			if (parse_u32(optarg, 1, MAX_REPEAT, &o.repeat) < 0)
				goto bad;
			break;
		default:
			goto bad;
		}
	}
	/* Further operands of --from are files too ("--from a.log b.log"). */
	while (o.n_from > 0 && optind < argc && o.n_from < 16)
		o.from[o.n_from++] = argv[optind++];
	if (optind < argc)
		goto bad;
	if (!iters_set)
		o.iters = o.quick ? ITERS_QUICK : ITERS_DEFAULT;
	if (!dur_set)
		o.duration_ms = o.quick ? DURATION_QUICK_MS : DURATION_DEFAULT_MS;
	if (!o.repeat)
		o.repeat = o.quick ? 1 : REPEAT_DEFAULT;
	if (!tput_set) {
		const uint32_t *s = o.quick ? tput_sizes_quick : tput_sizes_default;
		size_t n = o.quick ? sizeof(tput_sizes_quick) / sizeof(tput_sizes_quick[0])
				   : sizeof(tput_sizes_default) / sizeof(tput_sizes_default[0]);

		memcpy(o.tput_sizes, s, n * sizeof(*s));
		o.n_tput_sizes = (uint32_t)n;
	}
	if (o.role && (!o.mode || !mode_find(o.mode))) {
		msg("--role needs --mode MODE");
		goto hint;
	}
	return 0;
bad:
	if (c == -1)
		msg("unexpected argument '%s'", argv[optind]);
	else
		msg("--%s: bad value '%s'", lo[li].name, optarg ? optarg : "");
hint:
	fputs("Try 'ivlink-bench --help' for more information.\n", stderr);
	return -EINVAL;
}

int main(int argc, char **argv)
{
	ssize_t n;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (parse_opts(argc, argv) < 0)
		return 2;
	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n <= 0) {
		msg("readlink /proc/self/exe: %s", strerror(errno));
		return 1;
	}
	self_exe[n] = 0;

	if (o.n_from > 0) {
		for (int i = 0; i < o.n_from; i++) {
			rc = read_result_file(o.from[i]);
			if (rc < 0) {
				msg("%s: %s", o.from[i], strerror(-rc));
				return 1;
			}
			if (rc == 0)
				msg("%s: no result lines", o.from[i]);
		}
		print_human(stdout);
		if (o.out && write_outputs() < 0)
			return 1;
		return st.n_lat + st.n_tput > 0 ? 0 : 1;
	}
	if (o.role) {
		const struct mode_def *m = mode_find(o.mode);

		if (o.cpu >= 0 && bench_pin_to(o.cpu) < 0)
			msg("cannot pin to CPU %d (continuing unpinned)", o.cpu);
		if (o.role[0] == 's')
			return run_server(m) < 0 ? 1 : 0;
		rc = run_client(m);
		if (!no_table)
			print_human(stderr);
		if (o.out)
			write_outputs();
		return rc < 0 ? 1 : 0;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	atexit(cleanup);
	return run_host();
}
