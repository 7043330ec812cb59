/* SPDX-License-Identifier: MIT */
/*
 * A region member rewrites, concurrently and over and over, the ring
 * geometry in the victims' OWN channel halves (issue 10, items 2 and 3):
 * tx_size (to 1 GiB and back), tx_data_off (to the ring of another pair),
 * tx_pages and mode, while the victims connect and accept. It used to make
 * a victim write past the region (a double fetch of tx_size: 1 GiB past a
 * 1 MiB region into the heap) and write its stream into another pair's
 * ring (tx_data_off read back from its own half).
 *
 * Pair A (server SA, client CA; every connection of theirs is attacked)
 * and pair B (SB, CB; never attacked, but the target the attacker points
 * A's halves at) exchange checked data for 6 s, many short connections.
 * Verified:
 *  - A's processes never die of a signal (exit 0, or 1 after a clean
 *    error: their peer may read a ring the attacker moved);
 *  - B's client finishes with every byte right (exit 0), B's server too:
 *    no victim ever wrote where its half said instead of where its own
 *    offer put its ring;
 *  - a fresh pair works afterwards.
 * The flipper is this test process, mapping the region as a peer.
 * What it cannot do: hit the few nanoseconds between an offer and the read
 * that used to follow it on demand. Run against the old code it passed, so
 * this is a test of survival and of B's isolation under the attack; the
 * private copy itself is checked in tests/unit/ctab_offer_match_gc.c and
 * in the fuzz_ctab_own harness.
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

#define ATTACK_S 6

struct flipper {
	struct ivl_region rg;
	int a_ids[2], b_ids[2];
	volatile int stop;
	uint64_t flips;
};

/* The tx ring offsets of pair B's live halves: the confused deputy's
 * targets. Returns how many (at most max). */
static unsigned b_rings(struct flipper *f, uint64_t *out, unsigned max)
{
	unsigned n = 0;

	for (int k = 0; k < 2; k++)
		for (uint32_t s = 0; s < f->rg.hdr.chan_slots && n < max; s++) {
			struct ivl_chan_half *h = ivl_region_chan(&f->rg, (uint32_t)f->b_ids[k], s);
			uint64_t off = __atomic_load_n(&h->tx_data_off, __ATOMIC_RELAXED);

			if (__atomic_load_n(&h->state, __ATOMIC_RELAXED) == IVL_CHAN_OFFERED && off)
				out[n++] = off;
		}
	return n;
}

/*
 * Rewrites every live half of pair A in a tight loop, so that a half a
 * victim has just offered is rewritten within a microsecond or so: between
 * its offer and its ring init, where the old code read the half back.
 * Mostly the offset (to one of B's live rings, with a valid size: the
 * confused deputy), sometimes the size (1 GiB: the double fetch), the page
 * count or the mode.
 */
static void *flip(void *arg)
{
	struct flipper *f = arg;
	uint64_t rnd = 0x9e3779b97f4a7c15ULL, targets[32];
	unsigned nt = 0, pass = 0;

	while (!f->stop) {
		if (pass++ % 64 == 0)
			nt = b_rings(f, targets, 32);
		for (int k = 0; k < 2; k++) {
			uint32_t id = (uint32_t)f->a_ids[k];

			for (uint32_t s = 0; s < f->rg.hdr.chan_slots; s++) {
				struct ivl_chan_half *h = ivl_region_chan(&f->rg, id, s);
				uint32_t st = __atomic_load_n(&h->state, __ATOMIC_RELAXED);

				if (st != IVL_CHAN_OFFERED && st != IVL_CHAN_CLAIMED)
					continue;
				ts_rand(&rnd);
				switch (rnd % 8) {
				case 0:
					__atomic_store_n(&h->tx_size, 1u << 30, __ATOMIC_RELAXED);
					break;
				case 1:
					__atomic_store_n(&h->tx_pages, 1u << 18, __ATOMIC_RELAXED);
					break;
				case 2:
					__atomic_store_n(&h->mode, IVL_MODE_MESSAGE,
							 __ATOMIC_RELAXED);
					break;
				default:
					if (nt)
						__atomic_store_n(&h->tx_data_off,
								 targets[(rnd >> 8) % nt],
								 __ATOMIC_RELAXED);
					break;
				}
				f->flips++;
			}
		}
	}
	return NULL;
}

static void server(struct shim_proc *p, const char *port)
{
	char line[256];
	char *const av[] = {SHIM_PEER, "server", (char *)port, "-q", "-k", NULL};

	shim_proc_start(p, av, 1);
	shim_proc_expect(p, "LISTEN", line, sizeof(line), 10000);
}

