/* SPDX-License-Identifier: MIT */
/* ivlink-bench: options, usage and main() (the tool is described in ivb.h). */
#define _GNU_SOURCE
#include "ivb.h"

static const uint32_t lat_sizes_default[] = {64, 1024, 16384};
static const uint32_t tput_sizes_default[] = {64, 256, 1024, 4096, 16384, 65536, 262144, 1048576};
static const uint32_t tput_sizes_quick[] = {64, 1024, 16384, 262144, 1048576};

static const struct mode_def mode_defs[] = {
    {"ivlink", K_NATIVE, 0, false, "native API, library default spin budget then sleep"},
    {"ivlink-spin", K_NATIVE, SPIN_LONG, false, "native API, waits spin (never sleep)"},
    {"ivlink-block", K_NATIVE, -1, false, "native API, waits sleep at once (doorbells)"},
    {"tcp", K_TCP, 0, false, "TCP over loopback, TCP_NODELAY (baseline)"},
    {"unix", K_UNIX, 0, false, "UNIX stream socket"},
    {"shim-tcp", K_TCP, 0, true, "TCP under ivlink-run (socket shim)"},
};
#define N_MODE_DEFS (sizeof(mode_defs) / sizeof(mode_defs[0]))
static const char *const host_modes_default = "ivlink,ivlink-spin,ivlink-block,tcp,unix,shim-tcp";

struct opts ivb_opt;
struct store ivb_store;
char ivb_self_exe[PATH_MAX];
char ivb_tmpdir[PATH_MAX];
pid_t ivb_daemon_pid = -1;

void ivb_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("ivlink-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* snprintf that says when the result did not fit (paths built from
 * arguments): 0 or -ENAMETOOLONG. */
int ivb_fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, len, f, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

const struct mode_def *ivb_mode_find(const char *name)
{
	for (size_t i = 0; i < N_MODE_DEFS; i++)
		if (strcmp(mode_defs[i].name, name) == 0)
			return &mode_defs[i];
	return NULL;
}

/* ------------------------------------------------------------ command line */

