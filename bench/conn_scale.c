/* SPDX-License-Identifier: MIT */
/*
 * ivlink-conn-scale: one epoll set holding many connections, most of them
 * idle, and a round trip measured on the few that are active. Plain TCP
 * sockets: run both ends under ivlink-run to measure the socket shim, or
 * plain for the kernel's figure (bench/shim-bench runs both, interleaved).
 *
 * The server is a level-triggered epoll echo server; the client opens IDLE
 * connections that stay silent and ACTIVE ones that ping-pong SIZE-byte
 * messages, all in the client's one epoll set, as an event-loop program
 * with many idle keep-alive clients has them. Every byte that comes back is
 * checked against the stream that was sent (a position-keyed pattern per
 * connection), and at the end every idle connection carries one checked
 * round trip too, so that a connection the transport lost is an error.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IVL_VERSION
#define IVL_VERSION "unknown"
#endif

#define MAX_CONNS 200000
#define MAX_SIZE  (1 << 20)
#define BATCH	  256

static const char usage_text[] =
    "Usage: ivlink-conn-scale server [--port PORT]\n"
    "       ivlink-conn-scale client --port PORT [--idle N] [--active K]\n"
    "                                [--rounds R] [--size BYTES]\n"
    "       ivlink-conn-scale --help | --version\n"
    "\n"
    "One epoll set with many mostly idle TCP connections, and the round trip\n"
    "of the active ones. Run both ends under ivlink-run for the socket shim,\n"
    "or plain for the kernel; bench/shim-bench compares the two.\n"
    "\n"
    "server   a level-triggered epoll echo server on 127.0.0.1:PORT (0, the\n"
    "         default: any free port). Prints \"port PORT\" once it listens,\n"
    "         then serves until SIGTERM or SIGINT.\n"
    "client   opens N idle connections (default 100) and K active ones\n"
    "         (default 1) to the server, all in one epoll set; the active\n"
    "         ones do R rounds (default 2000) of a SIZE-byte message (default\n"
    "         64, at most 1048576) each, echoed and checked byte for byte;\n"
    "         then every idle connection does one checked round trip. Prints\n"
    "         one line: idle, active, rounds, size, p50_us, p99_us (round\n"
    "         latency: all active connections sent and echoed), bytes\n"
    "         checked, and the seconds the connections took to open.\n"
    "\n"
    "Options:\n"
    "  -p, --port PORT    server port, 0..65535 (client: 1..65535)\n"
    "  -n, --idle N       idle connections, 0..200000\n"
    "  -k, --active K     active connections, 1..1024\n"
    "  -r, --rounds R     rounds, 1..100000000\n"
    "  -s, --size BYTES   message size, 1..1048576\n"
    "  -h, --help         this text\n"
    "      --version      the version\n"
    "\n"
    "The soft RLIMIT_NOFILE is raised to what the connections need (up to\n"
    "the hard limit; as root the hard limit too). Exit status: 0 success,\n"
    "1 an error (a connection lost or a byte wrong: named on stderr),\n"
    "2 invalid command line.\n";

static _Noreturn __attribute__((format(printf, 1, 2))) void usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ivlink-conn-scale: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'ivlink-conn-scale --help' for more information.\n");
	exit(2);
}

static long parse_num(const char *opt, const char *s, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		usage_error("%s: '%s' is not a number in %ld..%ld", opt, s, lo, hi);
	return v;
}

/* Byte i of connection c's stream: both directions, checked on return. */
static uint8_t pattern(uint32_t c, uint64_t i)
{
	uint64_t x = (i / 8 + 1) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)c * 0xbf58476d1ce4e5b9ULL;

	x ^= x >> 31;
	return (uint8_t)(x >> (8 * (i % 8)));
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

/* Raises the soft (and as root the hard) RLIMIT_NOFILE to at least need. */
static int want_fds(rlim_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max < need) {
		struct rlimit up = {need, need};

		return setrlimit(RLIMIT_NOFILE, &up) < 0 ? -errno : 0;
	}
	rl.rlim_cur = need;
	return setrlimit(RLIMIT_NOFILE, &rl) < 0 ? -errno : 0;
}

/* ------------------------------------------------------------ server */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Echoes what fd has; closes it at EOF or an error. */
static void echo(int ep, int fd, char *buf)
{
	for (;;) {
		ssize_t n = recv(fd, buf, MAX_SIZE, 0), off = 0;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
			close(fd);
			return;
		}
		/* All of it before the next read: the client reads while it
		 * sends, so a full buffer never lasts. */
		while (off < n) {
			ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);

			if (w < 0 && errno == EAGAIN) {
				struct pollfd p = {.fd = fd, .events = POLLOUT};

				poll(&p, 1, 1000);
				continue;
			}
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return;
			off += w;
		}
	}
}

