/* SPDX-License-Identifier: MIT */
/*
 * Full rings, slow and stalled consumers: senders block, time out or get
 * -EAGAIN as a socket's would, and nothing is ever dropped, duplicated or
 * reordered.
 *
 *  1. A consumer that never reads, stream (64 KiB ring): IVL_DONTWAIT
 *     sends are accepted up to exactly the ring size, then -EAGAIN; a
 *     blocking send with a 200 ms timeout returns -ETIMEDOUT after >= 200
 *     ms; poll() does not report IVL_POLLOUT.
 *  2. The same in message mode (16 KiB ring): records until -EAGAIN, then
 *     -ETIMEDOUT for a record that does not fit (all or nothing).
 *  3. The consumer resumes: every byte and record accepted in 1 and 2 is
 *     read back, in order and intact.
 *  4. A slow consumer with stalls (8 KiB per ms, three 300 ms pauses): a
 *     stream of 8 MiB sent with blocking calls, calls with a 20 ms timeout
 *     (retrying the rest after -ETIMEDOUT or a short count) and IVL_DONTWAIT
 *     calls (retrying after -EAGAIN), and 2000 records likewise; both
 *     verified end to end. The test requires that the senders really hit
 *     the full ring (timeouts and -EAGAIN observed).
 * Repeated IVLINK_RELIABILITY_ITERS times (default 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "rel.h"

#define SRING	     (64u << 10)
#define MRING	     (16u << 10)
#define MAXREC	     1024u
#define STREAM_TOTAL (8ull << 20)
#define RECORDS	     2000u

static struct ts_daemon daemon_;

static size_t rec_len(uint64_t seed, uint64_t k)
{
	return (size_t)((seed ^ (k * 0x9e3779b97f4a7c15ULL)) % (MAXREC + 1));
}

struct prod {
	struct ivl_channel *ch;
	int msg;
	uint64_t seed;
	unsigned timeouts, eagains, shorts;
};

/* Sends everything with three kinds of calls in turn, retrying as an
 * application on a socket would. */
static void *producer(void *arg)
{
	struct prod *p = arg;
	uint8_t buf[16384];
	uint64_t off = 0, k = 0;
	unsigned call = 0;

	while (p->msg ? k < RECORDS : off < STREAM_TOTAL) {
		unsigned kind = call++ % 3;
		size_t len;
		ssize_t n;

		if (p->msg) {
			len = rec_len(p->seed, k);
			ts_stream_fill(p->seed, k << 16, buf, len);
		} else {
			len = 1 + (off * 2654435761u) % sizeof(buf);
			if (len > STREAM_TOTAL - off)
				len = (size_t)(STREAM_TOTAL - off);
			ts_stream_fill(p->seed, off, buf, len);
		}
		ivl_channel_set_timeouts(p->ch, kind == 1 ? 20000000LL : -1, -1);
		n = ivl_send(p->ch, buf, len, kind == 2 ? IVL_DONTWAIT : 0);
		if (n == -EAGAIN) {
			p->eagains++;
			usleep(500);
			continue;
		}
		if (n == -ETIMEDOUT) {
			p->timeouts++;
			continue;
		}
		CHECK(n >= 0, "send: %s", strerror((int)-n));
		if (p->msg) {
			CHECK((size_t)n == len, "record %" PRIu64 ": %zd of %zu", k, n, len);
			k++;
		} else {
			if ((size_t)n < len)
				p->shorts++;
			off += (uint64_t)n;
		}
	}
	ivl_channel_shutdown(p->ch, IVL_SHUT_WR);
	return NULL;
}

/* Reads slowly: n bytes per ms, with three 300 ms stalls. */
static void slow_consumer(struct ivl_channel *ch, int msg, uint64_t seed)
{
	uint8_t buf[MAXREC + 8192];
	uint64_t off = 0, k = 0, reads = 0;

	for (;;) {
		ssize_t n = ivl_recv(ch, buf, msg ? MAXREC : 8192, 0);

		if (!msg && n == 0)
			break;
		if (msg && n == -EPIPE)
			break;
		CHECK(n >= 0, "recv: %s", strerror((int)-n));
		if (msg) {
			CHECK((size_t)n == rec_len(seed, k) &&
				  ts_stream_check(seed, k << 16, buf, (size_t)n) == (size_t)n,
			      "record %" PRIu64 " lost or corrupt", k);
			k++;
		} else {
			CHECK(ts_stream_check(seed, off, buf, (size_t)n) == (size_t)n,
			      "byte %" PRIu64 " lost or corrupt", off);
			off += (uint64_t)n;
		}
		reads++;
		if (reads % 500 == 250 && reads < 2000)
			usleep(300000);
		else
			usleep(1000);
	}
	CHECK(msg ? k == RECORDS : off == STREAM_TOTAL, "short: %" PRIu64, msg ? k : off);
}

struct mcons {
	struct ivl_channel *ch;
	uint64_t seed;
};

static void *msg_consumer(void *arg)
{
	struct mcons *m = arg;

	slow_consumer(m->ch, 1, m->seed);
	return NULL;
}

