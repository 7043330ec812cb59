/* SPDX-License-Identifier: MIT */
/*
 * Timeouts and non-blocking calls on an idle or full channel:
 *  - recv with a 200 ms timeout returns -ETIMEDOUT after about 200 ms;
 *  - recv with IVL_DONTWAIT returns -EAGAIN at once;
 *  - send with IVL_DONTWAIT fills the ring, then returns -EAGAIN;
 *  - a blocking send with a 100 ms timeout on a full ring: -ETIMEDOUT;
 *  - channel_open of a name the remote never opens: -ETIMEDOUT;
 *  - a send after SHUT_WR is -EPIPE, also once the remote has left;
 *  - a "vfio:" URI on a machine without that ivshmem device: -ENODEV.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <ivlink/ivlink.h>

#include "support.h"

static struct ts_daemon daemon_;

static int east(void *arg)
{
	struct ivl_endpoint *ep = ts_open(&daemon_, "east", 0, IVL_LOG_WARN);
	int w = ts_find_peer(ep, "west", 10000000000LL);

	CHECK(w >= 0, "peer %s never appeared", "west");
	struct ivl_channel *t, *ctl;
	char buf[4096];
	ssize_t n;
	int rc;

	rc = ivl_channel_open(ep, "t", w, NULL, 10000000000LL, &t);
	CHECK(rc == 0, "east: open t: %s", strerror(-rc));
	rc = ivl_channel_open(ep, "ctl", w, NULL, 10000000000LL, &ctl);
	CHECK(rc == 0, "east: open ctl: %s", strerror(-rc));
	/* Do not read "t" until west says so: it fills the ring meanwhile. */
	n = ivl_recv(ctl, buf, 1, 0);
	CHECK(n == 1, "east: ctl: %zd", n);
	while ((n = ivl_recv(t, buf, sizeof(buf), 0)) > 0)
		;
	CHECK(n == 0, "east: drain t: %s", strerror((int)-n));
	ivl_channel_close(t);
	ivl_channel_close(ctl);
	ivl_endpoint_close(ep);
	return 0;
}

static int west(void *arg)
{
	struct ivl_endpoint *ep = ts_open(&daemon_, "west", 0, IVL_LOG_WARN);
	int e = ts_find_peer(ep, "east", 10000000000LL);

	CHECK(e >= 0, "peer %s never appeared", "east");
	struct ivl_channel_opts small = {.ring_size = 64u << 10};
	struct ivl_channel *t, *ctl, *none;
	struct ivl_endpoint *bad;
	struct ivl_endpoint_opts vfio = {.uri = "vfio:0000:00:03.0"};
	char buf[4096] = {0};
	uint64_t filled = 0;
	int64_t t0, dt;
	ssize_t n;
	int rc;

	rc = ivl_channel_open(ep, "t", e, &small, 10000000000LL, &t);
	CHECK(rc == 0, "west: open t: %s", strerror(-rc));
	rc = ivl_channel_open(ep, "ctl", e, NULL, 10000000000LL, &ctl);
	CHECK(rc == 0, "west: open ctl: %s", strerror(-rc));

	ivl_channel_set_timeouts(t, -1, 200000000LL);
	t0 = ts_now_ns();
	n = ivl_recv(t, buf, sizeof(buf), 0);
	dt = ts_now_ns() - t0;
	CHECK(n == -ETIMEDOUT, "recv on idle channel: %zd", n);
	CHECK(dt >= 190000000LL && dt < 2000000000LL, "recv timeout took %.1f ms", dt / 1e6);
	printf("west: recv timeout 200 ms -> -ETIMEDOUT after %.1f ms\n", dt / 1e6);

	t0 = ts_now_ns();
	n = ivl_recv(t, buf, sizeof(buf), IVL_DONTWAIT);
	dt = ts_now_ns() - t0;
	CHECK(n == -EAGAIN, "recv DONTWAIT: %zd", n);
	CHECK(dt < 50000000LL, "recv DONTWAIT blocked %.1f ms", dt / 1e6);

	for (;;) {
		n = ivl_send(t, buf, sizeof(buf), IVL_DONTWAIT);
		if (n == -EAGAIN)
			break;
		CHECK(n > 0, "send DONTWAIT: %zd", n);
		filled += (uint64_t)n;
		CHECK(filled <= small.ring_size, "ring took more than its size");
	}
	CHECK(filled == small.ring_size, "ring full at %llu bytes", (unsigned long long)filled);
	printf("west: DONTWAIT send filled the %u KiB ring, then -EAGAIN\n", small.ring_size >> 10);

	ivl_channel_set_timeouts(t, 100000000LL, -1);
	t0 = ts_now_ns();
	n = ivl_send(t, buf, sizeof(buf), 0);
	dt = ts_now_ns() - t0;
	CHECK(n == -ETIMEDOUT, "send on full ring: %zd", n);
	CHECK(dt >= 90000000LL && dt < 2000000000LL, "send timeout took %.1f ms", dt / 1e6);

	t0 = ts_now_ns();
	rc = ivl_channel_open(ep, "nobody", e, NULL, 200000000LL, &none);
	dt = ts_now_ns() - t0;
	CHECK(rc == -ETIMEDOUT, "open of an unmatched name: %d", rc);
	printf("west: unmatched channel_open -> -ETIMEDOUT after %.1f ms\n", dt / 1e6);

	rc = ivl_endpoint_open(&bad, &vfio);
	CHECK(rc == -ENODEV, "vfio: URI without the device: %d, not -ENODEV", rc);

	/* Let east drain, then finish the stream. */
	ivl_channel_set_timeouts(t, -1, -1);
	CHECK(ivl_send(ctl, "g", 1, 0) == 1, "ctl send");
	n = ivl_send(t, buf, sizeof(buf), 0);
	CHECK(n == (ssize_t)sizeof(buf), "send after drain: %zd", n);
	ivl_channel_shutdown(t, IVL_SHUT_WR);
	CHECK(ivl_send(t, buf, 1, 0) == -EPIPE, "send after SHUT_WR not -EPIPE");
	/* Still -EPIPE once east has seen the EOF and closed everything:
	 * our own shutdown is reported before the remote's departure. */
	n = ivl_recv(ctl, buf, 1, 0);
	CHECK(n == 0 || n == -ECONNRESET, "ctl after east closed: %zd", n);
	t0 = ts_now_ns();
	while (ts_find_peer(ep, "east", 0) >= 0) {
		CHECK(ts_now_ns() - t0 < 10000000000LL, "east never left the region");
		usleep(1000);
	}
	CHECK(ivl_send(t, buf, 1, 0) == -EPIPE, "send after SHUT_WR, east gone: not -EPIPE");
	ivl_channel_close(t);
	ivl_channel_close(ctl);
	ivl_endpoint_close(ep);
	return 0;
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "timeouts_and_dontwait", 80);

	ts_daemon_start(&daemon_, ivlinkd, "ivlinkd.sock",
			(const char *const[]){"-l", "64M", "-n", "8", "--max-peers", "8", NULL},
			NULL);
	ts_run_two("west", west, NULL, "east", east, NULL, 60000);
	ts_daemon_stop(daemon_.pid, SIGTERM);
	printf("PASS\n");
	return 0;
}
