/* SPDX-License-Identifier: MIT */
/*
 * ivlinkctl status against a live ivlinkd with two raw peers joined and one
 * channel between them carrying data: the text output names both peers and
 * the channel, --json parses (python3) and carries the same numbers, without
 * an option it asks the daemon $IVLINK_ENDPOINT names (host:PATH or PATH;
 * --socket wins), --shm reads the region without the daemon, and ivlinkctl
 * never writes it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <ivlink/ring.h>

#include "dtest.h"

#define NVEC 2

static int nop_kick(void *ctx)
{
	return 0;
}

static int nop_block(void *ctx, int64_t ns)
{
	return -ETIMEDOUT;
}

static int run(const char *args, const char *outfile, char *out, size_t len)
{
	char cmd[700];
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

int main(void)
{
	static char out[65536];
	const struct ivl_notifier nt = {.kick = nop_kick, .block = nop_block};
	struct ivl_ctab_params cp = {
	    .name = "echo", .mode = IVL_MODE_STREAM, .ring_size = 4096, .rx_vector = 1};
	struct ivl_ctab_remote ma, mb; /* a's and b's view of the other half */
	struct ivl_ring prod, cons;
	struct ivl_peer_view pa, pb;
	struct dt_peer a, b;
	char name[64], args[400], py[1200], buf[128];
	int sa, sb;
	pid_t d;

	ts_init("ivlinkctl", 60);
	snprintf(name, sizeof(name), "ivlink-ctl-test-%d", (int)getpid());
	ts_track_shm(name);
	{
		const char *const extra[] = {"-m", name, "-l", "4M", "-n", "2", NULL};

		d = ts_daemon_spawn(IVLINKD, ts_path("sock"), extra, &dt_daemon_opts, NULL);
	}
	CHECK(d > 0);
	CHECK(dt_peer_join(&a, ts_path("sock"), NVEC) == 0 && a.id == 0);
	CHECK(dt_peer_join(&b, ts_path("sock"), NVEC) == 0 && b.id == 1);
	dt_peer_pump(&a, 100);
	strcpy(ivl_region_peer(&a.rg, 0)->name, "west");
	ivl_region_peer(&a.rg, 0)->backend = IVL_BACKEND_HOST;
	strcpy(ivl_region_peer(&b.rg, 1)->name, "east");
	ivl_region_peer(&b.rg, 1)->backend = IVL_BACKEND_HOST;

	/* A channel "echo" between them; 100 bytes west->east, 40 read. */
	CHECK(ivl_region_peer_view(&a.rg, 0, &pa) == 0 && ivl_region_peer_view(&a.rg, 1, &pb) == 0);
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
	memset(buf, 'x', sizeof(buf));
	CHECK(ivl_ring_write(&prod, buf, 100, 0) == 100);
	CHECK(ivl_ring_read(&cons, buf, 40) == 40);

	/* Text. */
	snprintf(args, sizeof(args), "status --socket %s", ts_path("sock"));
	CHECK(run(args, ts_path("out.txt"), out, sizeof(out)) == 0, "ivlinkctl failed: %s", out);
	printf("%s", out);
	CHECK(strstr(out, "west") && strstr(out, "east"));
	CHECK(strstr(out, "CHANNELS (1)") && strstr(out, "echo") && strstr(out, "stream"));
	CHECK(strstr(out, "<->") && strstr(out, "fill 60/4096") && strstr(out, "bytes 100"));

	/* JSON, checked by python3 when it is there. */
	snprintf(args, sizeof(args), "status --json --socket %s", ts_path("sock"));
	CHECK(run(args, ts_path("out.json"), out, sizeof(out)) == 0, "ivlinkctl --json failed");
	if (system("python3 -c 'import json' >/dev/null 2>&1") == 0) {
		snprintf(
		    py, sizeof(py),
		    "python3 -c 'import json,sys\n"
		    "d=json.load(open(sys.argv[1]))\n"
		    "p=d[\"peers\"]\n"
		    "assert [x[\"id\"] for x in p]==[0,1], p\n"
		    "assert [x[\"name\"] for x in p]==[\"west\",\"east\"], p\n"
		    "assert all(x[\"state\"]==\"up\" and x[\"backend\"]==\"host\" for x in p)\n"
		    "assert all(x[\"connected_s\"] is not None for x in p)\n"
		    "assert d[\"region\"][\"vectors\"]==2 and d[\"region\"][\"size\"]==4194304\n"
		    "assert d[\"daemon\"][\"pid\"]==%d\n"
		    "c=d[\"channels\"]\n"
		    "assert len(c)==1 and c[0][\"name\"]==\"echo\" and c[0][\"matched\"], c\n"
		    "ab=c[0][\"a_to_b\"]\n"
		    "assert ab[\"bytes\"]==100 and ab[\"fill\"]==60 and ab[\"size\"]==4096, ab\n"
		    "assert c[0][\"b_to_a\"][\"bytes\"]==0\n"
		    "' %s",
		    (int)d, ts_path("out.json"));
		CHECK(system(py) == 0, "JSON check failed: %s", out);
	} else {
		printf("python3 not found: JSON not validated\n");
	}

	/* No option: the daemon of $IVLINK_ENDPOINT, in its host:PATH and
	 * bare PATH forms (as the library reads it), the same region. */
	snprintf(args, sizeof(args), "status --json");
	{
		char ep[300];

		snprintf(ep, sizeof(ep), "host:%s", ts_path("sock"));
		setenv("IVLINK_ENDPOINT", ep, 1);
		CHECK(run(args, ts_path("out3.json"), out, sizeof(out)) == 0,
		      "ivlinkctl with IVLINK_ENDPOINT=%s failed", ep);
		CHECK(strstr(out, "\"west\"") && strstr(out, "\"east\""));
		setenv("IVLINK_ENDPOINT", ts_path("sock"), 1);
		CHECK(run(args, ts_path("out3.json"), out, sizeof(out)) == 0,
		      "ivlinkctl with IVLINK_ENDPOINT=%s failed", ts_path("sock"));
		CHECK(strstr(out, "\"west\"") && strstr(out, "\"east\""));
		/* An option wins over the variable. */
		setenv("IVLINK_ENDPOINT", "host:/nonexistent/sock", 1);
		snprintf(args, sizeof(args), "status --json --socket %s", ts_path("sock"));
		CHECK(run(args, ts_path("out3.json"), out, sizeof(out)) == 0);
		CHECK(run("status", ts_path("e"), out, sizeof(out)) == 1);
		unsetenv("IVLINK_ENDPOINT");
	}

	/* --shm: no daemon needed, same peers. */
	snprintf(args, sizeof(args), "status --json --shm %s", name);
	CHECK(run(args, ts_path("out2.json"), out, sizeof(out)) == 0);
	CHECK(strstr(out, "\"daemon\":null") && strstr(out, "\"west\"") && strstr(out, "\"east\""));

	/* Errors: usage 2, no daemon 1. */
	CHECK(run("--bogus", ts_path("e"), out, sizeof(out)) == 2);
	CHECK(run("status --socket /nonexistent/sock", ts_path("e"), out, sizeof(out)) == 1);
	CHECK(run("--help", ts_path("h"), out, sizeof(out)) == 0 && strstr(out, "JSON OUTPUT"));

	/* The status requests did not disturb the peers. */
	CHECK(dt_quiet(a.sock, 100) && dt_quiet(b.sock, 10));
	dt_peer_close(&a);
	dt_peer_close(&b);
	CHECK(WIFEXITED(ts_daemon_stop(d, SIGTERM)));
	printf("PASS ivlinkctl_status\n");
	return 0;
}
