/* SPDX-License-Identifier: MIT */
/*
 * 1,000 connect/disconnect cycles against the real ivlinkd: its fd count
 * and RSS stay flat, a long-lived watcher peer sees every join and leave,
 * and the ids are reused (the lowest free id is handed out).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>

#include "dtest.h"

#define NVEC   4
#define CYCLES 1000
#define WARMUP 50

/* Pumps the watcher until peer id's vectors are present (or gone). */
static void wait_peer(struct dt_peer *w, int id, int present)
{
	for (int i = 0; i < 5000; i++) {
		if ((w->other[id][NVEC - 1] >= 0) == present && (w->other[id][0] >= 0) == present)
			return;
		dt_peer_pump(w, 1);
	}
	FAIL("watcher: peer %d never %s", id, present ? "joined" : "left");
}

int main(void)
{
	const char *const extra[] = {"-l", "4M", "-n", "4", NULL};
	struct dt_peer w, p;
	int fds0 = -1, fds1;
	long rss0 = -1, rss1;
	pid_t d;

	ts_init("churn", 170);
	d = ts_daemon_spawn(IVLINKD, ts_path("sock"), extra, &dt_daemon_opts, NULL);
	CHECK(d > 0);
	CHECK(dt_peer_join(&w, ts_path("sock"), NVEC) == 0 && w.id == 0);

	for (int i = 0; i < CYCLES + WARMUP; i++) {
		if (i == WARMUP) {
			fds0 = ts_proc_fds(d);
			rss0 = ts_proc_rss_kb(d);
		}
		CHECK(dt_peer_join(&p, ts_path("sock"), NVEC) == 0);
		CHECK(p.id == 1, "cycle %d: got id %d, want 1", i, p.id);
		/* Half of the clients leave right after the handshake, the
		 * others after ringing the watcher: both paths are covered. */
		if (i & 1) {
			uint64_t one = 1;

			CHECK(write(p.other[0][1], &one, 8) == 8);
		}
		wait_peer(&w, 1, 1);
		dt_peer_close(&p);
		/* Wait for the leave, so that the next client gets id 1. */
		wait_peer(&w, 1, 0);
	}
	CHECK(dt_peer_pump(&w, 300) >= 0);
	fds1 = ts_proc_fds(d);
	rss1 = ts_proc_rss_kb(d);
	printf("daemon fds %d -> %d, VmRSS %ld -> %ld kB over %d cycles\n", fds0, fds1, rss0, rss1,
	       CYCLES);
	CHECK(fds0 > 0 && fds1 <= fds0 + 1, "fd leak: %d -> %d", fds0, fds1);
#if defined(__SANITIZE_ADDRESS__)
	/* ASan's quarantine holds freed memory: RSS is not meaningful. */
	CHECK(rss0 > 0);
#else
	CHECK(rss0 > 0 && rss1 <= rss0 + 512, "memory growth: %ld -> %ld kB", rss0, rss1);
#endif
	/* The watcher is still served and the table is consistent. */
	for (unsigned k = 0; k < NVEC; k++)
		CHECK(w.other[1][k] == -1);
	{
		struct ivl_peer_view pv;

		CHECK(ivl_region_peer_view(&w.rg, 1, &pv) == 0 && pv.state == IVL_PEER_GONE);
		CHECK(pv.epoch == 2u * (CYCLES + WARMUP), "epoch %u", pv.epoch);
	}
	dt_peer_close(&w);
	CHECK(WIFEXITED(ts_daemon_stop(d, SIGTERM)));
	printf("PASS churn\n");
	return 0;
}
