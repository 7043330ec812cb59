/* SPDX-License-Identifier: MIT */
/*
 * A plain TCP program (it knows nothing of ivlink) that the shim tests run
 * under libivlink-preload.so. Every byte it receives is checked against a
 * deterministic stream; any mismatch prints "BAD ..." and exits 1.
 *
 * Protocol, per connection: the client sends requests {magic, len, seed}
 * followed by len bytes of stream(seed); the server checks them and replies
 * with len bytes of stream(seed + 1), which the client checks.
 *
 *   shim_peer server PORT [-q] [-k]
 *       poll()-driven, non-blocking, any number of connections; runs until
 *       SIGTERM (exit 0 when nothing was wrong). Unless -q, prints one line
 *       per connection end: "END <errno or 0 (EOF)> <mid-message 0|1>".
 *       -k: a bad request is reported and closes its connection only.
 *   shim_peer client PORT CONNS ROUNDS MAXSIZE SEED SECONDS [-s]
 *       batches of connections, all open at once, ROUNDS requests each of
 *       1..MAXSIZE bytes in flight concurrently, every reply checked; then
 *       closed. SECONDS 0: one batch of CONNS; else batches of 1..CONNS
 *       until SECONDS passed, at most MAX_CPS connections a second. -s: after the first batch is
 * open and has done its rounds, print "OPEN <n>" and wait for a line on stdin before closing it;
 * after the last batch is closed, print "IDLE" and wait for a line again before exiting. After each
 * batch: "BATCH <k> <fds> <rss_kb>". At the end "DONE <connections> <bytes checked>". shim_peer
 * pinger PORT SEED one connection at a time, requests of 1..16 KiB back to back; when it ends
 * prints "END <errno or 0 (EOF)>" and waits for a line on stdin before connecting again ("CONN"
 * once connected and a first round trip worked). Meant to be killed, or to survive a killed server.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

#define MAGIC 0x53504545u /* "SPEE" */
/* The client gives up on a batch after this long ("BAD stall"): under a
 * hostile peer that rewrites rings between victims, a victim without
 * timeouts may wait for data that never comes. */
#define STALL_MS 20000
#define MAX_CPS	 200 /* timed client: connections per second, at most */

struct req {
	uint32_t magic;
	uint32_t len;
	uint64_t seed;
};

static volatile sig_atomic_t stop;

/* Server -k: a bad request closes its connection instead of exiting. */
static int keep_going;

static int check(uint64_t seed, uint64_t off, const uint8_t *b, size_t n, const char *what)
{
	size_t bad = ts_stream_check(seed, off, b, n);

	if (bad == n)
		return 0;
	printf("BAD %s: byte %llu of stream %llu\n", what, (unsigned long long)(off + bad),
	       (unsigned long long)seed);
	if (!keep_going)
		exit(1);
	return -1;
}

static int64_t now_ms(void)
{
	return ts_now_ns() / 1000000;
}