static void usage(FILE *f)
{
	fputs("NAME\n"
	      "    ivlink-bench - latency, throughput and CPU cost of ivlink against sockets\n"
	      "\n"
	      "SYNOPSIS\n"
	      "    ivlink-bench [--quick] [--modes LIST] [--out DIR] [OPTIONS]\n"
	      "    ivlink-bench --role server --mode MODE [--listen ADDR] [--endpoint URI]\n"
	      "    ivlink-bench --role client --mode MODE [--connect ADDR | --peer ID|auto]\n"
	      "                 [--name ROW] [--out DIR]\n"
	      "    ivlink-bench --from FILE... [--out DIR]\n"
	      "\n"
	      "DESCRIPTION\n"
	      "    Measures, in one run and between two processes, what an application sees\n"
	      "    of each transport (\"mode\"):\n"
	      "      latency     round trips of SIZE bytes (client sends, server echoes):\n"
	      "                  p50, p90, p99, p99.9 and max, and a CDF, per size;\n"
	      "      throughput  SIZE-byte messages one way, one send and one receive call\n"
	      "                  per message, for a fixed time: messages/s and GB/s\n"
	      "                  (10^9 bytes/s), measured at the receiver;\n"
	      "      CPU cost    CPU time (CLOCK_PROCESS_CPUTIME_ID: user + system, spinning\n"
	      "                  included) of each end, per message, per byte and per round\n"
	      "                  trip.\n"
	      "    Ratios are against the baseline of the same run: tcp on the host, vm-tcp\n"
	      "    for rows measured in VMs. The issue's goal, >= 90% less CPU per message\n"
	      "    than TCP, is printed as met / not met and never affects the exit status.\n"
	      "\n"
	      "    Without --role or --from, a host run: ivlink-bench starts a private\n"
	      "    ivlinkd (for the native and shim modes), then per mode a server and a\n"
	      "    client process (this program re-executed, pinned to two CPUs), collects\n"
	      "    the results, prints a table and with --out writes CSV, JSON and PNG plots.\n"
	      "    A mode that cannot run here (no ivlinkd, no ivlink-run) is skipped with\n"
	      "    the reason; one that fails makes the exit status 1.\n"
	      "\n"
	      "MODES\n"
	      "    ivlink        native API (libivlink) through ivlinkd, stream channel,\n"
	      "                  the library's default wait: spin 20 us, then sleep\n"
	      "    ivlink-spin   native API, waits spin and never sleep (endpoint spin_ns\n"
	      "                  10 s): lowest latency, a core per waiting end\n"
	      "    ivlink-block  native API, waits sleep at once (spin_ns < 0): every wake-up\n"
	      "                  is a doorbell (eventfd on the host, MSI-X in a guest)\n"
	      "    tcp           TCP over 127.0.0.1, TCP_NODELAY: the baseline\n"
	      "    unix          UNIX stream socket\n"
	      "    shim-tcp      the tcp mode with both ends run under ivlink-run (the socket\n"
	      "                  shim), when built: BUILD/guest-lib/preload/ivlink-run or\n"
	      "                  --ivlink-run PATH\n"
	      "    Default: "
	      "ivlink,ivlink-spin,ivlink-block,tcp,unix,shim-tcp"
	      ".\n"
	      "\n"
	      "OPTIONS\n"
	      "    --modes LIST        comma-separated modes of a host run\n"
	      "    --quick             short run for CI: "
	      "300 round trips per size, 40 ms\n"
	      "                        per throughput size, sizes 64 B, 1 KiB, 16 KiB,\n"
	      "                        256 KiB, 1 MiB\n"
	      "    --iters N           round trips per latency size (default 10000)\n"
	      "    --duration MS       sending time per throughput size (default 300)\n"
	      "    --repeat N          throughput runs per size, the median (by GB/s)\n"
	      "                        reported (default 3; --quick 1)\n"
	      "    --lat-sizes LIST    latency message sizes (default 64,1024,16384)\n"
	      "    --tput-sizes LIST   throughput message sizes, at most 1048576 (default\n"
	      "                        64,256,1024,4096,16384,65536,262144,1048576)\n"
	      "    --cpus C,S          pin client to CPU C and server to CPU S (default 0,1\n"
	      "                        with two CPUs or more; \"none\": no pinning)\n"
	      "    --out DIR           write results.json, results.txt, results.ivb,\n"
	      "                        latency.csv, latency_cdf.csv, throughput.csv and\n"
	      "                        latency_cdf.png, throughput.png, cpu.png\n"
	      "    --no-plot           no PNGs (gnuplot: scripts/ivl-deps plot)\n"
	      "    --label NAME        run label in the metadata (default host)\n"
	      "    --daemon PATH       ivlinkd to start (default BUILD/host-daemon/ivlinkd)\n"
	      "    --endpoint URI      use this endpoint instead of a private daemon:\n"
	      "                        host:/path/to/ivlinkd.sock, or vfio:... / auto in a\n"
	      "                        guest (default $IVLINK_ENDPOINT)\n"
	      "    --ivlink-run PATH   the shim's wrapper for mode shim-tcp\n"
	      "    --timeout SEC       give up on a silent peer after SEC (default 60)\n"
	      "    -h, --help          show this help and exit\n"
	      "        --version       show the version and exit\n"
	      "\n"
	      "ROLES (between VMs, or by hand)\n"
	      "    --role server       serve tests until the client ends: prints\n"
	      "                        \"IVB-READY port=P|path=P|peer=ID\" once listening\n"
	      "    --role client       run every test against the server and print one\n"
	      "                        result line per result on stdout (see RESULT LINES)\n"
	      "                        and the table on stderr (--no-table: not)\n"
	      "    --mode MODE         the transport of a role (one of MODES)\n"
	      "    --listen ADDR       server: [HOST:]PORT (tcp; default 127.0.0.1:0) or\n"
	      "                        unix:PATH\n"
	      "    --connect ADDR      client: HOST:PORT or unix:PATH; retried until the\n"
	      "                        server is up or the timeout passes\n"
	      "    --peer ID|auto      client, native modes: the server's peer id; auto\n"
	      "                        (default) finds the one peer named ivb-s\n"
	      "    --spin-ns NS        native: endpoint spin budget, overriding the mode's\n"
	      "    --name ROW          client: the row name of its results (e.g. vm-tcp)\n"
	      "    --cpu N             pin this process to CPU N\n"
	      "    --from FILE...      read result lines from FILEs (\"-\": stdin; anything\n"
	      "                        before \"IVB \" on a line is ignored, so serial console\n"
	      "                        logs work) and report them\n"
	      "\n"
	      "RESULT LINES\n"
	      "    IVB lat  mode= size= n= min= p50= p90= p99= p999= max= avg= cli_cpu_ns=\n"
	      "             srv_cpu_ns=          nanoseconds; CPU per round trip, each end\n"
	      "    IVB cdf  mode= size= v=...    latency at quantiles 0, 0.01 .. 0.99,\n"
	      "                                  0.995, 0.999, 0.9999, 1\n"
	      "    IVB tput mode= size= msgs= bytes= ns= snd_cpu_ns= rcv_cpu_ns=\n"
	      "                                  receiver's elapsed ns; CPU of each end\n"
	      "    IVB meta KEY=VALUE...         run metadata ('_' reads as a space)\n"
	      "    IVB skip mode= reason=        a mode that could not run\n"
	      "\n"
	      "FILES (--out DIR)\n"
	      "    latency.csv       mode,size,n,min_ns,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,\n"
	      "                      avg_ns,cli_cpu_ns_per_rtt,srv_cpu_ns_per_rtt,\n"
	      "                      p50_speedup_vs_base\n"
	      "    latency_cdf.csv   mode,size,quantile,ns\n"
	      "    throughput.csv    mode,size,msgs,bytes,seconds,msgs_per_s,gbps,\n"
	      "                      snd_cpu_ns_per_msg,rcv_cpu_ns_per_msg,cpu_ns_per_msg,\n"
	      "                      snd_cpu_ns_per_byte,rcv_cpu_ns_per_byte,gbps_vs_base,\n"
	      "                      cpu_pct_less_than_base\n"
	      "    results.json      {tool, schema, meta{}, modes[], skipped[], failed[],\n"
	      "                      latency[] and throughput[] (the CSV columns as keys,\n"
	      "                      plus baseline), goals[] {goal, mode, baseline, target,\n"
	      "                      value, met}, files[]}; a figure that does not exist\n"
	      "                      is null\n"
	      "    results.txt       the table; results.ivb the result lines\n"
	      "    *.png             latency CDF per size (a curve per mode), throughput vs\n"
	      "                      size, CPU per message and per round trip; plots.gp\n"
	      "                      redraws them\n"
	      "\n"
	      "EXIT STATUS\n"
	      "    0 every mode that could run ran; 1 a mode or an output failed; 2 usage.\n"
	      "\n"
	      "EXAMPLES\n"
	      "    ivlink-bench --quick --out /tmp/ivb          # every host mode, briefly\n"
	      "    ivlink-bench --modes ivlink-block,tcp --out build/bench-results\n"
	      "    # between two VMs (vm-configs/libvirt/ivlink-libvirt bench does this):\n"
	      "    east$ ivlink-bench --role server --mode tcp --listen 0.0.0.0:7300\n"
	      "    west$ ivlink-bench --role client --mode tcp --connect 192.0.2.2:7300 \\\n"
	      "              --name vm-tcp\n"
	      "    host$ ivlink-bench --from west.log --out build/libvirt-run/bench\n",
	      f);
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int parse_sizes(const char *s, uint32_t *out, uint32_t *n)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", s);
	*n = 0;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (*n >= MAX_SIZES || parse_u32(t, 1, MAX_MSG, &out[*n]) < 0)
			return -EINVAL;
		(*n)++;
	}
	return *n ? 0 : -EINVAL;
}

