/* SPDX-License-Identifier: MIT */
/*
 * ivlink-ring-pairs: a fixed number of send+recv pairs, for instruction
 * counts that no load on the machine changes (callgrind) and per-call
 * wall-clock medians, at three layers in one harness:
 *
 *   ring (default)  ivl_ring_write() + ivl_ring_read() through one ring in
 *                   one thread, no notifier;
 *   --api URI       ivl_send() on one channel + ivl_recv() on the other
 *                   end, in one thread: two endpoints of this process on
 *                   the daemon at URI (host:SOCKET);
 *   --api-echo URI  ivl_send() + ivl_recv() of one round trip, the other
 *                   end echoing in a child process (started with exec, so
 *                   callgrind, without --trace-children, counts only us);
 *   --shim          send() + recv() on a loopback TCP connection, the
 *                   other end echoing in a child process: run under
 *                   ivlink-run (the shim) with IVLINK_ENDPOINT=host:SOCKET.
 *
 *   IVL_PAIRS_NO_TIMING=1 valgrind --tool=callgrind \
 *       --toggle-collect=run_pairs --toggle-collect=wait_ready \
 *       build/bench/ivlink-ring-pairs [MODE] [--stream] [--size B] [N]
 *
 * then the instructions callgrind reports (Ir of run_pairs, inclusive)
 * divided by N; set IVL_PAIRS_NO_TIMING=1 so that only the counted run
 * calls run_pairs (a warm-up of N/10 pairs runs before it, uncounted). Every write and read
 * publishes (so each takes the F2 fence and the other side's sleep_seq load, as in a ping-pong).
 * Without valgrind the program also prints the median ns per pair of --rounds timed runs; the echo
 * modes' pair is a round trip through two processes, so compare --api-echo with --shim, and ring
 * with --api. The ring mode uses only ring.h, so it builds against an older ring.c for a
 * before/after comparison (BENCHMARKS.md).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/ivlink.h>
#include <ivlink/ring.h>

#include "bench_common.h"

#define RING_SIZE  (64u * 1024)
#define MAX_ROUNDS 64

static struct ivl_ring_prod prod __attribute__((aligned(64)));
static struct ivl_ring_cons cons __attribute__((aligned(64)));
static unsigned char data[RING_SIZE] __attribute__((aligned(64)));

enum mode { M_RING, M_API, M_API_ECHO, M_SHIM };

/* One layer's send and recv of one pair; ready (echo modes): whether the
 * answer is there to be received. */
struct pair_ops {
	long (*send)(void *ctx, const void *buf, size_t len);
	long (*recv)(void *ctx, void *buf, size_t len);
	void *tx, *rx;
	int (*ready)(void *ctx);
};

/* Echo modes: waits, spinning, until the answer is there, so that recv()
 * takes its fast path. Not inlined: callgrind's second
 * --toggle-collect=wait_ready stops counting while it runs, so the count
 * is the calls themselves and no waiting (how long the other process
 * takes to answer varies from run to run). */
__attribute__((noinline)) static void wait_ready(const struct pair_ops *o)
{
	while (!o->ready(o->rx))
		;
}

static inline long pairs(const struct pair_ops *o, unsigned char *in, unsigned char *out,
			 size_t len, long n)
{
	long sum = 0;

	for (long i = 0; i < n; i++) {
		if (o->send(o->tx, in, len) != (long)len)
			return -1;
		if (o->ready)
			wait_ready(o);
		sum += o->recv(o->rx, out, len);
	}
	return sum;
}

/* Not inlined: callgrind's --toggle-collect names run_pairs, which the
 * warm-up does not call. */
__attribute__((noinline)) static long run_pairs(const struct pair_ops *o, unsigned char *in,
						unsigned char *out, size_t len, long n)
{
	return pairs(o, in, out, len, n);
}

__attribute__((noinline)) static long warm_pairs(const struct pair_ops *o, unsigned char *in,
						 unsigned char *out, size_t len, long n)
{
	return pairs(o, in, out, len, n);
}

/* ---------------------------------------------------------------- ring */

static long ring_send(void *ctx, const void *buf, size_t len)
{
	return ivl_ring_write(ctx, buf, len, 0);
}

static long ring_recv(void *ctx, void *buf, size_t len)
{
	return ivl_ring_read(ctx, buf, len);
}

