/* SPDX-License-Identifier: MIT */
/*
 * Two threads on one accelerated connection, which the shim's fast path
 * (a direction owned by one thread, used without its mutex) must survive:
 *
 *  1. Shared writes: thread A writes 'A' bytes alone for a while (so it
 *     owns the tx direction), then thread B writes 'B' bytes while A goes
 *     on; the forked server counts every byte. A second thread taking a
 *     direction from its owner without waiting for it would lose or
 *     duplicate bytes (two writers of one ring handle), and the counts
 *     would not match.
 *  2. close() racing send(): a thread writes in a loop while the main
 *     thread closes the fd under it; the writer's calls end with EBADF (or
 *     EPIPE/ECONNRESET), never a crash (under ASan: never a use after
 *     free of the connection the fast path looked up without a reference).
 *
 * Run under ivlink-run by apps_shim_threads.sh, which checks through
 * ivlinkctl that the bytes went through the rings; it passes over plain TCP
 * too.
 *
 * usage: shim_threads PORT1 PORT2
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "apps_peer.h"

#define PER_THREAD (16u << 20) /* bytes each writer sends in part 1 */
#define A_ALONE	   (1u << 20)  /* of which A sends this much before B starts */
#define CHUNK	   61	       /* odd: ring free space is never a multiple */

/* Part 1's server: counts 'A' and 'B' until EOF, answers "a b other\n". */
static void count_server(int s)
{
	uint64_t a = 0, b = 0, other = 0;
	unsigned char buf[16384];
	char line[96];
	ssize_t n;
	int len;

	while ((n = read(s, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == 'A')
				a++;
			else if (buf[i] == 'B')
				b++;
			else
				other++;
		}
	len = snprintf(line, sizeof(line), "%llu %llu %llu\n", (unsigned long long)a,
		       (unsigned long long)b, (unsigned long long)other);
	if (write(s, line, (size_t)len) != len)
		_exit(4);
	close(s);
	_exit(n == 0 ? 0 : 5);
}

/* Part 2's server: reads until EOF or an error. */
static void drain_server(int s)
{
	char buf[16384];

	while (read(s, buf, sizeof(buf)) > 0)
		;
	_exit(0);
}

static int connect_to(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s",
	      strerror(errno));
	return fd;
}

struct writer {
	int fd;
	char byte;
	uint64_t total;
	int *go; /* A sets it after A_ALONE bytes; B waits for it */
	int is_b;
	int err; /* part 2: the errno that ended the loop */
};

static void *writer_thread(void *arg)
{
	struct writer *w = arg;
	char buf[CHUNK];
	uint64_t sent = 0;

	memset(buf, w->byte, sizeof(buf));
	if (w->is_b)
		while (!__atomic_load_n(w->go, __ATOMIC_ACQUIRE))
			sched_yield();
	while (sent < w->total) {
		size_t n = w->total - sent < CHUNK ? (size_t)(w->total - sent) : CHUNK;

		peer_write_all(w->fd, buf, n);
		sent += n;
		/* A owns the direction by now; B comes while A goes on. */
		if (!w->is_b && sent >= A_ALONE)
			__atomic_store_n(w->go, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void shared_writes(int port)
{
	pid_t srv = fork_peer(port, count_server);
	int fd = connect_to(port), st;
	int go = 0;
	struct writer a = {.fd = fd, .byte = 'A', .total = PER_THREAD, .go = &go};
	struct writer b = {.fd = fd, .byte = 'B', .total = PER_THREAD, .go = &go, .is_b = 1};
	char line[96];
	unsigned long long na, nb, no;
	pthread_t ta, tb;
	ssize_t n, got = 0;

	CHECK(pthread_create(&ta, NULL, writer_thread, &a) == 0, "thread");
	CHECK(pthread_create(&tb, NULL, writer_thread, &b) == 0, "thread");
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown");
	while ((n = read(fd, line + got, sizeof(line) - 1 - (size_t)got)) > 0)
		got += n;
	line[got] = 0;
	CHECK(sscanf(line, "%llu %llu %llu", &na, &nb, &no) == 3, "server said '%s'", line);
	printf("shared writes: server counted %llu A, %llu B, %llu other (sent %u each)\n", na, nb,
	       no, PER_THREAD);
	CHECK(na == PER_THREAD && nb == PER_THREAD && no == 0, "bytes lost or mixed up");
	close(fd);
	CHECK(waitpid(srv, &st, 0) == srv && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "server status %d", st);
}

static void *send_until_error(void *arg)
{
	struct writer *w = arg;
	char buf[CHUNK];

	memset(buf, 'C', sizeof(buf));
	for (;;) {
		ssize_t k = send(w->fd, buf, sizeof(buf), MSG_NOSIGNAL);

		if (k < 0) {
			__atomic_store_n(&w->err, errno, __ATOMIC_RELEASE);
			return NULL;
		}
		__atomic_store_n(&w->total, w->total + (uint64_t)k, __ATOMIC_RELAXED);
	}
}

static void close_under_send(int port)
{
	pid_t srv = fork_peer(port, drain_server);
	int fd = connect_to(port), st;
	struct writer w = {.fd = fd};
	pthread_t t;

	CHECK(pthread_create(&t, NULL, send_until_error, &w) == 0, "thread");
	while (__atomic_load_n(&w.total, __ATOMIC_RELAXED) < (1u << 20)) {
		CHECK(!__atomic_load_n(&w.err, __ATOMIC_ACQUIRE), "writer failed early: %s",
		      strerror(w.err));
		sched_yield();
	}
	/* The writer is in send() (fast path: no reference) right now. */
	CHECK(close(fd) == 0, "close");
	pthread_join(t, NULL);
	printf("close under send: writer stopped with %s after %llu bytes\n", strerror(w.err),
	       (unsigned long long)w.total);
	CHECK(w.err == EBADF || w.err == EPIPE || w.err == ECONNRESET, "writer got %s",
	      strerror(w.err));
	CHECK(waitpid(srv, &st, 0) == srv && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "server status %d", st);
}

int main(int argc, char **argv)
{
	CHECK(argc == 3, "usage: shim_threads PORT1 PORT2");
	shared_writes(atoi(argv[1]));
	close_under_send(atoi(argv[2]));
	printf("PASS\n");
	return 0;
}