static void one_round(struct ivl_endpoint *a, struct ivl_endpoint *b, unsigned round)
{
	struct ivl_channel_opts so = {.ring_size = SRING};
	struct ivl_channel_opts mo = {
	    .mode = IVL_MODE_MESSAGE, .ring_size = MRING, .max_record = MAXREC};
	struct ivl_channel *sa, *sb, *ma, *mb;
	uint8_t buf[SRING];
	uint64_t accepted = 0, records = 0;
	struct prod ps, pm;
	struct mcons mcons;
	pthread_t ts, tm, tc;
	char name[32];
	int64_t t0;
	ssize_t n;

	snprintf(name, sizeof(name), "s%u", round);
	CHECK(rel_pair_open(a, b, name, &so, 5000000000LL, &sa, &sb) == 0, "stream");
	snprintf(name, sizeof(name), "m%u", round);
	CHECK(rel_pair_open(a, b, name, &mo, 5000000000LL, &ma, &mb) == 0, "message");

	/* 1. Stream, nobody reads. */
	for (;;) {
		ts_stream_fill(1, accepted, buf, 1000);
		n = ivl_send(sa, buf, 1000, IVL_DONTWAIT);
		if (n == -EAGAIN)
			break;
		CHECK(n > 0, "dontwait send: %zd", n);
		accepted += (uint64_t)n;
	}
	CHECK(accepted == SRING, "accepted %" PRIu64 " bytes, ring %u", accepted, SRING);
	CHECK(!(ivl_channel_poll(sa, IVL_POLLOUT) & IVL_POLLOUT), "POLLOUT on a full ring");
	ivl_channel_set_timeouts(sa, 200000000LL, -1);
	t0 = ts_now_ns();
	n = ivl_send(sa, buf, 1, 0);
	CHECK(n == -ETIMEDOUT && ts_now_ns() - t0 >= 190000000LL,
	      "blocking send on a full ring: %zd after %.3f s", n,
	      (double)(ts_now_ns() - t0) / 1e9);

	/* 2. Message mode, nobody reads. */
	for (;;) {
		size_t len = rec_len(2, records);

		ts_stream_fill(2, records << 16, buf, len);
		n = ivl_send(ma, buf, len, IVL_DONTWAIT);
		if (n == -EAGAIN)
			break;
		CHECK(n == (ssize_t)len, "record send: %zd", n);
		records++;
	}
	ivl_channel_set_timeouts(ma, 100000000LL, -1);
	n = ivl_send(ma, buf, MAXREC, 0);
	CHECK(n == -ETIMEDOUT, "record on a full ring: %zd", n);

	/* 3. The consumer resumes: exactly what was accepted, in order. */
	for (uint64_t got = 0; got < accepted;) {
		n = ivl_recv(sb, buf, sizeof(buf), IVL_DONTWAIT);
		CHECK(n > 0 && ts_stream_check(1, got, buf, (size_t)n) == (size_t)n,
		      "stream after the stall: %zd at %" PRIu64, n, got);
		got += (uint64_t)n;
	}
	CHECK(ivl_recv(sb, buf, 1, IVL_DONTWAIT) == -EAGAIN, "an extra byte appeared");
	for (uint64_t k = 0; k < records; k++) {
		n = ivl_recv(mb, buf, sizeof(buf), IVL_DONTWAIT);
		CHECK(n == (ssize_t)rec_len(2, k) &&
			  ts_stream_check(2, k << 16, buf, (size_t)n) == (size_t)n,
		      "record %" PRIu64 " after the stall", k);
	}
	CHECK(ivl_recv(mb, buf, sizeof(buf), IVL_DONTWAIT) == -EAGAIN, "an extra record");
	printf("round %u: full ring accepted %" PRIu64 " bytes / %" PRIu64
	       " records, then EAGAIN and ETIMEDOUT; all read back\n",
	       round, accepted, records);

	/* 4. Slow, stalling consumers. */
	ps = (struct prod){.ch = sa, .seed = 100 + round};
	pm = (struct prod){.ch = ma, .msg = 1, .seed = 200 + round};
	t0 = ts_now_ns();
	pthread_create(&ts, NULL, producer, &ps);
	pthread_create(&tm, NULL, producer, &pm);
	/* The message consumer in a thread, the stream one here. */
	mcons = (struct mcons){mb, pm.seed};
	pthread_create(&tc, NULL, msg_consumer, &mcons);
	slow_consumer(sb, 0, ps.seed);
	pthread_join(ts, NULL);
	pthread_join(tm, NULL);
	pthread_join(tc, NULL);
	printf("round %u: slow consumers: %llu MiB and %u records verified in %.1f s; stream "
	       "sender saw %u timeouts, %u EAGAIN, %u short sends; message sender %u timeouts, "
	       "%u EAGAIN\n",
	       round, STREAM_TOTAL >> 20, RECORDS, (double)(ts_now_ns() - t0) / 1e9, ps.timeouts,
	       ps.eagains, ps.shorts, pm.timeouts, pm.eagains);
	CHECK(ps.timeouts + ps.shorts + ps.eagains > 0 && pm.timeouts + pm.eagains > 0,
	      "the senders never hit a full ring");
	ivl_channel_close(sa);
	ivl_channel_close(sb);
	ivl_channel_close(ma);
	ivl_channel_close(mb);
}

int main(int argc, char **argv)
{
	static const char *const extra[] = {"-l", "16M", "-n", "4", NULL};
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "ringfull", 300);
	unsigned iters = rel_iters(1);
	struct ivl_endpoint *a, *b;

	ts_daemon_start(&daemon_, ivlinkd, "sock", extra, NULL);
	a = ts_open(&daemon_, "producer", 0, IVL_LOG_ERROR);
	b = ts_open(&daemon_, "consumer", 0, IVL_LOG_ERROR);
	for (unsigned i = 0; i < iters; i++)
		one_round(a, b, i);
	ivl_endpoint_close(a);
	ivl_endpoint_close(b);
	ts_daemon_stop(daemon_.pid, SIGTERM);
	printf("PASS ring_full_no_loss\n");
	return 0;
}