static struct sockaddr_in addr(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

/* realloc() or exit 1: the server cannot go on without its tables. */
static void *grow(void *p, size_t size)
{
	void *q = realloc(p, size);

	if (!q) {
		printf("BAD out of memory (%zu bytes)\n", size);
		exit(1);
	}
	return q;
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* A connection's progress through one request/reply. */
struct conn {
	int fd;
	int phase; /* server: 0 header, 1 payload, 2 reply; client: 0 send, 1 reply, 2 done */
	struct req r;
	uint64_t off; /* in the current part (header counted in off for phase 0) */
	unsigned rounds_left;
	uint64_t rng;
	int ready; /* server: poll reported it, or just accepted */
};

static uint8_t iobuf[256 << 10];

/* ------------------------------------------------------------------ server */

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

/* Returns 1 to keep the connection, 0 when it ended. */
static int server_step(struct conn *c, int quiet)
{
	ssize_t n;

	for (;;) {
		if (c->phase == 0) {
			n = read(c->fd, (uint8_t *)&c->r + c->off, sizeof(c->r) - c->off);
		} else if (c->phase == 1) {
			size_t want = c->r.len - c->off;

			n = read(c->fd, iobuf, want < sizeof(iobuf) ? want : sizeof(iobuf));
		} else {
			size_t want = c->r.len - c->off;

			if (want > sizeof(iobuf))
				want = sizeof(iobuf);
			ts_stream_fill(c->r.seed + 1, c->off, iobuf, want);
			n = write(c->fd, iobuf, want);
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 1;
		if (n <= 0) {
			if (!quiet)
				printf("END %d %d\n", n < 0 ? errno : 0,
				       c->phase != 0 || c->off != 0);
			return 0;
		}
		if (c->phase == 0) {
			c->off += (uint64_t)n;
			if (c->off < sizeof(c->r))
				continue;
			if (c->r.magic != MAGIC || c->r.len == 0 || c->r.len > (64u << 20)) {
				printf("BAD header: magic %#x len %u\n", c->r.magic, c->r.len);
				if (!keep_going)
					exit(1);
				return 0;
			}
			c->phase = 1;
			c->off = 0;
		} else if (c->phase == 1) {
			if (check(c->r.seed, c->off, iobuf, (size_t)n, "request") < 0)
				return 0;
			c->off += (uint64_t)n;
			if (c->off == c->r.len)
				c->phase = 2, c->off = 0;
		} else {
			c->off += (uint64_t)n;
			if (c->off == c->r.len)
				c->phase = 0, c->off = 0;
		}
	}
}

static int run_server(int port, int quiet)
{
	struct sockaddr_in a = addr(port);
	struct conn *cs = NULL;
	struct pollfd *pf = NULL;
	size_t n = 0, cap = 0;
	int one = 1, ls;

	signal(SIGTERM, on_term);
	ls = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 4096) < 0) {
		printf("BAD listen: %s\n", strerror(errno));
		return 1;
	}
	set_nonblock(ls);
	printf("LISTEN\n");
	while (!stop) {
		size_t old_n;

		if (n + 1 > cap) {
			cap = cap ? 2 * cap : 64;
			cs = grow(cs, cap * sizeof(*cs));
			pf = grow(pf, (cap + 1) * sizeof(*pf));
		}
		pf[0] = (struct pollfd){.fd = ls, .events = POLLIN};
		for (size_t i = 0; i < n; i++)
			pf[i + 1] = (struct pollfd){.fd = cs[i].fd,
						    .events = cs[i].phase == 2 ? POLLOUT : POLLIN};
		if (poll(pf, n + 1, 200) < 0)
			continue;
		for (size_t i = 0; i < n; i++)
			cs[i].ready = pf[i + 1].revents != 0;
		old_n = n;
		while (pf[0].revents & POLLIN) {
			int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);

			if (fd < 0)
				break;
			if (n + 1 > cap) {
				cap *= 2;
				cs = grow(cs, cap * sizeof(*cs));
			}
			cs[n++] = (struct conn){.fd = fd, .ready = 1};
		}
		if (n + 1 > cap || n != old_n) {
			pf = grow(pf, (cap + 1) * sizeof(*pf));
		}
		for (size_t i = 0; i < n;) {
			if (cs[i].ready && !server_step(&cs[i], quiet)) {
				close(cs[i].fd);
				cs[i] = cs[--n];
				continue;
			}
			i++;
		}
	}
	for (size_t i = 0; i < n; i++)
		close(cs[i].fd);
	close(ls);
	free(cs);
	free(pf);
	return 0;
}

/* ------------------------------------------------------------------ client */

static void next_req(struct conn *c, unsigned maxsize)
{
	c->r.magic = MAGIC;
	c->r.len = 1 + (uint32_t)(ts_rand(&c->rng) % maxsize);
	/* Mostly small, sometimes large: a quarter of requests up to max. */
	if (ts_rand(&c->rng) % 4)
		c->r.len = 1 + c->r.len % (maxsize < 4096 ? maxsize : 4096);
	c->r.seed = ts_rand(&c->rng);
	c->phase = 0;
	c->off = 0;
}

