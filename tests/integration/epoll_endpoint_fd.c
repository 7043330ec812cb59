/* SPDX-License-Identifier: MIT */
/*
 * The pollable fd: "west" runs an epoll loop over ivl_endpoint_fd() and
 * receives, with IVL_DONTWAIT only, two streams that "east" sends on two
 * channels in bursts with pauses (so west really sleeps in epoll_wait and
 * is woken by doorbells). Every byte is checked; both channels reach EOF.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <ivlink/ivlink.h>

#include "support.h"

#define PER_CHANNEL (8u << 20)
#define BURST	    (96u << 10)

static struct ts_daemon daemon_;
static const char *names[2] = {"a", "b"};

static int east(void *arg)
{
	struct ivl_endpoint *ep = ts_open(&daemon_, "east", 2000, IVL_LOG_WARN);
	int w = ts_find_peer(ep, "west", 10000000000LL);

	CHECK(w >= 0, "peer %s never appeared", "west");
	struct ivl_channel *ch[2];
	uint8_t *buf = malloc(BURST);
	uint64_t off[2] = {0, 0}, rnd = 7;

	CHECK(buf, "malloc");
	for (int i = 0; i < 2; i++) {
		int rc = ivl_channel_open(ep, names[i], w, NULL, 10000000000LL, &ch[i]);

		CHECK(rc == 0, "east: open %s: %s", names[i], strerror(-rc));
	}
	while (off[0] < PER_CHANNEL || off[1] < PER_CHANNEL) {
		int i = (int)(ts_rand(&rnd) & 1);
		size_t n = 1 + ts_rand(&rnd) % BURST;
		ssize_t s;

		if (off[i] >= PER_CHANNEL)
			i ^= 1;
		if (n > PER_CHANNEL - off[i])
			n = (size_t)(PER_CHANNEL - off[i]);
		ts_stream_fill(0xa0 + (uint64_t)i, off[i], buf, n);
		s = ivl_send(ch[i], buf, n, 0);
		CHECK(s == (ssize_t)n, "east: send: %zd", s);
		off[i] += n;
		if ((ts_rand(&rnd) & 7) == 0)
			usleep(2000); /* let west go to sleep in epoll_wait */
	}
	for (int i = 0; i < 2; i++) {
		ivl_channel_shutdown(ch[i], IVL_SHUT_WR);
		ivl_channel_close(ch[i]);
	}
	ivl_endpoint_close(ep);
	free(buf);
	return 0;
}

static int west(void *arg)
{
	struct ivl_endpoint *ep = ts_open(&daemon_, "west", 2000, IVL_LOG_WARN);
	int e = ts_find_peer(ep, "east", 10000000000LL);

	CHECK(e >= 0, "peer %s never appeared", "east");
	struct ivl_channel *ch[2];
	uint8_t *buf = malloc(BURST);
	uint64_t off[2] = {0, 0};
	int eof[2] = {0, 0}, epfd = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN};
	unsigned wakeups = 0, idle_waits = 0;

	CHECK(buf && epfd >= 0, "setup");
	for (int i = 0; i < 2; i++) {
		int rc = ivl_channel_open(ep, names[i], e, NULL, 10000000000LL, &ch[i]);

		CHECK(rc == 0, "west: open %s: %s", names[i], strerror(-rc));
	}
	/* Nested epoll: the endpoint fd is itself an epoll fd. */
	CHECK(epoll_ctl(epfd, EPOLL_CTL_ADD, ivl_endpoint_fd(ep), &ev) == 0, "epoll_ctl");
	while (!eof[0] || !eof[1]) {
		int progress = 0;

		for (int i = 0; i < 2; i++) {
			while (!eof[i]) {
				ssize_t n = ivl_recv(ch[i], buf, BURST, IVL_DONTWAIT);

				if (n == -EAGAIN)
					break; /* the channel asked for a doorbell */
				CHECK(n >= 0, "west: recv %s: %s", names[i], strerror((int)-n));
				if (n == 0) {
					eof[i] = 1;
					break;
				}
				CHECK(ts_stream_check(0xa0 + (uint64_t)i, off[i], buf, (size_t)n) ==
					  (size_t)n,
				      "west: data mismatch on %s near %" PRIu64, names[i], off[i]);
				off[i] += (uint64_t)n;
				progress = 1;
			}
		}
		if (eof[0] && eof[1])
			break;
		if (!progress)
			idle_waits++;
		/* Nothing readable on either channel: sleep until a doorbell. */
		CHECK(epoll_wait(epfd, &ev, 1, 10000) == 1, "west: epoll_wait timed out");
		wakeups++;
		CHECK(ivl_endpoint_process(ep) >= 0, "process");
	}
	CHECK(off[0] == PER_CHANNEL && off[1] == PER_CHANNEL, "west: short streams");
	printf("west: %u + %u MiB via epoll, %u wake-ups (%u with nothing read before)\n",
	       PER_CHANNEL >> 20, PER_CHANNEL >> 20, wakeups, idle_waits);
	CHECK(wakeups > 0, "never woken by epoll");
	for (int i = 0; i < 2; i++)
		ivl_channel_close(ch[i]);
	close(epfd);
	ivl_endpoint_close(ep);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "epoll_endpoint_fd", 80);

	ts_daemon_start(&daemon_, ivlinkd, "ivlinkd.sock",
			(const char *const[]){"-l", "64M", "-n", "8", "--max-peers", "8", NULL},
			NULL);
	ts_run_two("west", west, NULL, "east", east, NULL, 60000);
	ts_daemon_stop(daemon_.pid, SIGTERM);
	printf("PASS\n");
	return 0;
}