enum {
	OPT_MODES = 256,
	OPT_QUICK,
	OPT_ITERS,
	OPT_DURATION,
	OPT_LAT_SIZES,
	OPT_TPUT_SIZES,
	OPT_CPUS,
	OPT_OUT,
	OPT_NO_PLOT,
	OPT_LABEL,
	OPT_DAEMON,
	OPT_ENDPOINT,
	OPT_IVLINK_RUN,
	OPT_TIMEOUT,
	OPT_ROLE,
	OPT_MODE,
	OPT_LISTEN,
	OPT_CONNECT,
	OPT_PEER,
	OPT_SPIN_NS,
	OPT_NAME,
	OPT_CPU,
	OPT_FROM,
	OPT_NO_TABLE,
	OPT_REPEAT,
	OPT_VERSION,
};

static bool no_table;

static int parse_opts(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"modes", 1, NULL, OPT_MODES},
	    {"quick", 0, NULL, OPT_QUICK},
	    {"iters", 1, NULL, OPT_ITERS},
	    {"duration", 1, NULL, OPT_DURATION},
	    {"lat-sizes", 1, NULL, OPT_LAT_SIZES},
	    {"tput-sizes", 1, NULL, OPT_TPUT_SIZES},
	    {"cpus", 1, NULL, OPT_CPUS},
	    {"out", 1, NULL, OPT_OUT},
	    {"no-plot", 0, NULL, OPT_NO_PLOT},
	    {"label", 1, NULL, OPT_LABEL},
	    {"daemon", 1, NULL, OPT_DAEMON},
	    {"endpoint", 1, NULL, OPT_ENDPOINT},
	    {"ivlink-run", 1, NULL, OPT_IVLINK_RUN},
	    {"timeout", 1, NULL, OPT_TIMEOUT},
	    {"role", 1, NULL, OPT_ROLE},
	    {"mode", 1, NULL, OPT_MODE},
	    {"listen", 1, NULL, OPT_LISTEN},
	    {"connect", 1, NULL, OPT_CONNECT},
	    {"peer", 1, NULL, OPT_PEER},
	    {"spin-ns", 1, NULL, OPT_SPIN_NS},
	    {"name", 1, NULL, OPT_NAME},
	    {"cpu", 1, NULL, OPT_CPU},
	    {"from", 1, NULL, OPT_FROM},
	    {"no-table", 0, NULL, OPT_NO_TABLE},
	    {"repeat", 1, NULL, OPT_REPEAT},
	    {"help", 0, NULL, 'h'},
	    {"version", 0, NULL, OPT_VERSION},
	    {NULL, 0, NULL, 0},
	};
	bool iters_set = false, dur_set = false, tput_set = false;
	int c, li = 0;

	snprintf(ivb_opt.modes, sizeof(ivb_opt.modes), "%s", host_modes_default);
	ivb_opt.timeout_s = TIMEOUT_DEFAULT_S;
	ivb_opt.plot = true;
	ivb_opt.cpu = -1;
	ivb_opt.cpus[0] = ivb_opt.cpus[1] = -1;
	if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
		ivb_opt.cpus[0] = 0;
		ivb_opt.cpus[1] = 1;
	}
	memcpy(ivb_opt.lat_sizes, lat_sizes_default, sizeof(lat_sizes_default));
	ivb_opt.n_lat_sizes = sizeof(lat_sizes_default) / sizeof(lat_sizes_default[0]);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", lo, &li)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("ivlink-bench " IVL_VERSION "\n");
			exit(0);
		case ':':
			ivb_msg("option '%s' needs an argument", argv[optind - 1]);
			goto hint;
		case '?':
			if (optopt)
				ivb_msg("unknown option '-%c'", optopt);
			else
				ivb_msg("unknown option '%s'", argv[optind - 1]);
			goto hint;
		case OPT_MODES:
			snprintf(ivb_opt.modes, sizeof(ivb_opt.modes), "%s", optarg);
			break;
		case OPT_QUICK:
			ivb_opt.quick = true;
			break;
		case OPT_ITERS:
			if (parse_u32(optarg, 10, 100000000, &ivb_opt.iters) < 0)
				goto bad;
			iters_set = true;
			break;
		case OPT_DURATION:
			if (parse_u32(optarg, 1, 600000, &ivb_opt.duration_ms) < 0)
				goto bad;
			dur_set = true;
			break;
		case OPT_LAT_SIZES:
			if (parse_sizes(optarg, ivb_opt.lat_sizes, &ivb_opt.n_lat_sizes) < 0)
				goto bad;
			break;
		case OPT_TPUT_SIZES:
			if (parse_sizes(optarg, ivb_opt.tput_sizes, &ivb_opt.n_tput_sizes) < 0)
				goto bad;
			tput_set = true;
			break;
		case OPT_CPUS:
			if (strcmp(optarg, "none") == 0)
				ivb_opt.cpus[0] = ivb_opt.cpus[1] = -1;
			else if (sscanf(optarg, "%d,%d", &ivb_opt.cpus[0], &ivb_opt.cpus[1]) != 2)
				goto bad;
			break;
		case OPT_OUT:
			ivb_opt.out = optarg;
			break;
		case OPT_NO_PLOT:
			ivb_opt.plot = false;
			break;
		case OPT_LABEL:
			ivb_opt.label = optarg;
			break;
		case OPT_DAEMON:
			ivb_opt.daemon = optarg;
			break;
		case OPT_ENDPOINT:
			ivb_opt.endpoint = optarg;
			break;
		case OPT_IVLINK_RUN:
			ivb_opt.ivlink_run = optarg;
			break;
		case OPT_TIMEOUT:
			if (parse_u32(optarg, 1, 86400, &ivb_opt.timeout_s) < 0)
				goto bad;
			break;
		case OPT_ROLE:
			if (strcmp(optarg, "server") != 0 && strcmp(optarg, "client") != 0)
				goto bad;
			ivb_opt.role = optarg;
			break;
		case OPT_MODE:
			ivb_opt.mode = optarg;
			break;
		case OPT_LISTEN:
			ivb_opt.listen = optarg;
			break;
		case OPT_CONNECT:
			ivb_opt.connect = optarg;
			break;
		case OPT_PEER:
			ivb_opt.peer = optarg;
			break;
		case OPT_SPIN_NS:
			ivb_opt.spin_ns = strtoll(optarg, NULL, 0);
			ivb_opt.spin_set = true;
			break;
		case OPT_NAME:
			ivb_opt.name = optarg;
			break;
		case OPT_CPU:
			ivb_opt.cpu = atoi(optarg);
			break;
		case OPT_FROM:
			if (ivb_opt.n_from >= 16)
				goto bad;
			ivb_opt.from[ivb_opt.n_from++] = optarg;
			break;
		case OPT_NO_TABLE:
			no_table = true;
			break;
		case OPT_REPEAT:
			if (parse_u32(optarg, 1, MAX_REPEAT, &ivb_opt.repeat) < 0)
				goto bad;
			break;
		default:
			goto bad;
		}
	}
	/* Further operands of --from are files too ("--from a.log b.log"). */
	while (ivb_opt.n_from > 0 && optind < argc && ivb_opt.n_from < 16)
		ivb_opt.from[ivb_opt.n_from++] = argv[optind++];
	if (optind < argc)
		goto bad;
	if (!iters_set)
		ivb_opt.iters = ivb_opt.quick ? ITERS_QUICK : ITERS_DEFAULT;
	if (!dur_set)
		ivb_opt.duration_ms = ivb_opt.quick ? DURATION_QUICK_MS : DURATION_DEFAULT_MS;
	if (!ivb_opt.repeat)
		ivb_opt.repeat = ivb_opt.quick ? 1 : REPEAT_DEFAULT;
	if (!tput_set) {
		const uint32_t *s = ivb_opt.quick ? tput_sizes_quick : tput_sizes_default;
		size_t n = ivb_opt.quick
			       ? sizeof(tput_sizes_quick) / sizeof(tput_sizes_quick[0])
			       : sizeof(tput_sizes_default) / sizeof(tput_sizes_default[0]);

		memcpy(ivb_opt.tput_sizes, s, n * sizeof(*s));
		ivb_opt.n_tput_sizes = (uint32_t)n;
	}
	if (ivb_opt.role && (!ivb_opt.mode || !ivb_mode_find(ivb_opt.mode))) {
		ivb_msg("--role needs --mode MODE");
		goto hint;
	}
	return 0;
