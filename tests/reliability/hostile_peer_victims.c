/* SPDX-License-Identifier: MIT */
/*
 * Hostile peer against two victims. Each scenario starts a fresh ivlinkd,
 * two victim processes v0 and v1 and one evil_peer. The victims open seven
 * channels in one global order: three between themselves (stream 256 KiB,
 * message 64 KiB, stream 64 KiB) and two (stream, message) between each
 * victim and the evil peer; then every channel carries checksummed traffic
 * both ways for a fixed time (send and receive timeouts 2 s), and is closed.
 *
 * Scenarios (each repeated IVLINK_RELIABILITY_ITERS times, default 2, with
 * seeds derived from IVLINK_RELIABILITY_SEED):
 *   own/targeted, own/random: the evil peer writes only what it controls
 *     (its section, its peer entry). Channels between the victims must
 *     deliver every byte and record intact; channels with the evil peer end
 *     OK or with -EPROTO/-ECONNRESET/-EPIPE/-ETIMEDOUT.
 *   all/targeted, all/random: the evil peer writes everywhere (region header, peer table,
 *     the victims' sections and rings). Every channel ends OK (possibly with
 *     corrupted stream payload: nothing can detect that), or with one of the
 *     errors above.
 * In every scenario: no victim crashes (victims run under ASan+UBSan in the
 * sanitizer pass), none takes longer than its bound, and no access leaves
 * the region: the victims' region mapping sits between PROT_NONE guard
 * pages (rel_guard.c), so such an access is a SIGSEGV. While the victims are
 * still attached, `ivlinkctl status --json` must exit 0 (or 1 when the
 * region header itself was destroyed, --scope all) with valid JSON, and
 * show the damage of the own scenarios.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "rel.h"

#define TRAFFIC_MS	2500
#define EVIL_MS		2000
#define OP_TIMEOUT_NS	2000000000LL
#define VICTIM_BOUND_MS 60000

struct chan_spec {
	const char *name;
	const char *a, *b; /* peer names; a opens first in the list order */
	uint32_t mode;
	uint32_t ring;
	uint32_t max_record;
};

static const struct chan_spec specs[] = {
    {"vv-s", "v0", "v1", IVL_MODE_STREAM, 256u << 10, 0},
    {"vv-m", "v0", "v1", IVL_MODE_MESSAGE, 64u << 10, 4096},
    {"v0e-s", "v0", "evil", IVL_MODE_STREAM, 64u << 10, 0},
    {"v0e-m", "v0", "evil", IVL_MODE_MESSAGE, 64u << 10, 4096},
    {"v1e-s", "v1", "evil", IVL_MODE_STREAM, 64u << 10, 0},
    {"v1e-m", "v1", "evil", IVL_MODE_MESSAGE, 64u << 10, 4096},
    {"vv-s2", "v0", "v1", IVL_MODE_STREAM, 64u << 10, 0},
};
#define N_SPECS (sizeof(specs) / sizeof(specs[0]))

enum outcome { O_OK = 0, O_MISMATCH = 1 }; /* else a -errno */

struct dir {
	const struct chan_spec *spec;
	struct ivl_channel *ch;
	int tx;	       /* 1: sender thread, 0: receiver thread */
	int with_evil; /* the remote is the evil peer */
	uint64_t seed;
	uint64_t bytes, msgs;
	long outcome;
	int64_t end_ns;
	pthread_t thr;
};

static struct ts_daemon daemon_;
static const char *scope = "own", *evil_mode = "targeted";
static uint64_t scenario_seed;
static int done_fd = -1;

