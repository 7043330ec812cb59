/* SPDX-License-Identifier: MIT */
/* ivlink-bench: gnuplot scripts and PNG plots of a run. */
#define _GNU_SOURCE
#include "ivb.h"

/* Space-separated modes that have rows for a panel, for gnuplot's
 * "for [m in ...]": a curve without a single point is an error there. */
enum panel { P_CDF, P_TPUT, P_RTT_CPU };

static void panel_modes(char *buf, size_t len, enum panel p, uint32_t size)
{
	char modes[MAX_ROWS][32];
	size_t nm = ivb_row_modes(modes, MAX_ROWS);

	buf[0] = 0;
	for (size_t i = 0; i < nm; i++) {
		bool has = false;

		for (size_t k = 0; k < ivb_store.n_lat && p != P_TPUT; k++) {
			const struct lat_row *l = &ivb_store.lat[k];

			if (strcmp(l->mode, modes[i]) == 0 &&
			    (p == P_CDF ? l->have_cdf && l->size == size : l->cli_cpu_ns > 0))
				has = true;
		}
		for (size_t k = 0; k < ivb_store.n_tput && p == P_TPUT; k++)
			if (strcmp(ivb_store.tput[k].mode, modes[i]) == 0 &&
			    ivb_store.tput[k].msgs > 0)
				has = true;
		if (has && strlen(buf) + strlen(modes[i]) + 2 < len) {
			strcat(buf, buf[0] ? " " : "");
			strcat(buf, modes[i]);
		}
	}
}

/* One panel: the plot command over the modes with data, or an empty frame
 * saying there is none. */
static void plot_panel(FILE *f, const char *modes, const char *plot)
{
	if (!modes[0]) {
		fprintf(f, "set label 1 'no data in this run' at graph 0.35,0.5\n"
			   "plot [1:2][1:2] -1 notitle\nunset label 1\n");
		return;
	}
	fprintf(f, "modes = \"%s\"\n%s\n", modes, plot);
}

/* gnuplot: a script next to the CSV files, run there. Modes and sizes are
 * written into the script so that each curve filters its rows. */
int ivb_write_plots(void)
{
	char path[PATH_MAX], list[2048], cmd[512];
	uint32_t lsz[MAX_SIZES * 2];
	size_t nl = 0;
	pid_t pid;
	int status;
	FILE *f;

	/* Latency sizes with a CDF (rows from other tools have none). */
	for (size_t i = 0; i < ivb_store.n_lat; i++) {
		size_t j;

		if (!ivb_store.lat[i].have_cdf)
			continue;
		for (j = 0; j < nl && lsz[j] != ivb_store.lat[i].size; j++)
			;
		if (j == nl && nl < MAX_SIZES * 2)
			lsz[nl++] = ivb_store.lat[i].size;
	}
	for (size_t i = 1; i < nl; i++)
		for (size_t j = i; j > 0 && lsz[j - 1] > lsz[j]; j--) {
			uint32_t t = lsz[j];

			lsz[j] = lsz[j - 1];
			lsz[j - 1] = t;
		}
	f = ivb_open_out("plots.gp", path, sizeof(path));
	if (!f)
		return -errno;
	fprintf(f, "# SPDX-License-Identifier: MIT\n"
		   "# Written by ivlink-bench: plots of the CSV files in this folder.\n"
		   "set datafile separator comma\n"
		   "set terminal pngcairo size 1500,520 font 'sans,10'\n"
		   "set grid\nset key below horizontal font 'sans,9'\n");
	/* Latency CDF, one panel per size. */
	fprintf(f,
		"set output 'latency_cdf.png'\nset multiplot layout 1,%zu title "
		"'Round-trip latency CDF (ivlink-bench)'\n"
		"set logscale x\nset xlabel 'round trip (us)'\nset ylabel 'fraction of round "
		"trips'\nset yrange [0:1]\n",
		nl ? nl : 1);
	for (size_t s = 0; s < nl || s == 0; s++) {
		uint32_t size = nl ? lsz[s] : 64;

		fprintf(f, "set title '%u bytes'\n", size);
		panel_modes(list, sizeof(list), P_CDF, size);
		snprintf(cmd, sizeof(cmd),
			 "plot for [m in modes] 'latency_cdf.csv' using "
			 "(strcol(1) eq m && $2 == %u ? $4/1000.0 : NaN):3 with lines lw 2 title m",
			 size);
		plot_panel(f, nl ? list : "", cmd);
	}
	fprintf(f, "unset multiplot\nunset logscale\nset yrange [*:*]\n");
	/* Throughput vs size: GB/s and messages/s. */
	panel_modes(list, sizeof(list), P_TPUT, 0);
	fprintf(f, "set output 'throughput.png'\nset multiplot layout 1,2 title 'One-way "
		   "throughput vs message size (ivlink-bench)'\n"
		   "set logscale x 2\nset logscale y 10\nset xlabel 'message size (bytes)'\n"
		   "set xtics ('64' 64, '256' 256, '1K' 1024, '4K' 4096, '16K' 16384, "
		   "'64K' 65536, '256K' 262144, '1M' 1048576)\n"
		   "set title 'GB/s'\nset ylabel 'GB/s (10^9 bytes/s)'\n");
	plot_panel(f, list,
		   "plot for [m in modes] 'throughput.csv' using (strcol(1) eq m ? $2 : NaN):7 "
		   "with linespoints lw 2 title m");
	fprintf(f, "set title 'messages/s'\nset ylabel 'messages/s'\n");
	plot_panel(f, list,
		   "plot for [m in modes] 'throughput.csv' using (strcol(1) eq m ? $2 : NaN):6 "
		   "with linespoints lw 2 title m");
	fprintf(f, "unset multiplot\n");
	/* CPU per message (throughput) and per round trip (latency). */
	fprintf(f, "set output 'cpu.png'\nset multiplot layout 1,2 title 'CPU cost, both ends "
		   "(ivlink-bench)'\n"
		   "set title 'CPU per message, one-way stream'\nset ylabel 'CPU ns per message "
		   "(sender + receiver)'\n");
	plot_panel(f, list,
		   "plot for [m in modes] 'throughput.csv' using (strcol(1) eq m ? $2 : NaN):10 "
		   "with linespoints lw 2 title m");
	fprintf(f, "set title 'CPU per round trip'\nset ylabel 'CPU ns per round trip (client + "
		   "server)'\n");
	panel_modes(list, sizeof(list), P_RTT_CPU, 0);
	plot_panel(f, list,
		   "plot for [m in modes] 'latency.csv' using (strcol(1) eq m && $11 > 0 ? $2 : "
		   "NaN):($11+$12) with linespoints lw 2 title m");
	fprintf(f, "unset multiplot\n");
	fclose(f);

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (chdir(ivb_opt.out) < 0)
			_exit(127);
		execlp("gnuplot", "gnuplot", "plots.gp", (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		ivb_msg("gnuplot failed (exit %d)%s", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			WIFEXITED(status) && WEXITSTATUS(status) == 127
			    ? ": not installed? (scripts/ivl-deps plot)"
			    : "");
		return -EIO;
	}
	return 0;
}