static int server(int port)
{
	struct sockaddr_in a = loopback(port);
	socklen_t alen = sizeof(a);
	struct epoll_event evs[BATCH], ev = {.events = EPOLLIN};
	struct sigaction sa = {.sa_handler = on_signal};
	int lfd, ep, one = 1;
	char *buf = malloc(MAX_SIZE);

	/* Enough for the most clients can ask, or what the hard limit
	 * allows (then accept() fails with EMFILE beyond it). */
	if (want_fds(MAX_CONNS + 64) < 0) {
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
			want_fds(rl.rlim_max);
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!buf || lfd < 0 || ep < 0) {
		perror("ivlink-conn-scale: server");
		free(buf);
		return 1;
	}
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
		perror("ivlink-conn-scale: listen");
		free(buf);
		return 1;
	}
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	printf("port %d\n", ntohs(a.sin_port));
	fflush(stdout);
	while (!stop) {
		int n = epoll_wait(ep, evs, BATCH, 500);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd != lfd) {
				echo(ep, fd, buf);
				continue;
			}
			for (;;) {
				int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

				if (c < 0)
					break;
				setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				ev.data.fd = c;
				if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0)
					close(c);
			}
		}
	}
	free(buf);
	return 0;
}

/* ------------------------------------------------------------ client */

struct conn {
	int fd;
	uint64_t sent, got; /* stream positions */
};

struct client {
	int ep;
	struct conn *c;
	uint32_t n;
	uint8_t *buf;
	uint64_t checked;
};

static int dial(int port)
{
	struct sockaddr_in a = loopback(port);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;

		if (e == EINTR)
			continue;
		close(fd);
		return -e;
	}
	return fd;
}

/* Sends size bytes of connection i's stream (blocking: the server echoes
 * as it reads, and messages are at most 1 MiB). */
static int send_msg(struct client *cl, uint32_t i, size_t size)
{
	struct conn *c = &cl->c[i];

	for (size_t k = 0; k < size; k++)
		cl->buf[k] = pattern(i, c->sent + k);
	if (bench_send_all(c->fd, cl->buf, size) < 0)
		return -1;
	c->sent += size;
	return 0;
}

/* Reads what connection i has and checks it; returns bytes read or -1. */
static ssize_t take(struct client *cl, uint32_t i)
{
	struct conn *c = &cl->c[i];
	ssize_t n = recv(c->fd, cl->buf, MAX_SIZE, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		fprintf(stderr, "ivlink-conn-scale: connection %u: %s after %llu bytes\n", i,
			n == 0 ? "closed by the server" : strerror(errno),
			(unsigned long long)c->got);
		return -1;
	}
	if ((uint64_t)n > c->sent - c->got) {
		fprintf(stderr, "ivlink-conn-scale: connection %u: %zd bytes back, %llu sent\n", i,
			n, (unsigned long long)(c->sent - c->got));
		return -1;
	}
	for (ssize_t k = 0; k < n; k++)
		if (cl->buf[k] != pattern(i, c->got + (uint64_t)k)) {
			fprintf(stderr, "ivlink-conn-scale: connection %u: byte %llu wrong\n", i,
				(unsigned long long)(c->got + (uint64_t)k));
			return -1;
		}
	c->got += (uint64_t)n;
	cl->checked += (uint64_t)n;
	return n;
}

/* Waits in the one epoll set until connections [first, first+count) have
 * every byte back. Events of other connections are an error: they sent
 * nothing, so nothing may arrive for them. */
static int await_echo(struct client *cl, uint32_t first, uint32_t count)
{
	struct epoll_event evs[BATCH];
	uint32_t left = 0;

	for (uint32_t i = first; i < first + count; i++)
		left += cl->c[i].got != cl->c[i].sent;
	while (left) {
		int n = epoll_wait(cl->ep, evs, BATCH, 60000);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr,
				"ivlink-conn-scale: %s while %u connections wait for "
				"their echo\n",
				n ? strerror(errno) : "60 s without an event", left);
			return -1;
		}
		for (int k = 0; k < n; k++) {
			uint32_t i = evs[k].data.u32;
			struct conn *c = &cl->c[i];
			int done = c->got == c->sent;

			if (i < first || i >= first + count) {
				fprintf(stderr,
					"ivlink-conn-scale: event on silent connection %u "
					"(events 0x%x)\n",
					i, evs[k].events);
				return -1;
			}
			if (take(cl, i) < 0)
				return -1;
			/* take() moved c->got: this is the reply's last byte. */
			// cppcheck-suppress incorrectLogicOperator ; take() changes c->got
			if (!done && c->got == c->sent)
				left--;
		}
	}
	return 0;
}

