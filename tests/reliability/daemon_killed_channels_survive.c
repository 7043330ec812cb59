/* SPDX-License-Identifier: MIT */
/*
 * ivlinkd killed (SIGKILL) during traffic, with a named region (-m NAME):
 *
 *  1. Peers A and B stream 64 MiB each way and 20000 records A -> B; the
 *     daemon is killed once a quarter has arrived (the senders hold at half
 *     way until it is dead, so the second half certainly runs without it). Every transfer completes
 *     with every byte and record verified: the region and the eventfds
 *     belong to the peers, not to the daemon.
 *  2. Each endpoint reports the lost daemon once (ivl_endpoint_process()
 *     returns -ENOTCONN), and a NEW channel between the two old peers still
 *     opens and moves data with no daemon at all (they hold each other's
 *     doorbells).
 *  3. A restarted daemon re-attaches to the region (status: reattached=1,
 *     header daemon_gen bumped, data kept); A and B stay UP in the table as
 *     stale entries whose ids it does not hand out; established channels
 *     keep working.
 *  4. What cannot work until the old peers rejoin: a new peer C joins with
 *     a new id, but a channel between C and A cannot open (-ETIMEDOUT on
 *     both sides): neither has the other's doorbell eventfds, which only a
 *     daemon connection delivers.
 *  5. A and B close; a daemon restarted with --reclaim-stale marks their
 *     stale entries GONE, and fresh peers (reusing their ids) work.
 * Not covered here (documented in RELIABILITY.md): while no daemon runs, a
 * peer that dies is not marked GONE, so its remotes see it only as silent
 * (-ETIMEDOUT when they set timeouts), not -ECONNRESET.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "rel.h"

#define TOTAL	(64ull << 20)
#define RECORDS 20000u
#define MAXREC	1024u
#define CHUNK	16384

/* Senders hold at half way until the daemon is dead, so that the second
 * half of every transfer certainly runs without a daemon. */
static int killed;

static void hold_at_half(int half)
{
	while (half && !__atomic_load_n(&killed, __ATOMIC_ACQUIRE))
		usleep(1000);
}

struct xfer {
	struct ivl_channel *tx, *rx;
	uint64_t seed;
	uint64_t sent, got;
	int msg;
	long err;
};