/* Returns 1 while the connection has work, 0 when done with its rounds. */
static int client_step(struct conn *c, unsigned maxsize, uint64_t *bytes)
{
	ssize_t n;

	for (;;) {
		if (c->phase == 2)
			return 0;
		if (c->phase == 0) {
			uint64_t total = sizeof(c->r) + c->r.len;
			size_t want;

			if (c->off < sizeof(c->r)) {
				memcpy(iobuf, (uint8_t *)&c->r + c->off, sizeof(c->r) - c->off);
				want = sizeof(c->r) - c->off;
				ts_stream_fill(c->r.seed, 0, iobuf + want, 4096);
				want += 4096;
			} else {
				want = sizeof(iobuf);
				ts_stream_fill(c->r.seed, c->off - sizeof(c->r), iobuf,
					       total - c->off < want ? total - c->off : want);
			}
			if (want > total - c->off)
				want = total - c->off;
			n = write(c->fd, iobuf, want);
		} else {
			size_t want = c->r.len - c->off;

			n = read(c->fd, iobuf, want < sizeof(iobuf) ? want : sizeof(iobuf));
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 1;
		if (n <= 0) {
			printf("BAD connection ended in phase %d: %s\n", c->phase,
			       n < 0 ? strerror(errno) : "EOF");
			exit(1);
		}
		c->off += (uint64_t)n;
		if (c->phase == 0) {
			if (c->off == sizeof(c->r) + c->r.len)
				c->phase = 1, c->off = 0;
		} else {
			check(c->r.seed + 1, c->off - (uint64_t)n, iobuf, (size_t)n, "reply");
			*bytes += (uint64_t)n * 2;
			if (c->off == c->r.len) {
				if (--c->rounds_left == 0)
					c->phase = 2;
				else
					next_req(c, maxsize);
			}
		}
	}
}

static int connect_one(int port)
{
	struct sockaddr_in a = addr(port);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

static int run_client(int port, unsigned conns, unsigned rounds, unsigned maxsize, uint64_t seed,
		      unsigned seconds, int sync)
{
	struct conn *cs = calloc(conns, sizeof(*cs));
	struct pollfd *pf = calloc(conns, sizeof(*pf));
	int64_t run_start = now_ms(), end = run_start + (int64_t)seconds * 1000;
	uint64_t rng = seed, bytes = 0, total = 0, opened = 0;
	int64_t batch_start;
	char line[64];

	if (!cs || !pf)
		return 1;
	for (unsigned batch = 0;; batch++) {
		unsigned nb = seconds ? 1 + (unsigned)(ts_rand(&rng) % conns) : conns;
		unsigned nr = seconds ? 1 + (unsigned)(ts_rand(&rng) % rounds) : rounds;
		unsigned active = nb;

		for (unsigned i = 0; i < nb; i++) {
			int fd = connect_one(port);

			if (fd < 0) {
				printf("BAD connect %u of %u: %s\n", i, nb, strerror(-fd));
				return 1;
			}
			set_nonblock(fd);
			cs[i] = (struct conn){.fd = fd, .rounds_left = nr, .rng = ts_rand(&rng)};
			next_req(&cs[i], maxsize);
		}
		total += nb;
		batch_start = now_ms();
		while (active) {
			unsigned k = 0;

			if (now_ms() - batch_start > STALL_MS) {
				printf("BAD stall: batch %u not done after %d ms\n", batch,
				       STALL_MS);
				return 1;
			}
			active = 0;
			for (unsigned i = 0; i < nb; i++) {
				if (!client_step(&cs[i], maxsize, &bytes))
					continue;
				active++;
				pf[k++] = (struct pollfd){
				    .fd = cs[i].fd, .events = cs[i].phase == 0 ? POLLOUT : POLLIN};
			}
			if (active)
				poll(pf, k, 100);
		}
		if (sync && batch == 0) {
			printf("OPEN %u\n", nb);
			if (!fgets(line, sizeof(line), stdin))
				return 1;
		}
		/* A graceful close, as most TCP programs do it: shut down
		 * writing, read the server's EOF, then close. */
		for (unsigned i = 0; i < nb; i++)
			shutdown(cs[i].fd, SHUT_WR);
		for (unsigned i = 0; i < nb; i++) {
			struct pollfd p1 = {.fd = cs[i].fd, .events = POLLIN};
			ssize_t n;

			for (;;) {
				n = read(cs[i].fd, iobuf, sizeof(iobuf));
				if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
					poll(&p1, 1, 1000);
					continue;
				}
				break;
			}
			if (n != 0) {
				printf("BAD close: %s\n",
				       n < 0 ? strerror(errno) : "data after EOF");
				return 1;
			}
			close(cs[i].fd);
		}
		printf("BATCH %u %d %ld\n", batch, ts_proc_fds(getpid()), ts_proc_rss_kb(getpid()));
		if (!seconds || now_ms() >= end)
			break;
		/* At most MAX_CPS connections a second: each leaves a socket
		 * in TIME_WAIT for a minute, and a faster churn would use up
		 * the ephemeral ports for this and every other test. */
		opened += nb;
		for (int64_t due = run_start + (int64_t)(opened * 1000 / MAX_CPS);
		     now_ms() < due && now_ms() < end;)
			usleep(5000);
	}
	if (sync) {
		/* Idle like an event loop for a moment: a half closed before
		 * its remote had closed is collected at a wait (poll, select,
		 * epoll_wait) of the shim, at most every 50 ms. */
		for (int i = 0; i < 3; i++)
			poll(NULL, 0, 60);
		printf("IDLE\n");
		if (!fgets(line, sizeof(line), stdin))
			return 1;
	}
	printf("DONE %llu %llu\n", (unsigned long long)total, (unsigned long long)bytes);
	free(cs);
	free(pf);
	return 0;
}

/* ------------------------------------------------------------------ pinger */

static int run_pinger(int port, uint64_t seed)
{
	struct conn c;
	char line[64];

	for (;;) {
		int fd = connect_one(port), first = 1;

		if (fd < 0) {
			printf("END %d\n", -fd);
		} else {
			c = (struct conn){
			    .fd = fd, .rounds_left = UINT32_MAX, .rng = ts_rand(&seed)};
			next_req(&c, 16384);
			for (;;) {
				/* Blocking I/O: one step at a time through the
				 * same state machine. */
				ssize_t n;

				if (c.phase == 0) {
					size_t want = sizeof(c.r) + c.r.len - c.off;

					if (c.off < sizeof(c.r)) {
						memcpy(iobuf, (uint8_t *)&c.r + c.off,
						       sizeof(c.r) - c.off);
						ts_stream_fill(c.r.seed, 0,
							       iobuf + sizeof(c.r) - c.off,
							       c.r.len);
					} else {
						ts_stream_fill(c.r.seed, c.off - sizeof(c.r), iobuf,
							       want);
					}
					n = write(fd, iobuf, want);
				} else {
					n = read(fd, iobuf, c.r.len - c.off);
				}
				if (n < 0 && errno == EINTR)
					continue;
				if (n <= 0) {
					printf("END %d\n", n < 0 ? errno : 0);
					break;
				}
				c.off += (uint64_t)n;
				if (c.phase == 0) {
					if (c.off == sizeof(c.r) + c.r.len)
						c.phase = 1, c.off = 0;
				} else {
					check(c.r.seed + 1, c.off - (uint64_t)n, iobuf, (size_t)n,
					      "reply");
					if (c.off == c.r.len) {
						if (first)
							printf("CONN\n"), first = 0;
						next_req(&c, 16384);
					}
				}
			}
			close(fd);
		}
		if (!fgets(line, sizeof(line), stdin))
			return 0;
	}
}

int main(int argc, char **argv)
{
	struct rlimit rl = {8192, 8192};

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (argc >= 3 && !strcmp(argv[1], "server")) {
		int quiet = 0;

		for (int i = 3; i < argc; i++) {
			quiet |= !strcmp(argv[i], "-q");
			keep_going |= !strcmp(argv[i], "-k");
		}
		return run_server(atoi(argv[2]), quiet);
	}
	if (argc >= 8 && !strcmp(argv[1], "client"))
		return run_client(atoi(argv[2]), (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]),
				  (unsigned)atoi(argv[5]), strtoull(argv[6], NULL, 0),
				  (unsigned)atoi(argv[7]), argc > 8 && !strcmp(argv[8], "-s"));
	if (argc >= 4 && !strcmp(argv[1], "pinger"))
		return run_pinger(atoi(argv[2]), strtoull(argv[3], NULL, 0));
	fprintf(stderr, "usage: see the comment at the top of shim_peer.c\n");
	return 2;
}
