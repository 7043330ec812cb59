/* SPDX-License-Identifier: MIT */
/*
 * kill -9 of either end of socket-shim connections at random points.
 *
 * Two long-running survivors, plain programs under libivlink-preload.so:
 *  - S, a shim_peer server: each even iteration starts a fresh pinger K
 *    (client), which connects and runs requests of 1 B to 16 KiB back to
 *    back; once its first round trip worked it is killed (SIGKILL) 0-20 ms
 *    later, in the middle of a transfer;
 *  - C, a shim_peer pinger: each odd iteration starts a fresh server K,
 *    tells C to connect to it, and kills K 0-20 ms after C's first round
 *    trip.
 * One iteration in ten instead kills K 0-30 ms after its exec, anywhere in
 * its start-up (loading the shim, joining the region, listening or
 * connecting).
 *
 * Verified each iteration: every byte the survivor received was right
 * (shim_peer checks all of it); the survivor's blocked or busy call ends
 * with EOF, ECONNRESET or EPIPE within 2 s of the kill; its section goes
 * back to its listener alone (S) or to empty (C) and its fd count to its
 * baseline, or at most one peer's eventfds above it: a survivor with no
 * accelerated connection left (C waits in fgets(), S in a poll() on its
 * listener alone) reads the daemon's leave message only at a later call,
 * and the next peer that takes the dead one's id replaces them, so they
 * never accumulate. C may also keep the one half it closed while the dead
 * server was not yet marked GONE (its reset reached C over TCP first): C
 * closed it and went to wait in fgets(), and the half is collected at its
 * next close or wait; as C is checked every iteration, such halves never
 * accumulate either; the next iteration's connection works (and a last one after
 * the loop). IVLINK_RELIABILITY_ITERS=N for N iterations (default 100),
 * IVLINK_RELIABILITY_SEED for the random points.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim_rel.h"

#define END_BOUND_MS 2000
/* One 32 KiB ring: the pages of a half that waits for its collection. */
#define LAZY_PAGES 8

static struct ivl_region rg;

static int stable_fds(pid_t pid)
{
	int v = ts_proc_fds(pid), same = 0;

	for (int i = 0; i < 300 && same < 30; i++) {
		int w;

		usleep(10000);
		w = ts_proc_fds(pid);
		same = w == v ? same + 1 : 0;
		v = w;
	}
	return v;
}

/* Waits (2 s) until pid's section and fds are back; fails otherwise. */
static void back_to_baseline(const char *who, pid_t pid, int *fds0, int slack, long halves0,
			     int lazy, unsigned iter)
{
	int id = shim_peer_of(&rg, pid);
	long pages = -1, halves = -1;
	int fds = -1;

	CHECK(id >= 0, "%s left the region", who);
	for (int i = 0; i < 200; i++) {
		pages = ivl_section_pages_used(&rg, (uint32_t)id);
		halves = (long)shim_used_halves(&rg, (uint32_t)id);
		fds = ts_proc_fds(pid);
		if (((pages == 0 && halves == halves0) ||
		     (lazy && halves == halves0 + 1 && pages <= LAZY_PAGES)) &&
		    fds <= *fds0 + slack) {
			/* The baseline is the lowest count seen. */
			if (fds < *fds0)
				*fds0 = fds;
			return;
		}
		usleep(10000);
	}
	shim_dump_halves(&rg, (uint32_t)id);
	FAIL("iteration %u: %s not back after 2 s: pages %ld, halves %ld (want %ld), fds %d "
	     "(want <= %d)",
	     iter, who, pages, halves, halves0, fds, *fds0 + slack);
}

struct stats {
	unsigned kills, startup_kills, eof, reset, pipe;
	double lat_sum_ms, lat_max_ms;
};

/* Reads the survivor's END line after a kill at t_kill. */
static void expect_end(struct shim_proc *p, int64_t t_kill, struct stats *st, unsigned iter)
{
	char line[256];
	int err = -1;
	double ms;

	for (;;) {
		int rc = shim_proc_line(p, line, sizeof(line), END_BOUND_MS + 1000);

		CHECK(rc > 0, "iteration %u: survivor %d: no END (%s)", iter, (int)p->pid,
		      rc == 0 ? "it exited" : "timeout");
		CHECK(strncmp(line, "BAD", 3) != 0, "iteration %u: survivor: %s", iter, line);
		if (sscanf(line, "END %d", &err) == 1)
			break;
	}
	ms = (double)(ts_now_ns() - t_kill) / 1e6;
	CHECK(err == 0 || err == ECONNRESET || err == EPIPE,
	      "iteration %u: survivor's call ended with %s", iter, strerror(err));
	CHECK(ms <= END_BOUND_MS, "iteration %u: END after %.1f ms", iter, ms);
	st->eof += err == 0;
	st->reset += err == ECONNRESET;
	st->pipe += err == EPIPE;
	st->lat_sum_ms += ms;
	if (ms > st->lat_max_ms)
		st->lat_max_ms = ms;
}

/* Drains lines for ms (after a start-up kill the survivor may or may not
 * have seen a connection). */
