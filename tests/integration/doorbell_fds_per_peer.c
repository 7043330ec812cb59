/* SPDX-License-Identifier: MIT */
/*
 * A process's fd count must not grow with the region's peers (issue 12,
 * item 3): ivlinkd sends every member every peer's vector eventfds, and
 * libivlink keeps those of the first few peers only (backend_host.c,
 * IVL_EAGER_PEERS), fetching a later peer's vector from the daemon's status
 * socket when a channel needs it.
 *
 * IDLE peers join a region of 8 vectors, then "echo", then we open our
 * endpoint: its fds are counted (/proc/self/fd before and after the open)
 * and must stay under the eager peers' share, where keeping everything (the
 * same open with IVLINK_EAGER_PEERS=64, in a child) costs IDLE x 8 more.
 * Then a channel with echo, which is lazy on both sides (it joined after 8
 * others for us, we after 8 others for it), must wake both ways: round
 * trips with no spinning, each woken by a doorbell from a fetched eventfd;
 * a missing doorbell would leave a block slice (50 ms) per round trip.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ivlink/ivlink.h>

#include "support.h"

#define IDLE	   40
#define VECTORS	   8
#define EAGER	   8 /* IVL_EAGER_PEERS */
#define ROUNDS	   200
#define SLOW_NS	   45000000LL /* just under IVL_BLOCK_SLICE_NS */
#define TIMEOUT_NS 20000000000LL

static struct ts_daemon daemon_;
static int quit_pipe[2];  /* children wait for EOF on [0] */
static int ready_pipe[2]; /* children write one byte once attached */

