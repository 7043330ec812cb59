/* SPDX-License-Identifier: MIT */
/*
 * Two host processes, "west" and "east", attached to a real ivlinkd, move
 * IVL_IT_BYTES (default 1 GiB) in both directions at once over one stream
 * channel, in blocking mode with a tiny spin budget so that the doorbells
 * carry the wake-ups. Each receiver checks every byte against the sender's
 * deterministic stream, and both checksums are compared by the parent. The
 * stats must show doorbells sent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <ivlink/ivlink.h>

#include "support.h"

#define CHUNK_MAX (256u << 10)

static struct ts_daemon daemon_;
static uint64_t total_bytes = 1ULL << 30;
static int results[2]; /* pipe: children report checksums */

struct side {
	const char *name;
	const char *peer;
	uint64_t seed_tx, seed_rx;
};

struct xfer {
	struct ivl_channel *ch;
	uint64_t seed;
	uint64_t bytes;
	uint64_t cks;
	int64_t ns;
	int err;
};

static void *sender(void *arg)
{
	struct xfer *x = arg;
	uint8_t *buf = malloc(CHUNK_MAX);
	uint64_t rnd = x->seed, off = 0;
	int64_t t0 = ts_now_ns();

	CHECK(buf, "malloc");
	while (off < total_bytes) {
		size_t n = 1 + ts_rand(&rnd) % CHUNK_MAX;
		ssize_t w;

		if (n > total_bytes - off)
			n = (size_t)(total_bytes - off);
		ts_stream_fill(x->seed, off, buf, n);
		x->cks = ts_cksum(x->cks, buf, n);
		w = ivl_send(x->ch, buf, n, 0);
		if (w != (ssize_t)n) {
			fprintf(stderr, "send at %" PRIu64 ": %zd (%s)\n", off, w,
				w < 0 ? strerror((int)-w) : "short");
			x->err = 1;
			break;
		}
		off += n;
	}
	x->bytes = off;
	x->ns = ts_now_ns() - t0;
	ivl_channel_shutdown(x->ch, IVL_SHUT_WR);
	free(buf);
	return NULL;
}

static void *receiver(void *arg)
{
	struct xfer *x = arg;
	uint8_t *buf = malloc(CHUNK_MAX);
	uint64_t rnd = x->seed ^ 0x5555, off = 0;
	int64_t t0 = ts_now_ns();

	CHECK(buf, "malloc");
	for (;;) {
		size_t want = 1 + ts_rand(&rnd) % CHUNK_MAX;
		ssize_t n = ivl_recv(x->ch, buf, want, 0);
		size_t bad;

		if (n == 0)
			break;
		if (n < 0) {
			fprintf(stderr, "recv at %" PRIu64 ": %s\n", off, strerror((int)-n));
			x->err = 1;
			break;
		}
		bad = ts_stream_check(x->seed, off, buf, (size_t)n);
		if (bad != (size_t)n) {
			fprintf(stderr, "data mismatch at byte %" PRIu64 "\n", off + bad);
			x->err = 1;
			break;
		}
		x->cks = ts_cksum(x->cks, buf, (size_t)n);
		off += (uint64_t)n;
	}
	x->bytes = off;
	x->ns = ts_now_ns() - t0;
	free(buf);
	return NULL;
}

static int run_side(void *arg)
{
	const struct side *s = arg;
	struct ivl_endpoint *ep = ts_open(&daemon_, s->name, 2000, IVL_LOG_WARN);
	struct ivl_channel *ch;
	struct ivl_channel_stats st;
	struct xfer tx = {.seed = s->seed_tx}, rx = {.seed = s->seed_rx};
	pthread_t tt, rt;
	int peer = ts_find_peer(ep, s->peer, 10000000000LL);

	CHECK(peer >= 0, "peer %s never appeared", s->peer);
	int rc = ivl_channel_open(ep, "bulk", peer, NULL, 10000000000LL, &ch);
	char line[160];

	CHECK(rc == 0, "%s: channel_open: %s", s->name, strerror(-rc));
	tx.ch = rx.ch = ch;
	pthread_create(&tt, NULL, sender, &tx);
	pthread_create(&rt, NULL, receiver, &rx);
	pthread_join(tt, NULL);
	pthread_join(rt, NULL);
	CHECK(!tx.err && !rx.err, "%s: transfer failed", s->name);
	CHECK(rx.bytes == total_bytes, "%s: received %" PRIu64 " bytes", s->name, rx.bytes);

	ivl_channel_stats(ch, &st);
	printf("%s: sent %" PRIu64 " MiB in %.2f s (%.0f MB/s), received in %.2f s; "
	       "kicks %" PRIu64 " sent, %" PRIu64 " suppressed, %" PRIu64 " sleeps\n",
	       s->name, tx.bytes >> 20, tx.ns / 1e9, tx.bytes / (tx.ns / 1e3), rx.ns / 1e9,
	       st.kicks_sent, st.kicks_suppressed, st.sleeps);
	CHECK(st.tx_bytes == total_bytes && st.rx_bytes == total_bytes, "%s: stats bytes", s->name);
	CHECK(st.kicks_sent > 0, "%s: no doorbell was rung (pure spinning?)", s->name);
	CHECK(st.sleeps > 0, "%s: never slept", s->name);

	snprintf(line, sizeof(line), "%s %016" PRIx64 " %016" PRIx64 "\n", s->name, tx.cks, rx.cks);
	CHECK(write(results[1], line, strlen(line)) == (ssize_t)strlen(line), "pipe");
	ivl_channel_close(ch);
	ivl_endpoint_close(ep);
	return 0;
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "bulk_both_ways", 170);
	struct side west = {"west", "east", 0x1111, 0x2222};
	struct side east = {"east", "west", 0x2222, 0x1111};
	uint64_t cks[2][2] = {{0}};
	char buf[512], *line, *save;
	ssize_t n;

	if (getenv("IVL_IT_BYTES"))
		total_bytes = strtoull(getenv("IVL_IT_BYTES"), NULL, 0);
	CHECK(pipe(results) == 0, "pipe");
	ts_daemon_start(&daemon_, ivlinkd, "ivlinkd.sock",
			(const char *const[]){"-l", "64M", "-n", "8", "--max-peers", "8", NULL},
			NULL);
	ts_run_two("west", run_side, &west, "east", run_side, &east, 160000);
	close(results[1]);
	n = read(results[0], buf, sizeof(buf) - 1);
	CHECK(n > 0, "no results");
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char who[16];
		uint64_t t, r;

		CHECK(sscanf(line, "%15s %" SCNx64 " %" SCNx64, who, &t, &r) == 3, "bad result");
		cks[strcmp(who, "west") == 0 ? 0 : 1][0] = t;
		cks[strcmp(who, "west") == 0 ? 0 : 1][1] = r;
	}
	CHECK(cks[0][0] == cks[1][1], "west->east checksum mismatch");
	CHECK(cks[1][0] == cks[0][1], "east->west checksum mismatch");
	printf("checksums: west->east %016" PRIx64 ", east->west %016" PRIx64 "\n", cks[0][0],
	       cks[1][0]);
	ts_daemon_stop(daemon_.pid, SIGTERM);
	printf("PASS\n");
	return 0;
}
