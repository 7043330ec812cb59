/* SPDX-License-Identifier: MIT */
/*
 * Floods of connections at ivlinkd while two peers stream through a
 * channel. (tests/daemon/daemon_misbehaving_clients covers single garbage,
 * mid-handshake and non-reading clients, daemon_churn 1000 sequential
 * join/leave cycles; this adds many at once and descriptor exhaustion.)
 *
 *  1. 500 connections opened as fast as possible and held open together,
 *     a quarter of each kind: never read (half-open: the first ones take
 *     the free peer ids, their handshakes queue), send garbage, shut down
 *     their write side, close at once. Meanwhile: the A -> B stream keeps
 *     moving (verified), the status socket answers (ivlinkctl --json), and
 *     afterwards the daemon is back to 2 peers and its fd count, and a new
 *     peer joins and moves data with A.
 *  2. The same daemon run with RLIMIT_NOFILE 32 and 300 connections held:
 *     accept() and eventfd() hit EMFILE, the daemon refuses what it cannot
 *     hold (the status client too, while the flood holds its descriptors)
 *     and keeps serving the peers it has; once the flood is gone, status
 *     answers again and a new peer joins.
 * Repeated IVLINK_RELIABILITY_ITERS times (default 1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rel.h"

#define FLOOD 500

struct stream {
	struct ivl_channel *tx, *rx;
	uint64_t got;
	int stop;
};

static void *stream_tx(void *arg)
{
	struct stream *s = arg;
	uint8_t buf[8192];
	uint64_t off = 0;

	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		ssize_t n;

		ts_stream_fill(5, off, buf, sizeof(buf));
		n = ivl_send(s->tx, buf, sizeof(buf), 0);
		CHECK(n > 0, "stream send during the flood: %zd", n);
		off += (uint64_t)n;
		usleep(200);
	}
	ivl_channel_shutdown(s->tx, IVL_SHUT_WR);
	return NULL;
}

static void *stream_rx(void *arg)
{
	struct stream *s = arg;
	uint8_t buf[8192];

	for (;;) {
		ssize_t n = ivl_recv(s->rx, buf, sizeof(buf), 0);

		if (n == 0)
			return NULL;
		CHECK(n > 0, "stream recv during the flood: %zd", n);
		CHECK(ts_stream_check(5, s->got, buf, (size_t)n) == (size_t)n, "stream corrupt");
		__atomic_store_n(&s->got, s->got + (uint64_t)n, __ATOMIC_RELAXED);
	}
}

static int flood_connect(const char *path, int kind)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (s < 0)
		return -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(s);
		return -1;
	}
	switch (kind) {
	case 1:
		if (write(s, "GET / HTTP/1.0\r\n\r\n", 18) < 0) {
			/* the daemon may have closed it already */
		}
		break;
	case 2:
		shutdown(s, SHUT_WR);
		break;
	case 3:
		close(s);
		return -1;
	}
	return s;
}

