/* SPDX-License-Identifier: MIT */
/*
 * ivlinkd killed (SIGKILL) under shim traffic and restarted on the same
 * named region (issue 10, item 5). The old daemon's peers stay UP in the
 * table, but the new daemon holds none of their doorbells and will never
 * see them leave: it marks them stale.
 *
 *  1. A shimmed server S and a pinger P (one accelerated connection,
 *     requests back to back, every byte checked) run; the daemon is killed
 *     and restarted. P's connection keeps working (no END for 2 s).
 *  2. A new client C (it joined the new daemon) connects to S 8 times: it
 *     must not accelerate towards a peer whose liveness is unknown (that
 *     used to crawl at one round trip per 250 ms): every connection falls
 *     back with reason "peer-stale", each request is answered and checked.
 *     `ivlinkctl status --json` shows S as stale.
 *  3. A new server S2 under the new daemon: a new client accelerates to
 *     it (the rule refuses only what it must).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim_rel.h"

/* Sum of every "key":N in a JSON text (enough here: only C makes the
 * reason counted). */
static long sum_key(const char *json, const char *key)
{
	char pat[64];
	long sum = 0;
	const char *p = json;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	while ((p = strstr(p, pat)) != NULL) {
		p += strlen(pat);
		sum += strtol(p, NULL, 10);
	}
	return sum;
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "shim_stale_after_restart", 200);
	struct ts_daemon d;
	struct shim_proc S, P, C, S2, C2;
	struct ivl_endpoint *ep;
	struct ivl_region rg;
	char name[64], port[16], port2[16], line[256], out[1 << 17];
	int rc, id;

	snprintf(name, sizeof(name), "ivl-stale-%d", (int)getpid());
	ts_track_shm(name);
	const char *const extra[] = {"-m", name, "-l", "32M", "--max-peers", "8", NULL};

	ts_daemon_start(&d, ivlinkd, "sock", extra, NULL);
	shim_rel_setup(&d, IVL_PRELOAD, 65536);
	snprintf(port, sizeof(port), "%d", shim_free_port());
	{
		char *const av[] = {SHIM_PEER, "server", port, "-q", NULL};

		shim_proc_start(&S, av, 1);
		shim_proc_expect(&S, "LISTEN", line, sizeof(line), 10000);
	}
	{
		char *const av[] = {SHIM_PEER, "pinger", port, "11", NULL};

		shim_proc_start(&P, av, 1);
		shim_proc_expect(&P, "CONN", line, sizeof(line), 10000);
	}

	/* 1. Kill the daemon under traffic; restart it on the same region. */
	ts_daemon_stop(d.pid, SIGKILL);
	ts_daemon_start(&d, ivlinkd, "sock", extra, NULL);
	rc = shim_proc_line(&P, line, sizeof(line), 2000);
	CHECK(rc == -ETIMEDOUT, "the old connection ended after the restart: %s",
	      rc > 0 ? line : "EOF");
	printf("old accelerated connection survives the restart: OK\n");

	/* 2. A new client towards the stale server: TCP, checked. */
	{
		char *const av[] = {SHIM_PEER, "client", port, "8",  "4",
				    "16384",   "5",	 "0",  "-s", NULL};

		shim_proc_start(&C, av, 1);
		shim_proc_expect(&C, "OPEN", line, sizeof(line), 30000);
	}
	CHECK(rel_ivlinkctl_json(IVLINKCTL, d.sock, out, sizeof(out)) == 0, "ivlinkctl");
	CHECK(sum_key(out, "peer-stale") == 8, "peer-stale fallbacks %ld, want 8",
	      sum_key(out, "peer-stale"));
	CHECK(strstr(out, "\"stale\":true"), "status shows no stale peer");
	shim_proc_send(&C, "go\n");
	shim_proc_expect(&C, "IDLE", line, sizeof(line), 30000);
	shim_proc_send(&C, "go\n");
	shim_proc_expect(&C, "DONE", line, sizeof(line), 30000);
	CHECK(shim_proc_stop(&C, 0, 10000) == 0, "client of the stale server failed");
	printf("new client to a stale server: TCP with reason peer-stale, bytes right: OK\n");

	/* 3. A server of the new daemon: accelerated as usual. */
	snprintf(port2, sizeof(port2), "%d", shim_free_port());
	{
		char *const av[] = {SHIM_PEER, "server", port2, "-q", NULL};

		shim_proc_start(&S2, av, 1);
		shim_proc_expect(&S2, "LISTEN", line, sizeof(line), 10000);
	}
	{
		char *const av[] = {SHIM_PEER, "client", port2, "4",  "4",
				    "16384",   "6",	 "0",	"-s", NULL};

		shim_proc_start(&C2, av, 1);
		shim_proc_expect(&C2, "OPEN", line, sizeof(line), 30000);
	}
	ep = ts_open(&d, "observer", 0, IVL_LOG_ERROR);
	CHECK(rel_guard_region(&rg) == 0, "no region mapping");
	id = shim_peer_of(&rg, C2.pid);
	CHECK(id >= 0, "the new client is not in the region");
	CHECK(shim_accel_halves(&rg, (uint32_t)id) == 4,
	      "new client to a new server: %u of 4 accelerated",
	      shim_accel_halves(&rg, (uint32_t)id));
	shim_proc_send(&C2, "go\n");
	shim_proc_expect(&C2, "IDLE", line, sizeof(line), 30000);
	shim_proc_send(&C2, "go\n");
	shim_proc_expect(&C2, "DONE", line, sizeof(line), 30000);
	CHECK(shim_proc_stop(&C2, 0, 10000) == 0, "client of the new server failed");
	ivl_endpoint_close(ep);
	printf("new client to a new server: accelerated: OK\n");

	shim_proc_kill9(&P);
	CHECK(shim_proc_stop(&S2, SIGTERM, 10000) == 0, "new server");
	CHECK(shim_proc_stop(&S, SIGTERM, 10000) == 0, "stale server");
	ts_daemon_stop(d.pid, SIGTERM);
	printf("PASS shim_stale_after_restart\n");
	return 0;
}