static void drain(struct shim_proc *p, int ms, unsigned iter)
{
	int64_t until = ts_now_ns() + (int64_t)ms * 1000000LL;
	char line[256];

	while (ts_now_ns() < until) {
		int rc = shim_proc_line(p, line, sizeof(line), 50);

		CHECK(rc != 0, "iteration %u: survivor %d exited", iter, (int)p->pid);
		CHECK(rc < 0 || strncmp(line, "BAD", 3) != 0, "iteration %u: %s", iter, line);
	}
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "shimkill9", 280);
	const char *const extra[] = {"-l", "64M", "--max-peers", "8", NULL};
	unsigned iters = rel_iters(100);
	uint64_t rng = rel_seed(1);
	struct ts_daemon d;
	struct ivl_endpoint *ep;
	struct shim_proc S, C, K;
	struct stats st = {0};
	char ps[16], pc[16], seed[32], line[256];
	int s_fds0 = -1, c_fds0 = -1;
	int64_t t0 = ts_now_ns();

	ts_daemon_start(&d, ivlinkd, "ivlinkd.sock", extra, NULL);
	shim_rel_setup(&d, IVL_PRELOAD, 32768);
	ep = ts_open(&d, "driver", 0, IVL_LOG_ERROR);
	CHECK(rel_guard_region(&rg) == 0, "driver: region view");
	snprintf(ps, sizeof(ps), "%d", shim_free_port());
	snprintf(pc, sizeof(pc), "%d", shim_free_port());

	{
		char *const av[] = {SHIM_PEER, "server", ps, NULL};

		shim_proc_start(&S, av, 1);
		shim_proc_expect(&S, "LISTEN", line, sizeof(line), 10000);
	}
	{
		/* C's first connection needs a server: a first K. */
		char *const kv[] = {SHIM_PEER, "server", pc, "-q", NULL};
		char *const av[] = {SHIM_PEER, "pinger", pc, "3", NULL};

		shim_proc_start(&K, kv, 1);
		shim_proc_expect(&K, "LISTEN", line, sizeof(line), 10000);
		shim_proc_start(&C, av, 1);
		shim_proc_expect(&C, "CONN", line, sizeof(line), 10000);
		shim_proc_stop(&K, SIGTERM, 5000);
		shim_proc_expect(&C, "END", line, sizeof(line), 5000);
	}

	for (unsigned i = 0; i < iters; i++) {
		int startup = ts_rand(&rng) % 10 == 0;
		unsigned delay_us = (unsigned)(ts_rand(&rng) % (startup ? 30000 : 20000));
		int kill_client = (i & 1) == 0;
		int64_t t_kill;

		snprintf(seed, sizeof(seed), "%u", i + 100);
		if (kill_client) {
			char *const av[] = {SHIM_PEER, "pinger", ps, seed, NULL};

			shim_proc_start(&K, av, 1);
			if (!startup)
				shim_proc_expect(&K, "CONN", line, sizeof(line), 10000);
		} else {
			char *const av[] = {SHIM_PEER, "server", pc, "-q", NULL};

			shim_proc_start(&K, av, 1);
			if (!startup) {
				shim_proc_expect(&K, "LISTEN", line, sizeof(line), 10000);
				shim_proc_send(&C, "again\n");
				shim_proc_expect(&C, "CONN", line, sizeof(line), 10000);
			}
		}
		usleep(delay_us);
		t_kill = ts_now_ns();
		shim_proc_kill9(&K);
		st.kills++;
		if (startup) {
			st.startup_kills++;
			drain(kill_client ? &S : &C, 200, i);
		} else {
			expect_end(kill_client ? &S : &C, t_kill, &st, i);
		}
		/* Both survivors are checked every iteration, from their
		 * first kill on: neither may accumulate anything. */
		if (kill_client && s_fds0 < 0)
			s_fds0 = stable_fds(S.pid);
		if (!kill_client && c_fds0 < 0)
			c_fds0 = stable_fds(C.pid);
		if (s_fds0 >= 0)
			back_to_baseline("server S", S.pid, &s_fds0, (int)rg.hdr.n_vectors, 1, 0,
					 i);
		if (c_fds0 >= 0)
			back_to_baseline("pinger C", C.pid, &c_fds0, (int)rg.hdr.n_vectors, 0, 1,
					 i);
	}

	/* New connections work with both survivors. */
	{
		char *const kv[] = {SHIM_PEER, "server", pc, "-q", NULL};
		char *const av[] = {SHIM_PEER, "client", ps, "8", "4", "65536", "9", "0", NULL};

		shim_proc_start(&K, kv, 1);
		shim_proc_expect(&K, "LISTEN", line, sizeof(line), 10000);
		shim_proc_send(&C, "again\n");
		shim_proc_expect(&C, "CONN", line, sizeof(line), 10000);
		CHECK(shim_proc_stop(&K, SIGTERM, 5000) == 0, "last server");
		shim_proc_expect(&C, "END", line, sizeof(line), 5000);
		shim_proc_start(&K, av, 1);
		shim_proc_expect(&K, "DONE", line, sizeof(line), 30000);
		CHECK(shim_proc_stop(&K, 0, 5000) == 0, "last client");
	}
	printf("%u kills (%u in start-up) in %.1f s; survivors' calls ended: %u EOF, %u "
	       "ECONNRESET, %u EPIPE; kill to end: mean %.1f ms, max %.1f ms (bound %d ms)\n",
	       st.kills, st.startup_kills, (double)(ts_now_ns() - t0) / 1e9, st.eof, st.reset,
	       st.pipe, st.lat_sum_ms / (st.kills - st.startup_kills), st.lat_max_ms, END_BOUND_MS);
	shim_proc_send(&C, "");
	close(C.in), C.in = -1; /* EOF on its stdin: it exits */
	CHECK(shim_proc_stop(&C, 0, 5000) == 0, "survivor C exit status");
	CHECK(shim_proc_stop(&S, SIGTERM, 5000) == 0, "survivor S exit status");
	ivl_endpoint_close(ep);
	ts_daemon_stop(d.pid, SIGTERM);
	printf("PASS shim_kill9_random_points\n");
	return 0;
}
