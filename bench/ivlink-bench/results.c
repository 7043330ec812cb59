/* SPDX-License-Identifier: MIT */
/* ivlink-bench: result lines ("IVB ..."), the store they fill, derived figures. */
#define _GNU_SOURCE
#include "ivb.h"

/* ------------------------------------------------------------ result lines */

static void print_cdf(FILE *f, const struct lat_row *l)
{
	fprintf(f, "IVB cdf mode=%s size=%u v=", l->mode, l->size);
	for (int i = 0; i < NQ; i++)
		fprintf(f, "%s%" PRId64, i ? "," : "", l->cdf[i]);
	fputc('\n', f);
}

/*
 * The result lines, one result each, "IVB <kind> key=value ...":
 *   IVB lat  mode= size= n= min= p50= p90= p99= p999= max= avg= cli_cpu_ns=
 *            srv_cpu_ns=        (ns; the CPU figures per round trip)
 *   IVB cdf  mode= size= v=Q0,...,Q103   (latency at the quantiles of cdf_q())
 *   IVB tput mode= size= msgs= bytes= ns= snd_cpu_ns= rcv_cpu_ns=   (ns: the
 *            receiver's elapsed time; CPU: each end, whole test)
 *   IVB meta KEY=VALUE ...      (run metadata, e.g. accel=tcg)
 *   IVB skip mode= reason=      (a mode that could not run; '_' for spaces)
 * A lat line may carry only n, min, avg, max (rows measured by other tools,
 * e.g. ivlink-vfio-probe's doorbell round trips).
 */
void ivb_print_result_lines(FILE *f, const struct store *s)
{
	for (size_t i = 0; i < s->n_lat; i++) {
		const struct lat_row *l = &s->lat[i];

		fprintf(f,
			"IVB lat mode=%s size=%u n=%" PRIu64 " min=%" PRId64 " p50=%" PRId64
			" p90=%" PRId64 " p99=%" PRId64 " p999=%" PRId64 " max=%" PRId64
			" avg=%.0f cli_cpu_ns=%.0f srv_cpu_ns=%.0f\n",
			l->mode, l->size, l->n, l->min, l->p50, l->p90, l->p99, l->p999, l->max,
			l->avg, l->cli_cpu_ns, l->srv_cpu_ns);
		if (l->have_cdf)
			print_cdf(f, l);
	}
	for (size_t i = 0; i < s->n_tput; i++) {
		const struct tput_row *t = &s->tput[i];

		fprintf(f,
			"IVB tput mode=%s size=%u msgs=%" PRIu64 " bytes=%" PRIu64 " ns=%" PRId64
			" snd_cpu_ns=%.0f rcv_cpu_ns=%.0f\n",
			t->mode, t->size, t->msgs, t->bytes, t->ns, t->snd_cpu_ns, t->rcv_cpu_ns);
	}
}

/* Value of key in a line of "key=value" words, copied into out. */
bool ivb_kv(const char *line, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);

	for (const char *p = line; (p = strstr(p, key)) != NULL; p += kl) {
		if ((p == line || p[-1] == ' ') && p[kl] == '=') {
			size_t n = strcspn(p + kl + 1, " \r\n");

			if (n >= len)
				n = len - 1;
			memcpy(out, p + kl + 1, n);
			out[n] = 0;
			return true;
		}
	}
	return false;
}

static bool kv_i64(const char *line, const char *key, int64_t *v)
{
	char buf[32], *end;

	if (!ivb_kv(line, key, buf, sizeof(buf)) || !buf[0])
		return false;
	*v = (int64_t)strtod(buf, &end);
	return *end == 0;
}

void ivb_add_note(char (*list)[160], size_t *n, size_t max, const char *mode, const char *why)
{
	if (*n < max)
		ivb_fmt(list[(*n)++], 160, "%s: %s", mode, why);
}

