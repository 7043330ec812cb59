/* SPDX-License-Identifier: MIT */
/* ivlink-bench: the human table and the output files (CSV, JSON). */
#define _GNU_SOURCE
#include "ivb.h"

/* ------------------------------------------------------------ human table */

static void size_str(char *buf, size_t len, uint32_t size)
{
	if (size >= (1u << 20) && size % (1u << 20) == 0)
		snprintf(buf, len, "%u MiB", size >> 20);
	else if (size >= 1024 && size % 1024 == 0)
		snprintf(buf, len, "%u KiB", size >> 10);
	else
		snprintf(buf, len, "%u B", size);
}

void ivb_us(char *buf, size_t len, bool have, double ns)
{
	if (!have)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f", ns / 1000.0);
}

void ivb_print_human(FILE *f)
{
	char modes[MAX_ROWS][32];
	size_t nm = ivb_row_modes(modes, MAX_ROWS);
	char sz[16], a[16], b[16], c[16], d[16], e[16], g[16], h[16];

	fprintf(f, "ivlink-bench results");
	for (size_t i = 0; i < ivb_store.n_meta; i++)
		fprintf(f, "%s %s=%s", i ? "," : ":", ivb_store.meta[i][0], ivb_store.meta[i][1]);
	fprintf(
	    f, "\n\nRound-trip latency in us (percentiles of n round trips); CPU us per round "
	       "trip on each end;\nspeed-up = baseline p50 / p50 (baseline: tcp, in VMs vm-tcp)\n");
	fprintf(f, "%-14s %8s %7s %8s %8s %8s %8s %9s %8s %8s %8s\n", "mode", "size", "n", "p50",
		"p90", "p99", "p99.9", "max", "cpu-cli", "cpu-srv", "speed-up");
	for (size_t mi = 0; mi < nm; mi++) {
		for (size_t i = 0; i < ivb_store.n_lat; i++) {
			const struct lat_row *l = &ivb_store.lat[i];
			const struct lat_row *base =
			    ivb_find_lat(ivb_baseline_of(l->mode), l->size);
			char ratio[16] = "-";

			if (strcmp(l->mode, modes[mi]) != 0)
				continue;
			size_str(sz, sizeof(sz), l->size);
			ivb_us(a, sizeof(a), l->have_pct, (double)l->p50);
			ivb_us(b, sizeof(b), l->have_pct, (double)l->p90);
			ivb_us(c, sizeof(c), l->have_pct, (double)l->p99);
			ivb_us(d, sizeof(d), l->have_pct, (double)l->p999);
			ivb_us(e, sizeof(e), l->max > 0, (double)l->max);
			ivb_us(g, sizeof(g), l->cli_cpu_ns > 0, l->cli_cpu_ns);
			ivb_us(h, sizeof(h), l->srv_cpu_ns > 0, l->srv_cpu_ns);
			if (base && base->have_pct && l->have_pct && l->p50 > 0)
				snprintf(ratio, sizeof(ratio), "%.2fx",
					 (double)base->p50 / (double)l->p50);
			else if (!l->have_pct && l->avg > 0)
				snprintf(a, sizeof(a), "avg %.1f", l->avg / 1000.0);
			fprintf(f, "%-14s %8s %7" PRIu64 " %8s %8s %8s %8s %9s %8s %8s %8s\n",
				l->mode, sz, l->n, a, b, c, d, e, g, h, ratio);
		}
	}
	fprintf(f, "\nThroughput, one-way, one send/recv call per message; CPU ns per message "
		   "(sender, receiver, both);\nvs base = GB/s over the baseline's; CPU less = "
		   "CPU per message below the baseline's\n");
	fprintf(f, "%-14s %8s %11s %8s %9s %9s %9s %10s %8s %9s\n", "mode", "size", "msgs/s",
		"GB/s", "cpu-snd", "cpu-rcv", "cpu-both", "cpu ns/B", "vs base", "CPU less");
	for (size_t mi = 0; mi < nm; mi++) {
		for (size_t i = 0; i < ivb_store.n_tput; i++) {
			const struct tput_row *t = &ivb_store.tput[i];
			const struct tput_row *base =
			    ivb_find_tput(ivb_baseline_of(t->mode), t->size);
			char r1[16] = "-", r2[16] = "-";

			if (strcmp(t->mode, modes[mi]) != 0)
				continue;
			size_str(sz, sizeof(sz), t->size);
			if (base && base != t && ivb_t_gbps(base) > 0)
				snprintf(r1, sizeof(r1), "%.2fx", ivb_t_gbps(t) / ivb_t_gbps(base));
			if (base && base != t) {
				double p = ivb_cpu_pct_less(ivb_t_cpu_per_msg(t, 2),
							    ivb_t_cpu_per_msg(base, 2));

				if (!isnan(p))
					snprintf(r2, sizeof(r2), "%.0f%%", p);
			}
			fprintf(f, "%-14s %8s %11.0f %8.3f %9.0f %9.0f %9.0f %10.3f %8s %9s\n",
				t->mode, sz, ivb_t_msgs_per_s(t), ivb_t_gbps(t),
				ivb_t_cpu_per_msg(t, 0), ivb_t_cpu_per_msg(t, 1),
				ivb_t_cpu_per_msg(t, 2), ivb_t_cpu_per_byte(t, 2), r1, r2);
		}
	}
	/* The goal, per mode: CPU per 64-byte message (throughput)
	 * and per 64-byte round trip, against the same run's TCP. */
	fprintf(f, "\nGoal (issue 6): >= 90%% less CPU per message than TCP (reported, not "
		   "asserted)\n");
	for (size_t mi = 0; mi < nm; mi++) {
		const char *m = modes[mi], *bm = ivb_baseline_of(m);
		const struct tput_row *t = ivb_find_tput(m, 64), *tb = ivb_find_tput(bm, 64);
		const struct lat_row *l = ivb_find_lat(m, 64), *lb = ivb_find_lat(bm, 64);

		if (strcmp(m, bm) == 0 || strcmp(m, "unix") == 0)
			continue;
		if (t && tb) {
			double p =
			    ivb_cpu_pct_less(ivb_t_cpu_per_msg(t, 2), ivb_t_cpu_per_msg(tb, 2));

			fprintf(
			    f,
			    "  %-14s 64 B stream:     %6.1f%% less CPU per message than %s: %s\n",
			    m, p, bm, p >= 90 ? "met" : "not met");
		}
		if (l && lb && l->cli_cpu_ns > 0 && lb->cli_cpu_ns > 0) {
			double p = ivb_cpu_pct_less(l->cli_cpu_ns + l->srv_cpu_ns,
						    lb->cli_cpu_ns + lb->srv_cpu_ns);

			fprintf(f,
				"  %-14s 64 B round trip: %6.1f%% less CPU per round trip than %s: "
				"%s\n",
				m, p, bm, p >= 90 ? "met" : "not met");
		}
	}
	for (size_t i = 0; i < ivb_store.n_skipped; i++)
		fprintf(f, "skipped %s\n", ivb_store.skipped[i]);
	for (size_t i = 0; i < ivb_store.n_failed; i++)
		fprintf(f, "FAILED %s\n", ivb_store.failed[i]);
}

