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

static struct dt_ctl_fixture F;
static int stop;

/* West writes to east and east reads it back, about 256 KiB/s. */
static void *traffic(void *arg)
{
	char buf[256];

	(void)arg;
	memset(buf, 'y', sizeof(buf));
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		if (ivl_ring_write(&F.prod, buf, sizeof(buf), 0) > 0)
			while (ivl_ring_read(&F.cons, buf, sizeof(buf)) > 0)
				;
		usleep(1000);
	}
	return NULL;
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
	CHECK(dt_run(IVLINKCTL, args, ts_path("f.json"), out, sizeof(out)) == 0, "status %s failed",
	      filter);
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

/* What a socket shim on west publishes: its counters, a listener on port
 * 6379; on east a fallback note 40000 -> 7000. */
static void shim_notes(struct dt_ctl_fixture *f)
{
	struct ivl_shim_half sh;
	struct ivl_peer_shim *ps;

	ps = &ivl_region_peer(&f->a.rg, 0)->shim;
	ps->magic = IVL_SHIM_MAGIC;
	ps->accelerated = 3;
	ps->fallbacks = 2;
	ps->by_reason[IVL_FB_TIMEOUT] = 2;
	ps->last_reason = IVL_FB_TIMEOUT;
	memset(&sh, 0, sizeof(sh));
	sh.kind = IVL_SHIM_LISTEN;
	sh.family = 2;
	sh.lport = htons(6379);
	sh.owner_pid = (uint32_t)getpid();
	CHECK(ivl_ctab_note(&f->a.rg, 0, f->pa.epoch, IVL_CHAN_LISTEN, IVL_SLOT_NONE, "tcp", &sh) >=
	      0);
	sh.kind = IVL_SHIM_FALLBACK;
	sh.lport = htons(40000);
	sh.rport = htons(7000);
	sh.reason = IVL_FB_TIMEOUT;
	CHECK(ivl_ctab_note(&f->b.rg, 1, f->pb.epoch, IVL_CHAN_NOTE, 0, "tcp", &sh) >= 0);
}

