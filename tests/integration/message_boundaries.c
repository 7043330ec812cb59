/* SPDX-License-Identifier: MIT */
/*
 * Message mode through a real daemon: "west" and "east" each send RECORDS
 * records of pseudo-random sizes (0..MAX_REC, empty records included) while
 * receiving the other's, in blocking mode. Senders rotate between ivl_send,
 * ivl_sendv and ivl_reserve/ivl_commit; receivers between ivl_recv,
 * ivl_recvv and ivl_peek/ivl_release. Every record must arrive whole, with
 * its exact length and content, in order; end of stream is -EPIPE.
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

#define RECORDS 60000
#define MAX_REC 12000u

static struct ts_daemon daemon_;

struct dir {
	struct ivl_channel *ch;
	uint64_t seed;
	int err;
};

static size_t rec_len(uint64_t seed, uint64_t i)
{
	uint64_t s = seed * 31 + i;
	uint64_t r = ts_rand(&s);

	return (r & 15) == 0 ? 0 : (size_t)(r % (MAX_REC + 1));
}

static void *sender(void *arg)
{
	struct dir *d = arg;
	uint8_t *buf = malloc(MAX_REC);

	for (uint64_t i = 0; i < RECORDS; i++) {
		size_t len = rec_len(d->seed, i);
		ssize_t n;

		ts_stream_fill(d->seed, i * MAX_REC, buf, len);
		if (i % 3 == 0) {
			n = ivl_send(d->ch, buf, len, 0);
		} else if (i % 3 == 1) {
			struct iovec v[2] = {{buf, len / 2}, {buf + len / 2, len - len / 2}};

			n = ivl_sendv(d->ch, v, 2, 0);
		} else {
			struct ivl_span sp[2];

			n = len ? ivl_reserve(d->ch, len, sp, 0) : ivl_send(d->ch, buf, 0, 0);
			if (len && n == (ssize_t)len) {
				memcpy(sp[0].base, buf, sp[0].len);
				memcpy(sp[1].base, buf + sp[0].len, sp[1].len);
				CHECK(ivl_commit(d->ch, len, 0) == 0, "commit");
			}
		}
		CHECK(n == (ssize_t)len, "record %llu: sent %zd of %zu", (unsigned long long)i, n,
		      len);
	}
	ivl_channel_shutdown(d->ch, IVL_SHUT_WR);
	free(buf);
	return NULL;
}

static void *receiver(void *arg)
{
	struct dir *d = arg;
	uint8_t *buf = malloc(MAX_REC), *exp = malloc(MAX_REC);
	ssize_t n;

	for (uint64_t i = 0; i < RECORDS; i++) {
		size_t len = rec_len(d->seed, i);

		if (i % 3 == 0) {
			n = ivl_recv(d->ch, buf, MAX_REC, 0);
		} else if (i % 3 == 1) {
			struct iovec v[2] = {{buf, 100}, {buf + 100, MAX_REC - 100}};

			n = ivl_recvv(d->ch, v, 2, 0);
		} else {
			struct ivl_span sp[2];

			n = ivl_peek(d->ch, sp, 0);
			if (n >= 0) {
				CHECK(sp[0].len + sp[1].len == (size_t)n, "peek spans");
				memcpy(buf, sp[0].base, sp[0].len);
				memcpy(buf + sp[0].len, sp[1].base, sp[1].len);
				CHECK(ivl_release(d->ch, (size_t)n, 0) == 0, "release");
			}
		}
		CHECK(n == (ssize_t)len, "record %llu: got %zd bytes, want %zu",
		      (unsigned long long)i, n, len);
		ts_stream_fill(d->seed, i * MAX_REC, exp, len);
		CHECK(memcmp(buf, exp, len) == 0, "record %llu: content", (unsigned long long)i);
	}
	n = ivl_recv(d->ch, buf, MAX_REC, 0);
	CHECK(n == -EPIPE, "end of stream: %zd, want -EPIPE", n);
	free(buf);
	free(exp);
	return NULL;
}

static int side(void *arg)
{
	const char *me = arg, *other = strcmp(me, "west") ? "west" : "east";
	struct ivl_endpoint *ep = ts_open(&daemon_, me, 2000, IVL_LOG_WARN);
	int peer = ts_find_peer(ep, other, 10000000000LL);

	CHECK(peer >= 0, "peer %s never appeared", other);
	struct ivl_channel_opts o = {
	    .mode = IVL_MODE_MESSAGE, .ring_size = 256u << 10, .max_record = MAX_REC};
	struct ivl_channel *ch;
	struct ivl_channel_stats st;
	struct dir tx, rx;
	pthread_t tt, rt;
	char big[MAX_REC + 1];
	int rc = ivl_channel_open(ep, "msg", peer, &o, 10000000000LL, &ch);

	CHECK(rc == 0, "%s: open: %s", me, strerror(-rc));
	CHECK(ivl_send(ch, big, sizeof(big), 0) == -EMSGSIZE, "oversized record accepted");
	tx = (struct dir){.ch = ch, .seed = strcmp(me, "west") ? 2 : 1};
	rx = (struct dir){.ch = ch, .seed = strcmp(me, "west") ? 1 : 2};
	pthread_create(&tt, NULL, sender, &tx);
	pthread_create(&rt, NULL, receiver, &rx);
	pthread_join(tt, NULL);
	pthread_join(rt, NULL);
	ivl_channel_stats(ch, &st);
	printf("%s: %llu records each way, kicks %llu sent / %llu suppressed\n", me,
	       (unsigned long long)st.tx_msgs, (unsigned long long)st.kicks_sent,
	       (unsigned long long)st.kicks_suppressed);
	CHECK(st.tx_msgs == RECORDS && st.rx_msgs == RECORDS, "%s: message counts", me);
	ivl_channel_close(ch);
	ivl_endpoint_close(ep);
	return 0;
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "message_boundaries", 110);

	ts_daemon_start(&daemon_, ivlinkd, "ivlinkd.sock",
			(const char *const[]){"-l", "64M", "-n", "8", "--max-peers", "8", NULL},
			NULL);
	ts_run_two("west", side, "west", "east", side, "east", 100000);
	ts_daemon_stop(daemon_.pid, SIGTERM);
	printf("PASS\n");
	return 0;
}
