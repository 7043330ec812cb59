/* SPDX-License-Identifier: MIT */
/*
 * Two threads blocked on two channels that share one doorbell vector must
 * both be woken: the daemon runs with 2 vectors (control + one data vector),
 * so every channel of "west" sleeps on vector 1. West runs one echo thread
 * per channel, with no spinning; "east" pings them one at a time and both at
 * once. A wake-up lost to the other thread draining the eventfd would show
 * as a round trip of a whole block slice (50 ms); none may take that long
 * beyond scheduling noise, and the run must not add up to lost slices.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <ivlink/ivlink.h>

#include "support.h"

#define ROUNDS	400
#define SLOW_NS 45000000LL /* just under IVL_BLOCK_SLICE_NS */

static struct ts_daemon daemon_;

static void *echo(void *arg)
{
	struct ivl_channel *ch = arg;
	uint8_t b;

	for (;;) {
		ssize_t n = ivl_recv(ch, &b, 1, 0);

		if (n == 0)
			return NULL;
		CHECK(n == 1, "echo recv: %zd", n);
		CHECK(ivl_send(ch, &b, 1, 0) == 1, "echo send");
	}
}

static int west(void *arg)
{
	struct ivl_endpoint *ep = ts_open(&daemon_, "west", -1, IVL_LOG_WARN);
	int e = ts_find_peer(ep, "east", 10000000000LL);

	CHECK(e >= 0, "peer %s never appeared", "east");
	struct ivl_channel *ch[2];
	struct ivl_channel_stats st[2];
	pthread_t t[2];

	for (int i = 0; i < 2; i++) {
		int rc = ivl_channel_open(ep, i ? "c1" : "c0", e, NULL, 10000000000LL, &ch[i]);

		CHECK(rc == 0, "west: open: %s", strerror(-rc));
		ivl_channel_stats(ch[i], &st[i]);
	}
	CHECK(st[0].rx_vector == st[1].rx_vector, "channels do not share a vector (%u, %u)",
	      st[0].rx_vector, st[1].rx_vector);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, echo, ch[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 2; i++) {
		ivl_channel_stats(ch[i], &st[i]);
		printf("west: c%d on vector %u: %llu sleeps\n", i, st[i].rx_vector,
		       (unsigned long long)st[i].sleeps);
		ivl_channel_close(ch[i]);
	}
	ivl_endpoint_close(ep);
	return 0;
}

static int east(void *arg)
{
	struct ivl_endpoint *ep = ts_open(&daemon_, "east", -1, IVL_LOG_WARN);
	int w = ts_find_peer(ep, "west", 10000000000LL);

	CHECK(w >= 0, "peer %s never appeared", "west");
	struct ivl_channel *ch[2];
	int64_t worst = 0, total = 0, t0;
	unsigned slow = 0;
	uint8_t b = 0;

	for (int i = 0; i < 2; i++) {
		int rc = ivl_channel_open(ep, i ? "c1" : "c0", w, NULL, 10000000000LL, &ch[i]);

		CHECK(rc == 0, "east: open: %s", strerror(-rc));
	}
	usleep(50000); /* let both echo threads fall asleep */
	for (int r = 0; r < ROUNDS; r++) {
		int64_t dt;

		t0 = ts_now_ns();
		if (r & 1) {
			/* Both at once: both sleepers of the vector must wake. */
			CHECK(ivl_send(ch[0], &b, 1, 0) == 1, "send");
			CHECK(ivl_send(ch[1], &b, 1, 0) == 1, "send");
			CHECK(ivl_recv(ch[0], &b, 1, 0) == 1, "recv");
			CHECK(ivl_recv(ch[1], &b, 1, 0) == 1, "recv");
		} else {
			int i = (r >> 1) & 1;

			CHECK(ivl_send(ch[i], &b, 1, 0) == 1, "send");
			CHECK(ivl_recv(ch[i], &b, 1, 0) == 1, "recv");
		}
		dt = ts_now_ns() - t0;
		total += dt;
		if (dt > worst)
			worst = dt;
		if (dt >= SLOW_NS)
			slow++;
	}
	printf("east: %d rounds, mean %.1f us, worst %.1f ms, %u >= %.0f ms\n", ROUNDS,
	       total / 1e3 / ROUNDS, worst / 1e6, slow, SLOW_NS / 1e6);
	/* Scheduling noise on a loaded 2-vCPU host may stall a round or two;
	 * a lost wake-up would stall many. */
	CHECK(slow <= ROUNDS / 100, "%u rounds took a block slice: lost wake-ups", slow);
	for (int i = 0; i < 2; i++) {
		ivl_channel_shutdown(ch[i], IVL_SHUT_WR);
		ivl_channel_close(ch[i]);
	}
	ivl_endpoint_close(ep);
	return 0;
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "shared_vector_wakeups", 80);

	ts_daemon_start(&daemon_, ivlinkd, "ivlinkd.sock",
			(const char *const[]){"-l", "64M", "-n", "2", "--max-peers", "8", NULL},
			NULL);
	ts_run_two("west", west, NULL, "east", east, NULL, 60000);
	ts_daemon_stop(daemon_.pid, SIGTERM);
	printf("PASS\n");
	return 0;
}