void ivb_add_meta(const char *key, const char *val)
{
	for (size_t i = 0; i < ivb_store.n_meta; i++) {
		if (strcmp(ivb_store.meta[i][0], key) == 0) {
			snprintf(ivb_store.meta[i][1], sizeof(ivb_store.meta[i][1]), "%s", val);
			return;
		}
	}
	if (ivb_store.n_meta < sizeof(ivb_store.meta) / sizeof(ivb_store.meta[0])) {
		snprintf(ivb_store.meta[ivb_store.n_meta][0], sizeof(ivb_store.meta[0][0]), "%s",
			 key);
		snprintf(ivb_store.meta[ivb_store.n_meta][1], sizeof(ivb_store.meta[0][1]), "%s",
			 val);
		ivb_store.n_meta++;
	}
}

struct lat_row *ivb_find_lat(const char *mode, uint32_t size)
{
	for (size_t i = 0; i < ivb_store.n_lat; i++)
		if (ivb_store.lat[i].size == size && strcmp(ivb_store.lat[i].mode, mode) == 0)
			return &ivb_store.lat[i];
	return NULL;
}

struct tput_row *ivb_find_tput(const char *mode, uint32_t size)
{
	for (size_t i = 0; i < ivb_store.n_tput; i++)
		if (ivb_store.tput[i].size == size && strcmp(ivb_store.tput[i].mode, mode) == 0)
			return &ivb_store.tput[i];
	return NULL;
}

/* Parses one result line (anything before "IVB " is ignored, e.g. a console
 * prefix). Returns true if it was one. A repeated (mode, size) replaces the
 * earlier row. */
bool ivb_parse_result_line(const char *raw)
{
	const char *line = strstr(raw, "IVB ");
	char mode[32], buf[160];
	int64_t v;

	if (!line)
		return false;
	line += 4;
	if (strncmp(line, "meta ", 5) == 0) {
		const char *p = line + 5;

		while (*p) {
			char key[64];
			size_t n = strcspn(p, "= \r\n");

			if (p[n] != '=' || n == 0 || n >= sizeof(key))
				break;
			memcpy(key, p, n);
			key[n] = 0;
			if (ivb_kv(line, key, buf, sizeof(buf))) {
				for (char *q = buf; *q; q++)
					if (*q == '_')
						*q = ' ';
				ivb_add_meta(key, buf);
			}
			p += n + 1 + strcspn(p + n + 1, " \r\n");
			p += strspn(p, " \r\n");
		}
		return true;
	}
	if (!ivb_kv(line, "mode", mode, sizeof(mode)))
		return false;
	if (strncmp(line, "skip ", 5) == 0) {
		if (!ivb_kv(line, "reason", buf, sizeof(buf)))
			snprintf(buf, sizeof(buf), "skipped");
		for (char *q = buf; *q; q++)
			if (*q == '_')
				*q = ' ';
		ivb_add_note(ivb_store.skipped, &ivb_store.n_skipped, MAX_MODES * 2, mode, buf);
		return true;
	}
	if (!kv_i64(line, "size", &v) || v < 0 || v > (int64_t)MAX_MSG)
		return false;
	uint32_t size = (uint32_t)v;

	if (strncmp(line, "lat ", 4) == 0) {
		struct lat_row *l = ivb_find_lat(mode, size);

		if (!l) {
			if (ivb_store.n_lat >= MAX_ROWS)
				return false;
			l = &ivb_store.lat[ivb_store.n_lat++];
		}
		memset(l, 0, sizeof(*l));
		snprintf(l->mode, sizeof(l->mode), "%s", mode);
		l->size = size;
		if (kv_i64(line, "n", &v))
			l->n = (uint64_t)v;
		kv_i64(line, "min", &l->min);
		kv_i64(line, "max", &l->max);
		if (kv_i64(line, "avg", &v))
			l->avg = (double)v;
		l->have_pct = kv_i64(line, "p50", &l->p50) && kv_i64(line, "p90", &l->p90) &&
			      kv_i64(line, "p99", &l->p99) && kv_i64(line, "p999", &l->p999);
		if (kv_i64(line, "cli_cpu_ns", &v))
			l->cli_cpu_ns = (double)v;
		if (kv_i64(line, "srv_cpu_ns", &v))
			l->srv_cpu_ns = (double)v;
		return true;
	}
	if (strncmp(line, "cdf ", 4) == 0) {
		struct lat_row *l = ivb_find_lat(mode, size);
		const char *p = strstr(line, " v=");
		int i;

		if (!l || !p)
			return false;
		p += 3;
		for (i = 0; i < NQ && *p; i++) {
			char *end;

			l->cdf[i] = strtoll(p, &end, 10);
			if (end == p)
				break;
			p = *end == ',' ? end + 1 : end;
		}
		l->have_cdf = i == NQ;
		return true;
	}
	if (strncmp(line, "tput ", 5) == 0) {
		struct tput_row *t = ivb_find_tput(mode, size);
		int64_t a = 0, b = 0;

		if (!t) {
			if (ivb_store.n_tput >= MAX_ROWS)
				return false;
			t = &ivb_store.tput[ivb_store.n_tput++];
		}
		memset(t, 0, sizeof(*t));
		snprintf(t->mode, sizeof(t->mode), "%s", mode);
		t->size = size;
		if (kv_i64(line, "msgs", &v))
			t->msgs = (uint64_t)v;
		if (kv_i64(line, "bytes", &v))
			t->bytes = (uint64_t)v;
		kv_i64(line, "ns", &t->ns);
		kv_i64(line, "snd_cpu_ns", &a);
		kv_i64(line, "rcv_cpu_ns", &b);
		t->snd_cpu_ns = (double)a;
		t->rcv_cpu_ns = (double)b;
		return true;
	}
	return false;
}

