/* SPDX-License-Identifier: MIT */
/*
 * ivlink-pingpong: a native-API example, and the traffic generator of the VM
 * tests and `make demo`.
 *
 * Two instances, one --role client and one --role server, open the same
 * channel with each other (on the host, in two guests, or one of each: the
 * same program, only the URI differs, and "auto" finds the right backend).
 * The client sends its parameters, then:
 *
 *   1. ping-pong: --count round trips of a --size byte message; the client
 *      prints min/p50/p90/p99/max of the round trip, and both print the
 *      channel's doorbell statistics (kicks sent, sleeps) so a caller can
 *      tell whether the blocking path (interrupts) or spinning carried it;
 *   2. bulk: --bulk-mib MiB each way at once (a sender thread on each side),
 *      every 64-bit word a function of its position, checked on receipt,
 *      and an FNV-1a checksum of each direction printed by both ends.
 *
 * --tcp HOST:PORT runs the same two phases over a TCP connection instead
 * (the client connects, the server listens on PORT), for comparisons.
 *
 * Output: human lines, plus one "RESULT key=value ..." line per phase for
 * scripts. Exit 0 on success, 1 on failure, 3 with --expect-reset when the
 * peer was reset (ECONNRESET) as expected.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/ivlink.h>

#define CHUNK	     (64u << 10)
#define PARAMS_MAGIC 0x50474e50u /* "PNGP" */

struct params {
	uint32_t magic;
	uint32_t size;
	uint64_t count;
	uint64_t bulk_bytes;
	uint64_t block_count; /* round trips of the blocking phase */
	uint64_t gap_ns;      /* client's pause before each of them */
};

struct opts {
	const char *uri, *peer, *role, *channel, *tcp, *name, *fill;
	uint64_t count, bulk_mib, block_count, gap_us;
	uint32_t size, ring_kib;
	int64_t spin_ns, timeout_s;
	int expect_reset, verbose, is_client;
};

/* A connection: an ivlink channel or a TCP socket. */
struct conn {
	struct ivl_channel *ch;
	int fd;
};

static struct opts o = {
    .peer = "auto",
    .role = "client",
    .channel = "pingpong",
    .count = 1000,
    .size = 64,
    .timeout_s = 120,
    .ring_kib = 1024,
    .gap_us = 200,
};
static const char *me = "pingpong";

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void log_cb(void *ctx, enum ivl_log_level level, const char *msg)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	if (level <= IVL_LOG_INFO || o.verbose)
		fprintf(stderr, "%s: libivlink %s: %s\n", me, names[level], msg);
}

/* Sends or receives exactly len bytes. Returns 0 or -errno. */
static int xfer(struct conn *c, void *buf, size_t len, int send_dir)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n;

		if (c->ch)
			n = send_dir ? ivl_send(c->ch, p, len, 0)
				     : ivl_recv(c->ch, p, len, IVL_WAITALL);
		else
			n = send_dir ? send(c->fd, p, len, MSG_NOSIGNAL) : recv(c->fd, p, len, 0);
		if (!c->ch && n < 0)
			n = errno == EINTR ? 0 : -errno;
		if (n < 0)
			return (int)n;
		if (n == 0 && !send_dir)
			return -EPIPE; /* end of stream before len bytes */
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static uint64_t word_at(uint64_t i, uint64_t seed)
{
	return (i + 1) * 0x9e3779b97f4a7c15ULL ^ seed;
}

