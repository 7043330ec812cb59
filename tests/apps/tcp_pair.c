/* SPDX-License-Identifier: MIT */
/*
 * A tiny TCP server/client pair for the shim's fallback tests, run as
 * separate processes (each under ivlink-run or not):
 *
 *   tcp_pair server PORT DELAY_MS   listens, waits DELAY_MS before accept(),
 *                                   reads to EOF, checks the stream, replies
 *                                   "OK <bytes> <cksum>\n"
 *   tcp_pair client PORT BYTES      connects, writes BYTES of a known stream
 *                                   at once (before the server accepts),
 *                                   shuts down writing, prints the reply
 *                                   (env TCP_PAIR_FASTOPEN=1: with
 *                                   TCP_FASTOPEN_CONNECT set)
 *   tcp_pair sink PORT DELAY_MS     accepts at once, waits DELAY_MS, reads to
 *                                   EOF, checks the stream, prints
 *                                   "OK <bytes> <cksum>\n" (no reply)
 *   tcp_pair send-exit PORT BYTES HOW
 *                                   connects, writes BYTES of the stream and
 *                                   leaves without closing: HOW is exit
 *                                   (destructors run), _exit or kill (SIGKILL)
 *   tcp_pair refused PORT           connect() must fail with ECONNREFUSED
 *   tcp_pair pingpong-server PORT   echoes 64-byte messages
 *   tcp_pair pingpong PORT N SIZE   N round trips, prints p50/p99 in us
 *
 * Exit 0 on success.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support.h"

/* The one stream every client sends and every server checks. */
#define STREAM_SEED 0x7c9a1fULL

/* 127.0.0.1, or $TCP_PAIR_HOST (an IPv4 address: the server binds it,
 * 0.0.0.0 for any; the client connects to it), e.g. between guests. */
static struct sockaddr_in addr(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	const char *host = getenv("TCP_PAIR_HOST");

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (host && inet_pton(AF_INET, host, &a.sin_addr) != 1) {
		fprintf(stderr, "TCP_PAIR_HOST='%s' is not an IPv4 address\n", host);
		exit(2);
	}
	return a;
}

static int listener(int port)
{
	struct sockaddr_in a = addr(port);
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 16) < 0) {
		perror("bind/listen");
		exit(1);
	}
	return s;
}

static int dial(int port)
{
	struct sockaddr_in a = addr(port);
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	/* TCP_PAIR_FASTOPEN=1: an option the shim cannot carry (its
	 * connections then stay plain TCP, reason "option"). */
	if (getenv("TCP_PAIR_FASTOPEN") &&
	    setsockopt(s, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one)) < 0) {
		perror("TCP_FASTOPEN_CONNECT");
		exit(1);
	}
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("connect");
		exit(1);
	}
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return s;
}

