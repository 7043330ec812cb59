/* SPDX-License-Identifier: MIT */
/*
 * ivlinkctl as a monitor, against a live ivlinkd with two raw peers joined
 * and a channel between them carrying data while we look: `status -i SEC
 * -c N --json` prints N NDJSON lines, each with "schema" and "rates", and
 * the tx rate is above zero; the filters (--pid, --peer, --port,
 * --listening) show only what matches, and nothing for a pid that does not
 * exist; `stats` counts the joins and `stats --reset` clears them; `metrics`
 * is well-formed OpenMetrics text with escaped label values.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/wait.h>

#include <ivlink/ring.h>

#include "dtest.h"

#define NVEC 2

static int nop_kick(void *ctx)
{
	(void)ctx;
	return 0;
}

static int nop_block(void *ctx, int64_t ns)
{
	(void)ctx;
	(void)ns;
	return -ETIMEDOUT;
}

static struct ivl_ring prod, cons;
static int stop;

/* West writes to east and east reads it back, about 256 KiB/s. */
static void *traffic(void *arg)
{
	char buf[256];

	(void)arg;
	memset(buf, 'y', sizeof(buf));
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		if (ivl_ring_write(&prod, buf, sizeof(buf), 0) > 0)
			while (ivl_ring_read(&cons, buf, sizeof(buf)) > 0)
				;
		usleep(1000);
	}
	return NULL;
}

static int run(const char *args, const char *outfile, char *out, size_t len)
{
	char cmd[800];
	FILE *f;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "%s %s > %s", IVLINKCTL, args, outfile);
	st = system(cmd);
	f = fopen(outfile, "r");
	CHECK(f);
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	fclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs python3 code on file (sys.argv[1]); FAIL()s with what on error. */
static void py_check(const char *what, const char *code, const char *file)
{
	char cmd[8192];
	FILE *f = fopen(ts_path("check.py"), "w");

	CHECK(f);
	fputs("import json, re, sys\n", f);
	fputs(code, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "python3 %s %s", ts_path("check.py"), file);
	CHECK(system(cmd) == 0, "%s: check failed on %s", what, file);
}

/* A status --json with filter args, checked by code (d = the object). */
static void filter_case(const char *sock, const char *filter, const char *code)
{
	static char out[131072];
	char args[400], py[4096];

	snprintf(args, sizeof(args), "status --json --socket %s %s", sock, filter);
	CHECK(run(args, ts_path("f.json"), out, sizeof(out)) == 0, "status %s failed", filter);
	snprintf(py, sizeof(py),
		 "d = json.load(open(sys.argv[1]))\n"
		 "assert d['schema'] == 2, d\n"
		 "peers = [p['id'] for p in d['peers']]\n"
		 "chans = [(c['a']['peer'], c['b'] and c['b']['peer']) for c in d['channels']]\n"
		 "socks = [(s['peer'], s['kind']) for s in d['shim']['sockets']]\n"
		 "shim = [p['id'] for p in d['shim']['peers']]\n"
		 "print('%s:', peers, chans, socks, shim)\n"
		 "%s\n",
		 filter, code);
	py_check(filter, py, ts_path("f.json"));
}

static const char om_check[] =
    "text = open(sys.argv[1]).read()\n"
    "assert text.endswith('# EOF\\n'), 'no # EOF at the end'\n"
    "lines = text.split('\\n')[:-1]\n"
    "assert lines.count('# EOF') == 1\n"
    "lab = r'[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\\\\n]|\\\\[\\\\\"n])*\"'\n"
    "sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{' + lab + '(?:,' + lab + r')*\\})? "
    "(-?[0-9]+(?:\\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)$')\n"
    "meta = re.compile(r'^# (TYPE|HELP|UNIT) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$')\n"
    "types = {}\n"
    "n = 0\n"
    "for l in lines[:-1]:\n"
    "    m = meta.match(l)\n"
    "    if m:\n"
    "        if m.group(1) == 'TYPE':\n"
    "            assert m.group(2) not in types, 'TYPE twice: ' + l\n"
    "            assert m.group(3) in ('counter', 'gauge'), l\n"
    "            types[m.group(2)] = m.group(3)\n"
    "        else:\n"
    "            assert m.group(2) in types, 'HELP/UNIT before TYPE: ' + l\n"
    "        if m.group(1) == 'UNIT':\n"
    "            assert m.group(2).endswith('_' + m.group(3)), l\n"
    "        continue\n"
    "    m = sample.match(l)\n"
    "    assert m, 'not a sample line: %r' % l\n"
    "    name = m.group(1)\n"
    "    fam = re.sub(r'_(total|created)$', '', name)\n"
    "    if fam != name:\n"
    "        assert types.get(fam) == 'counter', 'counter sample without TYPE: ' + l\n"
    "    else:\n"
    "        assert types.get(name) == 'gauge', 'sample without TYPE: ' + l\n"
    "    n += 1\n"
    "assert n > 10, n\n"
    "tx = [l for l in lines if l.startswith('ivlink_ring_tx_bytes_total{peer=\"0\",name=\"west\"} "
    "')]\n"
    "assert tx and int(tx[0].split()[-1]) > 0, tx\n"
    "assert 'ivlink_peer_up{peer=\"1\",name=\"ea\\\\\"st\\\\\\\\\"} 1' in lines, 'escaping'\n"
    "assert 'ivlink_shim_fallbacks_total{peer=\"0\",name=\"west\",reason=\"timeout\"} 2' in "
    "lines\n";