static void *sender(void *arg)
{
	struct xfer *x = arg;
	uint8_t buf[CHUNK];

	if (x->msg) {
		for (uint64_t k = 0; k < RECORDS; k++) {
			size_t len = (size_t)((x->seed ^ k * 0x9e3779b97f4a7c15ULL) % (MAXREC + 1));
			ssize_t n;

			hold_at_half(k == RECORDS / 2);
			ts_stream_fill(x->seed, k << 16, buf, len);
			n = ivl_send(x->tx, buf, len, 0);
			if (n < 0) {
				x->err = n;
				return NULL;
			}
			__atomic_store_n(&x->sent, k + 1, __ATOMIC_RELAXED);
		}
		return NULL;
	}
	while (x->sent < TOTAL) {
		size_t len = TOTAL - x->sent < CHUNK ? (size_t)(TOTAL - x->sent) : CHUNK;
		ssize_t n;

		if (x->sent < TOTAL / 2 && len > TOTAL / 2 - x->sent)
			len = (size_t)(TOTAL / 2 - x->sent);
		hold_at_half(x->sent == TOTAL / 2);
		ts_stream_fill(x->seed, x->sent, buf, len);
		n = ivl_send(x->tx, buf, len, 0);
		if (n < 0) {
			x->err = n;
			return NULL;
		}
		__atomic_store_n(&x->sent, x->sent + (uint64_t)n, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *receiver(void *arg)
{
	struct xfer *x = arg;
	uint8_t buf[CHUNK];

	for (;;) {
		ssize_t n;

		if (x->msg ? x->got == RECORDS : x->got == TOTAL)
			return NULL;
		n = ivl_recv(x->rx, buf, sizeof(buf), 0);
		if (n < 0) {
			x->err = n;
			return NULL;
		}
		if (x->msg) {
			uint64_t k = x->got;
			size_t len = (size_t)((x->seed ^ k * 0x9e3779b97f4a7c15ULL) % (MAXREC + 1));

			CHECK((size_t)n == len &&
				  ts_stream_check(x->seed, k << 16, buf, len) == len,
			      "record %" PRIu64 " corrupt", k);
			__atomic_store_n(&x->got, k + 1, __ATOMIC_RELAXED);
		} else {
			CHECK(ts_stream_check(x->seed, x->got, buf, (size_t)n) == (size_t)n,
			      "stream corrupt near byte %" PRIu64, x->got);
			__atomic_store_n(&x->got, x->got + (uint64_t)n, __ATOMIC_RELAXED);
		}
	}
}

/* The daemon's status text (the status socket's own format). */
static void status_text(const char *ctl, char *buf, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = 0;
	ssize_t r;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	buf[0] = '\0';
	if (strlen(ctl) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, ctl, strlen(ctl) + 1);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (s >= 0)
			close(s);
		return;
	}
	while (n + 1 < len && (r = read(s, buf + n, len - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	close(s);
}

static void small_exchange(struct ivl_channel *a, struct ivl_channel *b, const char *what)
{
	char out[6] = "";

	CHECK(ivl_send(a, "hello", 6, 0) == 6 && ivl_recv(b, out, 6, IVL_WAITALL) == 6 &&
		  !strcmp(out, "hello"),
	      "%s: no data", what);
	CHECK(ivl_send(b, "olleh", 6, 0) == 6 && ivl_recv(a, out, 6, IVL_WAITALL) == 6 &&
		  !strcmp(out, "olleh"),
	      "%s: no data back", what);
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "dkill", 300);
	struct ivl_channel_opts so = {.ring_size = 256u << 10};
	struct ivl_channel_opts mo = {
	    .mode = IVL_MODE_MESSAGE, .ring_size = 64u << 10, .max_record = MAXREC};
	struct ivl_channel *ab, *ba, *mab, *mba, *na, *nb;
	struct ivl_endpoint *a, *b, *c;
	struct xfer x1 = {0}, x2 = {0}, x3 = {0};
	pthread_t t[6];
	struct ts_daemon d;
	struct ivl_region rg;
	static char text[65536], json[1 << 18];
	char name[64];
	uint32_t ida, idb, idc;
	uint64_t at_kill;
	int rc;

	snprintf(name, sizeof(name), "ivlrel-%d", (int)getpid());
	ts_track_shm(name);
	{
		const char *const extra[] = {"-m", name,	  "-l", "16M", "-n",
					     "4",  "--max-peers", "4",	NULL};

		ts_daemon_start(&d, ivlinkd, "sock", extra, NULL);
	}
	a = ts_open(&d, "A", 0, IVL_LOG_ERROR);
	CHECK(rel_guard_region(&rg) == 0, "region");
	b = ts_open(&d, "B", 0, IVL_LOG_ERROR);
	ida = ivl_endpoint_id(a);
	idb = ivl_endpoint_id(b);
	CHECK(rel_pair_open(a, b, "bulk", &so, 5000000000LL, &ab, &ba) == 0, "bulk");
	CHECK(rel_pair_open(a, b, "msgs", &mo, 5000000000LL, &mab, &mba) == 0, "msgs");

	/* 1. Traffic, and the daemon killed a quarter of the way. */
	x1 = (struct xfer){.tx = ab, .rx = ba, .seed = 11};
	x2 = (struct xfer){.tx = ba, .rx = ab, .seed = 22};
	x3 = (struct xfer){.tx = mab, .rx = mba, .seed = 33, .msg = 1};
	pthread_create(&t[0], NULL, sender, &x1);
	pthread_create(&t[1], NULL, receiver, &x1);
	pthread_create(&t[2], NULL, sender, &x2);
	pthread_create(&t[3], NULL, receiver, &x2);
	pthread_create(&t[4], NULL, sender, &x3);
	pthread_create(&t[5], NULL, receiver, &x3);
	while (__atomic_load_n(&x1.got, __ATOMIC_RELAXED) < TOTAL / 4 ||
	       __atomic_load_n(&x2.got, __ATOMIC_RELAXED) < TOTAL / 4)
		usleep(200);
	at_kill = __atomic_load_n(&x1.got, __ATOMIC_RELAXED);
	CHECK(at_kill < TOTAL, "the transfer finished before the kill");
	ts_daemon_stop(d.pid, SIGKILL);
	__atomic_store_n(&killed, 1, __ATOMIC_RELEASE);
	printf("ivlinkd killed with %.1f of %llu MiB received A->B\n", (double)at_kill / (1 << 20),
	       TOTAL >> 20);
	for (int i = 0; i < 6; i++)
		pthread_join(t[i], NULL);
	CHECK(!x1.err && !x2.err && !x3.err, "transfer errors: %ld %ld %ld", x1.err, x2.err,
	      x3.err);
	CHECK(x1.got == TOTAL && x2.got == TOTAL && x3.got == RECORDS, "incomplete");
	printf("1. after the kill: %llu MiB each way and %u records verified\n", TOTAL >> 20,
	       RECORDS);

	/* 2. The loss is reported once; old peers still open new channels. */
	rc = ivl_endpoint_process(a);
	if (rc != -ENOTCONN)
		rc = ivl_endpoint_process(a); /* the EOF may arrive a moment later */
	CHECK(rc == -ENOTCONN, "A: process() = %d, not -ENOTCONN", rc);
	CHECK(ivl_endpoint_process(a) >= 0, "A: -ENOTCONN reported twice");
	CHECK(rel_pair_open(a, b, "after", NULL, 5000000000LL, &na, &nb) == 0,
	      "a new channel between old peers without a daemon");
	small_exchange(na, nb, "new channel, no daemon");
	printf("2. -ENOTCONN reported once; new channel between old peers works without a "
	       "daemon\n");

	/* 3. Restart: re-attach; A and B are stale; channels keep working. */
	{
		const char *const extra[] = {"-m", name,	  "-l", "16M", "-n",
					     "4",  "--max-peers", "4",	NULL};
		const struct ivl_region_hdr *h = (const void *)rg.base;

		ts_daemon_start(&d, ivlinkd, "sock", extra, NULL);
		status_text(d.ctl, text, sizeof(text));
		CHECK(strstr(text, "reattached=1"), "not re-attached:\n%s", text);
		CHECK(__atomic_load_n(&h->daemon_gen, __ATOMIC_RELAXED) == 2,
		      "daemon_gen %" PRIu64 ", want 2", h->daemon_gen);
	}
	CHECK(rel_ivlinkctl_json(IVLINKCTL, d.sock, json, sizeof(json)) == 0 &&
		  rel_json_valid(json),
	      "ivlinkctl after the restart:\n%s", json);
	small_exchange(na, nb, "old channel after the restart");
	small_exchange(ab, ba, "bulk channel after the restart");
	printf("3. restarted daemon re-attached (gen 2); A and B stale; channels work\n");

	/* 4. A new peer cannot reach the old ones. */
	c = ts_open(&d, "C", 0, IVL_LOG_ERROR);
	idc = ivl_endpoint_id(c);
	CHECK(idc != ida && idc != idb, "C got a stale peer's id %u", idc);
	{
		struct ivl_channel *ca, *ac;

		rc = rel_pair_open(a, c, "new-old", NULL, 1000000000LL, &ac, &ca);
		CHECK(rc == -ETIMEDOUT, "A <-> C: %s, want ETIMEDOUT", strerror(-rc));
	}
	printf("4. new peer C (id %u): channel with old peer A times out, as documented\n", idc);

	/* 5. Old peers leave; --reclaim-stale frees their ids. */
	ivl_channel_close(na);
	ivl_channel_close(nb);
	ivl_channel_close(ab);
	ivl_channel_close(ba);
	ivl_channel_close(mab);
	ivl_channel_close(mba);
	ivl_endpoint_close(a);
	ivl_endpoint_close(b);
	ivl_endpoint_close(c);
	ts_daemon_stop(d.pid, SIGTERM);
	{
		const char *const extra[] = {
		    "-m", name, "-l", "16M", "-n", "4", "--max-peers", "4", "--reclaim-stale",
		    NULL};
		struct ivl_channel *x, *y;

		ts_daemon_start(&d, ivlinkd, "sock", extra, NULL);
		a = ts_open(&d, "A2", 0, IVL_LOG_ERROR);
		b = ts_open(&d, "B2", 0, IVL_LOG_ERROR);
		CHECK(ivl_endpoint_peers(a, NULL, 0) == 2, "live peers: %d",
		      ivl_endpoint_peers(a, NULL, 0));
		CHECK(ivl_endpoint_id(a) == ida || ivl_endpoint_id(b) == ida,
		      "A's id %u was not handed out again", ida);
		CHECK(rel_pair_open(a, b, "bulk", NULL, 5000000000LL, &x, &y) == 0, "fresh peers");
		small_exchange(x, y, "fresh peers after --reclaim-stale");
		ivl_channel_close(x);
		ivl_channel_close(y);
		ivl_endpoint_close(a);
		ivl_endpoint_close(b);
		ts_daemon_stop(d.pid, SIGTERM);
	}
	printf("5. --reclaim-stale: stale ids reused, fresh peers work\n");
	printf("PASS daemon_killed_channels_survive\n");
	return 0;
}