/* ---------------------------------------------------------------- native API */

static long api_send(void *ctx, const void *buf, size_t len)
{
	return ivl_send(ctx, buf, len, 0);
}

static long api_recv(void *ctx, void *buf, size_t len)
{
	return ivl_recv(ctx, buf, len, 0);
}

static int api_ready(void *ctx)
{
	return (ivl_channel_poll(ctx, IVL_POLLIN) & IVL_POLLIN) != 0;
}

static int open_ep(const char *uri, const char *name, struct ivl_endpoint **ep)
{
	struct ivl_endpoint_opts o;
	int rc;

	memset(&o, 0, sizeof(o));
	o.uri = uri;
	o.name = name;
	rc = ivl_endpoint_open(ep, &o);
	if (rc < 0)
		fprintf(stderr, "ivlink-ring-pairs: endpoint %s: %s\n", uri, strerror(-rc));
	return rc;
}

struct opener {
	struct ivl_endpoint *ep;
	uint32_t remote;
	enum ivl_ring_mode mode;
	struct ivl_channel *ch;
	int rc;
};

static void *open_thread(void *arg)
{
	struct opener *op = arg;
	struct ivl_channel_opts co;

	memset(&co, 0, sizeof(co));
	co.mode = op->mode;
	co.ring_size = RING_SIZE;
	op->rc = ivl_channel_open(op->ep, "ring-pairs", op->remote, &co, 10000000000LL, &op->ch);
	return NULL;
}

/* Both ends of one channel: the opens wait for each other, so one runs in
 * a thread. */
