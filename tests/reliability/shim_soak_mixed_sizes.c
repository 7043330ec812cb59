/* SPDX-License-Identifier: MIT */
/*
 * A bounded soak: shim connections and native channels side by side, with
 * mixed sizes, for IVLINK_SOAK_SECONDS (default 60; e.g. 600 for the
 * 10-minute run of issue 7).
 *
 *  - shim: shim_peer client runs batches of 1..64 connections open at once,
 *    1..6 requests each of 1 B to 256 KiB (three quarters up to 4 KiB),
 *    every byte checked both ways, against a long-running shim_peer server;
 *    both under libivlink-preload.so (32 KiB rings, so large requests wrap
 *    and fill the rings many times).
 *  - native: two endpoints of this process open a channel, alternately
 *    stream (random chunks up to 256 KiB) and message mode (records of
 *    1 B to 16 KiB), move 1-8 MiB through it from a writer thread, check
 *    every byte, and close it; then the next one.
 *
 * Flat resources: fd counts of the server and the daemon exactly back from
 * before the soak (after a warm-up connection run) to after it (plus what
 * the still attached client peer accounts for: its eventfds and daemon
 * connection), the client's fds equal at its first and last batch (or one
 * more: its thread's wake eventfd, made at the first sleep); RSS of
 * the client, the server and the daemon no more than 4 MiB + 10% above
 * their value a quarter into the run (allocator warm-up happens before);
 * each section's pages and channel halves back to where they started once
 * the connections and channels are closed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim_rel.h"

static int64_t deadline_ns;
static struct ts_daemon daemon_;
static struct ivl_endpoint *ep_a, *ep_b;

struct native_stats {
	uint64_t channels, bytes, records;
};

struct wargs {
	struct ivl_channel *ch;
	int message;
	uint64_t seed, total;
};

#define MAXREC (16u << 10)

static uint8_t wbuf[256 << 10], rbuf[256 << 10];

/* Record or chunk sizes: the same sequence on both sides for records. */
static size_t next_size(uint64_t *rng, int message)
{
	uint64_t r = ts_rand(rng);

	if (message)
		return 1 + (size_t)(r % MAXREC);
	return 1 + (size_t)(r % (r & 1 ? sizeof(wbuf) : 4096));
}

static void *writer(void *arg)
{
	struct wargs *a = arg;
	uint64_t off = 0, rng = a->seed;

	while (off < a->total) {
		size_t n = next_size(&rng, a->message);
		ssize_t w;

		if (n > a->total - off)
			n = (size_t)(a->total - off);
		ts_stream_fill(a->seed, off, wbuf, n);
		w = ivl_send(a->ch, wbuf, n, 0);
		CHECK(w > 0 && (!a->message || (size_t)w == n), "native send: %zd", w);
		off += (uint64_t)w;
	}
	return NULL;
}

static void *native_loop(void *arg)
{
	struct native_stats *st = arg;
	struct ivl_endpoint *a = ep_a, *b = ep_b;
	uint64_t rng = rel_seed(11);

	while (ts_now_ns() < deadline_ns) {
		int message = (int)(st->channels & 1);
		struct ivl_channel_opts o = {.mode = message ? IVL_MODE_MESSAGE : IVL_MODE_STREAM,
					     .ring_size = 64u << 10,
					     .max_record = message ? MAXREC : 0};
		struct wargs w = {.message = message,
				  .seed = ts_rand(&rng),
				  .total = (1u << 20) + ts_rand(&rng) % (7u << 20)};
		struct ivl_channel *ca, *cb;
		uint64_t off = 0, srng = w.seed;
		char name[32];
		pthread_t t;
		int rc;

		snprintf(name, sizeof(name), "soak%llu", (unsigned long long)st->channels);
		rc = rel_pair_open(a, b, name, &o, 10000000000LL, &ca, &cb);
		CHECK(rc == 0, "native open: %s", strerror(-rc));
		w.ch = ca;
		CHECK(pthread_create(&t, NULL, writer, &w) == 0, "thread");
		while (off < w.total) {
			size_t want = message ? next_size(&srng, 1) : next_size(&srng, 0);
			ssize_t n;

			if (want > w.total - off)
				want = (size_t)(w.total - off);
			n = ivl_recv(cb, rbuf, message ? sizeof(rbuf) : want,
				     message ? 0 : IVL_WAITALL);
			CHECK(n == (ssize_t)want, "native recv %zd, expected %zu (%s)", n, want,
			      message ? "record" : "stream");
			CHECK(ts_stream_check(w.seed, off, rbuf, (size_t)n) == (size_t)n,
			      "native data differs at %llu", (unsigned long long)off);
			off += (uint64_t)n;
			st->records += message;
		}
		pthread_join(t, NULL);
		ivl_channel_close(ca);
		ivl_channel_close(cb);
		st->channels++;
		st->bytes += w.total;
	}
	return NULL;
}

/*
 * Under ASan, RSS measures the sanitizer: its quarantine keeps freed memory
 * on purpose (up to 256 MiB), so it grows in any program that churns the
 * heap. There, LeakSanitizer at each process's exit is the leak check, and
 * the normal build of this test compares RSS.
 */
