/* SPDX-License-Identifier: MIT */
/*
 * One process in two regions (issue 13): two daemons, "red" and "blue".
 * "hub" opens an endpoint on each; "b" is only in red, "c" only in blue.
 * The hub opens a channel of the same name to b (through red) and to c
 * (through blue) and streams different bytes over both at once, from two
 * threads; b and c echo, and the hub checks every byte it gets back. Each
 * endpoint reports its own region's name, b's region has no peer c (and c's
 * no b), and the channels of one endpoint do not see the other region.
 * And ivl_regions() lists the two sockets named by IVLINK_ENDPOINTS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ivlink/ivlink.h>

#include "support.h"

#define BYTES	   (16u << 20)
#define CHUNK	   (64u << 10)
#define TIMEOUT_NS 20000000000LL

static struct ts_daemon red, blue;

/* 1 if a live peer of ep is called name. */
static int has_peer(struct ivl_endpoint *ep, const char *name)
{
	struct ivl_peer_info pi[8];
	int n = ivl_endpoint_peers(ep, pi, 8);

	for (int i = 0; i < n && i < 8; i++)
		if (strcmp(pi[i].name, name) == 0)
			return 1;
	return 0;
}

struct leaf {
	const struct ts_daemon *d;
	const char *name, *region, *other;
};

/* b or c: one region; echoes everything back until EOF. */
static int leaf_main(void *arg)
{
	const struct leaf *l = arg;
	struct ivl_endpoint *ep = ts_open(l->d, l->name, 0, IVL_LOG_WARN);
	int hub = ts_find_peer(ep, "hub", TIMEOUT_NS);
	struct ivl_channel *ch;
	static uint8_t buf[CHUNK];
	uint64_t total = 0;
	int rc;

	CHECK(strcmp(ivl_endpoint_region(ep), l->region) == 0, "%s: region '%s', not '%s'", l->name,
	      ivl_endpoint_region(ep), l->region);
	CHECK(hub >= 0, "%s: no peer hub", l->name);
	rc = ivl_channel_open(ep, "tenant", (uint32_t)hub, NULL, TIMEOUT_NS, &ch);
	CHECK(rc == 0, "%s: channel to hub: %s", l->name, strerror(-rc));
	/* The hub and we are up; the other leaf is in the other region only. */
	CHECK(!has_peer(ep, l->other), "%s sees %s in region %s", l->name, l->other, l->region);
	for (;;) {
		ssize_t n = ivl_recv(ch, buf, sizeof(buf), 0);

		if (n == 0)
			break;
		CHECK(n > 0, "%s: recv: %s", l->name, strerror((int)-n));
		CHECK(ivl_send(ch, buf, (size_t)n, 0) == n, "%s: echo send", l->name);
		total += (uint64_t)n;
	}
	CHECK(total == BYTES, "%s: echoed %" PRIu64 " bytes", l->name, total);
	ivl_channel_shutdown(ch, IVL_SHUT_WR);
	ivl_channel_close(ch);
	ivl_endpoint_close(ep);
	return 0;
}

struct stream {
	struct ivl_channel *ch;
	uint64_t seed;
	const char *to;
	int err;
};

static void *sender(void *arg)
{
	struct stream *s = arg;
	static __thread uint8_t buf[CHUNK];

	for (uint64_t off = 0; off < BYTES; off += CHUNK) {
		ts_stream_fill(s->seed, off, buf, CHUNK);
		if (ivl_send(s->ch, buf, CHUNK, 0) != CHUNK) {
			s->err = 1;
			break;
		}
	}
	ivl_channel_shutdown(s->ch, IVL_SHUT_WR);
	return NULL;
}

/* Receives the echo of one stream and checks it byte for byte. */
static void *checker(void *arg)
{
	struct stream *s = arg;
	static __thread uint8_t buf[CHUNK];
	uint64_t off = 0;

	for (;;) {
		ssize_t n = ivl_recv(s->ch, buf, sizeof(buf), 0);

		if (n <= 0) {
			if (n < 0)
				s->err = 1;
			break;
		}
		if (ts_stream_check(s->seed, off, buf, (size_t)n) != (size_t)n) {
			fprintf(stderr, "hub: echo from %s differs near %" PRIu64 "\n", s->to, off);
			s->err = 1;
			break;
		}
		off += (uint64_t)n;
	}
	if (off != BYTES)
		s->err = 1;
	printf("hub: %" PRIu64 " bytes back from %s%s\n", off, s->to, s->err ? " (FAILED)" : "");
	return NULL;
}

/*
 * ivl_regions() on the host lists $IVLINK_ENDPOINTS as written, in order
 * (blanks around the commas and empty items dropped), counts past n, and
 * each URI opens the region it names.
 */