static void client(struct shim_proc *p, const char *port, const char *conns, const char *size,
		   const char *seed, const char *secs)
{
	char line[256];
	char *const av[] = {SHIM_PEER,	  "client",	(char *)port, (char *)conns, "2",
			    (char *)size, (char *)seed, (char *)secs, "-s",	     NULL};

	shim_proc_start(p, av, 1);
	shim_proc_expect(p, "OPEN", line, sizeof(line), 30000);
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "shim_flip_own_geometry", 200);
	const char *const extra[] = {"-l", "64M", "--max-peers", "8", "--chan-slots", "48", NULL};
	struct ts_daemon d;
	struct shim_proc SA, CA, SB, CB, S, C;
	struct flipper f = {0};
	struct ivl_endpoint *ep;
	pthread_t th;
	char pa[16], pb[16], secs[16], line[256];
	int st;

	ts_daemon_start(&d, ivlinkd, "sock", extra, NULL);
	shim_rel_setup(&d, IVL_PRELOAD, 65536);
	snprintf(pa, sizeof(pa), "%d", shim_free_port());
	snprintf(pb, sizeof(pb), "%d", shim_free_port());
	snprintf(secs, sizeof(secs), "%d", ATTACK_S);
	server(&SA, pa);
	server(&SB, pb);
	/* The clients open a first batch and hold it (-s), so that all four
	 * are in the region before the attack knows whom to attack. */
	/* A: many short connections (many offers to attack). B: a few bulk
	 * ones, so that B's rings hold unread bytes most of the time and a
	 * stray write into them shows. */
	client(&CA, pa, "8", "32768", "21", secs);
	client(&CB, pb, "2", "4194304", "22", secs);
	ep = ts_open(&d, "flipper", 0, IVL_LOG_ERROR);
	CHECK(rel_guard_region(&f.rg) == 0, "no region mapping");
	f.a_ids[0] = shim_peer_of(&f.rg, SA.pid);
	f.a_ids[1] = shim_peer_of(&f.rg, CA.pid);
	f.b_ids[0] = shim_peer_of(&f.rg, SB.pid);
	f.b_ids[1] = shim_peer_of(&f.rg, CB.pid);
	for (int i = 0; i < 2; i++)
		CHECK(f.a_ids[i] >= 0 && f.b_ids[i] >= 0, "a victim is not in the region");
	CHECK(pthread_create(&th, NULL, flip, &f) == 0, "pthread_create");

	/* Go: both clients run their timed batches under the attack. */
	shim_proc_send(&CA, "go\n");
	shim_proc_send(&CB, "go\n");
	shim_proc_expect(&CB, "IDLE", line, sizeof(line), 60000);
	shim_proc_send(&CB, "go\n");
	shim_proc_expect(&CB, "DONE", line, sizeof(line), 30000);
	st = shim_proc_stop(&CB, 0, 10000);
	CHECK(st == 0, "pair B's client saw wrong bytes or failed (exit %d)", st);
	printf("pair B (never attacked) intact: %s\n", line);
	for (;;) {
		int rc = shim_proc_line(&CA, line, sizeof(line), 60000);

		CHECK(rc >= 0, "pair A's client hangs");
		if (rc == 0)
			break;
		if (!strncmp(line, "IDLE", 4))
			shim_proc_send(&CA, "go\n");
	}
	st = shim_proc_stop(&CA, 0, 10000);
	CHECK(st == 0 || st == 1, "pair A's client exit %d (%s)", st,
	      st == 66 ? "sanitizer report" : "crash");
	f.stop = 1;
	pthread_join(th, NULL);
	printf("attacker: %llu flips of pair A's own halves; A's client exit %d\n",
	       (unsigned long long)f.flips, st);
	CHECK(f.flips > 1000, "the attack did not run (%llu flips)", (unsigned long long)f.flips);
	CHECK(kill(SA.pid, 0) == 0, "pair A's server died");
	st = shim_proc_stop(&SA, SIGTERM, 10000);
	CHECK(st == 0 || st == 1, "pair A's server exit %d", st);
	st = shim_proc_stop(&SB, SIGTERM, 10000);
	CHECK(st == 0, "pair B's server exit %d", st);
	ivl_endpoint_close(ep);

	/* A fresh pair afterwards. */
	snprintf(pa, sizeof(pa), "%d", shim_free_port());
	server(&S, pa);
	{
		char *const av[] = {SHIM_PEER, "client", pa, "8", "4", "65536", "23", "0", NULL};

		shim_proc_start(&C, av, 1);
		shim_proc_expect(&C, "DONE", line, sizeof(line), 30000);
	}
	CHECK(shim_proc_stop(&C, 0, 10000) == 0, "fresh client");
	CHECK(shim_proc_stop(&S, SIGTERM, 10000) == 0, "fresh server");
	ts_daemon_stop(d.pid, SIGTERM);
	printf("PASS shim_flip_own_geometry\n");
	return 0;
}
