/* SPDX-License-Identifier: MIT */
/*
 * A hostile peer against socket-shim victims: evil_peer joins the region
 * and writes adversarial values while two plain programs under
 * libivlink-preload.so (shim_peer server and client) exchange data over
 * shimmed TCP: batches of 1..16 connections, 1..4 requests each of up to
 * 64 KiB, every byte checked.
 *
 *  - scope own (evil_peer writes only its own section and peer entry, in
 *    targeted then random mode): the victims' connections are between
 *    themselves, yet the shim reads every peer's section when it looks for
 *    listeners and proposals, so the evil section's garbage halves are
 *    parsed on every connect and accept. Verified: the client finishes all
 *    its batches with every byte right (exit 0), the server survives.
 *    The server runs with -k: a bad request closes that connection only.
 *  - scope all (everything, including the victims' rendezvous halves,
 *    rings and the region header): verified that the victims never crash
 *    (no signal, no sanitizer report: exit code 66 is reserved for ASan and
 *    UBSan here) and never hang: every client run ends within its bound,
 *    with exit 0, or exit 1 after reporting a clean error (a connection
 *    reset or refused, a stall of a batch beyond 20 s, or a payload change
 *    the rings cannot detect in stream mode); the client is restarted
 *    until the attack ends.
 *  - after each scenario a fresh server and client pair, in a fresh region
 *    state (own) or whatever the attack left (all: the shim may fall back
 *    to TCP), completes with every byte right.
 *
 * IVLINK_RELIABILITY_ITERS=N repeats the scenarios N times (default 1);
 * IVLINK_RELIABILITY_SEED seeds evil_peer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim_rel.h"

#define ATTACK_MS 8000

struct outcome {
	unsigned runs, ok, clean_err;
	char last_err[256];
};

/* Runs clients until the attack is over; returns what they did. */
static void victims(const struct ts_daemon *d, const char *scope, const char *mode, uint64_t seed,
		    struct outcome *o)
{
	struct shim_proc S, E, C;
	char port[16], ms[16], sd[32], line[256];
	int64_t end;
	int st;

	snprintf(port, sizeof(port), "%d", shim_free_port());
	snprintf(ms, sizeof(ms), "%d", ATTACK_MS);
	snprintf(sd, sizeof(sd), "%llu", (unsigned long long)seed);
	{
		char *const av[] = {SHIM_PEER, "server", port, "-q", "-k", NULL};

		shim_proc_start(&S, av, 1);
		shim_proc_expect(&S, "LISTEN", line, sizeof(line), 10000);
	}
	{
		char *const av[] = {
		    EVIL_PEER, "--uri",	      (char *)d->uri, "--name",	    "evil", "--seed", sd,
		    "--scope", (char *)scope, "--mode",	      (char *)mode, "--ms", ms,	      NULL};

		shim_proc_start(&E, av, 0);
	}
	end = ts_now_ns() + (int64_t)ATTACK_MS * 1000000LL;
	memset(o, 0, sizeof(*o));
	while (ts_now_ns() < end) {
		char *const av[] = {SHIM_PEER, "client", port, "16", "4", "65536", sd, "2", NULL};
		int rc;

		shim_proc_start(&C, av, 1);
		o->runs++;
		for (;;) {
			rc = shim_proc_line(&C, line, sizeof(line), 60000);
			CHECK(rc >= 0, "%s/%s: a victim client hangs", scope, mode);
			if (rc == 0)
				break;
			if (!strncmp(line, "BAD", 3))
				memcpy(o->last_err, line, sizeof(o->last_err));
		}
		st = shim_proc_stop(&C, 0, 5000);
		CHECK(st == 0 || st == 1, "%s/%s: victim client exit status %d (%s)", scope, mode,
		      st, st == 66 ? "sanitizer report" : "crash");
		CHECK(st == 0 || !strcmp(scope, "all"), "%s/%s: victim client failed: %s", scope,
		      mode, o->last_err);
		o->ok += st == 0;
		o->clean_err += st == 1;
		CHECK(kill(S.pid, 0) == 0, "%s/%s: the victim server died", scope, mode);
	}
	shim_proc_stop(&E, SIGKILL, 5000);
	st = shim_proc_stop(&S, SIGTERM, 10000);
	CHECK(st == 0 || (st == 1 && !strcmp(scope, "all")), "%s/%s: victim server exit status %d",
	      scope, mode, st);
	if (st == 1)
		o->clean_err++;
}

/* A fresh pair after the attack. */
static void fresh_pair_works(const char *what)
{
	struct shim_proc S, C;
	char port[16], line[256];

	snprintf(port, sizeof(port), "%d", shim_free_port());
	{
		char *const av[] = {SHIM_PEER, "server", port, "-q", NULL};

		shim_proc_start(&S, av, 1);
		shim_proc_expect(&S, "LISTEN", line, sizeof(line), 10000);
	}
	{
		char *const av[] = {SHIM_PEER, "client", port, "8", "4", "65536", "3", "0", NULL};

		shim_proc_start(&C, av, 1);
		shim_proc_expect(&C, "DONE", line, sizeof(line), 30000);
	}
	CHECK(shim_proc_stop(&C, 0, 5000) == 0, "%s: fresh client", what);
	CHECK(shim_proc_stop(&S, SIGTERM, 5000) == 0, "%s: fresh server", what);
}

static void scenario(const char *ivlinkd, const char *scope, const char *mode, uint64_t seed)
{
	const char *const extra[] = {"-l", "64M", "--max-peers", "8", "--chan-slots", "128", NULL};
	struct ts_daemon d;
	struct outcome o;
	char what[64];

	snprintf(what, sizeof(what), "%s/%s", scope, mode);
	ts_daemon_start(&d, ivlinkd, "ivlinkd.sock", extra, NULL);
	shim_rel_setup(&d, IVL_PRELOAD, 32768);
	victims(&d, scope, mode, seed, &o);
	fresh_pair_works(what);
	printf("%-13s seed %-4llu: %u client runs, %u all bytes right, %u ended with a clean "
	       "error%s%s\n",
	       what, (unsigned long long)seed, o.runs, o.ok, o.clean_err,
	       o.last_err[0] ? "; last: " : "", o.last_err);
	ts_daemon_stop(d.pid, SIGTERM);
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "shimhostile", 280);
	unsigned iters = rel_iters(1);
	uint64_t seed = rel_seed(1);

	/* Sanitizer reports in the victims exit 66, told apart from the
	 * clean errors (exit 1). */
	setenv("ASAN_OPTIONS", "exitcode=66:detect_leaks=0", 0);
	setenv("UBSAN_OPTIONS", "exitcode=66:halt_on_error=1", 0);
	/* The shim's default accept timeout: an attacked rendezvous falls
	 * back to TCP after 1 s. */
	setenv("IVLINK_ACCEPT_TIMEOUT_MS", "1000", 0);
	for (unsigned i = 0; i < iters; i++) {
		scenario(ivlinkd, "own", "both", seed + 2 * i);
		scenario(ivlinkd, "all", "both", seed + 2 * i + 1);
	}
	printf("PASS shim_hostile_peer (%u iterations)\n", iters);
	return 0;
}
