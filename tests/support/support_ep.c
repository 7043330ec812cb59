/* SPDX-License-Identifier: MIT */
/* Test helpers over libivlink: see support.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ivlink/ivlink.h>
#include <ivlink/layout.h>

#include "support.h"

static void log_at(const char *name, enum ivl_log_level level, enum ivl_log_level max,
		   const char *msg)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	if (level <= max || getenv("IVL_TEST_VERBOSE") || getenv("REL_VERBOSE"))
		fprintf(stderr, "[%s %d] libivlink %s: %s\n", name, (int)getpid(), names[level],
			msg);
}

static void log_error(void *ctx, enum ivl_log_level level, const char *msg)
{
	log_at(ctx, level, IVL_LOG_ERROR, msg);
}

static void log_warn(void *ctx, enum ivl_log_level level, const char *msg)
{
	log_at(ctx, level, IVL_LOG_WARN, msg);
}

int ts_endpoint_open(struct ivl_endpoint **ep, const char *uri, const char *name, int64_t spin_ns,
		     int max_level)
{
	struct ivl_endpoint_opts o = {.uri = uri,
				      .name = name,
				      .spin_ns = spin_ns,
				      .log = max_level >= IVL_LOG_WARN ? log_warn : log_error,
				      .log_ctx = (void *)name};

	return ivl_endpoint_open(ep, &o);
}

struct ivl_endpoint *ts_open(const struct ts_daemon *d, const char *name, int64_t spin_ns,
			     int max_level)
{
	struct ivl_endpoint *ep;
	int rc = ts_endpoint_open(&ep, d->uri, name, spin_ns, max_level);

	CHECK(rc == 0, "%s: ivl_endpoint_open: %s", name, strerror(-rc));
	return ep;
}

int ts_find_peer(struct ivl_endpoint *ep, const char *name, int64_t timeout_ns)
{
	int64_t deadline = ts_now_ns() + timeout_ns;

	for (;;) {
		struct ivl_peer_info p[IVL_PEERS_LIMIT];
		int n = ivl_endpoint_peers(ep, p, IVL_PEERS_LIMIT);

		for (int i = 0; i < n && i < (int)IVL_PEERS_LIMIT; i++)
			if (!p[i].is_self && strcmp(p[i].name, name) == 0)
				return (int)p[i].id;
		if (ts_now_ns() >= deadline)
			return -ETIMEDOUT;
		usleep(1000);
	}
}