bad:
	if (c == -1)
		ivb_msg("unexpected argument '%s'", argv[optind]);
	else
		ivb_msg("--%s: bad value '%s'", lo[li].name, optarg ? optarg : "");
hint:
	fputs("Try 'ivlink-bench --help' for more information.\n", stderr);
	return -EINVAL;
}

int main(int argc, char **argv)
{
	ssize_t n;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (parse_opts(argc, argv) < 0)
		return 2;
	n = readlink("/proc/self/exe", ivb_self_exe, sizeof(ivb_self_exe) - 1);
	if (n <= 0) {
		ivb_msg("readlink /proc/self/exe: %s", strerror(errno));
		return 1;
	}
	ivb_self_exe[n] = 0;

	if (ivb_opt.n_from > 0) {
		for (int i = 0; i < ivb_opt.n_from; i++) {
			rc = ivb_read_result_file(ivb_opt.from[i]);
			if (rc < 0) {
				ivb_msg("%s: %s", ivb_opt.from[i], strerror(-rc));
				return 1;
			}
			if (rc == 0)
				ivb_msg("%s: no result lines", ivb_opt.from[i]);
		}
		ivb_print_human(stdout);
		if (ivb_opt.out && ivb_write_outputs() < 0)
			return 1;
		return ivb_store.n_lat + ivb_store.n_tput > 0 ? 0 : 1;
	}
	if (ivb_opt.role) {
		const struct mode_def *m = ivb_mode_find(ivb_opt.mode);

		if (ivb_opt.cpu >= 0 && bench_pin_to(ivb_opt.cpu) < 0)
			ivb_msg("cannot pin to CPU %d (continuing unpinned)", ivb_opt.cpu);
		if (ivb_opt.role[0] == 's')
			return ivb_run_server(m) < 0 ? 1 : 0;
		rc = ivb_run_client(m);
		if (!no_table)
			ivb_print_human(stderr);
		if (ivb_opt.out)
			ivb_write_outputs();
		return rc < 0 ? 1 : 0;
	}
	signal(SIGINT, ivb_on_signal);
	signal(SIGTERM, ivb_on_signal);
	atexit(ivb_cleanup);
	return ivb_run_host();
}