/* ------------------------------------------------------------ files */

FILE *ivb_open_out(const char *name, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", ivb_opt.out, name);
	f = fopen(path, "w");
	if (!f)
		ivb_msg("cannot write %s: %s", path, strerror(errno));
	return f;
}

/* JSON number, or null for a figure that does not exist (NAN). */
static void jnum(FILE *f, const char *key, double v, bool comma)
{
	if (isnan(v) || isinf(v))
		fprintf(f, "\"%s\": null%s", key, comma ? ", " : "");
	else
		fprintf(f, "\"%s\": %.6g%s", key, v, comma ? ", " : "");
}

static void jstr(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static int write_csv(void)
{
	char path[PATH_MAX];
	FILE *f;

	f = ivb_open_out("latency.csv", path, sizeof(path));
	if (!f)
		return -errno;
	fprintf(f, "mode,size,n,min_ns,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,avg_ns,"
		   "cli_cpu_ns_per_rtt,srv_cpu_ns_per_rtt,p50_speedup_vs_base\n");
	for (size_t i = 0; i < ivb_store.n_lat; i++) {
		const struct lat_row *l = &ivb_store.lat[i];
		const struct lat_row *b = ivb_find_lat(ivb_baseline_of(l->mode), l->size);

		fprintf(f, "%s,%u,%" PRIu64 ",%" PRId64 ",", l->mode, l->size, l->n, l->min);
		if (l->have_pct)
			fprintf(f, "%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",", l->p50,
				l->p90, l->p99, l->p999);
		else
			fprintf(f, ",,,,");
		fprintf(f, "%" PRId64 ",%.0f,%.0f,%.0f,", l->max, l->avg, l->cli_cpu_ns,
			l->srv_cpu_ns);
		if (b && b->have_pct && l->have_pct && l->p50 > 0)
			fprintf(f, "%.4f", (double)b->p50 / (double)l->p50);
		fputc('\n', f);
	}
	fclose(f);

	f = ivb_open_out("latency_cdf.csv", path, sizeof(path));
	if (!f)
		return -errno;
	fprintf(f, "mode,size,quantile,ns\n");
	for (size_t i = 0; i < ivb_store.n_lat; i++) {
		const struct lat_row *l = &ivb_store.lat[i];

		for (int q = 0; l->have_cdf && q < NQ; q++)
			fprintf(f, "%s,%u,%.4f,%" PRId64 "\n", l->mode, l->size, cdf_q(q),
				l->cdf[q]);
	}
	fclose(f);

	f = ivb_open_out("throughput.csv", path, sizeof(path));
	if (!f)
		return -errno;
	fprintf(f, "mode,size,msgs,bytes,seconds,msgs_per_s,gbps,snd_cpu_ns_per_msg,"
		   "rcv_cpu_ns_per_msg,cpu_ns_per_msg,snd_cpu_ns_per_byte,rcv_cpu_ns_per_byte,"
		   "gbps_vs_base,cpu_pct_less_than_base\n");
	for (size_t i = 0; i < ivb_store.n_tput; i++) {
		const struct tput_row *t = &ivb_store.tput[i];
		const struct tput_row *b = ivb_find_tput(ivb_baseline_of(t->mode), t->size);

		fprintf(f, "%s,%u,%" PRIu64 ",%" PRIu64 ",%.6f,%.0f,%.6f,%.1f,%.1f,%.1f,%.5f,%.5f,",
			t->mode, t->size, t->msgs, t->bytes, (double)t->ns / 1e9,
			ivb_t_msgs_per_s(t), ivb_t_gbps(t), ivb_t_cpu_per_msg(t, 0),
			ivb_t_cpu_per_msg(t, 1), ivb_t_cpu_per_msg(t, 2), ivb_t_cpu_per_byte(t, 0),
			ivb_t_cpu_per_byte(t, 1));
		if (b && ivb_t_gbps(b) > 0) {
			double p =
			    ivb_cpu_pct_less(ivb_t_cpu_per_msg(t, 2), ivb_t_cpu_per_msg(b, 2));

			fprintf(f, "%.4f,", ivb_t_gbps(t) / ivb_t_gbps(b));
			if (!isnan(p))
				fprintf(f, "%.2f", p);
		} else {
			fputc(',', f);
		}
		fputc('\n', f);
	}
	fclose(f);
	return 0;
}

static const char *const plot_files[] = {"latency_cdf.png", "throughput.png", "cpu.png"};

static int write_json(bool plotted)
{
	char path[PATH_MAX], modes[MAX_ROWS][32];
	size_t nm = ivb_row_modes(modes, MAX_ROWS);
	FILE *f = ivb_open_out("results.json", path, sizeof(path));

	if (!f)
		return -errno;
	fprintf(f, "{\"tool\": \"ivlink-bench\", \"schema\": 1,\n \"meta\": {");
	for (size_t i = 0; i < ivb_store.n_meta; i++) {
		fprintf(f, "%s", i ? ", " : "");
		jstr(f, ivb_store.meta[i][0]);
		fprintf(f, ": ");
		jstr(f, ivb_store.meta[i][1]);
	}
	fprintf(f, "},\n \"modes\": [");
	for (size_t i = 0; i < nm; i++) {
		fprintf(f, "%s", i ? ", " : "");
		jstr(f, modes[i]);
	}
	fprintf(f, "],\n \"skipped\": [");
	for (size_t i = 0; i < ivb_store.n_skipped; i++) {
		fprintf(f, "%s", i ? ", " : "");
		jstr(f, ivb_store.skipped[i]);
	}
	fprintf(f, "],\n \"failed\": [");
	for (size_t i = 0; i < ivb_store.n_failed; i++) {
		fprintf(f, "%s", i ? ", " : "");
		jstr(f, ivb_store.failed[i]);
	}
	fprintf(f, "],\n \"latency\": [");
	for (size_t i = 0; i < ivb_store.n_lat; i++) {
		const struct lat_row *l = &ivb_store.lat[i];
		const struct lat_row *b = ivb_find_lat(ivb_baseline_of(l->mode), l->size);

		fprintf(f, "%s\n  {\"mode\": ", i ? "," : "");
		jstr(f, l->mode);
		fprintf(f, ", \"baseline\": ");
		jstr(f, ivb_baseline_of(l->mode));
		fprintf(f, ", \"size\": %u, \"n\": %" PRIu64 ", ", l->size, l->n);
		jnum(f, "min_ns", (double)l->min, true);
		jnum(f, "p50_ns", l->have_pct ? (double)l->p50 : NAN, true);
		jnum(f, "p90_ns", l->have_pct ? (double)l->p90 : NAN, true);
		jnum(f, "p99_ns", l->have_pct ? (double)l->p99 : NAN, true);
		jnum(f, "p999_ns", l->have_pct ? (double)l->p999 : NAN, true);
		jnum(f, "max_ns", (double)l->max, true);
		jnum(f, "avg_ns", l->avg, true);
		jnum(f, "cli_cpu_ns_per_rtt", l->cli_cpu_ns > 0 ? l->cli_cpu_ns : NAN, true);
		jnum(f, "srv_cpu_ns_per_rtt", l->srv_cpu_ns > 0 ? l->srv_cpu_ns : NAN, true);
		jnum(f, "p50_speedup_vs_base",
		     b && b->have_pct && l->have_pct && l->p50 > 0 ? (double)b->p50 / (double)l->p50
								   : NAN,
		     true);
		jnum(f, "cpu_pct_less_than_base",
		     b && b != l && l->cli_cpu_ns > 0 && b->cli_cpu_ns > 0
			 ? ivb_cpu_pct_less(l->cli_cpu_ns + l->srv_cpu_ns,
					    b->cli_cpu_ns + b->srv_cpu_ns)
			 : NAN,
		     false);
		fprintf(f, "}");
	}
	fprintf(f, "],\n \"throughput\": [");
	for (size_t i = 0; i < ivb_store.n_tput; i++) {
		const struct tput_row *t = &ivb_store.tput[i];
		const struct tput_row *b = ivb_find_tput(ivb_baseline_of(t->mode), t->size);

		fprintf(f, "%s\n  {\"mode\": ", i ? "," : "");
		jstr(f, t->mode);
		fprintf(f, ", \"baseline\": ");
		jstr(f, ivb_baseline_of(t->mode));
		fprintf(f, ", \"size\": %u, \"msgs\": %" PRIu64 ", \"bytes\": %" PRIu64 ", ",
			t->size, t->msgs, t->bytes);
		jnum(f, "seconds", (double)t->ns / 1e9, true);
		jnum(f, "msgs_per_s", ivb_t_msgs_per_s(t), true);
		jnum(f, "gbps", ivb_t_gbps(t), true);
		jnum(f, "snd_cpu_ns_per_msg", ivb_t_cpu_per_msg(t, 0), true);
		jnum(f, "rcv_cpu_ns_per_msg", ivb_t_cpu_per_msg(t, 1), true);
		jnum(f, "cpu_ns_per_msg", ivb_t_cpu_per_msg(t, 2), true);
		jnum(f, "snd_cpu_ns_per_byte", ivb_t_cpu_per_byte(t, 0), true);
		jnum(f, "rcv_cpu_ns_per_byte", ivb_t_cpu_per_byte(t, 1), true);
		jnum(f, "gbps_vs_base",
		     b && ivb_t_gbps(b) > 0 ? ivb_t_gbps(t) / ivb_t_gbps(b) : NAN, true);
		jnum(f, "cpu_pct_less_than_base",
		     b && b != t
			 ? ivb_cpu_pct_less(ivb_t_cpu_per_msg(t, 2), ivb_t_cpu_per_msg(b, 2))
			 : NAN,
		     false);
		fprintf(f, "}");
	}
	/* One goal entry per non-baseline mode with a 64 B throughput row. */
	fprintf(f, "],\n \"goals\": [");
	bool first = true;

	for (size_t mi = 0; mi < nm; mi++) {
		const char *m = modes[mi], *bm = ivb_baseline_of(m);
		const struct tput_row *t = ivb_find_tput(m, 64), *tb = ivb_find_tput(bm, 64);
		double p;

		if (strcmp(m, bm) == 0 || !t || !tb)
			continue;
		p = ivb_cpu_pct_less(ivb_t_cpu_per_msg(t, 2), ivb_t_cpu_per_msg(tb, 2));
		fprintf(f, "%s\n  {\"goal\": \"cpu_per_msg_64b_pct_less_than_tcp\", \"mode\": ",
			first ? "" : ",");
		jstr(f, m);
		fprintf(f, ", \"baseline\": ");
		jstr(f, bm);
		fprintf(f, ", \"target\": 90, ");
		jnum(f, "value", p, true);
		fprintf(f, "\"met\": %s}", !isnan(p) && p >= 90 ? "true" : "false");
		first = false;
	}
	fprintf(f, "],\n \"files\": [\"latency.csv\", \"latency_cdf.csv\", \"throughput.csv\"");
	for (size_t i = 0; plotted && i < sizeof(plot_files) / sizeof(plot_files[0]); i++)
		fprintf(f, ", \"%s\"", plot_files[i]);
	fprintf(f, "]}\n");
	fclose(f);
	return 0;
}

static int mkdir_p(const char *dir)
{
	char buf[PATH_MAX];

	if (ivb_fmt(buf, sizeof(buf), "%s", dir) < 0)
		return -ENAMETOOLONG;
	for (char *p = buf + 1;; p++) {
		char c = *p;

		if (c != '/' && c != 0)
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = c;
		if (c == 0)
			return 0;
	}
}

int ivb_write_outputs(void)
{
	bool plotted = false;
	int rc;

	rc = mkdir_p(ivb_opt.out);
	if (rc < 0) {
		ivb_msg("cannot create %s: %s", ivb_opt.out, strerror(-rc));
		return rc;
	}
	rc = write_csv();
	if (rc == 0 && ivb_opt.plot)
		plotted = ivb_write_plots() == 0;
	if (rc == 0)
		rc = write_json(plotted);
	if (rc == 0) {
		char path[PATH_MAX];
		FILE *f = ivb_open_out("results.txt", path, sizeof(path));

		if (f) {
			ivb_print_human(f);
			fclose(f);
		}
		/* The result lines again, so that a run can be re-reported
		 * (--from results.ivb) or merged with another. */
		f = ivb_open_out("results.ivb", path, sizeof(path));
		if (f) {
			fprintf(f, "IVB meta");
			for (size_t i = 0; i < ivb_store.n_meta; i++) {
				fprintf(f, " %s=", ivb_store.meta[i][0]);
				for (const char *q = ivb_store.meta[i][1]; *q; q++)
					fputc(*q == ' ' ? '_' : *q, f);
			}
			fputc('\n', f);
			ivb_print_result_lines(f, &ivb_store);
			for (size_t i = 0; i < ivb_store.n_skipped; i++) {
				char mode[32];

				snprintf(mode, sizeof(mode), "%.*s",
					 (int)strcspn(ivb_store.skipped[i], ":"),
					 ivb_store.skipped[i]);
				fprintf(f, "IVB skip mode=%s reason=", mode);
				for (const char *q = ivb_store.skipped[i] + strlen(mode) + 2; *q;
				     q++)
					fputc(*q == ' ' ? '_' : *q, f);
				fputc('\n', f);
			}
			fclose(f);
		}
		ivb_msg("wrote %s/{results.json,results.txt,latency.csv,latency_cdf.csv,"
			"throughput.csv%s}",
			ivb_opt.out, plotted ? ",latency_cdf.png,throughput.png,cpu.png" : "");
	}
	return rc;
}