static int status_peers(const char *ctl)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char buf[8192], *p;
	size_t n = 0;
	ssize_t r;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memcpy(sa.sun_path, ctl, strlen(ctl) + 1);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (s >= 0)
			close(s);
		return -1;
	}
	while (n + 1 < sizeof(buf) && (r = read(s, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	close(s);
	p = strstr(buf, " peers=");
	return p ? atoi(p + 7) : -1;
}

/* Waits until the daemon has `peers` clients and `fds` descriptors. */
static void settle(const struct ts_daemon *d, int peers, int fds, const char *what)
{
	int64_t deadline = ts_now_ns() + 5000000000LL;

	while (ts_now_ns() < deadline) {
		if (status_peers(d->ctl) == peers && ts_proc_fds(d->pid) == fds)
			return;
		usleep(10000);
	}
	FAIL("%s: daemon has %d peers, %d fds (want %d, %d)", what, status_peers(d->ctl),
	     ts_proc_fds(d->pid), peers, fds);
}

static void newcomer(const struct ts_daemon *d, struct ivl_endpoint *a, const char *name)
{
	struct ivl_endpoint *c = ts_open(d, name, 0, IVL_LOG_ERROR);
	struct ivl_channel *x, *y;
	char out[4] = "";
	struct ivl_channel_opts o = {.ring_size = 64u << 10};
	int rc = rel_pair_open(a, c, name, &o, 5000000000LL, &x, &y);

	CHECK(rc == 0, "%s: channel with A: %s", name, strerror(-rc));
	CHECK(ivl_send(x, "hey", 4, 0) == 4 && ivl_recv(y, out, 4, IVL_WAITALL) == 4 &&
		  !strcmp(out, "hey"),
	      "%s: no data", name);
	ivl_channel_close(x);
	ivl_channel_close(y);
	ivl_endpoint_close(c);
}

static void round_(const char *ivlinkd, unsigned nofile, int nconn, unsigned round)
{
	static const char *const extra[] = {
	    "-l", "16M", "-n", "4", "--max-peers", "8", "--log-level=error", NULL};
	static char json[1 << 18];
	static int socks[FLOOD];
	struct ts_daemon d;
	struct ivl_endpoint *a, *b;
	struct ivl_channel_opts o = {.ring_size = 64u << 10};
	struct stream st = {0};
	pthread_t t1, t2;
	int fds0, held = 0, ctl;
	uint64_t before;
	int64_t t0;
	char leaf[32];

	snprintf(leaf, sizeof(leaf), "sock%u-%u", round, nofile);
	ts_daemon_start(&d, ivlinkd, leaf, extra, &(struct ts_daemon_opts){.nofile = nofile});
	a = ts_open(&d, "A", 0, IVL_LOG_ERROR);
	b = ts_open(&d, "B", 0, IVL_LOG_ERROR);
	CHECK(rel_pair_open(a, b, "live", &o, 5000000000LL, &st.tx, &st.rx) == 0, "live");
	fds0 = ts_proc_fds(d.pid);
	pthread_create(&t1, NULL, stream_tx, &st);
	pthread_create(&t2, NULL, stream_rx, &st);

	t0 = ts_now_ns();
	for (int i = 0; i < nconn; i++) {
		socks[i] = flood_connect(d.sock, i % 4);
		held += socks[i] >= 0;
	}
	printf("round %u%s: %d connections in %.1f ms, %d held open\n", round,
	       nofile ? " (ivlinkd at RLIMIT_NOFILE 32)" : "", nconn,
	       (double)(ts_now_ns() - t0) / 1e6, held);

	/* While they are all there: the stream moves and status answers. */
	before = __atomic_load_n(&st.got, __ATOMIC_RELAXED);
	usleep(300000);
	CHECK(__atomic_load_n(&st.got, __ATOMIC_RELAXED) > before,
	      "the stream stalled during the flood");
	ctl = rel_ivlinkctl_json(IVLINKCTL, d.sock, json, sizeof(json));
	/* At its fd limit the daemon may have to refuse the status client too
	 * (exit 1); it must not crash or hang, and serves it again after. */
	CHECK((ctl == 0 && rel_json_valid(json)) || (nofile && ctl == 1),
	      "ivlinkctl during the flood: exit %d", ctl);
	CHECK(kill(d.pid, 0) == 0, "ivlinkd died");

	for (int i = 0; i < nconn; i++)
		if (socks[i] >= 0)
			close(socks[i]);
	settle(&d, 2, fds0, "after the flood");
	ctl = rel_ivlinkctl_json(IVLINKCTL, d.sock, json, sizeof(json));
	CHECK(ctl == 0 && rel_json_valid(json), "ivlinkctl after the flood: exit %d", ctl);
	newcomer(&d, a, "C");
	__atomic_store_n(&st.stop, 1, __ATOMIC_RELAXED);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	printf("round %u: stream moved %.1f MiB during the flood; daemon back to 2 peers and %d "
	       "fds; a new peer joined and moved data\n",
	       round, (double)st.got / (1 << 20), fds0);
	ivl_channel_close(st.tx);
	ivl_channel_close(st.rx);
	ivl_endpoint_close(a);
	ivl_endpoint_close(b);
	CHECK(WIFEXITED(ts_daemon_stop(d.pid, SIGTERM)), "ivlinkd did not exit cleanly");
}

int main(int argc, char **argv)
{
	const char *ivlinkd = ts_init_ivlinkd(argc, argv, "flood", 300);
	unsigned iters = rel_iters(1);

	for (unsigned i = 0; i < iters; i++) {
		round_(ivlinkd, 0, FLOOD, i);
		round_(ivlinkd, 32, 300, i);
	}
	printf("PASS daemon_connect_flood\n");
	return 0;
}