static uint64_t fnv_words(uint64_t h, const uint64_t *w, size_t n)
{
	/* FNV-1a over 64-bit words, with a shift so that the high bits
	 * reach the low ones too. */
	for (size_t i = 0; i < n; i++) {
		h ^= w[i];
		h *= 0x100000001b3ULL;
		h ^= h >> 29;
	}
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ULL

struct bulk_tx {
	struct conn *c;
	uint64_t bytes, seed, sum;
	int rc;
	int64_t end_ns;
};

static void *bulk_sender(void *arg)
{
	struct bulk_tx *t = arg;
	uint64_t *buf = malloc(CHUNK), pos = 0;

	t->sum = FNV_INIT;
	t->rc = buf ? 0 : -ENOMEM;
	while (t->rc == 0 && pos < t->bytes) {
		size_t len = t->bytes - pos < CHUNK ? (size_t)(t->bytes - pos) : CHUNK;

		for (size_t i = 0; i < len / 8; i++)
			buf[i] = word_at(pos / 8 + i, t->seed);
		t->sum = fnv_words(t->sum, buf, len / 8);
		t->rc = xfer(t->c, buf, len, 1);
		pos += len;
	}
	t->end_ns = now_ns();
	free(buf);
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Prints the channel's doorbell counters for the phase just ended (the
 * difference from the previous call). */
static void print_stats(struct conn *c, const char *phase)
{
	static struct ivl_channel_stats prev;
	struct ivl_channel_stats st;
	uint64_t k, ks, sl;

	if (!c->ch || ivl_channel_stats(c->ch, &st) < 0)
		return;
	k = st.kicks_sent - prev.kicks_sent;
	ks = st.kicks_suppressed - prev.kicks_suppressed;
	sl = st.sleeps - prev.sleeps;
	prev = st;
	printf("%s: %s: doorbells sent %" PRIu64 ", suppressed %" PRIu64 ", sleeps %" PRIu64
	       " (rx vector %u)\n",
	       me, phase, k, ks, sl, st.rx_vector);
	printf("RESULT phase=%s-stats kicks_sent=%" PRIu64 " kicks_suppressed=%" PRIu64
	       " sleeps=%" PRIu64 "\n",
	       phase, k, ks, sl);
}

static uint8_t fill_buf[1u << 16];
static size_t fill_len;

static int pingpong(struct conn *c, const struct params *p, uint64_t count, uint64_t gap_ns,
		    const char *phase)
{
	uint8_t *buf = calloc(1, p->size ? p->size : 1);
	int64_t *rtt = o.is_client ? calloc(count ? count : 1, sizeof(int64_t)) : NULL;
	int rc = 0;

	if (!buf || (o.is_client && !rtt)) {
		free(buf);
		free(rtt);
		return -ENOMEM;
	}
	/* --fill: the text after the 8-byte sequence number, echoed back. */
	if (o.is_client && o.fill && p->size > 8) {
		fill_len = p->size - 8;
		for (size_t k = 0; k < fill_len; k++)
			fill_buf[k] = (uint8_t)o.fill[k % strlen(o.fill)];
		memcpy(buf + 8, fill_buf, fill_len);
	}
	for (uint64_t i = 0; i < count && rc == 0; i++) {
		if (o.is_client) {
			int64_t t0;

			if (gap_ns) {
				/* Let the server fall asleep: this round trip
				 * then needs a doorbell interrupt to wake it. */
				struct timespec ts = {0, (long)gap_ns};

				nanosleep(&ts, NULL);
			}
			t0 = now_ns();
			memcpy(buf, &i, p->size < 8 ? p->size : 8);
			rc = xfer(c, buf, p->size, 1);
			if (rc == 0)
				rc = xfer(c, buf, p->size, 0);
			rtt[i] = now_ns() - t0;
			if (rc == 0 && fill_len && memcmp(buf + 8, fill_buf, fill_len) != 0) {
				printf("%s: %s: round trip %" PRIu64 " came back altered\n", me,
				       phase, i);
				rc = -EIO;
			}
		} else {
			rc = xfer(c, buf, p->size, 0);
			if (rc == 0)
				rc = xfer(c, buf, p->size, 1);
		}
	}
	if (rc == 0 && o.is_client && count > 0) {
		uint64_t n = count;
		double sum = 0;

		qsort(rtt, n, sizeof(*rtt), cmp_i64);
		for (uint64_t i = 0; i < n; i++)
			sum += (double)rtt[i];
#define PCT(q) (rtt[(uint64_t)((double)(n - 1) * (q))] / 1000.0)
		printf("%s: %s %" PRIu64 " x %u B over %s: round trip min %.1f p50 %.1f "
		       "p90 %.1f p99 %.1f max %.1f avg %.1f us\n",
		       me, phase, n, p->size, c->ch ? "ivlink" : "tcp", rtt[0] / 1000.0, PCT(0.50),
		       PCT(0.90), PCT(0.99), rtt[n - 1] / 1000.0, sum / (double)n / 1000.0);
		printf("RESULT phase=%s transport=%s count=%" PRIu64 " size=%u min_us=%.1f "
		       "p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f avg_us=%.1f\n",
		       phase, c->ch ? "ivlink" : "tcp", n, p->size, rtt[0] / 1000.0, PCT(0.50),
		       PCT(0.90), PCT(0.99), rtt[n - 1] / 1000.0, sum / (double)n / 1000.0);
#undef PCT
	}
	if (rc == 0)
		print_stats(c, phase);
	free(buf);
	free(rtt);
	return rc;
}

static int bulk(struct conn *c, const struct params *p)
{
	struct bulk_tx t = {
	    .c = c, .bytes = p->bulk_bytes, .seed = o.is_client ? 0x57455354ULL : 0x45415354ULL};
	uint64_t rseed = o.is_client ? 0x45415354ULL : 0x57455354ULL;
	uint64_t *buf = malloc(CHUNK), pos = 0, bad = 0, sum = FNV_INIT;
	pthread_t th;
	int64_t t0, t_rx;
	int rc = 0;
	double secs;

	if (!buf)
		return -ENOMEM;
	t0 = now_ns();
	if (pthread_create(&th, NULL, bulk_sender, &t) != 0) {
		free(buf);
		return -EAGAIN;
	}
	while (pos < p->bulk_bytes) {
		size_t len = p->bulk_bytes - pos < CHUNK ? (size_t)(p->bulk_bytes - pos) : CHUNK;

		rc = xfer(c, buf, len, 0);
		if (rc < 0)
			break;
		for (size_t i = 0; i < len / 8; i++)
			if (buf[i] != word_at(pos / 8 + i, rseed))
				bad++;
		sum = fnv_words(sum, buf, len / 8);
		pos += len;
		if (o.verbose && (pos & ((64u << 20) - 1)) == 0)
			fprintf(stderr, "%s: bulk: %" PRIu64 " MiB received\n", me, pos >> 20);
	}
	t_rx = now_ns();
	if (rc < 0 && c->ch) {
		/* The sender may be blocked on a ring the remote no longer
		 * drains: unblock it. */
		ivl_channel_shutdown(c->ch, IVL_SHUT_RDWR);
	}
	pthread_join(th, NULL);
	free(buf);
	if (rc < 0 || t.rc < 0) {
		int err = rc < 0 ? rc : t.rc;

		printf("%s: bulk: failed after %.1f MiB received, %s\n", me,
		       (double)pos / 1048576.0, strerror(-err));
		return err;
	}
	secs = (double)((t_rx > t.end_ns ? t_rx : t.end_ns) - t0) / 1e9;
	printf("%s: bulk: %.0f MiB each way over %s in %.2f s: %.1f MB/s per direction, "
	       "tx fnv %016" PRIx64 " rx fnv %016" PRIx64 ", %" PRIu64 " bad words\n",
	       me, (double)p->bulk_bytes / 1048576.0, c->ch ? "ivlink" : "tcp", secs,
	       (double)p->bulk_bytes / 1e6 / secs, t.sum, sum, bad);
	printf("RESULT phase=bulk transport=%s mib=%.0f secs=%.3f mbps=%.1f tx_fnv=%016" PRIx64
	       " rx_fnv=%016" PRIx64 " bad=%" PRIu64 "\n",
	       c->ch ? "ivlink" : "tcp", (double)p->bulk_bytes / 1048576.0, secs,
	       (double)p->bulk_bytes / 1e6 / secs, t.sum, sum, bad);
	print_stats(c, "bulk");
	return bad ? -EIO : 0;
}

/* ---------------------------------------------------------------- setup */

static long find_peer(struct ivl_endpoint *ep)
{
	int64_t deadline = now_ns() + o.timeout_s * 1000000000LL;
	char *end;
	unsigned long id = strtoul(o.peer, &end, 10);

	if (*o.peer && !*end)
		return (long)id;
	for (;;) {
		struct ivl_peer_info pi[IVL_PEERS_LIMIT];
		int n = ivl_endpoint_peers(ep, pi, IVL_PEERS_LIMIT), found = 0;
		long which = -1;

		for (int i = 0; i < n && i < (int)IVL_PEERS_LIMIT; i++) {
			if (pi[i].is_self)
				continue;
			if (strcmp(o.peer, "auto") == 0 || strcmp(o.peer, pi[i].name) == 0) {
				found++;
				which = pi[i].id;
			}
		}
		if (found == 1)
			return which;
		if (now_ns() > deadline)
			return -ETIMEDOUT;
		usleep(20000);
	}
}

static int tcp_connect(struct conn *c)
{
	char host[256];
	const char *colon = strrchr(o.tcp, ':');
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
	int one = 1, fd;
	int64_t deadline = now_ns() + o.timeout_s * 1000000000LL;

	if (!colon || (size_t)(colon - o.tcp) >= sizeof(host))
		return -EINVAL;
	memcpy(host, o.tcp, (size_t)(colon - o.tcp));
	host[colon - o.tcp] = '\0';
	if (!o.is_client) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_port = htons((uint16_t)atoi(colon + 1))};
		int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0)
			return -errno;
		fd = accept(l, NULL, NULL);
		close(l);
		if (fd < 0)
			return -errno;
	} else {
		if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
			return -EHOSTUNREACH;
		for (;;) {
			fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
				break;
			if (fd >= 0)
				close(fd);
			if (now_ns() > deadline) {
				freeaddrinfo(ai);
				return -ETIMEDOUT;
			}
			usleep(100000); /* the server may not listen yet */
		}
		freeaddrinfo(ai);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "NAME\n"
		   "    ivlink-pingpong - round trips and a checked bulk transfer over ivlink\n"
		   "\n"
		   "SYNOPSIS\n"
		   "    ivlink-pingpong [--role client|server] [OPTIONS]\n"
		   "    ivlink-pingpong --help | --version\n"
		   "\n"
		   "DESCRIPTION\n"
		   "    An example of the native API: the client opens a channel to the server\n"
		   "    peer, measures ping-pong round trips (percentiles), optionally a blocking\n"
		   "    series that makes the server sleep, then a bulk transfer each way whose\n"
		   "    bytes are checked. --tcp runs the same over TCP for comparison.\n"
		   "\n"
		   "OPTIONS\n"
		   "    -r, --role R          client (the default: measures, sends the\n"
		   "                          parameters) or server\n"
		   "    -u, --uri URI         endpoint (default $IVLINK_ENDPOINT, else auto: host\n"
		   "                          daemon, guest agent, VFIO, polling)\n"
		   "    -p, --peer P          remote peer: id, peer-table name, or auto (the one\n"
		   "                          other peer; default)\n"
		   "    -c, --channel NAME    channel name (default pingpong)\n"
		   "    -n, --count N         ping-pong round trips (default 1000; 0: none)\n"
		   "    -s, --size B          ping-pong message bytes (default 64)\n"
		   "    -B, --block-count N   then N round trips, the client pausing --gap-us\n"
		   "                          before each so the server sleeps: the interrupt\n"
		   "                          path (default 0)\n"
		   "    -G, --gap-us US       pause of the blocking round trips (default 200)\n"
		   "    -b, --bulk-mib M      then M MiB each way at once, checked (default 0)\n"
		   "    -S, --spin NS         spin budget before sleeping (-1: never spin;\n"
		   "                          default: the library's)\n"
		   "    -k, --ring-kib K      tx ring size (default 1024)\n"
		   "    -N, --name NAME       own peer-table name\n"
		   "    -F, --fill TEXT       client: ping-pong messages carry TEXT repeated\n"
		   "                          after their sequence number, checked on return\n"
		   "    -L, --regions         list the regions this process can attach to\n"
		   "                          (ivl_regions(): URI, name, size, own id), exit\n"
		   "    -t, --timeout S       peer/channel/io timeout (default 120)\n"
		   "    -T, --tcp HOST:PORT   the same over TCP (server: listens on PORT)\n"
		   "    -R, --expect-reset    exit 3 if the peer is reset (ECONNRESET), 1\n"
		   "                          otherwise\n"
		   "    -v, --verbose         verbose\n"
		   "    -h, --help            show this help and exit\n"
		   "        --version         show the version and exit\n"
		   "\n"
		   "EXIT STATUS\n"
		   "    0 success, 1 failure, 2 invalid command line, 3 reset as expected\n"
		   "    (--expect-reset).\n"
		   "\n"
		   "SEE ALSO\n"
		   "    ivlink(7), ivlinkd(8)\n");
}

