/* SPDX-License-Identifier: MIT */
/* Reliability test helpers: see rel.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "rel.h"
#include "support.h"

unsigned rel_iters(unsigned dflt)
{
	const char *s = getenv("IVLINK_RELIABILITY_ITERS");
	long v = s ? strtol(s, NULL, 10) : 0;

	return v > 0 ? (unsigned)v : dflt;
}

uint64_t rel_seed(uint64_t dflt)
{
	const char *s = getenv("IVLINK_RELIABILITY_SEED");

	return s && *s ? strtoull(s, NULL, 0) : dflt;
}

struct pair_arg {
	struct ivl_endpoint *ep;
	uint32_t remote;
	const char *name;
	const struct ivl_channel_opts *o;
	int64_t timeout_ns;
	struct ivl_channel *ch;
	int rc;
};

static void *pair_side(void *arg)
{
	struct pair_arg *p = arg;

	p->rc = ivl_channel_open(p->ep, p->name, p->remote, p->o, p->timeout_ns, &p->ch);
	return NULL;
}

int rel_pair_open(struct ivl_endpoint *a, struct ivl_endpoint *b, const char *name,
		  const struct ivl_channel_opts *o, int64_t timeout_ns, struct ivl_channel **ca,
		  struct ivl_channel **cb)
{
	struct pair_arg pa = {a, ivl_endpoint_id(b), name, o, timeout_ns, NULL, 0};
	struct pair_arg pb = {b, ivl_endpoint_id(a), name, o, timeout_ns, NULL, 0};
	pthread_t t;

	if (pthread_create(&t, NULL, pair_side, &pa) != 0)
		return -EAGAIN;
	pair_side(&pb);
	pthread_join(t, NULL);
	if (pa.rc < 0 || pb.rc < 0) {
		ivl_channel_close(pa.ch);
		ivl_channel_close(pb.ch);
		return pa.rc < 0 ? pa.rc : pb.rc;
	}
	*ca = pa.ch;
	*cb = pb.ch;
	return 0;
}

int rel_ivlinkctl_json(const char *ivlinkctl, const char *sock, char *out, size_t len)
{
	char cmd[512];
	size_t n = 0, r;
	FILE *f;
	int st;

	snprintf(cmd, sizeof(cmd), "%s status --json --socket %s 2>/dev/null", ivlinkctl, sock);
	f = popen(cmd, "r");
	CHECK(f, "popen: %s", strerror(errno));
	while (n + 1 < len && (r = fread(out + n, 1, len - 1 - n, f)) > 0)
		n += r;
	out[n] = '\0';
	/* Drain what did not fit, so that the child is not blocked. */
	while (fread(cmd, 1, sizeof(cmd), f) > 0)
		;
	st = pclose(f);
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* ------------------------------------------------------------ JSON check */

static const char *ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

static const char *json_value(const char *p, int depth);

static const char *json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p && *p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (!*p)
				return NULL;
		}
		p++;
	}
	return *p == '"' ? p + 1 : NULL;
}

static const char *json_value(const char *p, int depth)
{
	if (depth > 64)
		return NULL;
	p = ws(p);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		int obj = *p == '{';

		p = ws(p + 1);
		if (*p == close)
			return p + 1;
		for (;;) {
			if (obj) {
				p = json_string(ws(p));
				if (!p)
					return NULL;
				p = ws(p);
				if (*p++ != ':')
					return NULL;
			}
			p = json_value(p, depth + 1);
			if (!p)
				return NULL;
			p = ws(p);
			if (*p == ',') {
				p++;
				continue;
			}
			return *p == close ? p + 1 : NULL;
		}
	}
	if (*p == '"')
		return json_string(p);
	if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4))
		return p + 4;
	if (!strncmp(p, "false", 5))
		return p + 5;
	if (*p == '-' || (*p >= '0' && *p <= '9')) {
		char *end;

		strtod(p, &end);
		return end == p ? NULL : end;
	}
	return NULL;
}

int rel_json_valid(const char *s)
{
	const char *p = json_value(s, 0);

	return p && *ws(p) == '\0';
}