int ivb_read_result_file(const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char line[4096];
	int n = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		n += ivb_parse_result_line(line);
	if (f != stdin)
		fclose(f);
	return n;
}

/* ------------------------------------------------------------ derived */

/* Baseline of a row: TCP of the same place (host or VMs). */
const char *ivb_baseline_of(const char *mode)
{
	return strncmp(mode, "vm-", 3) == 0 ? "vm-tcp" : "tcp";
}

double ivb_t_msgs_per_s(const struct tput_row *t)
{
	return t->ns > 0 ? (double)t->msgs * 1e9 / (double)t->ns : 0;
}

double ivb_t_gbps(const struct tput_row *t)
{
	return t->ns > 0 ? (double)t->bytes / (double)t->ns : 0;
}

double ivb_t_cpu_per_msg(const struct tput_row *t, int which) /* 0 snd, 1 rcv, 2 both */
{
	double c = which == 0	? t->snd_cpu_ns
		   : which == 1 ? t->rcv_cpu_ns
				: t->snd_cpu_ns + t->rcv_cpu_ns;

	return t->msgs ? c / (double)t->msgs : 0;
}

double ivb_t_cpu_per_byte(const struct tput_row *t, int which)
{
	double c = which == 0	? t->snd_cpu_ns
		   : which == 1 ? t->rcv_cpu_ns
				: t->snd_cpu_ns + t->rcv_cpu_ns;

	return t->bytes ? c / (double)t->bytes : 0;
}

/* Percent less CPU per message than the baseline (negative: more);
 * NAN without a baseline. */
double ivb_cpu_pct_less(double mine, double base)
{
	return base > 0 && mine > 0 ? 100.0 * (1.0 - mine / base) : NAN;
}

/* Ordered list of the distinct modes of the rows, in order of appearance. */
size_t ivb_row_modes(char (*out)[32], size_t max)
{
	size_t n = 0;

	for (size_t k = 0; k < ivb_store.n_lat + ivb_store.n_tput; k++) {
		const char *m = k < ivb_store.n_lat ? ivb_store.lat[k].mode
						    : ivb_store.tput[k - ivb_store.n_lat].mode;
		size_t j;

		for (j = 0; j < n && strcmp(out[j], m) != 0; j++)
			;
		if (j == n && n < max)
			snprintf(out[n++], 32, "%s", m);
	}
	return n;
}