static int client(int port, uint32_t idle, uint32_t active, long rounds, size_t size)
{
	struct client cl = {.n = idle + active};
	int64_t *lat = malloc(sizeof(*lat) * (size_t)rounds), t0, open_ns;
	int rc = 1;

	cl.c = calloc(cl.n, sizeof(*cl.c));
	cl.buf = malloc(MAX_SIZE);
	cl.ep = epoll_create1(EPOLL_CLOEXEC);
	if (!lat || !cl.c || !cl.buf || cl.ep < 0) {
		perror("ivlink-conn-scale: client");
		free(cl.c);
		free(cl.buf);
		free(lat);
		return 1;
	}
	if (want_fds((rlim_t)cl.n + 64) < 0) {
		fprintf(stderr,
			"ivlink-conn-scale: %u connections need %u descriptors: %s "
			"(raise the hard RLIMIT_NOFILE, or run as root)\n",
			cl.n, cl.n + 64, strerror(errno));
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Active connections first (0..active-1), then the idle ones. */
	t0 = ivl__now_ns();
	for (uint32_t i = 0; i < cl.n; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
		int fd = dial(port);

		if (fd < 0) {
			fprintf(stderr, "ivlink-conn-scale: connection %u of %u: %s\n", i, cl.n,
				strerror(-fd));
			goto out;
		}
		cl.c[i].fd = fd;
		if (epoll_ctl(cl.ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			perror("ivlink-conn-scale: epoll_ctl");
			goto out;
		}
	}
	open_ns = ivl__now_ns() - t0;
	for (long r = 0; r < rounds; r++) {
		t0 = ivl__now_ns();
		for (uint32_t i = 0; i < active; i++)
			if (send_msg(&cl, i, size) < 0) {
				fprintf(stderr, "ivlink-conn-scale: send on connection %u: %s\n", i,
					strerror(errno));
				goto out;
			}
		if (await_echo(&cl, 0, active) < 0)
			goto out;
		lat[r] = ivl__now_ns() - t0;
	}
	/* Every idle connection must still work: one checked round trip
	 * each, a batch at a time. */
	for (uint32_t i = active; i < cl.n; i += BATCH) {
		uint32_t k = cl.n - i < BATCH ? cl.n - i : BATCH;

		for (uint32_t j = i; j < i + k; j++)
			if (send_msg(&cl, j, 8) < 0) {
				fprintf(stderr,
					"ivlink-conn-scale: send on idle connection %u: %s\n", j,
					strerror(errno));
				goto out;
			}
		if (await_echo(&cl, i, k) < 0)
			goto out;
	}
	bench_sort_i64(lat, (size_t)rounds);
	printf("idle %u active %u rounds %ld size %zu p50_us %.2f p99_us %.2f checked %llu "
	       "open_s %.2f\n",
	       idle, active, rounds, size, bench_pct(lat, (size_t)rounds, 0.5) / 1e3,
	       bench_pct(lat, (size_t)rounds, 0.99) / 1e3, (unsigned long long)cl.checked,
	       open_ns / 1e9);
	rc = 0;
out:
	for (uint32_t i = 0; i < cl.n; i++)
		if (cl.c[i].fd > 0)
			close(cl.c[i].fd);
	free(cl.c);
	free(cl.buf);
	free(lat);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"port", required_argument, NULL, 'p'},   {"idle", required_argument, NULL, 'n'},
	    {"active", required_argument, NULL, 'k'}, {"rounds", required_argument, NULL, 'r'},
	    {"size", required_argument, NULL, 's'},   {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0}};
	long port = -1, idle = 100, active = 1, rounds = 2000, size = 64;
	const char *mode;
	int o;

	opterr = 0;
	while ((o = getopt_long(argc, argv, ":p:n:k:r:s:h", opts, NULL)) != -1) {
		switch (o) {
		case 'p':
			port = parse_num("--port", optarg, 0, 65535);
			break;
		case 'n':
			idle = parse_num("--idle", optarg, 0, MAX_CONNS);
			break;
		case 'k':
			active = parse_num("--active", optarg, 1, 1024);
			break;
		case 'r':
			rounds = parse_num("--rounds", optarg, 1, 100000000);
			break;
		case 's':
			size = parse_num("--size", optarg, 1, MAX_SIZE);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("ivlink-conn-scale %s\n", IVL_VERSION);
			return 0;
		case ':':
			usage_error("option '%s' needs an argument", argv[optind - 1]);
			break;
		default:
			if (optopt) {
				char o2[3] = {'-', (char)optopt, 0};

				usage_error("unknown option '%s'", o2);
			}
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		usage_error("%s", "no mode given (server or client)");
	mode = argv[optind++];
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!strcmp(mode, "server"))
		return server(port < 0 ? 0 : (int)port);
	if (strcmp(mode, "client"))
		usage_error("unknown mode '%s' (server or client)", mode);
	if (port < 1)
		usage_error("%s", "client: --port PORT (1..65535) is required");
	return client((int)port, (uint32_t)idle, (uint32_t)active, rounds, (size_t)size);
}