int main(void)
{
	static char out[262144];
	struct dt_peer c3;
	char args[400], py[2048];
	pthread_t th;

	ts_init("ivlinkctl_monitor", 120);
	if (system("python3 -c 'import json, re' >/dev/null 2>&1") != 0) {
		printf("SKIP: python3 not found\n");
		return TS_SKIP;
	}
	/* A quote and a backslash in east's name: escaped in the OpenMetrics
	 * label. The channel "echo", west -> east, with data moving. */
	dt_ctl_fixture(&F, IVLINKD, "mon", "ea\"st\\", shim_notes);
	CHECK(pthread_create(&th, NULL, traffic, NULL) == 0);

	/* status -i 0.2 -c 3 --json: three NDJSON lines with rates. */
	snprintf(args, sizeof(args), "status -i 0.2 -c 3 --json --socket %s", F.sock);
	CHECK(dt_run(IVLINKCTL, args, ts_path("watch.json"), out, sizeof(out)) == 0,
	      "status -i failed");
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
	snprintf(args, sizeof(args), "status -i 0.1 -c 2 --socket %s", F.sock);
	CHECK(dt_run(IVLINKCTL, args, ts_path("watch.txt"), out, sizeof(out)) == 0);
	printf("%s", out);
	CHECK(strstr(out, "RING TX") && strstr(out, "west") &&
	      strstr(strstr(out, "total") + 5, "total"));
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);

	/* Filters. */
	filter_case(
	    F.sock, "",
	    "assert peers == [0, 1] and len(chans) == 1 and len(socks) == 2 and shim == [0]");
	filter_case(F.sock, "--peer 1",
		    "assert peers == [1] and chans == [(0, 1)] and socks == [(1, 'fallback')] and "
		    "shim == []");
	filter_case(F.sock, "--peer 0",
		    "assert peers == [0] and chans == [(0, 1)] and socks == [(0, 'listen')] and "
		    "shim == [0]");
	snprintf(py, sizeof(py), "--pid %d", (int)getpid());
	filter_case(F.sock, py, "assert peers == [0, 1] and len(chans) == 1 and len(socks) == 2");
	{
		/* A pid that does not exist (pid_max is at most 4194304). */
		pid_t nopid = 4194303;

		while (kill(nopid, 0) == 0 || errno != ESRCH)
			nopid--;
		snprintf(py, sizeof(py), "--pid %d", (int)nopid);
		filter_case(F.sock, py,
			    "assert peers == [] and chans == [] and socks == [] and shim == []");
		snprintf(args, sizeof(args), "status --socket %s --pid %d", F.sock, (int)nopid);
		CHECK(dt_run(IVLINKCTL, args, ts_path("f.txt"), out, sizeof(out)) == 0);
		CHECK(!strstr(out, "west") && strstr(out, "CHANNELS (0)") &&
		      !strstr(out, "SOCKET SHIM"));
	}
	filter_case(F.sock, "--port 6379",
		    "assert peers == [0, 1] and chans == [] and socks == [(0, 'listen')]");
	filter_case(F.sock, "--port 7000", "assert chans == [] and socks == [(1, 'fallback')]");
	filter_case(F.sock, "--port 1", "assert chans == [] and socks == []");
	filter_case(F.sock, "--listening", "assert chans == [] and socks == [(0, 'listen')]");
	filter_case(F.sock, "--listening --port 7000", "assert socks == []");
	/* A filter is for status only; a bad value is a usage error. */
	CHECK(dt_run(IVLINKCTL, "stats --pid 1", ts_path("e"), out, sizeof(out)) == 2);
	CHECK(dt_run(IVLINKCTL, "status --pid 0", ts_path("e"), out, sizeof(out)) == 2);
	CHECK(dt_run(IVLINKCTL, "status -i 0", ts_path("e"), out, sizeof(out)) == 2);
	CHECK(dt_run(IVLINKCTL, "status -i -1", ts_path("e"), out, sizeof(out)) == 2);
	CHECK(dt_run(IVLINKCTL, "status -c 3", ts_path("e"), out, sizeof(out)) == 2);

	/* stats: both joins counted; --reset clears them; a new join counts. */
	snprintf(args, sizeof(args), "stats --socket %s", F.sock);
	CHECK(dt_run(IVLINKCTL, args, ts_path("stats.txt"), out, sizeof(out)) == 0);
	printf("%s", out);
	CHECK(strstr(out, "joins          2") && strstr(out, "timeout=2"));
	snprintf(args, sizeof(args), "stats --json --socket %s", F.sock);
	CHECK(dt_run(IVLINKCTL, args, ts_path("stats.json"), out, sizeof(out)) == 0);
	py_check(
	    "stats --json",
	    "d = json.load(open(sys.argv[1]))\n"
	    "print(d)\n"
	    "assert d['schema'] == 2\n"
	    "assert d['daemon']['joins'] >= 2 and d['daemon']['resets'] == 0, d\n"
	    "assert d['shim']['fallbacks'] == 2 and d['shim']['reasons'] == {'timeout': 2}, d\n",
	    ts_path("stats.json"));
	snprintf(args, sizeof(args), "stats --reset --json --socket %s", F.sock);
	CHECK(dt_run(IVLINKCTL, args, ts_path("reset.json"), out, sizeof(out)) == 0);
	snprintf(args, sizeof(args), "stats --json --socket %s", F.sock);
	CHECK(dt_run(IVLINKCTL, args, ts_path("stats2.json"), out, sizeof(out)) == 0);
	py_check("stats after --reset",
		 "d = json.load(open(sys.argv[1]))['daemon']\n"
		 "print(d)\n"
		 "assert d['joins'] == 0 and d['leaves'] == 0 and d['resets'] == 1, d\n",
		 ts_path("stats2.json"));
	py_check("stats --reset output",
		 "d = json.load(open(sys.argv[1]))['daemon']\n"
		 "assert d['joins'] == 0 and d['resets'] == 1, d\n",
		 ts_path("reset.json"));
	CHECK(dt_peer_join(&c3, F.sock, DT_CTL_NVEC) == 0);
	dt_peer_close(&c3);
	usleep(100000);
	CHECK(dt_run(IVLINKCTL, args, ts_path("stats3.json"), out, sizeof(out)) == 0);
	py_check("stats after a join and a leave",
		 "d = json.load(open(sys.argv[1]))['daemon']\n"
		 "assert d['joins'] == 1 and d['leaves'] == 1, d\n",
		 ts_path("stats3.json"));
	CHECK(dt_run(IVLINKCTL, "stats --reset --shm x", ts_path("e"), out, sizeof(out)) == 2);

	/* metrics: OpenMetrics text. */
	snprintf(args, sizeof(args), "metrics --socket %s", F.sock);
	CHECK(dt_run(IVLINKCTL, args, ts_path("metrics.txt"), out, sizeof(out)) == 0);
	printf("%s", out);
	py_check("metrics", om_check, ts_path("metrics.txt"));

	/* Nothing disturbed the peers (the joins of c3 aside). */
	dt_peer_pump(&F.a, 100);
	dt_peer_pump(&F.b, 10);
	CHECK(dt_quiet(F.a.sock, 100) && dt_quiet(F.b.sock, 10));
	dt_peer_close(&F.a);
	dt_peer_close(&F.b);
	CHECK(WIFEXITED(ts_daemon_stop(F.daemon, SIGTERM)));
	printf("PASS ivlinkctl_monitor\n");
	return 0;
}
