/* SPDX-License-Identifier: MIT */
/* ivlink-ring-bench: the goals, the human report and the JSON object. */
#define _GNU_SOURCE
#include "ring_bench.h"

/* ----------------------------------------------------------------- output */

static const char *const goal_names[4] = {
    "ring p50 RTT <= 2x cache-line floor",
    ">= 100x lower p50 RTT than TCP loopback",
    "64 KiB stream >= 50% of memcpy",
    ">= 10 M msgs/s, 64 B one way, batched",
};

struct goals {
	double value[4], target[4];
	bool met[4];
};

static const struct tput *tput_of(const struct results *r, uint32_t size)
{
	for (size_t i = 0; i < N_SIZES; i++)
		if (r->tp[i].size == size)
			return &r->tp[i];
	return &r->tp[0];
}

static void eval_goals(const struct results *r, struct goals *g)
{
	const struct tput *t64 = tput_of(r, 64), *t64k = tput_of(r, 65536);

	g->value[0] = (double)r->ring.p50 / (double)r->floor.p50;
	g->target[0] = 2.0;
	g->met[0] = g->value[0] <= g->target[0];
	g->value[1] = (double)r->tcp64.p50 / (double)r->ring.p50;
	g->target[1] = 100.0;
	g->met[1] = g->value[1] >= g->target[1];
	g->value[2] = 100.0 * t64k->gbps / t64k->memcpy_gbps;
	g->target[2] = 50.0;
	g->met[2] = g->value[2] >= g->target[2];
	g->value[3] = t64->msgs_per_s;
	g->target[3] = 1e7;
	g->met[3] = g->value[3] >= g->target[3];
}

static void size_str(char *buf, size_t len, uint32_t size)
{
	if (size >= (1u << 20))
		snprintf(buf, len, "%u MiB", size >> 20);
	else if (size >= 1024)
		snprintf(buf, len, "%u KiB", size >> 10);
	else
		snprintf(buf, len, "%u B", size);
}

static void print_lat(const char *name, const struct lat *l)
{
	printf("  %-38s %8zu %9" PRId64 " %9" PRId64 " %9" PRId64 "\n", name, l->n, l->p50, l->p99,
	       l->p999);
}

