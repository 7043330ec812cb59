/* SPDX-License-Identifier: MIT */
/*
 * kill -9 at random points of native transfers. This process is the
 * survivor S; each iteration forks a fresh peer K that joins, proves that a
 * rejoining peer works (a "warm" channel moves 4 KiB each way, verified,
 * and is closed cleanly), then opens a transfer channel with S, and is
 * killed with SIGKILL at a random point (seeded):
 *   - 1 iteration in 10: at once, anywhere in its start-up (joining the
 *     daemon, the warm channel, opening the transfer channel);
 *   - otherwise 0-20 ms into the transfer.
 * The transfer rotates over four shapes, so that either end of a direction
 * dies: K -> S stream, S -> K stream, message ping-pong (S sends, K echoes),
 * and streams both ways at once.
 *
 * Checked every iteration: every byte or record S received is intact; each
 * of S's blocked or busy calls ends with -ECONNRESET (or EOF) within 2 s of
 * the kill (a functional bound; the latencies are printed); the daemon marks
 * K GONE; after S closes its channel, its section's page count is back to
 * its baseline; K found its (possibly reused) section reset when it joined.
 * At the end: S's and the daemon's fd counts are back to their baselines.
 * Iterations: IVLINK_RELIABILITY_ITERS (default 100).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "rel.h"

#define WARM	       4096
#define CHUNK	       8192
#define MAXREC	       2048
#define RESET_BOUND_NS 2000000000LL
#define OP_TIMEOUT_NS  5000000000LL

enum shape { K_TO_S, S_TO_K, PING_PONG, BOTH_WAYS, N_SHAPES };
static const char *const shape_names[] = {"K->S stream", "S->K stream", "ping-pong", "both ways"};

struct kargs {
	unsigned iter;
	enum shape shape;
	int wfd;
	uint64_t seed;
};

struct kmsg {
	int32_t id;
	int32_t pages; /* K's own section page count right after it joined */
};

static struct ts_daemon daemon_;

static uint64_t seed_of(uint64_t base, unsigned iter, int dir)
{
	return base * 1000003u + iter * 2u + (unsigned)dir;
}

/* ------------------------------------------------------------- K side */

static void *k_sender(void *arg)
{
	struct ivl_channel *ch = ((void **)arg)[0];
	uint64_t seed = (uint64_t)(uintptr_t)((void **)arg)[1];
	uint8_t buf[CHUNK];
	uint64_t off = 0;

	for (;;) {
		ssize_t n;

		ts_stream_fill(seed, off, buf, sizeof(buf));
		n = ivl_send(ch, buf, sizeof(buf), 0);
		if (n < 0)
			return NULL;
		off += (uint64_t)n;
	}
}

static int k_main(void *arg)
{
	struct kargs *a = arg;
	struct ivl_channel_opts o = {0};
	struct ivl_channel *w, *x;
	struct ivl_region rg;
	struct kmsg m;
	uint8_t buf[CHUNK];
	char name[32];
	int s, rc;
	ssize_t n;

	snprintf(name, sizeof(name), "k%u", a->iter);
	{
		struct ivl_endpoint *ep = ts_open(&daemon_, name, 0, IVL_LOG_ERROR);

		CHECK(rel_guard_region(&rg) == 0, "K: region");
		m.id = (int32_t)ivl_endpoint_id(ep);
		m.pages = (int32_t)ivl_section_pages_used(&rg, (uint32_t)m.id);
		if (write(a->wfd, &m, sizeof(m)) != sizeof(m))
			return 1;
		s = ts_find_peer(ep, "survivor", 10000000000LL);
		CHECK(s >= 0, "K: no survivor");

		/* Warm-up: a rejoining peer works. */
		snprintf(name, sizeof(name), "w%u", a->iter);
		rc = ivl_channel_open(ep, name, (uint32_t)s, NULL, OP_TIMEOUT_NS, &w);
		CHECK(rc == 0, "K: warm open: %s", strerror(-rc));
		n = ivl_recv(w, buf, WARM, IVL_WAITALL);
		CHECK(n == WARM && ts_stream_check(a->seed, 0, buf, WARM) == WARM, "K: warm data");
		ts_stream_fill(a->seed + 1, 0, buf, WARM);
		CHECK(ivl_send(w, buf, WARM, 0) == WARM, "K: warm send");
		ivl_channel_close(w);
		if (write(a->wfd, "W", 1) != 1)
			return 1;

		snprintf(name, sizeof(name), "x%u", a->iter);
		if (a->shape == PING_PONG) {
			o.mode = IVL_MODE_MESSAGE;
			o.max_record = MAXREC;
		}
		o.ring_size = 64u << 10;
		rc = ivl_channel_open(ep, name, (uint32_t)s, &o, OP_TIMEOUT_NS, &x);
		CHECK(rc == 0, "K: open: %s", strerror(-rc));
		if (write(a->wfd, "X", 1) != 1)
			return 1;
		switch (a->shape) {
		case K_TO_S: {
			void *args[2] = {x, (void *)(uintptr_t)seed_of(a->seed, a->iter, 0)};

			k_sender(args);
			break;
		}
		case S_TO_K:
			while (ivl_recv(x, buf, sizeof(buf), 0) > 0)
				;
			break;
		case PING_PONG:
			while ((n = ivl_recv(x, buf, sizeof(buf), 0)) >= 0)
				if (ivl_send(x, buf, (size_t)n, 0) < 0)
					break;
			break;
		default: {
			void *args[2] = {x, (void *)(uintptr_t)seed_of(a->seed, a->iter, 0)};
			pthread_t t;

			pthread_create(&t, NULL, k_sender, args);
			while (ivl_recv(x, buf, sizeof(buf), 0) > 0)
				;
			pthread_join(t, NULL);
			break;
		}
		}
		/* Only the kill ends a K; getting here means S went away. */
		return 3;
	}
}