static int flat_rss(long start, long end)
{
	if (shim_rel_sanitized())
		return 1;
	return end <= start + 4096 + start / 10;
}

static long pages_of(const struct ivl_region *rg, uint32_t id)
{
	return ivl_section_pages_used(rg, id);
}

static long halves_of(const struct ivl_region *rg, uint32_t id)
{
	return (long)shim_used_halves(rg, id);
}

static long settle(long (*f)(const struct ivl_region *, uint32_t), const struct ivl_region *rg,
		   uint32_t id, long want)
{
	long v = f(rg, id);

	for (int i = 0; i < 500 && v != want; i++) {
		usleep(10000);
		v = f(rg, id);
	}
	return v;
}

static void settle_fds(pid_t pid, int want)
{
	for (int i = 0; i < 500 && ts_proc_fds(pid) != want; i++)
		usleep(10000);
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "shimsoak", 0);
	const char *const extra[] = {"-l", "256M", "--max-peers", "6", "--chan-slots", "512", NULL};
	const char *env = getenv("IVLINK_SOAK_SECONDS");
	unsigned seconds = env && atoi(env) > 0 ? (unsigned)atoi(env) : 60;
	struct native_stats ns = {0};
	struct shim_proc srv, cli;
	struct ivl_region rg;
	char port[16], secs[16], seed[32], line[256];
	int sid, cid, sfd0, dfd0, cfd_first = -1, cfd_last = -1, batches = 0;
	long srss0 = -1, drss0 = -1, crss_q = -1, crss_last = -1, spages0, shalves0;
	int64_t quarter;
	unsigned long long conns = 0, bytes = 0;
	pthread_t nt;

	alarm(seconds + 180);
	printf("soak of %u s (IVLINK_SOAK_SECONDS)\n", seconds);
	ts_daemon_start(&daemon_, ivlinkd, "ivlinkd.sock", extra, NULL);
	shim_rel_setup(&daemon_, IVL_PRELOAD, 32768);
	/* The native peers join first, so that every process already holds
	 * their eventfds when the fd baselines are taken. */
	ep_a = ts_open(&daemon_, "native-a", 20000, IVL_LOG_ERROR);
	ep_b = ts_open(&daemon_, "native-b", 20000, IVL_LOG_ERROR);
	CHECK(rel_guard_region(&rg) == 0, "driver: region view");

	snprintf(port, sizeof(port), "%d", shim_free_port());
	snprintf(secs, sizeof(secs), "%u", seconds);
	snprintf(seed, sizeof(seed), "%llu", (unsigned long long)rel_seed(5));
	{
		char *const av[] = {SHIM_PEER, "server", port, "-q", NULL};

		shim_proc_start(&srv, av, 1);
	}
	shim_proc_expect(&srv, "LISTEN", line, sizeof(line), 10000);
	sid = shim_peer_of(&rg, srv.pid);
	CHECK(sid >= 0, "the shimmed server did not join the region");
	/* Warm-up: the server's lazily allocated state exists before the
	 * baseline is taken. */
	{
		char *const av[] = {SHIM_PEER, "client", port, "16", "2", "262144", "1", "0", NULL};
		struct shim_proc w;

		shim_proc_start(&w, av, 1);
		shim_proc_expect(&w, "DONE", line, sizeof(line), 60000);
		CHECK(shim_proc_stop(&w, 0, 10000) == 0, "warm-up client");
	}
	shalves0 = settle(halves_of, &rg, (uint32_t)sid, 1);
	spages0 = settle(pages_of, &rg, (uint32_t)sid, 0);
	usleep(200000);
	sfd0 = ts_proc_fds(srv.pid);
	dfd0 = ts_proc_fds(daemon_.pid);

	deadline_ns = ts_now_ns() + (int64_t)seconds * 1000000000LL;
	quarter = ts_now_ns() + (int64_t)seconds * 250000000LL;
	CHECK(pthread_create(&nt, NULL, native_loop, &ns) == 0, "thread");
	{
		char *const av[] = {SHIM_PEER, "client", port, "64", "6",
				    "262144",  seed,	 secs, "-s", NULL};

		shim_proc_start(&cli, av, 1);
	}
	shim_proc_expect(&cli, "OPEN", line, sizeof(line), 60000);
	cid = shim_peer_of(&rg, cli.pid);
	CHECK(cid >= 0, "the shimmed client did not join the region");
	CHECK(shim_accel_halves(&rg, (uint32_t)cid) == (unsigned)atoi(line + 5),
	      "not all %s connections accelerated", line + 5);
	shim_proc_send(&cli, "go\n");
	for (;;) {
		int b, fds;
		long rss;

		shim_proc_expect(&cli, "", line, sizeof(line), (int)(seconds + 60) * 1000);
		if (!strcmp(line, "IDLE"))
			break;
		if (sscanf(line, "BATCH %d %d %ld", &b, &fds, &rss) == 3) {
			if (cfd_first < 0)
				cfd_first = fds;
			if (crss_q < 0 && ts_now_ns() >= quarter) {
				crss_q = rss;
				srss0 = ts_proc_rss_kb(srv.pid);
				drss0 = ts_proc_rss_kb(daemon_.pid);
			}
			cfd_last = fds, crss_last = rss;
			batches++;
		}
	}
	pthread_join(nt, NULL);

	/* Everything closed: sections back, fds and memory flat. */
	{
		long cp = settle(pages_of, &rg, (uint32_t)cid, 0);
		long ch = settle(halves_of, &rg, (uint32_t)cid, 0);
		long sp = settle(pages_of, &rg, (uint32_t)sid, spages0);
		long sh = settle(halves_of, &rg, (uint32_t)sid, shalves0);
		int sfd_want = sfd0 + (int)rg.hdr.n_vectors; /* the client's eventfds */
		/* The daemon: the client's connection and eventfds. */
		int dfd_want = dfd0 + 1 + (int)rg.hdr.n_vectors;
		int sfd1, dfd1;
		long srss1, drss1;

		settle_fds(srv.pid, sfd_want);
		settle_fds(daemon_.pid, dfd_want);
		sfd1 = ts_proc_fds(srv.pid);
		srss1 = ts_proc_rss_kb(srv.pid);
		dfd1 = ts_proc_fds(daemon_.pid);
		drss1 = ts_proc_rss_kb(daemon_.pid);
		printf(
		    "shim: %d batches; client fds %d -> %d, rss %ld -> %ld KiB; server fds %d -> "
		    "%d (+%u client eventfds), rss %ld -> %ld KiB; sections: client %ld pages "
		    "%ld halves, server %ld pages (before %ld) %ld halves (before %ld)\n",
		    batches, cfd_first, cfd_last, crss_q, crss_last, sfd0, sfd1, rg.hdr.n_vectors,
		    srss0, srss1, cp, ch, sp, spages0, sh, shalves0);
		printf("daemon: fds %d -> %d (+%u for the client), rss %ld -> %ld KiB\n", dfd0,
		       dfd1, 1 + rg.hdr.n_vectors, drss0, drss1);
		if (cp || ch || sp != spages0 || sh != shalves0) {
			shim_dump_halves(&rg, (uint32_t)cid);
			shim_dump_halves(&rg, (uint32_t)sid);
		}
		if (shim_rel_sanitized())
			printf("rss not compared under ASan (quarantine); LeakSanitizer checks at "
			       "exit\n");
		CHECK(batches >= 2, "only %d batches", batches);
		CHECK(cp == 0 && ch == 0, "client section not back to empty");
		CHECK(sp == spages0 && sh == shalves0, "server section not back");
		/* +1 at most: the client's thread creates its wake eventfd
		 * (guest-lib/preload/wait_sleepers.c, shim_thread_efd) at its first sleep in
		 * poll(), which may come after the first batch now that the
		 * shim's progress thread settles rendezvous in the background.
		 * It is one per thread, never per batch or connection. */
		CHECK(cfd_last == cfd_first || cfd_last == cfd_first + 1, "client fds grew");
		CHECK(crss_q > 0, "no batch after a quarter of the run");
		CHECK(flat_rss(crss_q, crss_last), "client rss grew");
		/* Whether the server still holds the eventfds of the warm-up
		 * client's id when the soak client takes it is the backend's
		 * business: either count is flat. The server's threads have
		 * their one-time fds too (a wake eventfd at the first sleep, as
		 * the client's above): one of them may come after the first
		 * count (CI: 35 -> 44 where a run alone gives 36 -> 44). */
		CHECK(sfd1 == sfd_want || sfd1 == sfd0 || sfd1 == sfd_want + 1 || sfd1 == sfd0 + 1,
		      "server fds grew");
		CHECK(flat_rss(srss0, srss1), "server rss grew");
		CHECK(dfd1 == dfd_want, "daemon fds grew");
		CHECK(flat_rss(drss0, drss1), "daemon rss grew");
	}
	shim_proc_send(&cli, "exit\n");
	shim_proc_expect(&cli, "DONE", line, sizeof(line), 10000);
	CHECK(sscanf(line, "DONE %llu %llu", &conns, &bytes) == 2, "client: %s", line);
	CHECK(shim_proc_stop(&cli, 0, 10000) == 0, "client exit status");
	CHECK(shim_proc_stop(&srv, SIGTERM, 10000) == 0, "server exit status");
	printf("shim: %llu connections, %.1f MiB checked; native: %llu channels, %.1f MiB and "
	       "%llu records checked\n",
	       conns, (double)bytes / (1 << 20), (unsigned long long)ns.channels,
	       (double)ns.bytes / (1 << 20), (unsigned long long)ns.records);
	ivl_endpoint_close(ep_a);
	ivl_endpoint_close(ep_b);
	ts_daemon_stop(daemon_.pid, SIGTERM);
	printf("PASS shim_soak_mixed_sizes\n");
	return 0;
}