/* A figure of the peers table: "-" where it does not apply. */
static void peer_fig(char *buf, size_t len, double v, double scale, int prec, const char *unit)
{
	if (v < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.*f%s", prec, v / scale, unit);
}

static void print_peers(const struct bench *b, const struct rb_peers *pr)
{
	printf("\nPeers: %u B messages between two threads on CPUs %d and %d, both sides\n"
	       "copying, %u interleaved rounds (%zu round trips, %u ms one way per queue\n"
	       "and round), medians; RTT/floor against a floor measured just before\n",
	       RB_PEER_MSG, b->cpu[0], b->cpu[1], pr->rounds, pr->rtt_iters, pr->oneway_ms);
	printf("  %-34s %10s %10s %12s %11s\n", "queue", "RTT p50 ns", "RTT/floor", "1-way msgs/s",
	       "instr/pair");
	for (int i = 0; i < RB_PEERS; i++) {
		const struct rb_peer_row *row = &pr->row[i];
		char rtt[32], ratio[32], mps[32], ins[32];

		if (row->why_not) {
			printf("  %-34s %s\n", row->name, row->why_not);
			continue;
		}
		peer_fig(rtt, sizeof(rtt), row->rtt_p50_ns, 1, 0, "");
		peer_fig(ratio, sizeof(ratio), row->rtt_vs_floor, 1, 2, "x");
		peer_fig(mps, sizeof(mps), row->msgs_per_s, 1e6, 1, " M");
		peer_fig(ins, sizeof(ins), row->instr_per_pair, 1, 0, "");
		printf("  %-34s %10s %10s %12s %11s\n", row->name, rtt, ratio, mps, ins);
	}
	if (!pr->instructions)
		printf("  (instructions per send+recv pair: --instructions, under callgrind)\n");
	else if (pr->instr_why)
		printf("  (instructions not counted: %s)\n", pr->instr_why);
	else
		printf("  (instructions: callgrind, one thread, per send+recv pair)\n");
}

/* A JSON number, or null for -1 (does not apply, not measured). */
static void json_fig(const char *key, double v, const char *sep)
{
	if (v < 0)
		printf("\"%s\": null%s", key, sep);
	else
		printf("\"%s\": %.3f%s", key, v, sep);
}

static void json_peers(const struct rb_peers *pr)
{
	printf("  \"peers\": {\n    \"rounds\": %u, \"rtt_iters\": %zu, \"oneway_ms\": %u,\n",
	       pr->rounds, pr->rtt_iters, pr->oneway_ms);
	printf("    \"msg_bytes\": %u, \"instructions\": %s, \"instr_why\": ", RB_PEER_MSG,
	       pr->instr_done ? "true" : "false");
	if (pr->instr_why)
		printf("\"%s\",\n", pr->instr_why);
	else
		printf("null,\n");
	printf("    \"rows\": [\n");
	for (int i = 0; i < RB_PEERS; i++) {
		const struct rb_peer_row *row = &pr->row[i];

		printf("      {\"key\": \"%s\", \"name\": \"%s\", \"built\": %s, \"why_not\": ",
		       row->key, row->name, row->why_not ? "false" : "true");
		if (row->why_not)
			printf("\"%s\", ", row->why_not);
		else
			printf("null, ");
		json_fig("rtt_p50_ns", row->why_not ? -1 : row->rtt_p50_ns, ", ");
		json_fig("rtt_vs_floor", row->why_not ? -1 : row->rtt_vs_floor, ", ");
		json_fig("msgs_per_s", row->why_not ? -1 : row->msgs_per_s, ", ");
		json_fig("instr_per_pair", row->instr_per_pair, "}");
		printf("%s\n", i + 1 < RB_PEERS ? "," : "");
	}
	printf("    ]\n  },\n");
}

void rb_print_human(const struct bench *b, const struct results *r)
{
	struct goals g;
	const struct tput *t64 = tput_of(r, 64), *t64k = tput_of(r, 65536);
	char sz[16];

	eval_goals(r, &g);
	if (b->pinned)
		printf("ivlink-ring-bench: 2 processes pinned to CPUs %d and %d; memfd region, "
		       "eventfd wake-ups\n",
		       b->cpu[0], b->cpu[1]);
	else
		printf("ivlink-ring-bench: WARNING: fewer than 2 usable CPUs, processes NOT "
		       "pinned; latencies are meaningless\n");
	printf("clock_gettime overhead %.0f ns (inside every latency sample)%s\n\n", r->clock_ns,
	       b->o.quick ? "; --quick run" : "");

	printf("Round-trip latency, ns                  samples       p50       p99     p99.9\n");
	print_lat("cache-line ping-pong (floor)", &r->floor);
	print_lat("cache-line ping-pong, pause in spin", &r->floor_pause);
	print_lat("ring 64 B, spinning", &r->ring);
	print_lat("ring 64 B, blocking (spin_ns=0)", &r->ring_block);
	print_lat("diag: ring, lazy head publication", &r->ring_lazy);
	print_lat("TCP loopback 1 B, TCP_NODELAY", &r->tcp1);
	print_lat("TCP loopback 64 B, TCP_NODELAY", &r->tcp64);
	print_lat("UNIX socketpair 1 B", &r->unix1);
	print_lat("UNIX socketpair 64 B", &r->unix64);
	printf("  (eventfd kicks per blocking round trip, 2.00 when every wait slept: %.2f)\n\n",
	       r->block_kicks_per_rtt);

	printf("One-way throughput (median of %u windows, ring %u KiB; batched below 64 KiB)\n",
	       b->o.quick ? 3u : 5u, b->o.ring_kib);
	printf(
	    "      size  mode          msgs/s      GB/s  memcpy GB/s  ring/memcpy  commits/msg\n");
	for (size_t i = 0; i < N_SIZES; i++) {
		const struct tput *t = &r->tp[i];

		size_str(sz, sizeof(sz), t->size);
		printf("  %8s  %-7s %12.0f %9.2f %12.2f %11.0f%% %12.2f\n", sz,
		       t->stream ? "stream" : "message", t->msgs_per_s, t->gbps, t->memcpy_gbps,
		       100.0 * t->gbps / t->memcpy_gbps, t->commits_per_msg);
	}

	printf("\nRatios (same run)\n");
	printf("  ring p50 / floor p50              %8.2fx\n", g.value[0]);
	printf("  TCP 64 B p50 / ring p50           %8.1fx   (1 B: %.1fx)\n", g.value[1],
	       (double)r->tcp1.p50 / (double)r->ring.p50);
	printf("  UNIX 64 B p50 / ring p50          %8.1fx   (1 B: %.1fx)\n",
	       (double)r->unix64.p50 / (double)r->ring.p50,
	       (double)r->unix1.p50 / (double)r->ring.p50);
	printf("  blocking ring p50 / spinning p50  %8.1fx\n",
	       (double)r->ring_block.p50 / (double)r->ring.p50);
	printf("  64 KiB ring GB/s / memcpy GB/s    %8.1f%%   (%.2f / %.2f GB/s)\n", g.value[2],
	       t64k->gbps, t64k->memcpy_gbps);
	printf(
	    "  64 KiB ring GB/s / cross-core copy %7.1f%%   (diag ceiling, no ring: %.2f GB/s)\n",
	    100.0 * t64k->gbps / r->xcopy_gbps, r->xcopy_gbps);
	printf("  64 B messages/s                   %8.2f M\n", t64->msgs_per_s / 1e6);

	print_peers(b, &r->peers);

	printf("\nGoals (issue 2; reported, not enforced)\n");
	for (int i = 0; i < 4; i++) {
		char v[32];

		if (i == 3)
			snprintf(v, sizeof(v), "%.2f M/s", g.value[i] / 1e6);
		else if (i == 2)
			snprintf(v, sizeof(v), "%.1f%%", g.value[i]);
		else
			snprintf(v, sizeof(v), "%.2fx", g.value[i]);
		printf("  %-42s %12s   %s\n", goal_names[i], v, g.met[i] ? "met" : "not met");
	}
}

static void json_lat(const char *prefix, const struct lat *l, int p50_suffix)
{
	printf("  \"%s_rtt%s_ns\": %" PRId64 ",\n", prefix, p50_suffix ? "_p50" : "", l->p50);
	printf("  \"%s_rtt_p99_ns\": %" PRId64 ",\n", prefix, l->p99);
	printf("  \"%s_rtt_p999_ns\": %" PRId64 ",\n", prefix, l->p999);
}

static void json_array(const char *key, const struct results *r, int which, int last)
{
	printf("  \"%s\": [", key);
	for (size_t i = 0; i < N_SIZES; i++) {
		const struct tput *t = &r->tp[i];

		if (i)
			printf(", ");
		switch (which) {
		case 0:
			printf("%u", t->size);
			break;
		case 1:
			printf("\"%s\"", t->stream ? "stream" : "message");
			break;
		case 2:
			printf("%.1f", t->msgs_per_s);
			break;
		case 3:
			printf("%.4f", t->gbps);
			break;
		case 4:
			printf("%.4f", t->memcpy_gbps);
			break;
		case 5:
			printf("%.2f", 100.0 * t->gbps / t->memcpy_gbps);
			break;
		default:
			printf("%.3f", t->commits_per_msg);
		}
	}
	printf("]%s\n", last ? "" : ",");
}

void rb_print_json(const struct bench *b, const struct results *r)
{
	static const char *const goal_keys[4] = {
	    "rtt_vs_floor",
	    "tcp_vs_ring",
	    "gbps_64k_pct_of_memcpy",
	    "msgs_per_s_64b",
	};
	const struct tput *t64 = tput_of(r, 64), *t64k = tput_of(r, 65536);
	struct goals g;

	eval_goals(r, &g);
	printf("{\n");
	printf("  \"tool\": \"ivlink-ring-bench\",\n  \"schema\": 1,\n");
	printf("  \"quick\": %s,\n  \"pinned\": %s,\n", b->o.quick ? "true" : "false",
	       b->pinned ? "true" : "false");
	printf("  \"cpus\": [%d, %d],\n", b->cpu[0], b->cpu[1]);
	printf("  \"iters\": %u,\n  \"slow_iters\": %u,\n", b->o.iters, b->o.slow_iters);
	printf("  \"duration_ms\": %u,\n  \"ring_kib\": %u,\n", b->o.duration_ms, b->o.ring_kib);
	printf("  \"clock_overhead_ns\": %.1f,\n", r->clock_ns);
	json_lat("floor", &r->floor, 0);
	printf("  \"floor_pause_rtt_ns\": %" PRId64 ",\n", r->floor_pause.p50);
	json_lat("ring", &r->ring, 1);
	json_lat("ring_block", &r->ring_block, 1);
	printf("  \"ring_block_kicks_per_rtt\": %.3f,\n", r->block_kicks_per_rtt);
	printf("  \"ring_lazy_rtt_p50_ns\": %" PRId64 ",\n", r->ring_lazy.p50);
	json_lat("tcp", &r->tcp64, 1);
	json_lat("tcp_1b", &r->tcp1, 1);
	json_lat("unix", &r->unix64, 1);
	json_lat("unix_1b", &r->unix1, 1);
	printf("  \"msgs_per_s_64b\": %.1f,\n", t64->msgs_per_s);
	printf("  \"gbps_64b\": %.4f,\n", t64->gbps);
	printf("  \"gbps_64k\": %.4f,\n", t64k->gbps);
	printf("  \"memcpy_gbps_64k\": %.4f,\n", t64k->memcpy_gbps);
	printf("  \"ring_rtt_vs_floor\": %.3f,\n", g.value[0]);
	printf("  \"tcp_vs_ring_rtt\": %.2f,\n", g.value[1]);
	printf("  \"unix_vs_ring_rtt\": %.2f,\n", (double)r->unix64.p50 / (double)r->ring.p50);
	printf("  \"gbps_64k_pct_of_memcpy\": %.2f,\n", g.value[2]);
	printf("  \"xcopy_gbps_64k\": %.4f,\n", r->xcopy_gbps);
	printf("  \"gbps_64k_pct_of_xcopy\": %.2f,\n", 100.0 * t64k->gbps / r->xcopy_gbps);
	json_array("sizes", r, 0, 0);
	json_array("tput_mode", r, 1, 0);
	json_array("tput_msgs_per_s", r, 2, 0);
	json_array("tput_gbps", r, 3, 0);
	json_array("memcpy_gbps", r, 4, 0);
	json_array("tput_pct_of_memcpy", r, 5, 0);
	json_array("tput_commits_per_msg", r, 6, 0);
	json_peers(&r->peers);
	printf("  \"goals\": {\n");
	for (int i = 0; i < 4; i++)
		printf("    \"%s\": {\"target\": %g, \"value\": %.3f, \"met\": %s}%s\n",
		       goal_keys[i], g.target[i], g.value[i], g.met[i] ? "true" : "false",
		       i < 3 ? "," : "");
	printf("  }\n}\n");
}