static void check_endpoints_list(void)
{
	struct ivl_region_info ri[2];
	char list[512];
	int n;

	snprintf(list, sizeof(list), " %s ,, %s,", blue.uri, red.sock);
	CHECK(setenv(IVL_ENV_ENDPOINTS, list, 1) == 0, "setenv");
	n = ivl_regions(ri, 2);
	CHECK(n == 2, "ivl_regions with IVLINK_ENDPOINTS='%s': %d regions, not 2", list, n);
	CHECK(strcmp(ri[0].uri, blue.uri) == 0 && strcmp(ri[1].uri, red.sock) == 0,
	      "ivl_regions: '%s', '%s' for '%s'", ri[0].uri, ri[1].uri, list);
	CHECK(ivl_regions(ri, 1) == 2 && ivl_regions(NULL, 0) == 2, "ivl_regions counts past n");
	for (int i = 0; i < 2; i++) {
		struct ivl_endpoint_opts o = {.uri = ri[i].uri, .name = "lister"};
		struct ivl_endpoint *ep;
		int rc = ivl_endpoint_open(&ep, &o);

		CHECK(rc == 0, "open %s: %s", ri[i].uri, strerror(-rc));
		CHECK(strcmp(ivl_endpoint_region(ep), i ? "red" : "blue") == 0, "%s is region '%s'",
		      ri[i].uri, ivl_endpoint_region(ep));
		ivl_endpoint_close(ep);
	}
	unsetenv(IVL_ENV_ENDPOINTS);
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "several_regions_per_process", 100);
	struct leaf lb = {&red, "b", "red", "c"}, lc = {&blue, "c", "blue", "b"};
	struct ivl_endpoint *ep_red, *ep_blue;
	struct stream sb = {.seed = 0xb0b, .to = "b"}, sc = {.seed = 0xc0c, .to = "c"};
	pthread_t t[4];
	pid_t pb, pc;
	int rc, peer;

	ts_daemon_start(&red, ivlinkd, "red.sock",
			(const char *const[]){"-l", "32M", "-n", "4", "--max-peers", "8", "--name",
					      "red", NULL},
			NULL);
	ts_daemon_start(&blue, ivlinkd, "blue.sock",
			(const char *const[]){"-l", "32M", "-n", "4", "--max-peers", "8", "--name",
					      "blue", NULL},
			NULL);
	check_endpoints_list();
	ep_red = ts_open(&red, "hub", 0, IVL_LOG_WARN);
	ep_blue = ts_open(&blue, "hub", 0, IVL_LOG_WARN);
	CHECK(strcmp(ivl_endpoint_region(ep_red), "red") == 0 &&
		  strcmp(ivl_endpoint_region(ep_blue), "blue") == 0,
	      "endpoint regions '%s' and '%s'", ivl_endpoint_region(ep_red),
	      ivl_endpoint_region(ep_blue));
	pb = ts_spawn(leaf_main, &lb);
	pc = ts_spawn(leaf_main, &lc);

	/* The same channel name in both regions: they are separate tables. */
	peer = ts_find_peer(ep_red, "b", TIMEOUT_NS);
	CHECK(peer >= 0, "hub: no peer b in red");
	rc = ivl_channel_open(ep_red, "tenant", (uint32_t)peer, NULL, TIMEOUT_NS, &sb.ch);
	CHECK(rc == 0, "hub: channel to b in red: %s", strerror(-rc));
	peer = ts_find_peer(ep_blue, "c", TIMEOUT_NS);
	CHECK(peer >= 0, "hub: no peer c in blue");
	rc = ivl_channel_open(ep_blue, "tenant", (uint32_t)peer, NULL, TIMEOUT_NS, &sc.ch);
	CHECK(rc == 0, "hub: channel to c in blue: %s", strerror(-rc));
	CHECK(!has_peer(ep_red, "c") && !has_peer(ep_blue, "b"),
	      "a leaf shows up in the other region");

	pthread_create(&t[0], NULL, sender, &sb);
	pthread_create(&t[1], NULL, sender, &sc);
	pthread_create(&t[2], NULL, checker, &sb);
	pthread_create(&t[3], NULL, checker, &sc);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK(!sb.err && !sc.err, "a stream failed (b %d, c %d)", sb.err, sc.err);
	CHECK(ts_wait(pb, 30000) == 0, "b failed");
	CHECK(ts_wait(pc, 30000) == 0, "c failed");
	ivl_channel_close(sb.ch);
	ivl_channel_close(sc.ch);
	ivl_endpoint_close(ep_red);
	ivl_endpoint_close(ep_blue);
	ts_daemon_stop(red.pid, SIGTERM);
	ts_daemon_stop(blue.pid, SIGTERM);
	printf("PASS several_regions_per_process: 2 x %u MiB echoed through two regions\n",
	       BYTES >> 20);
	return 0;
}