/* ------------------------------------------------------------- S side */

struct killer {
	pid_t pid;
	int64_t delay_ns;
	int64_t t_kill;
	pthread_t thr;
};

static void *killer_main(void *arg)
{
	struct killer *k = arg;
	struct timespec ts = {.tv_sec = k->delay_ns / 1000000000LL,
			      .tv_nsec = k->delay_ns % 1000000000LL};

	nanosleep(&ts, NULL);
	__atomic_store_n(&k->t_kill, ts_now_ns(), __ATOMIC_RELEASE);
	kill(k->pid, SIGKILL);
	return NULL;
}

struct sdir {
	struct ivl_channel *ch;
	uint64_t seed;
	uint64_t bytes;
	long err;
	int64_t t_err;
};

static void *s_sender(void *arg)
{
	struct sdir *d = arg;
	uint8_t buf[CHUNK];

	for (;;) {
		ssize_t n;

		ts_stream_fill(d->seed, d->bytes, buf, sizeof(buf));
		n = ivl_send(d->ch, buf, sizeof(buf), 0);
		if (n < 0) {
			d->err = n;
			d->t_err = ts_now_ns();
			return NULL;
		}
		d->bytes += (uint64_t)n;
	}
}

static void s_receiver(struct sdir *d)
{
	uint8_t buf[CHUNK];

	for (;;) {
		ssize_t n = ivl_recv(d->ch, buf, sizeof(buf), 0);

		if (n <= 0) {
			d->err = n;
			d->t_err = ts_now_ns();
			return;
		}
		CHECK(ts_stream_check(d->seed, d->bytes, buf, (size_t)n) == (size_t)n,
		      "S: corrupt data near byte %" PRIu64, d->bytes);
		d->bytes += (uint64_t)n;
	}
}

static void s_ping_pong(struct sdir *d)
{
	uint8_t out[MAXREC], in[MAXREC];
	uint64_t k = 0;

	for (;;) {
		size_t len = (size_t)((d->seed ^ (k * 0x9e3779b97f4a7c15ULL)) % (MAXREC + 1));
		ssize_t n;

		ts_stream_fill(d->seed, k << 16, out, len);
		n = ivl_send(d->ch, out, len, 0);
		if (n >= 0)
			n = ivl_recv(d->ch, in, sizeof(in), 0);
		if (n < 0) {
			d->err = n;
			d->t_err = ts_now_ns();
			return;
		}
		CHECK((size_t)n == len && memcmp(in, out, len) == 0, "S: bad echo %" PRIu64, k);
		d->bytes += len;
		k++;
	}
}

