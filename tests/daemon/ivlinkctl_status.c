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

static struct dt_ctl_fixture F;

int main(void)
{
	static char out[65536];
	char args[400], py[1200], buf[128];

	ts_init("ivlinkctl", 60);
	dt_ctl_fixture(&F, IVLINKD, "ctl", "east", NULL);
	/* 100 bytes west->east, 40 read. */
	memset(buf, 'x', sizeof(buf));
	CHECK(ivl_ring_write(&F.prod, buf, 100, 0) == 100);
	CHECK(ivl_ring_read(&F.cons, buf, 40) == 40);

	/* Text. */
	snprintf(args, sizeof(args), "status --socket %s", ts_path("sock"));
	CHECK(dt_run(IVLINKCTL, args, ts_path("out.txt"), out, sizeof(out)) == 0,
	      "ivlinkctl failed: %s", out);
	printf("%s", out);
	CHECK(strstr(out, "west") && strstr(out, "east"));
	CHECK(strstr(out, "CHANNELS (1)") && strstr(out, "echo") && strstr(out, "stream"));
	CHECK(strstr(out, "<->") && strstr(out, "fill 60/4096") && strstr(out, "bytes 100"));

	/* JSON, checked by python3 when it is there. */
	snprintf(args, sizeof(args), "status --json --socket %s", ts_path("sock"));
	CHECK(dt_run(IVLINKCTL, args, ts_path("out.json"), out, sizeof(out)) == 0,
	      "ivlinkctl --json failed");
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
		    (int)F.daemon, ts_path("out.json"));
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
		CHECK(dt_run(IVLINKCTL, args, ts_path("out3.json"), out, sizeof(out)) == 0,
		      "ivlinkctl with IVLINK_ENDPOINT=%s failed", ep);
		CHECK(strstr(out, "\"west\"") && strstr(out, "\"east\""));
		setenv("IVLINK_ENDPOINT", ts_path("sock"), 1);
		CHECK(dt_run(IVLINKCTL, args, ts_path("out3.json"), out, sizeof(out)) == 0,
		      "ivlinkctl with IVLINK_ENDPOINT=%s failed", ts_path("sock"));
		CHECK(strstr(out, "\"west\"") && strstr(out, "\"east\""));
		/* An option wins over the variable. */
		setenv("IVLINK_ENDPOINT", "host:/nonexistent/sock", 1);
		snprintf(args, sizeof(args), "status --json --socket %s", ts_path("sock"));
		CHECK(dt_run(IVLINKCTL, args, ts_path("out3.json"), out, sizeof(out)) == 0);
		CHECK(dt_run(IVLINKCTL, "status", ts_path("e"), out, sizeof(out)) == 1);
		unsetenv("IVLINK_ENDPOINT");
	}

	/* --shm: no daemon needed, same peers. */
	snprintf(args, sizeof(args), "status --json --shm %s", F.name);
	CHECK(dt_run(IVLINKCTL, args, ts_path("out2.json"), out, sizeof(out)) == 0);
	CHECK(strstr(out, "\"daemon\":null") && strstr(out, "\"west\"") && strstr(out, "\"east\""));

	/* Errors: usage 2, no daemon 1. */
	CHECK(dt_run(IVLINKCTL, "--bogus", ts_path("e"), out, sizeof(out)) == 2);
	CHECK(dt_run(IVLINKCTL, "status --socket /nonexistent/sock", ts_path("e"), out,
		     sizeof(out)) == 1);
	CHECK(dt_run(IVLINKCTL, "--help", ts_path("h"), out, sizeof(out)) == 0 &&
	      strstr(out, "JSON OUTPUT"));

	/* The status requests did not disturb the peers. */
	CHECK(dt_quiet(F.a.sock, 100) && dt_quiet(F.b.sock, 10));
	dt_peer_close(&F.a);
	dt_peer_close(&F.b);
	CHECK(WIFEXITED(ts_daemon_stop(F.daemon, SIGTERM)));
	printf("PASS ivlinkctl_status\n");
	return 0;
}