static int open_pair(struct opener *a, struct opener *b)
{
	pthread_t t;

	if (pthread_create(&t, NULL, open_thread, b) != 0)
		return -1;
	open_thread(a);
	pthread_join(t, NULL);
	if (a->rc < 0 || b->rc < 0) {
		fprintf(stderr, "ivlink-ring-pairs: channel open: %s\n",
			strerror(-(a->rc < 0 ? a->rc : b->rc)));
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- sockets */

static long sock_send(void *ctx, const void *buf, size_t len)
{
	return send(*(int *)ctx, buf, len, 0);
}

static long sock_recv(void *ctx, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(*(int *)ctx, (char *)buf + got, len - got, 0);

		if (n <= 0)
			return n < 0 ? -errno : (long)got;
		got += (size_t)n;
	}
	return (long)got;
}

static int sock_ready(void *ctx)
{
	struct pollfd p = {.fd = *(int *)ctx, .events = POLLIN};

	return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

/* ---------------------------------------------------------------- echo child */

/* The echo end of --api-echo and --shim: reads len-byte messages and sends
 * each back until the other end closes. */
static int echo_loop(const struct pair_ops *o, size_t len)
{
	unsigned char *buf = malloc(len);
	long n;

	if (!buf)
		return 1;
	while ((n = o->recv(o->rx, buf, len)) == (long)len)
		if (o->send(o->tx, buf, len) != (long)len)
			break;
	free(buf);
	return 0;
}

static int child_api(const char *uri, uint32_t parent, enum ivl_ring_mode mode, size_t len)
{
	struct opener op = {.remote = parent, .mode = mode};
	struct pair_ops o = {api_send, api_recv, NULL, NULL, NULL};
	uint32_t id;

	if (open_ep(uri, "pairs-echo", &op.ep) < 0)
		return 1;
	id = ivl_endpoint_id(op.ep);
	/* Our id to the parent on stdout (a pipe), then the channel. */
	if (write(1, &id, sizeof(id)) != sizeof(id))
		return 1;
	open_thread(&op);
	if (op.rc < 0)
		return 1;
	o.tx = o.rx = op.ch;
	echo_loop(&o, len);
	ivl_channel_close(op.ch);
	ivl_endpoint_close(op.ep);
	return 0;
}

static int child_shim(int port, size_t len)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct pair_ops o = {sock_send, sock_recv, &fd, &fd, NULL};

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	echo_loop(&o, len);
	close(fd);
	return 0;
}

/* Starts this program again as the echo child with args, its stdout on a
 * pipe whose read end is returned in *out_fd. */
static pid_t spawn_child(char *const args[], int *out_fd)
{
	int p[2];
	pid_t pid;

	if (pipe(p) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		/* argv[0], not /proc/self/exe: under valgrind that is the
		 * tool. */
		execv(strchr(args[0], '/') ? args[0] : "/proc/self/exe", args);
		_exit(127);
	}
	close(p[1]);
	*out_fd = p[0];
	return pid;
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *f)
{
	fprintf(f, "usage: ivlink-ring-pairs [--api URI | --api-echo URI | --shim] [--stream]\n"
		   "                         [--size BYTES] [--rounds N] [PAIRS]\n"
		   "Send+recv pairs at one layer (ring, native API, socket shim), for callgrind\n"
		   "counts (run_pairs) and median ns per pair; see the file comment and\n"
		   "BENCHMARKS.md.\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"api", required_argument, NULL, 'a'},
					   {"api-echo", required_argument, NULL, 'e'},
					   {"shim", no_argument, NULL, 's'},
					   {"stream", no_argument, NULL, 'S'},
					   {"size", required_argument, NULL, 'z'},
					   {"rounds", required_argument, NULL, 'r'},
					   {"echo-api", required_argument, NULL, 1},
					   {"echo-shim", required_argument, NULL, 2},
					   {"help", no_argument, NULL, 'h'},
					   {"version", no_argument, NULL, 'V'},
					   {NULL, 0, NULL, 0}};
	enum ivl_ring_mode rmode = IVL_MODE_MESSAGE;
	enum mode mode = M_RING;
	const char *uri = NULL;
	size_t len = 64;
	long n = 100000, sum = 0, rounds = 5, echo_parent = -1, echo_port = -1;
	struct ivl_ring p, c;
	struct opener ea = {0}, eb = {0};
	struct pair_ops o;
	unsigned char *in, *out;
	int64_t t[MAX_ROUNDS];
	int opt, lfd = -1, sfd = -1, cfd = -1, rc = 1;
	pid_t child = -1;
	char sz[32], num[32];

	while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (opt) {
		case 'a':
			mode = M_API;
			uri = optarg;
			break;
		case 'e':
			mode = M_API_ECHO;
			uri = optarg;
			break;
		case 's':
			mode = M_SHIM;
			break;
		case 'S':
			rmode = IVL_MODE_STREAM;
			break;
		case 'z':
			len = (size_t)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rounds = strtol(optarg, NULL, 10);
			break;
		case 1: /* internal: the echo child of --api-echo */
			echo_parent = strtol(optarg, NULL, 10);
			break;
		case 2: /* internal: the echo child of --shim */
			echo_port = strtol(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("ivlink-ring-pairs %s\n", IVL_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'ivlink-ring-pairs --help'.\n");
			return 2;
		}
	}
	if (optind < argc)
		n = strtol(argv[optind++], NULL, 10);
	if (optind < argc || len == 0 || len > 4096 || n <= 0 || rounds < 1 ||
	    rounds > MAX_ROUNDS) {
		fprintf(stderr,
			"ivlink-ring-pairs: size 1..4096, PAIRS > 0, rounds 1..%d; try "
			"'ivlink-ring-pairs --help'.\n",
			MAX_ROUNDS);
		return 2;
	}
	if (echo_parent >= 0)
		return child_api(uri ? uri : getenv(IVL_ENV_ENDPOINT), (uint32_t)echo_parent, rmode,
				 len);
	if (echo_port >= 0)
		return child_shim((int)echo_port, len);

	in = calloc(1, len);
	out = calloc(1, len);
	if (!in || !out)
		return 1;
	snprintf(sz, sizeof(sz), "%zu", len);
	switch (mode) {
	case M_RING:
		ivl_ring_format(&prod, &cons);
		if (ivl_ring_init_producer(&p, &prod, &cons, data, RING_SIZE, rmode, 4096, NULL) <
			0 ||
		    ivl_ring_init_consumer(&c, &prod, &cons, data, RING_SIZE, rmode, 4096, NULL) <
			0) {
			fprintf(stderr, "ivlink-ring-pairs: ring init failed\n");
			return 1;
		}
		o = (struct pair_ops){ring_send, ring_recv, &p, &c, NULL};
		break;
	case M_API:
		if (open_ep(uri, "pairs-a", &ea.ep) < 0 || open_ep(uri, "pairs-b", &eb.ep) < 0)
			return 1;
		ea.remote = ivl_endpoint_id(eb.ep);
		eb.remote = ivl_endpoint_id(ea.ep);
		ea.mode = eb.mode = rmode;
		if (open_pair(&ea, &eb) < 0)
			return 1;
		o = (struct pair_ops){api_send, api_recv, ea.ch, eb.ch, NULL};
		break;
	case M_API_ECHO: {
		uint32_t cid;
		char *args[] = {argv[0],  "--echo-api", num,  "--api-echo", (char *)uri,
				"--size", sz,		NULL, NULL};

		if (rmode == IVL_MODE_STREAM)
			args[7] = "--stream";

		if (open_ep(uri, "pairs-a", &ea.ep) < 0)
			return 1;
		snprintf(num, sizeof(num), "%u", ivl_endpoint_id(ea.ep));
		child = spawn_child(args, &cfd);
		if (child < 0 || read(cfd, &cid, sizeof(cid)) != sizeof(cid)) {
			fprintf(stderr, "ivlink-ring-pairs: the echo child did not start\n");
			goto out;
		}
		ea.remote = cid;
		ea.mode = rmode;
		open_thread(&ea);
		if (ea.rc < 0) {
			fprintf(stderr, "ivlink-ring-pairs: channel open: %s\n", strerror(-ea.rc));
			goto out;
		}
		o = (struct pair_ops){api_send, api_recv, ea.ch, ea.ch, api_ready};
		break;
	}
	case M_SHIM: {
		struct sockaddr_in a = {.sin_family = AF_INET};
		socklen_t al = sizeof(a);
		char *args[] = {argv[0], "--echo-shim", num, "--size", sz, NULL};
		int one = 1;

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		lfd = socket(AF_INET, SOCK_STREAM, 0);
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    listen(lfd, 1) < 0 || getsockname(lfd, (struct sockaddr *)&a, &al) < 0) {
			perror("ivlink-ring-pairs: listen");
			goto out;
		}
		snprintf(num, sizeof(num), "%u", ntohs(a.sin_port));
		child = spawn_child(args, &cfd);
		sfd = child < 0 ? -1 : accept(lfd, NULL, NULL);
		if (sfd < 0) {
			perror("ivlink-ring-pairs: accept");
			goto out;
		}
		setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		o = (struct pair_ops){sock_send, sock_recv, &sfd, &sfd, sock_ready};
		break;
	}
	}

	/* Warm-up (page faults, the shim's rendezvous), then the counted run,
	 * then the timed rounds (valgrind: skip them, callgrind counted). */
	if (warm_pairs(&o, in, out, len, n / 10 + 1) < 0)
		goto fail;
	sum = run_pairs(&o, in, out, len, n);
	if (sum != (long)len * n)
		goto fail;
	if (!getenv("IVL_PAIRS_NO_TIMING")) {
		for (long r = 0; r < rounds; r++) {
			int64_t t0 = ivl__now_ns();

			if (run_pairs(&o, in, out, len, n) != (long)len * n)
				goto fail;
			t[r] = ivl__now_ns() - t0;
		}
		bench_sort_i64(t, (size_t)rounds);
	}
	printf("%ld pairs of %zu B (%s, %s mode)", n, len,
	       mode == M_RING	    ? "ring"
	       : mode == M_API	    ? "ivl_send+ivl_recv"
	       : mode == M_API_ECHO ? "ivl_send+ivl_recv, echo round trip"
				    : "shim send+recv, echo round trip",
	       rmode == IVL_MODE_STREAM || mode == M_SHIM ? "stream" : "message");
	if (!getenv("IVL_PAIRS_NO_TIMING"))
		printf(": median %.1f ns per pair over %ld rounds",
		       (double)t[rounds / 2] / (double)n, rounds);
	printf("\n");
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "ivlink-ring-pairs: moved %ld bytes, expected %ld\n", sum, (long)len * n);
out:
	if (sfd >= 0)
		close(sfd);
	if (lfd >= 0)
		close(lfd);
	if (ea.ch)
		ivl_channel_close(ea.ch);
	if (eb.ch)
		ivl_channel_close(eb.ch);
	if (child > 0) {
		int st;

		if (waitpid(child, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			rc = 1;
	}
	if (cfd >= 0)
		close(cfd);
	ivl_endpoint_close(ea.ep);
	ivl_endpoint_close(eb.ep);
	free(in);
	free(out);
	return rc;
}