/* Reads exactly len bytes (or fewer on EOF) from the pipe, 10 s bound. */
static size_t read_pipe(int fd, void *buf, size_t len)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	size_t got = 0;

	while (got < len) {
		ssize_t n;

		if (poll(&p, 1, 10000) != 1)
			FAIL("S: K said nothing for 10 s");
		n = read(fd, (uint8_t *)buf + got, len - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

static int wait_gone(struct ivl_endpoint *s, uint32_t id)
{
	int64_t deadline = ts_now_ns() + RESET_BOUND_NS;
	struct ivl_peer_info pi;

	while (ts_now_ns() < deadline) {
		if (ivl_endpoint_peer(s, id, &pi) == 0 && pi.state == IVL_PEER_GONE)
			return 1;
		usleep(1000);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const extra[] = {"-l", "16M", "-n", "4", "--max-peers", "4", NULL};
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "kill9", 900);
	unsigned iters = rel_iters(100), early = 0, per_shape[N_SHAPES] = {0};
	uint64_t rng = rel_seed(7), seed = rng, bytes = 0;
	int64_t lat_max = 0, lat_sum = 0, t0 = ts_now_ns();
	unsigned lat_n = 0;
	struct ivl_endpoint *s;
	struct ivl_region rg;
	uint32_t self;
	long pages0;
	int fds_s, fds_d;

	ts_daemon_start(&daemon_, ivlinkd, "sock", extra, NULL);
	s = ts_open(&daemon_, "survivor", 0, IVL_LOG_ERROR);
	CHECK(rel_guard_region(&rg) == 0, "S: region");
	self = ivl_endpoint_id(s);
	pages0 = ivl_section_pages_used(&rg, self);
	fds_s = ts_proc_fds(getpid());
	fds_d = ts_proc_fds(daemon_.pid);

	for (unsigned i = 0; i < iters; i++) {
		struct kargs ka = {
		    .iter = i, .shape = (enum shape)(i % N_SHAPES), .seed = seed + i};
		struct killer kl = {0};
		struct sdir rx = {0}, tx = {0};
		struct ivl_channel_opts o = {0};
		struct ivl_channel *w = NULL, *x = NULL;
		int is_early = ts_rand(&rng) % 10 == 0, pfd[2], rc;
		uint8_t buf[WARM];
		struct kmsg m = {.id = -1};
		char c, name[32];
		ssize_t n;

		CHECK(pipe(pfd) == 0, "pipe");
		ka.wfd = pfd[1];
		kl.pid = ts_spawn(k_main, &ka);
		close(pfd[1]);
		if (is_early) {
			kl.delay_ns = (int64_t)(ts_rand(&rng) % 30000000);
			pthread_create(&kl.thr, NULL, killer_main, &kl);
			early++;
		}

		if (read_pipe(pfd[0], &m, sizeof(m)) != sizeof(m)) {
			CHECK(is_early, "iteration %u: K died before joining", i);
			goto reap;
		}
		CHECK(m.pages == 0, "iteration %u: K's section not reset at join (%d pages)", i,
		      m.pages);

		/* Warm-up channel: S sends first. */
		snprintf(name, sizeof(name), "w%u", i);
		rc = ivl_channel_open(s, name, (uint32_t)m.id, NULL, OP_TIMEOUT_NS, &w);
		if (rc == 0) {
			ts_stream_fill(ka.seed, 0, buf, WARM);
			n = ivl_send(w, buf, WARM, 0);
			if (n == WARM)
				n = ivl_recv(w, buf, WARM, IVL_WAITALL);
			CHECK(n == WARM || (is_early && n < 0), "iteration %u: warm: %zd", i, n);
			if (n == WARM)
				CHECK(ts_stream_check(ka.seed + 1, 0, buf, WARM) == WARM,
				      "iteration %u: warm data", i);
			ivl_channel_close(w);
		} else {
			CHECK(is_early, "iteration %u: warm open: %s", i, strerror(-rc));
		}
		if (read_pipe(pfd[0], &c, 1) != 1) {
			CHECK(is_early, "iteration %u: K died before its transfer", i);
			goto reap;
		}

		snprintf(name, sizeof(name), "x%u", i);
		if (ka.shape == PING_PONG) {
			o.mode = IVL_MODE_MESSAGE;
			o.max_record = MAXREC;
		}
		o.ring_size = 64u << 10;
		rc = ivl_channel_open(s, name, (uint32_t)m.id, &o, OP_TIMEOUT_NS, &x);
		if (rc < 0) {
			CHECK(is_early, "iteration %u: open: %s", i, strerror(-rc));
			goto reap;
		}
		ivl_channel_set_timeouts(x, OP_TIMEOUT_NS, OP_TIMEOUT_NS);
		/* K's "transfer started"; the early killer may have struck. */
		CHECK(read_pipe(pfd[0], &c, 1) == 1 || is_early,
		      "iteration %u: K died after opening its transfer", i);
		if (!is_early) {
			kl.delay_ns = (int64_t)(ts_rand(&rng) % 20000000);
			pthread_create(&kl.thr, NULL, killer_main, &kl);
		}
		rx.ch = tx.ch = x;
		rx.seed = seed_of(ka.seed, i, 0);
		tx.seed = seed_of(ka.seed, i, 1);
		switch (ka.shape) {
		case K_TO_S:
			s_receiver(&rx);
			break;
		case S_TO_K:
			s_sender(&tx);
			rx = tx;
			break;
		case PING_PONG:
			s_ping_pong(&rx);
			break;
		default: {
			pthread_t t;

			pthread_create(&t, NULL, s_sender, &tx);
			s_receiver(&rx);
			pthread_join(t, NULL);
			break;
		}
		}
		pthread_join(kl.thr, NULL);
		kl.thr = 0;
		{
			struct sdir *ds[2] = {&rx, &tx};

			for (int k = 0; k < (ka.shape == BOTH_WAYS ? 2 : 1); k++) {
				struct sdir *d = ds[k];
				int64_t lat = d->t_err - kl.t_kill;

				CHECK(d->err == -ECONNRESET || d->err == 0,
				      "iteration %u (%s): S got %s, not ECONNRESET/EOF", i,
				      shape_names[ka.shape], strerror((int)-d->err));
				CHECK(lat >= 0, "iteration %u: S failed (%s) before the kill", i,
				      strerror((int)-d->err));
				CHECK(lat < RESET_BOUND_NS, "iteration %u: reset after %.3f s", i,
				      (double)lat / 1e9);
				lat_max = lat > lat_max ? lat : lat_max;
				lat_sum += lat;
				lat_n++;
			}
		}
		bytes += rx.bytes + (ka.shape == BOTH_WAYS ? tx.bytes : 0);
		per_shape[ka.shape]++;
		ivl_channel_close(x);
		CHECK(ivl_section_pages_used(&rg, self) == pages0,
		      "iteration %u: S's section uses %ld pages after close, baseline %ld", i,
		      ivl_section_pages_used(&rg, self), pages0);
	reap:
		if (kl.thr)
			pthread_join(kl.thr, NULL);
		ts_kill9(kl.pid);
		CHECK(m.id < 0 || wait_gone(s, (uint32_t)m.id),
		      "iteration %u: the daemon did not mark K (peer %d) GONE", i, m.id);
		close(pfd[0]);
		ivl_endpoint_process(s);
	}

	/* Leaves are announced to S by the daemon; give it a moment. */
	for (int k = 0; k < 200; k++) {
		ivl_endpoint_process(s);
		if (ts_proc_fds(getpid()) == fds_s && ts_proc_fds(daemon_.pid) == fds_d)
			break;
		usleep(10000);
	}
	CHECK(ts_proc_fds(getpid()) == fds_s, "S fds: %d, baseline %d", ts_proc_fds(getpid()),
	      fds_s);
	CHECK(ts_proc_fds(daemon_.pid) == fds_d, "ivlinkd fds: %d, baseline %d",
	      ts_proc_fds(daemon_.pid), fds_d);
	CHECK(ivl_section_pages_used(&rg, self) == pages0, "S's pages at the end");
	ivl_endpoint_close(s);
	ts_daemon_stop(daemon_.pid, SIGTERM);
	printf("kill -9: %u iterations (%u killed during start-up; transfers: %u K->S, %u S->K, "
	       "%u ping-pong, %u both ways), %.1f MiB verified; reset latency mean %.1f ms, max "
	       "%.1f ms (bound 2000 ms); fds and region pages back to baseline; %.1f s\n",
	       iters, early, per_shape[K_TO_S], per_shape[S_TO_K], per_shape[PING_PONG],
	       per_shape[BOTH_WAYS], (double)bytes / (1 << 20),
	       lat_n ? (double)lat_sum / lat_n / 1e6 : 0.0, (double)lat_max / 1e6,
	       (double)(ts_now_ns() - t0) / 1e9);
	printf("PASS kill9_random_points\n");
	return 0;
}