static void wait_quit(void)
{
	char c;

	close(quit_pipe[1]);
	while (read(quit_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
}

static int idle(void *arg)
{
	static char name[16];

	snprintf(name, sizeof(name), "idle%ld", (long)(intptr_t)arg);
	struct ivl_endpoint *ep = ts_open(&daemon_, name, 0, IVL_LOG_WARN);

	CHECK(write(ready_pipe[1], "r", 1) == 1, "ready");
	wait_quit();
	ivl_endpoint_close(ep);
	return 0;
}

static int echo(void *arg)
{
	(void)arg;
	struct ivl_endpoint *ep = ts_open(&daemon_, "echo", 0, IVL_LOG_WARN);

	CHECK(write(ready_pipe[1], "r", 1) == 1, "ready");
	int c = ts_find_peer(ep, "counter", TIMEOUT_NS);

	CHECK(c >= 0, "peer counter never appeared");
	struct ivl_channel *ch;
	int rc = ivl_channel_open(ep, "lazy", c, NULL, TIMEOUT_NS, &ch);

	CHECK(rc == 0, "echo: open: %s", strerror(-rc));
	for (;;) {
		uint8_t b;
		ssize_t n = ivl_recv(ch, &b, 1, 0);

		if (n == 0)
			break;
		CHECK(n == 1, "echo recv: %zd", n);
		CHECK(ivl_send(ch, &b, 1, 0) == 1, "echo send");
	}
	ivl_channel_close(ch);
	wait_quit();
	ivl_endpoint_close(ep);
	return 0;
}

/* fds an endpoint open adds to this process, with IVLINK_EAGER_PEERS=env
 * (NULL: unset). The endpoint is closed again. */
static int fds_of_open(const char *name, const char *env)
{
	int before = ts_proc_fds(getpid());

	if (env)
		setenv("IVLINK_EAGER_PEERS", env, 1);
	else
		unsetenv("IVLINK_EAGER_PEERS");
	struct ivl_endpoint *ep = ts_open(&daemon_, name, 0, IVL_LOG_WARN);
	int n = ts_proc_fds(getpid()) - before;

	ivl_endpoint_close(ep);
	return n;
}

static int eager_all(void *arg)
{
	int *out = arg, n = fds_of_open("eagerall", "64");

	CHECK(write(out[1], &n, sizeof(n)) == (ssize_t)sizeof(n), "report");
	return 0;
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "doorbell_fds_per_peer", 110);
	pid_t kids[IDLE + 1];
	char c;

	ts_daemon_start(&daemon_, ivlinkd, "ivlinkd.sock",
			(const char *const[]){"-l", "256M", "-n", "8", "--max-peers", "64", NULL},
			NULL);
	CHECK(pipe(quit_pipe) == 0 && pipe(ready_pipe) == 0, "pipe");
	for (long i = 0; i < IDLE; i++)
		kids[i] = ts_spawn(idle, (void *)(intptr_t)i);
	kids[IDLE] = ts_spawn(echo, NULL);
	for (int i = 0; i < IDLE + 1; i++)
		CHECK(read(ready_pipe[0], &c, 1) == 1, "child %d never attached", i);

	/* Keeping everything, for comparison (and to show the count is real). */
	int rep[2];

	CHECK(pipe(rep) == 0, "pipe");
	pid_t e = ts_spawn(eager_all, rep);
	int all = -1;

	CHECK(read(rep[0], &all, sizeof(all)) == (ssize_t)sizeof(all), "eager child report");
	CHECK(ts_wait(e, 10000) == 0, "eager child failed");

	int lazy = fds_of_open("lazycount", NULL);

	printf("fds of an endpoint among %d peers, %d vectors each: %d (every fd kept: %d)\n",
	       IDLE + 1, VECTORS, lazy, all);
	CHECK(all >= (IDLE + 1) * VECTORS, "keeping every fd added only %d fds", all);
	CHECK(lazy <= (EAGER + 1) * VECTORS + 8,
	      "%d fds among %d peers: more than %d eager peers' share", lazy, IDLE + 1, EAGER);

	/* A channel with a lazy peer, both ways woken by doorbells. */
	unsetenv("IVLINK_EAGER_PEERS");
	struct ivl_endpoint *ep = ts_open(&daemon_, "counter", 0, IVL_LOG_WARN);
	int before = ts_proc_fds(getpid());
	int p = ts_find_peer(ep, "echo", TIMEOUT_NS);

	CHECK(p >= 0, "peer echo never appeared");
	struct ivl_channel *ch;
	int rc = ivl_channel_open(ep, "lazy", p, NULL, TIMEOUT_NS, &ch);

	CHECK(rc == 0, "counter: open: %s", strerror(-rc));
	unsigned slow = 0;
	int64_t worst = 0;
	uint8_t b = 0;

	for (int r = 0; r < ROUNDS; r++) {
		int64_t t0 = ts_now_ns(), dt;

		usleep(200); /* let echo fall asleep: each round needs doorbells */
		CHECK(ivl_send(ch, &b, 1, 0) == 1, "send");
		CHECK(ivl_recv(ch, &b, 1, 0) == 1, "recv");
		dt = ts_now_ns() - t0;
		if (dt > worst)
			worst = dt;
		if (dt >= SLOW_NS)
			slow++;
	}
	struct ivl_channel_stats st;

	ivl_channel_stats(ch, &st);
	int after = ts_proc_fds(getpid());

	printf("%d round trips with a lazy peer: worst %.1f ms, %u >= %.0f ms; %llu doorbells "
	       "sent, fds +%d\n",
	       ROUNDS, worst / 1e6, slow, SLOW_NS / 1e6, (unsigned long long)st.kicks_sent,
	       after - before);
	CHECK(slow <= ROUNDS / 50, "%u round trips took a block slice: doorbells lost", slow);
	CHECK(st.kicks_sent > 0, "no doorbell rung: the test did not sleep");
	CHECK(after - before <= 4, "the channel added %d fds", after - before);
	ivl_channel_shutdown(ch, IVL_SHUT_WR);
	ivl_channel_close(ch);
	ivl_endpoint_close(ep);

	close(quit_pipe[1]);
	for (int i = 0; i < IDLE + 1; i++)
		CHECK(ts_wait(kids[i], 20000) == 0, "child %d failed", i);
	ts_daemon_stop(daemon_.pid, SIGTERM);
	printf("PASS\n");
	return 0;
}
