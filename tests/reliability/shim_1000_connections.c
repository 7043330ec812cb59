/* SPDX-License-Identifier: MIT */
/*
 * 1,000 concurrent socket-shim connections between two processes.
 *
 * shim_peer server and shim_peer client (plain TCP programs) run under
 * libivlink-preload.so against an ivlinkd started with --chan-slots 2048
 * and a 256 MiB region (16 KiB rings). The client opens 1,000 connections,
 * all held open at once, and runs ROUNDS requests on each with every
 * request of every connection in flight together (poll()-driven, 1 B to
 * 8 KiB, checked byte by byte in both directions). While they are open the
 * driver checks in the region that all 1,000 are accelerated (a confirmed
 * proposal in the client's section and a matched accept in the server's),
 * then lets the client close them (gracefully: shutdown, EOF, close) and
 * checks that both sections return to their pages and halves of before,
 * and the server's fd count too (plus the client's doorbell eventfds).
 *
 * IVLINK_RELIABILITY_ITERS=N: N rounds per connection (default 3).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim_rel.h"

#define CONNS 1000u

/* Waits until f(id) == want (up to ms); returns the last value. */
static long settle(long (*f)(const struct ivl_region *, uint32_t), const struct ivl_region *rg,
		   uint32_t id, long want, int ms)
{
	long v = f(rg, id);

	for (int i = 0; i < ms / 10 && v != want; i++) {
		usleep(10000);
		v = f(rg, id);
	}
	return v;
}

static long used_halves(const struct ivl_region *rg, uint32_t id)
{
	return (long)shim_used_halves(rg, id);
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "shim1000", 240);
	const char *const extra[] = {"-l",	     "256M", "--max-peers", "4",
				     "--chan-slots", "2048", NULL};
	unsigned rounds = rel_iters(3);
	struct ts_daemon d;
	struct ivl_endpoint *ep;
	struct shim_proc srv, cli;
	struct ivl_region rg;
	char port[16], rounds_s[16], line[256];
	int sid, cid, sfd0, sfd1, cfd_open;
	long spages0, shalves0, spages, shalves, cpages, chalves;
	unsigned sacc, cacc;
	int64_t t0;
	double secs;

	ts_daemon_start(&d, ivlinkd, "ivlinkd.sock", extra, NULL);
	shim_rel_setup(&d, IVL_PRELOAD, 16384);
	ep = ts_open(&d, "driver", 0, IVL_LOG_ERROR);
	CHECK(rel_guard_region(&rg) == 0, "driver: region view");
	CHECK(rg.hdr.chan_slots == 2048, "chan_slots %u", rg.hdr.chan_slots);

	snprintf(port, sizeof(port), "%d", shim_free_port());
	snprintf(rounds_s, sizeof(rounds_s), "%u", rounds);
	{
		char *const av[] = {SHIM_PEER, "server", port, "-q", NULL};

		shim_proc_start(&srv, av, 1);
	}
	shim_proc_expect(&srv, "LISTEN", line, sizeof(line), 10000);
	sid = shim_peer_of(&rg, srv.pid);
	CHECK(sid >= 0, "the shimmed server did not join the region");
	spages0 = ivl_section_pages_used(&rg, (uint32_t)sid);
	shalves0 = used_halves(&rg, (uint32_t)sid);
	sfd0 = ts_proc_fds(srv.pid);

	t0 = ts_now_ns();
	{
		char *const av[] = {SHIM_PEER, "client", port, "1000", rounds_s,
				    "8192",    "7",	 "0",  "-s",   NULL};

		shim_proc_start(&cli, av, 1);
	}
	shim_proc_expect(&cli, "OPEN", line, sizeof(line), 180000);
	secs = (double)(ts_now_ns() - t0) / 1e9;
	CHECK(atoi(line + 5) == (int)CONNS, "client: %s", line);
	cid = shim_peer_of(&rg, cli.pid);
	CHECK(cid >= 0, "the shimmed client did not join the region");
	cacc = shim_accel_halves(&rg, (uint32_t)cid);
	sacc = shim_accel_halves(&rg, (uint32_t)sid);
	cfd_open = ts_proc_fds(cli.pid);
	sfd1 = ts_proc_fds(srv.pid);
	printf("%u connections open and %u rounds done in %.2f s: accelerated %u (client) / %u "
	       "(server); pages client %ld server %ld; fds client %d server %d (before %d); "
	       "rss client %ld server %ld KiB\n",
	       CONNS, rounds, secs, cacc, sacc, ivl_section_pages_used(&rg, (uint32_t)cid),
	       ivl_section_pages_used(&rg, (uint32_t)sid), cfd_open, sfd1, sfd0,
	       ts_proc_rss_kb(cli.pid), ts_proc_rss_kb(srv.pid));
	CHECK(cacc == CONNS && sacc == CONNS, "not all connections accelerated");
	CHECK(sfd1 >= sfd0 + (int)CONNS, "server fds %d (before %d)", sfd1, sfd0);

	shim_proc_send(&cli, "close\n");
	shim_proc_expect(&cli, "BATCH", line, sizeof(line), 60000);
	shim_proc_expect(&cli, "IDLE", line, sizeof(line), 60000);
	/* Everything the connections held comes back: the client's section
	 * to empty, the server's to its listener alone. */
	cpages = settle(ivl_section_pages_used, &rg, (uint32_t)cid, 0, 5000);
	chalves = settle(used_halves, &rg, (uint32_t)cid, 0, 5000);
	spages = settle(ivl_section_pages_used, &rg, (uint32_t)sid, spages0, 5000);
	shalves = settle(used_halves, &rg, (uint32_t)sid, shalves0, 5000);
	/* The server holds the client's doorbell eventfds while it is up,
	 * and its thread, once it slept in poll() on accelerated connections,
	 * a wake eventfd (preload/wait_sleepers.c): constant, not one per
	 * connection. */
	sfd0 += (int)rg.hdr.n_vectors + 1;
	for (int i = 0; i < 500 && ts_proc_fds(srv.pid) != sfd0; i++)
		usleep(10000);
	printf("after close: client pages %ld halves %ld; server pages %ld (before %ld) halves "
	       "%ld (before %ld) fds %d (before %d + %u client eventfds + a wake fd)\n",
	       cpages, chalves, spages, spages0, shalves, shalves0, ts_proc_fds(srv.pid),
	       sfd0 - (int)rg.hdr.n_vectors - 1, rg.hdr.n_vectors);
	if (cpages || chalves || spages != spages0 || shalves != shalves0) {
		shim_dump_halves(&rg, (uint32_t)cid);
		shim_dump_halves(&rg, (uint32_t)sid);
	}
	CHECK(cpages == 0 && chalves == 0, "client section not back to empty");
	CHECK(spages == spages0 && shalves == shalves0, "server section not back");
	CHECK(ts_proc_fds(srv.pid) == sfd0, "server fds not back");

	shim_proc_send(&cli, "exit\n");
	shim_proc_expect(&cli, "DONE", line, sizeof(line), 10000);
	printf("client: %s\n", line);
	CHECK(shim_proc_stop(&cli, 0, 10000) == 0, "client exit status");
	CHECK(shim_proc_stop(&srv, SIGTERM, 10000) == 0, "server exit status");
	ivl_endpoint_close(ep);
	ts_daemon_stop(d.pid, SIGTERM);
	printf("PASS shim_1000_connections\n");
	return 0;
}