static int full(int fd, void *buf, size_t len, int wr)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = wr ? write(fd, (char *)buf + done, len - done)
			       : read(fd, (char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

/* Accepts after accept_ms, reads to EOF after read_ms, checks the stream;
 * replies to the client if reply is set. */
static int server(int port, int accept_ms, int read_ms, int reply_it)
{
	int l = listener(port), s;
	uint64_t total = 0, cks = 0;
	char buf[65536], reply[128];
	ssize_t n;

	printf("listening\n");
	fflush(stdout);
	usleep((useconds_t)accept_ms * 1000);
	s = accept(l, NULL, NULL);
	if (s < 0) {
		perror("accept");
		return 1;
	}
	usleep((useconds_t)read_ms * 1000);
	while ((n = read(s, buf, sizeof(buf))) > 0) {
		size_t bad = ts_stream_check(STREAM_SEED, total, buf, (size_t)n);

		if (bad != (size_t)n) {
			fprintf(stderr, "byte %llu differs\n", (unsigned long long)(total + bad));
			return 1;
		}
		cks = ts_cksum(cks, buf, (size_t)n);
		total += (uint64_t)n;
	}
	if (n < 0) {
		perror("read");
		return 1;
	}
	snprintf(reply, sizeof(reply), "OK %llu %016llx\n", (unsigned long long)total,
		 (unsigned long long)cks);
	if (reply_it && full(s, reply, strlen(reply), 1) < 0)
		return 1;
	printf("%s", reply);
	close(s);
	close(l);
	return 0;
}

/* Writes bytes and leaves as HOW says, never closing the socket. */
static int send_exit(int port, uint64_t bytes, const char *how)
{
	int s = dial(port);
	uint8_t *buf = malloc(bytes ? bytes : 1);

	ts_stream_fill(STREAM_SEED, 0, buf, bytes);
	if (full(s, buf, bytes, 1) < 0) {
		perror("write");
		return 1;
	}
	if (!strcmp(how, "_exit"))
		_exit(0);
	if (!strcmp(how, "kill"))
		raise(SIGKILL);
	exit(0);
}

static int client(int port, uint64_t bytes)
{
	int s = dial(port);
	uint8_t *buf = malloc(bytes ? bytes : 1);
	char reply[128];
	ssize_t n;
	size_t got = 0;

	ts_stream_fill(STREAM_SEED, 0, buf, bytes);
	if (full(s, buf, bytes, 1) < 0 || shutdown(s, SHUT_WR) < 0) {
		perror("write/shutdown");
		return 1;
	}
	while ((n = read(s, reply + got, sizeof(reply) - 1 - got)) > 0)
		got += (size_t)n;
	reply[got] = '\0';
	printf("%s", reply);
	close(s);
	free(buf);
	return strncmp(reply, "OK ", 3) == 0 ? 0 : 1;
}

static int refused(int port)
{
	struct sockaddr_in a = addr(port);
	int s = socket(AF_INET, SOCK_STREAM, 0);

	if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0) {
		fprintf(stderr, "connect succeeded\n");
		return 1;
	}
	printf("connect: %s\n", strerror(errno));
	return errno == ECONNREFUSED ? 0 : 1;
}

static int pp_server(int port)
{
	int l = listener(port), s, one = 1;
	char buf[4096];
	ssize_t n;

	printf("listening\n");
	fflush(stdout);
	s = accept(l, NULL, NULL);
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while ((n = read(s, buf, sizeof(buf))) > 0)
		if (full(s, buf, (size_t)n, 1) < 0)
			break;
	return 0;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int pingpong(int port, int n, int size)
{
	int s = dial(port);
	char buf[4096] = {0};
	int64_t *rt = calloc((size_t)n, sizeof(*rt));

	for (int i = -n / 10; i < n; i++) { /* 10% warm-up */
		int64_t t0 = ts_now_ns();

		if (full(s, buf, (size_t)size, 1) < 0 || full(s, buf, (size_t)size, 0) < 0) {
			perror("pingpong");
			return 1;
		}
		if (i >= 0)
			rt[i] = ts_now_ns() - t0;
	}
	qsort(rt, (size_t)n, sizeof(*rt), cmp64);
	printf("p50_us %.2f p99_us %.2f\n", rt[n / 2] / 1000.0, rt[n * 99 / 100] / 1000.0);
	close(s);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "server"))
		return server(atoi(argv[2]), atoi(argv[3]), 0, 1);
	if (argc >= 4 && !strcmp(argv[1], "sink"))
		return server(atoi(argv[2]), 0, atoi(argv[3]), 0);
	if (argc >= 5 && !strcmp(argv[1], "send-exit"))
		return send_exit(atoi(argv[2]), strtoull(argv[3], NULL, 10), argv[4]);
	if (argc >= 4 && !strcmp(argv[1], "client"))
		return client(atoi(argv[2]), strtoull(argv[3], NULL, 10));
	if (argc >= 3 && !strcmp(argv[1], "refused"))
		return refused(atoi(argv[2]));
	if (argc >= 3 && !strcmp(argv[1], "pingpong-server"))
		return pp_server(atoi(argv[2]));
	if (argc >= 5 && !strcmp(argv[1], "pingpong"))
		return pingpong(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
	fprintf(stderr, "usage: see the file comment\n");
	return 2;
}
