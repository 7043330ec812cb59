/* SPDX-License-Identifier: MIT */
/* The ivlinkctl tests' daemon, peers and channel: see dtest.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <ivlink/ring.h>

#include "dtest.h"

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

static const struct ivl_notifier nop_notifier = {.kick = nop_kick, .block = nop_block};

void dt_ctl_fixture(struct dt_ctl_fixture *f, const char *bin, const char *tag,
		    const char *east_name, void (*before_channel)(struct dt_ctl_fixture *f))
{
	struct ivl_ctab_params cp = {
	    .name = "echo", .mode = IVL_MODE_STREAM, .ring_size = 4096, .rx_vector = 1};
	struct ivl_chan_half *ha, *hb;

	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "ivlink-%s-test-%d", tag, (int)getpid());
	snprintf(f->sock, sizeof(f->sock), "%s", ts_path("sock"));
	ts_track_shm(f->name);
	{
		const char *const extra[] = {"-m", f->name, "-l", "4M", "-n", "2", NULL};

		f->daemon = ts_daemon_spawn(bin, f->sock, extra, &dt_daemon_opts, NULL);
	}
	CHECK(f->daemon > 0);
	CHECK(dt_peer_join(&f->a, f->sock, DT_CTL_NVEC) == 0 && f->a.id == 0);
	CHECK(dt_peer_join(&f->b, f->sock, DT_CTL_NVEC) == 0 && f->b.id == 1);
	dt_peer_pump(&f->a, 100);
	snprintf(ivl_region_peer(&f->a.rg, 0)->name, IVL_PEER_NAME_MAX, "%s", "west");
	ivl_region_peer(&f->a.rg, 0)->backend = IVL_BACKEND_HOST;
	snprintf(ivl_region_peer(&f->b.rg, 1)->name, IVL_PEER_NAME_MAX, "%s", east_name);
	ivl_region_peer(&f->b.rg, 1)->backend = IVL_BACKEND_HOST;
	CHECK(ivl_region_peer_view(&f->a.rg, 0, &f->pa) == 0 &&
	      ivl_region_peer_view(&f->a.rg, 1, &f->pb) == 0);
	if (before_channel)
		before_channel(f);

	/* The channel "echo": a's half {echo, remote 1}, b's {echo, remote 0}. */
	cp.remote = 1;
	f->sa = ivl_ctab_offer(&f->a.rg, 0, f->pa.epoch, &cp, NULL);
	cp.remote = 0;
	f->sb = ivl_ctab_offer(&f->b.rg, 1, f->pb.epoch, &cp, NULL);
	CHECK(f->sa >= 0 && f->sb >= 0);
	CHECK(ivl_ctab_match(&f->a.rg, 0, (uint32_t)f->sa, &f->ma) == 0);
	CHECK(ivl_ctab_match(&f->b.rg, 1, (uint32_t)f->sb, &f->mb) == 0);
	ha = ivl_region_chan(&f->a.rg, 0, (uint32_t)f->sa);
	hb = ivl_region_chan(&f->b.rg, 1, (uint32_t)f->sb);
	CHECK(ivl_ring_init_producer(&f->prod, &ha->tx_prod,
				     &ivl_region_chan(&f->a.rg, 1, (uint32_t)f->sb)->rx_cons,
				     ivl_region_ptr(&f->a.rg, ha->tx_data_off, 4096), 4096,
				     IVL_MODE_STREAM, 0, &nop_notifier) == 0);
	CHECK(ivl_ring_init_consumer(
		  &f->cons, &ivl_region_chan(&f->b.rg, 0, (uint32_t)f->sa)->tx_prod, &hb->rx_cons,
		  ivl_region_ptr(&f->b.rg, f->mb.remote_tx_data_off, 4096), 4096, IVL_MODE_STREAM,
		  0, &nop_notifier) == 0);
}

int dt_run(const char *bin, const char *args, const char *outfile, char *out, size_t len)
{
	char cmd[800];
	FILE *f;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "%s %s > %s", bin, args, outfile);
	st = system(cmd);
	f = fopen(outfile, "r");
	CHECK(f, "%s: %s", outfile, strerror(errno));
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	fclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