int main(void)
{
	static char out[262144];
	const struct ivl_notifier nt = {.kick = nop_kick, .block = nop_block};
	struct ivl_ctab_params cp = {
	    .name = "echo", .mode = IVL_MODE_STREAM, .ring_size = 4096, .rx_vector = 1};
	struct ivl_ctab_remote ma, mb;
	struct ivl_shim_half sh;
	struct ivl_peer_view pa, pb;
	struct ivl_peer_shim *ps;
	struct dt_peer a, b, c3;
	char name[64], args[400], py[2048], sock[256];
	pthread_t th;
	int sa, sb;
	pid_t d;

	ts_init("ivlinkctl_monitor", 120);
	if (system("python3 -c 'import json, re' >/dev/null 2>&1") != 0) {
		printf("SKIP: python3 not found\n");
		return TS_SKIP;
	}
	snprintf(name, sizeof(name), "ivlink-mon-test-%d", (int)getpid());
	snprintf(sock, sizeof(sock), "%s", ts_path("sock"));
	ts_track_shm(name);
	{
		const char *const extra[] = {"-m", name, "-l", "4M", "-n", "2", NULL};

		d = ts_daemon_spawn(IVLINKD, sock, extra, &dt_daemon_opts, NULL);
	}
	CHECK(d > 0);
	CHECK(dt_peer_join(&a, sock, NVEC) == 0 && a.id == 0);
	CHECK(dt_peer_join(&b, sock, NVEC) == 0 && b.id == 1);
	dt_peer_pump(&a, 100);
	strcpy(ivl_region_peer(&a.rg, 0)->name, "west");
	/* A quote and a backslash: escaped in the OpenMetrics label. */
	strcpy(ivl_region_peer(&b.rg, 1)->name, "ea\"st\\");

	/* What a socket shim on west publishes: its counters, a listener on
	 * port 6379; on east a fallback note 40000 -> 7000. */
	ps = &ivl_region_peer(&a.rg, 0)->shim;
	ps->magic = IVL_SHIM_MAGIC;
	ps->accelerated = 3;
	ps->fallbacks = 2;
	ps->by_reason[IVL_FB_TIMEOUT] = 2;
	ps->last_reason = IVL_FB_TIMEOUT;
	CHECK(ivl_region_peer_view(&a.rg, 0, &pa) == 0 && ivl_region_peer_view(&a.rg, 1, &pb) == 0);
	memset(&sh, 0, sizeof(sh));
	sh.kind = IVL_SHIM_LISTEN;
	sh.family = 2;
	sh.lport = htons(6379);
	sh.owner_pid = (uint32_t)getpid();
	CHECK(ivl_ctab_note(&a.rg, 0, pa.epoch, IVL_CHAN_LISTEN, IVL_SLOT_NONE, "tcp", &sh) >= 0);
	sh.kind = IVL_SHIM_FALLBACK;
	sh.lport = htons(40000);
	sh.rport = htons(7000);
	sh.reason = IVL_FB_TIMEOUT;
	CHECK(ivl_ctab_note(&b.rg, 1, pb.epoch, IVL_CHAN_NOTE, 0, "tcp", &sh) >= 0);

	/* The channel "echo", west -> east, with data moving. */
	cp.remote = 1;
	sa = ivl_ctab_offer(&a.rg, 0, pa.epoch, &cp, NULL);
	cp.remote = 0;
	sb = ivl_ctab_offer(&b.rg, 1, pb.epoch, &cp, NULL);
	CHECK(sa >= 0 && sb >= 0);
	CHECK(ivl_ctab_match(&a.rg, 0, (uint32_t)sa, &ma) == 0);
	CHECK(ivl_ctab_match(&b.rg, 1, (uint32_t)sb, &mb) == 0);
	{
		struct ivl_chan_half *ha = ivl_region_chan(&a.rg, 0, (uint32_t)sa);
		struct ivl_chan_half *hb = ivl_region_chan(&b.rg, 1, (uint32_t)sb);

		CHECK(ivl_ring_init_producer(&prod, &ha->tx_prod,
					     &ivl_region_chan(&a.rg, 1, (uint32_t)sb)->rx_cons,
					     ivl_region_ptr(&a.rg, ha->tx_data_off, 4096), 4096,
					     IVL_MODE_STREAM, 0, &nt) == 0);
		CHECK(ivl_ring_init_consumer(
			  &cons, &ivl_region_chan(&b.rg, 0, (uint32_t)sa)->tx_prod, &hb->rx_cons,
			  ivl_region_ptr(&b.rg, mb.remote_tx_data_off, 4096), 4096, IVL_MODE_STREAM,
			  0, &nt) == 0);
	}
	CHECK(pthread_create(&th, NULL, traffic, NULL) == 0);

	/* status -i 0.2 -c 3 --json: three NDJSON lines with rates. */
	snprintf(args, sizeof(args), "status -i 0.2 -c 3 --json --socket %s", sock);
	CHECK(run(args, ts_path("watch.json"), out, sizeof(out)) == 0, "status -i failed");
	py_check("status -i --json",
		 "lines = open(sys.argv[1]).read().splitlines()\n"
		 "assert len(lines) == 3, len(lines)\n"
		 "for l in lines:\n"
		 "    d = json.loads(l)\n"
		 "    r = d['rates']\n"
		 "    print(d['schema'], r['interval_s'], r['total'])\n"
		 "    assert d['schema'] == 2\n"
		 "    assert 0.09 < r['interval_s'] < 2.0, r\n"
		 "    assert r['total']['ring_tx_bytes_s'] > 0, r\n"
		 "    assert r['total']['ring_rx_bytes_s'] > 0, r\n"
		 "    w = [p for p in r['peers'] if p['id'] == 0][0]\n"
		 "    assert w['ring_tx_bytes_s'] > 0 and w['ring_rx_bytes_s'] == 0, w\n"
		 "    assert [p['id'] for p in d['peers']] == [0, 1]\n",
		 ts_path("watch.json"));
	/* The text table: one block per interval. */
	snprintf(args, sizeof(args), "status -i 0.1 -c 2 --socket %s", sock);
	CHECK(run(args, ts_path("watch.txt"), out, sizeof(out)) == 0);
	printf("%s", out);
	CHECK(strstr(out, "RING TX") && strstr(out, "west") &&
	      strstr(strstr(out, "total") + 5, "total"));
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);

	/* Filters. */
	filter_case(
	    sock, "",
	    "assert peers == [0, 1] and len(chans) == 1 and len(socks) == 2 and shim == [0]");
	filter_case(sock, "--peer 1",
		    "assert peers == [1] and chans == [(0, 1)] and socks == [(1, 'fallback')] and "
		    "shim == []");
	filter_case(sock, "--peer 0",
		    "assert peers == [0] and chans == [(0, 1)] and socks == [(0, 'listen')] and "
		    "shim == [0]");
	snprintf(py, sizeof(py), "--pid %d", (int)getpid());
	filter_case(sock, py, "assert peers == [0, 1] and len(chans) == 1 and len(socks) == 2");
	{
		/* A pid that does not exist (pid_max is at most 4194304). */
		pid_t nopid = 4194303;

		while (kill(nopid, 0) == 0 || errno != ESRCH)
			nopid--;
		snprintf(py, sizeof(py), "--pid %d", (int)nopid);
		filter_case(sock, py,
			    "assert peers == [] and chans == [] and socks == [] and shim == []");
		snprintf(args, sizeof(args), "status --socket %s --pid %d", sock, (int)nopid);
		CHECK(run(args, ts_path("f.txt"), out, sizeof(out)) == 0);
		CHECK(!strstr(out, "west") && strstr(out, "CHANNELS (0)") &&
		      !strstr(out, "SOCKET SHIM"));
	}
	filter_case(sock, "--port 6379",
		    "assert peers == [0, 1] and chans == [] and socks == [(0, 'listen')]");
	filter_case(sock, "--port 7000", "assert chans == [] and socks == [(1, 'fallback')]");
	filter_case(sock, "--port 1", "assert chans == [] and socks == []");
	filter_case(sock, "--listening", "assert chans == [] and socks == [(0, 'listen')]");
	filter_case(sock, "--listening --port 7000", "assert socks == []");
	/* A filter is for status only; a bad value is a usage error. */
	CHECK(run("stats --pid 1", ts_path("e"), out, sizeof(out)) == 2);
	CHECK(run("status --pid 0", ts_path("e"), out, sizeof(out)) == 2);
	CHECK(run("status -i 0", ts_path("e"), out, sizeof(out)) == 2);
	CHECK(run("status -i -1", ts_path("e"), out, sizeof(out)) == 2);
	CHECK(run("status -c 3", ts_path("e"), out, sizeof(out)) == 2);

	/* stats: both joins counted; --reset clears them; a new join counts. */
	snprintf(args, sizeof(args), "stats --socket %s", sock);
	CHECK(run(args, ts_path("stats.txt"), out, sizeof(out)) == 0);
	printf("%s", out);
	CHECK(strstr(out, "joins          2") && strstr(out, "timeout=2"));
	snprintf(args, sizeof(args), "stats --json --socket %s", sock);
	CHECK(run(args, ts_path("stats.json"), out, sizeof(out)) == 0);
	py_check(
	    "stats --json",
	    "d = json.load(open(sys.argv[1]))\n"
	    "print(d)\n"
	    "assert d['schema'] == 2\n"
	    "assert d['daemon']['joins'] >= 2 and d['daemon']['resets'] == 0, d\n"
	    "assert d['shim']['fallbacks'] == 2 and d['shim']['reasons'] == {'timeout': 2}, d\n",
	    ts_path("stats.json"));
	snprintf(args, sizeof(args), "stats --reset --json --socket %s", sock);
	CHECK(run(args, ts_path("reset.json"), out, sizeof(out)) == 0);
	snprintf(args, sizeof(args), "stats --json --socket %s", sock);
	CHECK(run(args, ts_path("stats2.json"), out, sizeof(out)) == 0);
	py_check("stats after --reset",
		 "d = json.load(open(sys.argv[1]))['daemon']\n"
		 "print(d)\n"
		 "assert d['joins'] == 0 and d['leaves'] == 0 and d['resets'] == 1, d\n",
		 ts_path("stats2.json"));
	py_check("stats --reset output",
		 "d = json.load(open(sys.argv[1]))['daemon']\n"
		 "assert d['joins'] == 0 and d['resets'] == 1, d\n",
		 ts_path("reset.json"));
	CHECK(dt_peer_join(&c3, sock, NVEC) == 0);
	dt_peer_close(&c3);
	usleep(100000);
	CHECK(run(args, ts_path("stats3.json"), out, sizeof(out)) == 0);
	py_check("stats after a join and a leave",
		 "d = json.load(open(sys.argv[1]))['daemon']\n"
		 "assert d['joins'] == 1 and d['leaves'] == 1, d\n",
		 ts_path("stats3.json"));
	CHECK(run("stats --reset --shm x", ts_path("e"), out, sizeof(out)) == 2);

	/* metrics: OpenMetrics text. */
	snprintf(args, sizeof(args), "metrics --socket %s", sock);
	CHECK(run(args, ts_path("metrics.txt"), out, sizeof(out)) == 0);
	printf("%s", out);
	py_check("metrics", om_check, ts_path("metrics.txt"));

	/* Nothing disturbed the peers (the joins of c3 aside). */
	dt_peer_pump(&a, 100);
	dt_peer_pump(&b, 10);
	CHECK(dt_quiet(a.sock, 100) && dt_quiet(b.sock, 10));
	dt_peer_close(&a);
	dt_peer_close(&b);
	CHECK(WIFEXITED(ts_daemon_stop(d, SIGTERM)));
	printf("PASS ivlinkctl_monitor\n");
	return 0;
}