static void die_usage(const char *msg, const char *arg) __attribute__((noreturn));

/* --regions: one line per region, as scripts read them. */
static int list_regions(void)
{
	struct ivl_region_info ri[16];
	int n = ivl_regions(ri, 16);

	if (n < 0) {
		fprintf(stderr, "ivlink-pingpong: ivl_regions: %s\n", strerror(-n));
		return 1;
	}
	printf("%d region(s)\n", n);
	for (int i = 0; i < n && i < 16; i++) {
		printf("region uri=%s name=%s size=%" PRIu64 " max_peers=%u", ri[i].uri,
		       ri[i].name[0] ? ri[i].name : "-", ri[i].size, ri[i].max_peers);
		if (ri[i].self_id != UINT32_MAX)
			printf(" self=%u", ri[i].self_id);
		printf("\n");
	}
	return 0;
}

static void die_usage(const char *msg, const char *arg)
{
	fprintf(stderr,
		"ivlink-pingpong: %s%s%s\nTry 'ivlink-pingpong --help' for more information.\n",
		msg, arg ? " " : "", arg ? arg : "");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"uri", 1, 0, 'u'},	     {"peer", 1, 0, 'p'},	 {"role", 1, 0, 'r'},
	    {"channel", 1, 0, 'c'},  {"count", 1, 0, 'n'},	 {"size", 1, 0, 's'},
	    {"bulk-mib", 1, 0, 'b'}, {"spin", 1, 0, 'S'},	 {"ring-kib", 1, 0, 'k'},
	    {"name", 1, 0, 'N'},     {"fill", 1, 0, 'F'},	 {"regions", 0, 0, 'L'},
	    {"timeout", 1, 0, 't'},  {"tcp", 1, 0, 'T'},	 {"expect-reset", 0, 0, 'R'},
	    {"help", 0, 0, 'h'},     {"block-count", 1, 0, 'B'}, {"gap-us", 1, 0, 'G'},
	    {"verbose", 0, 0, 'v'},  {"version", 0, 0, 'V'},	 {0, 0, 0, 0},
	};
	struct ivl_endpoint_opts eo = {0};
	struct ivl_channel_opts co = {0};
	struct ivl_endpoint *ep = NULL;
	struct conn c = {.fd = -1};
	struct params p;
	int opt, rc;
	long peer;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":u:p:r:c:n:s:b:S:k:N:F:Lt:T:RB:G:vh", lo, NULL)) !=
	       -1) {
		switch (opt) {
		case 'u':
			o.uri = optarg;
			break;
		case 'p':
			o.peer = optarg;
			break;
		case 'r':
			o.role = optarg;
			break;
		case 'c':
			o.channel = optarg;
			break;
		case 'n':
			o.count = strtoull(optarg, NULL, 0);
			break;
		case 's':
			o.size = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'b':
			o.bulk_mib = strtoull(optarg, NULL, 0);
			break;
		case 'S':
			o.spin_ns = strtoll(optarg, NULL, 0);
			break;
		case 'k':
			o.ring_kib = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'N':
			o.name = optarg;
			break;
		case 'F':
			if (!*optarg)
				die_usage("--fill: empty text", NULL);
			o.fill = optarg;
			break;
		case 'L':
			return list_regions();
		case 't':
			o.timeout_s = strtoll(optarg, NULL, 0);
			break;
		case 'T':
			o.tcp = optarg;
			break;
		case 'R':
			o.expect_reset = 1;
			break;
		case 'B':
			o.block_count = strtoull(optarg, NULL, 0);
			break;
		case 'G':
			o.gap_us = strtoull(optarg, NULL, 0);
			break;
		case 'v':
			o.verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("ivlink-pingpong " IVL_VERSION_STRING "\n");
			return 0;
		case ':':
			die_usage("option needs an argument:", argv[optind - 1]);
		default:
			if (optopt) {
				char so[3] = {'-', (char)optopt, 0};

				die_usage("unknown option", so);
			}
			die_usage("unknown option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument", argv[optind]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	o.is_client = strcmp(o.role, "client") == 0;
	if (!o.is_client && strcmp(o.role, "server") != 0)
		die_usage("--role: not client or server:", o.role);
	me = o.is_client ? "client" : "server";

	if (o.tcp) {
		rc = tcp_connect(&c);
		if (rc < 0) {
			fprintf(stderr, "%s: tcp %s: %s\n", me, o.tcp, strerror(-rc));
			return 1;
		}
	} else {
		eo.uri = o.uri;
		eo.name = o.name;
		eo.spin_ns = o.spin_ns;
		eo.log = log_cb;
		rc = ivl_endpoint_open(&ep, &eo);
		if (rc < 0) {
			fprintf(stderr, "%s: ivl_endpoint_open(%s): %s\n", me,
				o.uri ? o.uri : "default", strerror(-rc));
			return 1;
		}
		peer = find_peer(ep);
		if (peer < 0) {
			fprintf(stderr, "%s: no peer '%s' within %" PRId64 " s\n", me, o.peer,
				o.timeout_s);
			ivl_endpoint_close(ep);
			return 1;
		}
		co.ring_size = o.ring_kib << 10;
		rc = ivl_channel_open(ep, o.channel, (uint32_t)peer, &co,
				      o.timeout_s * 1000000000LL, &c.ch);
		if (rc < 0) {
			fprintf(stderr, "%s: channel '%s' to peer %ld: %s\n", me, o.channel, peer,
				strerror(-rc));
			ivl_endpoint_close(ep);
			return o.expect_reset && rc == -ECONNRESET ? 3 : 1;
		}
		ivl_channel_set_timeouts(c.ch, o.timeout_s * 1000000000LL,
					 o.timeout_s * 1000000000LL);
		printf("%s: peer %u <-> peer %ld, channel '%s', region '%s'\n", me,
		       ivl_endpoint_id(ep), peer, o.channel, ivl_endpoint_region(ep));
	}

	/* The client's parameters win: the server only needs --role. */
	p = (struct params){.magic = PARAMS_MAGIC,
			    .size = o.size,
			    .count = o.count,
			    .bulk_bytes = o.bulk_mib << 20,
			    .block_count = o.block_count,
			    .gap_ns = o.gap_us * 1000};
	rc = xfer(&c, &p, sizeof(p), o.is_client);
	if (rc == 0 && p.magic != PARAMS_MAGIC)
		rc = -EPROTO;
	if (rc == 0 && p.count)
		rc = pingpong(&c, &p, p.count, 0, "pingpong");
	if (rc == 0 && p.block_count)
		rc = pingpong(&c, &p, p.block_count, p.gap_ns, "pingpong-blocking");
	if (rc == 0 && p.bulk_bytes)
		rc = bulk(&c, &p);
	if (rc < 0)
		fprintf(stderr, "%s: %s\n", me, strerror(-rc));
	if (c.ch)
		ivl_channel_close(c.ch);
	if (c.fd >= 0)
		close(c.fd);
	ivl_endpoint_close(ep);
	if (o.expect_reset) {
		printf("%s: %s\n", me,
		       rc == -ECONNRESET ? "peer reset as expected (ECONNRESET)"
					 : "expected ECONNRESET");
		return rc == -ECONNRESET ? 3 : 1;
	}
	return rc < 0 ? 1 : 0;
}