static uint64_t name_seed(const char *chan, const char *sender)
{
	uint64_t h = 1469598103934665603ULL ^ scenario_seed;

	for (const char *p = chan; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ULL;
	for (const char *p = sender; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ULL;
	return h;
}

/* Length of record k of a message stream. */
static size_t rec_len(uint64_t seed, uint64_t k, uint32_t max)
{
	uint64_t s = seed ^ (k * 0x9e3779b97f4a7c15ULL);

	return (size_t)(ts_rand(&s) % (max + 1));
}

static int allowed_err(long e)
{
	return e == -EPROTO || e == -ECONNRESET || e == -EPIPE || e == -ETIMEDOUT;
}

static void *sender(void *arg)
{
	struct dir *d = arg;
	uint32_t max = d->spec->max_record;
	uint8_t *buf = malloc(16384);
	uint64_t rs = d->seed;

	d->outcome = O_OK;
	while (ts_now_ns() < d->end_ns) {
		size_t n;
		ssize_t w;

		if (d->spec->mode == IVL_MODE_MESSAGE) {
			n = rec_len(d->seed, d->msgs, max);
			ts_stream_fill(d->seed, d->msgs << 16, buf, n);
		} else {
			n = 1 + ts_rand(&rs) % 16384;
			ts_stream_fill(d->seed, d->bytes, buf, n);
		}
		w = ivl_send(d->ch, buf, n, 0);
		if (w < 0) {
			d->outcome = w;
			break;
		}
		d->bytes += (uint64_t)w;
		d->msgs++;
		/* Pace the stream a little: two cores are shared. */
		if ((d->msgs & 15) == 0)
			usleep(100);
	}
	if (d->outcome == O_OK)
		ivl_channel_shutdown(d->ch, IVL_SHUT_WR);
	free(buf);
	return NULL;
}

static void *receiver(void *arg)
{
	struct dir *d = arg;
	struct ivl_channel_stats st;
	uint8_t *buf;
	size_t cap;

	ivl_channel_stats(d->ch, &st);
	cap = st.rx_ring_size; /* larger than any record the remote can send */
	buf = malloc(cap);
	d->outcome = O_OK;
	for (;;) {
		ssize_t n = ivl_recv(d->ch, buf, cap, 0);

		if (n == 0 && d->spec->mode == IVL_MODE_STREAM)
			break;
		if (n == -EPIPE && d->spec->mode == IVL_MODE_MESSAGE)
			break;
		if (n < 0) {
			d->outcome = n;
			break;
		}
		if (!d->with_evil && d->outcome == O_OK) {
			if (d->spec->mode == IVL_MODE_MESSAGE) {
				size_t want = rec_len(d->seed, d->msgs, d->spec->max_record);

				if ((size_t)n != want ||
				    ts_stream_check(d->seed, d->msgs << 16, buf, (size_t)n) !=
					(size_t)n)
					d->outcome = O_MISMATCH;
			} else if (ts_stream_check(d->seed, d->bytes, buf, (size_t)n) !=
				   (size_t)n) {
				d->outcome = O_MISMATCH;
			}
		}
		d->bytes += (uint64_t)n;
		d->msgs++;
		/* An evil sender may publish garbage forever: stop at 64 MiB. */
		if (d->with_evil && d->bytes > (64u << 20))
			break;
	}
	free(buf);
	return NULL;
}

static const char *outcome_str(long o)
{
	static __thread char buf[32];

	if (o == O_OK)
		return "ok";
	if (o == O_MISMATCH)
		return "data-mismatch";
	snprintf(buf, sizeof(buf), "%s", strerrorname_np((int)-o) ? strerrorname_np((int)-o) : "?");
	return buf;
}

static int victim(void *arg)
{
	const char *me = arg;
	struct dir dirs[2 * N_SPECS];
	struct ivl_endpoint *ep = ts_open(&daemon_, me, 0, IVL_LOG_ERROR);
	unsigned nd = 0, bad = 0;
	int64_t end;

	CHECK(rel_guard_count() > 0, "%s: the region is not between guard pages", me);
	for (size_t i = 0; i < N_SPECS; i++) {
		const struct chan_spec *s = &specs[i];
		struct ivl_channel_opts o = {
		    .mode = s->mode, .ring_size = s->ring, .max_record = s->max_record};
		const char *other;
		struct ivl_channel *ch;
		int id, rc;

		if (strcmp(s->a, me) && strcmp(s->b, me))
			continue;
		other = strcmp(s->a, me) ? s->a : s->b;
		id = ts_find_peer(ep, other, 20000000000LL);
		CHECK(id >= 0, "%s: peer %s never appeared", me, other);
		rc = ivl_channel_open(ep, s->name, (uint32_t)id, &o, 20000000000LL, &ch);
		CHECK(rc == 0, "%s: open %s: %s", me, s->name, strerror(-rc));
		ivl_channel_set_timeouts(ch, OP_TIMEOUT_NS, OP_TIMEOUT_NS);
		for (int tx = 0; tx < 2; tx++) {
			struct dir *d = &dirs[nd++];

			memset(d, 0, sizeof(*d));
			d->spec = s;
			d->ch = ch;
			d->tx = tx;
			d->with_evil = !strcmp(other, "evil");
			d->seed = name_seed(s->name, tx ? me : other);
		}
	}
	end = ts_now_ns() + TRAFFIC_MS * 1000000LL;
	for (unsigned i = 0; i < nd; i++) {
		dirs[i].end_ns = end;
		pthread_create(&dirs[i].thr, NULL, dirs[i].tx ? sender : receiver, &dirs[i]);
	}
	for (unsigned i = 0; i < nd; i++)
		pthread_join(dirs[i].thr, NULL);

	for (unsigned i = 0; i < nd; i++) {
		struct dir *d = &dirs[i];
		int ok;

		if (!d->with_evil && !strcmp(scope, "own"))
			ok = d->outcome == O_OK;
		else
			ok = d->outcome == O_OK || d->outcome == O_MISMATCH ||
			     allowed_err(d->outcome);
		if (!ok)
			bad++;
		printf("RESULT scope=%s mode=%s %s %s %s: %s (%" PRIu64 " bytes, %" PRIu64
		       " msgs)%s\n",
		       scope, evil_mode, me, d->spec->name, d->tx ? "tx" : "rx",
		       outcome_str(d->outcome), d->bytes, d->msgs, ok ? "" : "  <-- NOT ALLOWED");
	}
	/* Tell the parent we are done with traffic, then close (lingering
	 * until the evil peer is gone, at most 5 s). */
	if (write(done_fd, me, 1) != 1)
		bad++;
	for (unsigned i = 0; i < nd; i += 2)
		ivl_channel_close(dirs[i].ch);
	ivl_endpoint_close(ep);
	return bad ? 1 : 0;
}

/* The damage markers ivlinkctl may show. */
static void show_damage(const char *json, int require)
{
	static const char *const marks[] = {"\"fill\":null", "\"abort\"", "\"invalid\"",
					    "\"gone\""};
	int found = 0;

	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		if (strstr(json, marks[i])) {
			printf("ivlinkctl shows %s\n", marks[i]);
			found = 1;
		}
	}
	CHECK(found || !require, "ivlinkctl --json shows no damage:\n%s", json);
}

static void scenario(const char *ivlinkd, const char *evil_bin, const char *ctl_bin, const char *sc,
		     const char *mode, uint64_t seed)
{
	static const char *const extra[] = {"-l", "16M", "-n", "4", "--max-peers", "4", NULL};
	static char json[1 << 20];
	char seed_s[32], ms_s[16];
	char *argv[32];
	int pfd[2], n = 0, st0, st1, ctl;
	pid_t v0, v1, evil;
	struct pollfd p;
	int64_t t0 = ts_now_ns();
	char c;
	int got = 0;

	scope = sc;
	evil_mode = mode;
	scenario_seed = seed;
	printf("== scenario scope=%s mode=%s seed=%" PRIu64 "\n", sc, mode, seed);
	ts_daemon_start(&daemon_, ivlinkd, "sock", extra, NULL);
	CHECK(pipe(pfd) == 0, "pipe");
	done_fd = pfd[1];

	v0 = ts_spawn(victim, "v0");
	v1 = ts_spawn(victim, "v1");
	snprintf(seed_s, sizeof(seed_s), "%" PRIu64, seed);
	snprintf(ms_s, sizeof(ms_s), "%d", EVIL_MS);
	argv[n++] = (char *)evil_bin;
	argv[n++] = "--uri";
	argv[n++] = daemon_.uri;
	argv[n++] = "--name";
	argv[n++] = "evil";
	argv[n++] = "--seed";
	argv[n++] = seed_s;
	argv[n++] = "--scope";
	argv[n++] = (char *)sc;
	argv[n++] = "--mode";
	argv[n++] = (char *)mode;
	argv[n++] = "--ms";
	argv[n++] = ms_s;
	for (size_t i = 0; i < N_SPECS; i++) {
		static char chan_args[N_SPECS][80];
		const struct chan_spec *s = &specs[i];

		if (strcmp(s->b, "evil"))
			continue;
		snprintf(chan_args[i], sizeof(chan_args[i]), "%s:%s:%c", s->name, s->a,
			 s->mode == IVL_MODE_MESSAGE ? 'm' : 's');
		argv[n++] = "--chan";
		argv[n++] = chan_args[i];
	}
	argv[n] = NULL;
	evil = ts_exec(argv);

	/* Both victims report the end of their traffic. */
	p.fd = pfd[0];
	p.events = POLLIN;
	while (got < 2) {
		int64_t left = (t0 + VICTIM_BOUND_MS * 1000000LL - ts_now_ns()) / 1000000;

		CHECK(left > 0, "victims did not finish their traffic within %d ms",
		      VICTIM_BOUND_MS);
		if (poll(&p, 1, (int)left) == 1 && read(pfd[0], &c, 1) == 1)
			got++;
	}

	/* The status tool, with the victims still attached and the region
	 * as the evil peer left it. */
	ctl = rel_ivlinkctl_json(ctl_bin, daemon_.sock, json, sizeof(json));
	printf("ivlinkctl status --json: exit %d, %zu bytes\n", ctl, strlen(json));
	CHECK(ctl == 0 || (ctl == 1 && !strcmp(sc, "all")),
	      "ivlinkctl status exited %d (crash or refusal)", ctl);
	if (ctl == 0) {
		CHECK(rel_json_valid(json), "ivlinkctl printed invalid JSON:\n%s", json);
		show_damage(json, !strcmp(sc, "own"));
	}

	ts_kill9(evil);
	st0 = ts_wait(v0, 15000);
	st1 = ts_wait(v1, 15000);
	CHECK(st0 == 0 && st1 == 0,
	      "victim exit status v0=%d v1=%d (1: outcome not allowed, >=128: crash, -1: "
	      "hang)",
	      st0, st1);
	CHECK(kill(daemon_.pid, 0) == 0, "ivlinkd died");
	close(pfd[0]);
	close(pfd[1]);

	/* The daemon still serves: a fresh pair joins and moves data, unless
	 * the evil peer destroyed the region header (scope all), which makes
	 * every later attach fail validation (a documented denial of service). */
	{
		struct ivl_endpoint_opts o = {.uri = daemon_.uri, .name = "fresh-a"};
		struct ivl_endpoint *a;
		int rc = ivl_endpoint_open(&a, &o);

		if (rc == 0) {
			struct ivl_endpoint *b = NULL;
			struct ivl_channel *ca = NULL, *cb = NULL;
			char buf[4] = "abc", out[4] = "";
			int all = !strcmp(sc, "all");

			o.name = "fresh-b";
			rc = ivl_endpoint_open(&b, &o);
			if (rc == 0)
				rc = rel_pair_open(a, b, "fresh", NULL, 5000000000LL, &ca, &cb);
			if (rc == 0 && (ivl_send(ca, buf, 4, 0) != 4 ||
					ivl_recv(cb, out, 4, 0) != 4 || strcmp(out, "abc")))
				rc = -EIO;
			CHECK(rc == 0 || all, "fresh peers after the attack: %s", strerror(-rc));
			printf("fresh peers after the attack: %s\n",
			       rc == 0 ? "channel OK" : strerror(-rc));
			ivl_channel_close(ca);
			ivl_channel_close(cb);
			ivl_endpoint_close(a);
			ivl_endpoint_close(b);
		} else {
			/* Only an evil peer that wrote the region header (or
			 * the table) can deny later joins: scope all. */
			CHECK(!strcmp(sc, "all"), "fresh peer after the attack: %s", strerror(-rc));
			printf(
			    "fresh peer after the attack: %s (region header or table destroyed)\n",
			    strerror(-rc));
		}
	}
	ts_daemon_stop(daemon_.pid, SIGTERM);
	printf("scenario scope=%s mode=%s: PASS in %.1f s\n", sc, mode,
	       (double)(ts_now_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "hostile", 900);
	uint64_t seed = rel_seed(1);
	unsigned iters = rel_iters(2);

	for (unsigned i = 0; i < iters; i++) {
		scenario(ivlinkd, EVIL_PEER, IVLINKCTL, "own", "targeted", seed + 4 * i);
		scenario(ivlinkd, EVIL_PEER, IVLINKCTL, "own", "random", seed + 4 * i + 1);
		scenario(ivlinkd, EVIL_PEER, IVLINKCTL, "all", "targeted", seed + 4 * i + 2);
		scenario(ivlinkd, EVIL_PEER, IVLINKCTL, "all", "random", seed + 4 * i + 3);
	}
	printf("PASS hostile_peer_victims (%u iterations)\n", iters);
	return 0;
}
