/* SPDX-License-Identifier: MIT */
/* ivlink-ring-bench: options, usage, setup and main() (the tool is described
 * in ring_bench.h). */
#define _GNU_SOURCE
#include "ring_bench.h"

const uint32_t rb_tput_sizes[N_SIZES] = {
    64, 256, 1024, 4096, 16384, 65536, 262144, 1048576,
};

static void usage(FILE *f)
{
	fprintf(f,
		"NAME\n"
		"    ivlink-ring-bench - ivlink ring latency and throughput against their floors\n"
		"    and baselines\n"
		"\n"
		"SYNOPSIS\n"
		"    ivlink-ring-bench [--quick] [--json] [--iters N] [--duration-ms MS]\n"
		"                      [--ring-kib K] [--rounds N] [--instructions]\n"
		"    ivlink-ring-bench --help\n"
		"\n"
		"DESCRIPTION\n"
		"    Forks into two processes pinned to two different CPUs (sched_setaffinity)\n"
		"    that share a memfd region and two eventfds, and measures in one run:\n"
		"\n"
		"    - the cache-line floor: a counter bounced between the processes through\n"
		"      one shared cache line (round trip; also with a pause instruction in\n"
		"      the spin loops, as the ring's waits have);\n"
		"    - the ring round trip with 64-byte messages, message mode, one ring\n"
		"      each way: spinning, and blocking (spin_ns = 0: every wait sleeps on\n"
		"      its eventfd and is kicked by the other side);\n"
		"    - TCP loopback (TCP_NODELAY) and UNIX socketpair round trips of 1 and\n"
		"      64 bytes on blocking sockets, as baselines;\n"
		"    - one-way throughput for 64 B to 1 MiB messages: message mode with\n"
		"      batching (ivl_ring_write with IVL_MORE and one ivl_ring_flush per\n"
		"      ~16 KiB; the consumer releases with IVL_MORE and flushes as often)\n"
		"      below 64 KiB, stream mode from 64 KiB. Both ends copy, from a source\n"
		"      buffer into the ring and from the ring into a destination buffer;\n"
		"    - memcpy of the same sizes in one process between two buffers of the\n"
		"      message size (cache-resident, as the ring's data is);\n"
		"    - a cross-core copy ceiling at 64 KiB: the same copies in and out of\n"
		"      shared 64 KiB slots handed over with one flag each, no ring code;\n"
		"    - the peers: ivlink's ring (message and stream mode) next to the SPSC\n"
		"      queues Debian offers, Boost.Lockfree spsc_queue and DPDK rte_ring\n"
		"      SP/SC (each built when found: scripts/ivl-deps bench), between two\n"
		"      threads pinned to the same two CPUs, 64 B messages copied in and\n"
		"      out, in interleaved rounds: round trip p50 and its ratio to the\n"
		"      cache-line floor measured just before it, one-way messages/s,\n"
		"      medians over the rounds; memcpy of 64 B in and out as\n"
		"      the one-thread ceiling. With --instructions, instructions per\n"
		"      send+recv pair of each, counted by callgrind.\n"
		"\n"
		"    Latencies are nearest-rank percentiles of per-round-trip samples taken\n"
		"    with clock_gettime(CLOCK_MONOTONIC) (one call per round trip, so its\n"
		"    cost, printed first, is inside every sample, the floor's included).\n"
		"    Throughputs are the median over 5 (3 with --quick) equal windows after\n"
		"    a warm-up. The goals of issue 2 are printed with \"met\" or \"not met\";\n"
		"    they are never asserted. Numbers on a shared machine are noisy: quote\n"
		"    the ratios of one run, not absolute times across runs.\n"
		"\n"
		"OPTIONS\n"
		"    --iters N\n"
		"        Round trips per spinning latency test (floor, ring spinning).\n"
		"        Tests in which every round trip sleeps (ring blocking, TCP, UNIX)\n"
		"        run N/%u, at least %u. Default %u; %u with --quick.\n"
		"    --duration-ms MS\n"
		"        Measuring time per throughput message size (the memcpy baseline\n"
		"        takes a third of it). Default %u; %u with --quick.\n"
		"    --ring-kib K\n"
		"        Size of the throughput ring in KiB, a power of two from 64 to\n"
		"        %u. Default %u.\n"
		"    --quick\n"
		"        A short run (under 10 s) for CI smoke tests. Explicit --iters and\n"
		"        --duration-ms still apply.\n"
		"    --rounds N\n"
		"        Interleaved rounds of the peers comparison, 1 to %u. Default 7;\n"
		"        3 with --quick. Per round each queue runs a tenth of --iters\n"
		"        round trips (at least 2000) and one way for a tenth of\n"
		"        --duration-ms (at least 10 ms).\n"
		"    --instructions\n"
		"        Also count each peer's instructions per send+recv pair: this\n"
		"        program re-executed under valgrind --tool=callgrind with --pairs\n"
		"        (a few seconds per queue; reported as not counted without\n"
		"        valgrind).\n"
		"    --pairs QUEUE [--pairs-n N]\n"
		"        Only run N (default 100000) send+recv pairs of one queue in one\n"
		"        thread, in rb_pairs_loop(), and exit: what --instructions runs\n"
		"        under callgrind. QUEUE: memcpy, ivlink_msg, ivlink_stream,\n"
		"        boost_spsc, dpdk_rte_ring (those built).\n"
		"    --json\n"
		"        Print one JSON object instead of the human report.\n"
		"    -h, --help\n"
		"        Print this page and exit.\n"
		"    --version\n"
		"        Print the version and exit.\n"
		"\n"
		"OUTPUT\n"
		"    The human report has five parts: latencies (samples, p50, p99, p99.9 in\n"
		"    ns), throughput per size (msgs/s, GB/s = 10^9 bytes/s, memcpy GB/s and\n"
		"    the ring's share of it), ratios, the peers, and the goals.\n"
		"\n"
		"    With --json, one object with these keys (every figure is > 0 in a\n"
		"    successful run; (meta) marks descriptive keys):\n"
		"      tool, schema          (meta) \"ivlink-ring-bench\", 1\n"
		"      quick, pinned         (meta) booleans\n"
		"      cpus                  (meta) [parent CPU, child CPU], -1 if unpinned\n"
		"      iters, slow_iters     round trips per spinning / sleeping test\n"
		"      duration_ms, ring_kib throughput window total per size, ring size\n"
		"      clock_overhead_ns     one clock_gettime(CLOCK_MONOTONIC)\n"
		"      floor_rtt_ns          cache-line ping-pong round trip, p50\n"
		"      floor_rtt_p99_ns, floor_rtt_p999_ns\n"
		"      floor_pause_rtt_ns    the same with pause in the spin loops, p50\n"
		"      ring_rtt_p50_ns, ring_rtt_p99_ns, ring_rtt_p999_ns\n"
		"                            ring round trip, 64 B, spinning\n"
		"      ring_block_rtt_p50_ns, ring_block_rtt_p99_ns, ring_block_rtt_p999_ns\n"
		"                            ring round trip, 64 B, spin_ns = 0\n"
		"      ring_block_kicks_per_rtt  eventfd kicks per blocking round trip\n"
		"      ring_lazy_rtt_p50_ns  diagnostic: spinning, consumer publishes its head\n"
		"                            once per quarter ring, p50\n"
		"      tcp_rtt_p50_ns, tcp_rtt_p99_ns, tcp_rtt_p999_ns      TCP, 64 B\n"
		"      tcp_1b_rtt_p50_ns, tcp_1b_rtt_p99_ns, tcp_1b_rtt_p999_ns  TCP, 1 B\n"
		"      unix_rtt_p50_ns, unix_rtt_p99_ns, unix_rtt_p999_ns   UNIX, 64 B\n"
		"      unix_1b_rtt_p50_ns, unix_1b_rtt_p99_ns, unix_1b_rtt_p999_ns  UNIX, 1 B\n"
		"      msgs_per_s_64b, gbps_64b  one-way 64 B messages, batched\n"
		"      gbps_64k              one-way 64 KiB stream, GB/s\n"
		"      memcpy_gbps_64k       memcpy of 64 KiB, GB/s\n"
		"      ring_rtt_vs_floor     ring_rtt_p50_ns / floor_rtt_ns\n"
		"      tcp_vs_ring_rtt       tcp_rtt_p50_ns / ring_rtt_p50_ns\n"
		"      unix_vs_ring_rtt      unix_rtt_p50_ns / ring_rtt_p50_ns\n"
		"      gbps_64k_pct_of_memcpy  100 * gbps_64k / memcpy_gbps_64k\n"
		"      xcopy_gbps_64k        diagnostic: cross-core copy ceiling: 64 KiB\n"
		"                            shared slots handed over with a flag, copied\n"
		"                            in by one process and out by the other, GB/s\n"
		"      gbps_64k_pct_of_xcopy 100 * gbps_64k / xcopy_gbps_64k\n"
		"      sizes                 array: throughput message sizes, bytes\n"
		"      tput_mode             (meta) array: \"message\" or \"stream\"\n"
		"      tput_msgs_per_s, tput_gbps, memcpy_gbps, tput_pct_of_memcpy\n"
		"                            arrays, one entry per size\n"
		"      tput_commits_per_msg  array, diagnostic: producer commits per message\n"
		"      peers                 object: rounds, rtt_iters, oneway_ms,\n"
		"                            msg_bytes (64), instructions (counted, bool),\n"
		"                            instr_why (null or why not), rows: an array\n"
		"                            of {key, name, built, why_not, rtt_p50_ns,\n"
		"                            rtt_vs_floor, msgs_per_s, instr_per_pair} for\n"
		"                            floor, memcpy, ivlink_msg, ivlink_stream,\n"
		"                            boost_spsc, dpdk_rte_ring; null where a\n"
		"                            figure does not apply or was not measured\n"
		"      goals                 object: rtt_vs_floor, tcp_vs_ring,\n"
		"                            gbps_64k_pct_of_memcpy, msgs_per_s_64b, each\n"
		"                            {\"target\": x, \"value\": y, \"met\": bool}\n"
		"\n"
		"EXIT STATUS\n"
		"    0   every test ran (whether or not the goals were met)\n"
		"    1   a test could not run: setup failed, the other process died or\n"
		"        stopped answering, a ring reported an error\n"
		"    2   bad command line\n",
		SLOW_DIV, SLOW_MIN, ITERS_DEFAULT, ITERS_QUICK, DURATION_DEFAULT_MS,
		DURATION_QUICK_MS, TPUT_RING_MAX >> 10, TPUT_RING_DEFAULT_KIB, RB_PEER_ROUNDS_MAX);
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
	    {"iters", required_argument, NULL, 'i'},
	    {"duration-ms", required_argument, NULL, 'd'},
	    {"ring-kib", required_argument, NULL, 'r'},
	    {"json", no_argument, NULL, 'j'},
	    {"quick", no_argument, NULL, 'q'},
	    {"rounds", required_argument, NULL, 'R'},
	    {"instructions", no_argument, NULL, 'I'},
	    {"pairs", required_argument, NULL, 'P'},
	    {"pairs-n", required_argument, NULL, 'N'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	uint32_t iters = 0, dur = 0;
	int c, li = 0;

	memset(o, 0, sizeof(*o));
	o->ring_kib = TPUT_RING_DEFAULT_KIB;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", lo, &li)) != -1) {
		switch (c) {
		case 'i':
			if (parse_u32(optarg, 100, 100000000, &iters) < 0)
				goto bad;
			break;
		case 'd':
			if (parse_u32(optarg, 5, 600000, &dur) < 0)
				goto bad;
			break;
		case 'r':
			if (parse_u32(optarg, 64, TPUT_RING_MAX >> 10, &o->ring_kib) < 0 ||
			    (o->ring_kib & (o->ring_kib - 1)))
				goto bad;
			break;
		case 'j':
			o->json = true;
			break;
		case 'q':
			o->quick = true;
			break;
		case 'R':
			if (parse_u32(optarg, 1, RB_PEER_ROUNDS_MAX, &o->rounds) < 0)
				goto bad;
			break;
		case 'I':
			o->instructions = true;
			break;
		case 'P':
			o->pairs_key = optarg;
			break;
		case 'N':
			if (parse_u32(optarg, 1, 100000000, &o->pairs_n) < 0)
				goto bad;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("ivlink-ring-bench " IVL_VERSION "\n");
			exit(0);
		case ':':
			fprintf(stderr, "ivlink-ring-bench: option '%s' needs an argument\n",
				argv[optind - 1]);
			goto hint;
		default:
			if (optopt)
				fprintf(stderr, "ivlink-ring-bench: unknown option '-%c'\n",
					optopt);
			else
				fprintf(stderr, "ivlink-ring-bench: unknown option '%s'\n",
					argv[optind - 1]);
			goto hint;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "ivlink-ring-bench: unexpected argument '%s'\n", argv[optind]);
		goto hint;
	}
	o->iters = iters ? iters : o->quick ? ITERS_QUICK : ITERS_DEFAULT;
	o->duration_ms = dur ? dur : o->quick ? DURATION_QUICK_MS : DURATION_DEFAULT_MS;
	o->slow_iters = o->iters / SLOW_DIV < SLOW_MIN ? SLOW_MIN : o->iters / SLOW_DIV;
	return 0;
bad:
	fprintf(stderr, "ivlink-ring-bench: --%s: bad value '%s'\n", lo[li].name, optarg);
hint:
	fputs("Try 'ivlink-ring-bench --help' for more information.\n", stderr);
	return -EINVAL;
}

/* ------------------------------------------------------------------- main */

/* Picks two distinct CPUs from our affinity mask; -1 when there is one. */
static void pick_cpus(struct bench *b)
{
	cpu_set_t set;
	int n = 0;

	b->cpu[0] = b->cpu[1] = -1;
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return;
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &set))
			b->cpu[n++] = c;
	if (n < 2)
		b->cpu[0] = b->cpu[1] = -1;
	b->pinned = n == 2;
}

static int listen_loopback(uint16_t *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "ivlink-ring-bench: %s: %s\n", what, strerror(-rc));
	return rc;
}

static int run_all(struct bench *b, struct results *r)
{
	int rc;

	r->clock_ns = rb_clock_overhead();
	if ((rc = rb_run_floor(b, 0, &r->floor)) < 0)
		return fail("cache-line ping-pong", rc);
	if ((rc = rb_run_floor(b, 1, &r->floor_pause)) < 0)
		return fail("cache-line ping-pong with pause", rc);
	if ((rc = rb_run_ring_rtt(b, RTT_SPIN, b->o.iters, &r->ring, NULL)) < 0)
		return fail("ring round trip (spinning)", rc);
	if ((rc = rb_run_ring_rtt(b, RTT_SLEEP, b->o.slow_iters, &r->ring_block,
				  &r->block_kicks_per_rtt)) < 0)
		return fail("ring round trip (blocking)", rc);
	if ((rc = rb_run_ring_rtt(b, RTT_LAZY_HEAD, b->o.iters, &r->ring_lazy, NULL)) < 0)
		return fail("ring round trip (lazy head)", rc);
	if ((rc = rb_run_sock_rtt(b, 0, 1, &r->tcp1)) < 0)
		return fail("TCP round trip (1 B)", rc);
	if ((rc = rb_run_sock_rtt(b, 0, RTT_MSG, &r->tcp64)) < 0)
		return fail("TCP round trip (64 B)", rc);
	if ((rc = rb_run_sock_rtt(b, 1, 1, &r->unix1)) < 0)
		return fail("UNIX round trip (1 B)", rc);
	if ((rc = rb_run_sock_rtt(b, 1, RTT_MSG, &r->unix64)) < 0)
		return fail("UNIX round trip (64 B)", rc);
	for (size_t i = 0; i < N_SIZES; i++) {
		char what[64];

		rc = rb_run_tput(b, rb_tput_sizes[i], &r->tp[i]);
		if (rc < 0) {
			snprintf(what, sizeof(what), "throughput (%u B)", rb_tput_sizes[i]);
			return fail(what, rc);
		}
		r->tp[i].memcpy_gbps = rb_run_memcpy(b, rb_tput_sizes[i]);
		/* Right after the ring at the same size: on a shared machine
		 * conditions drift, and the two are compared. */
		if (rb_tput_sizes[i] == XCOPY_SIZE && (rc = rb_run_xcopy(b, &r->xcopy_gbps)) < 0)
			return fail("cross-core copy ceiling", rc);
	}
	return 0;
}

/* The peers comparison's parameters: rounds, round trips per queue and
 * round (a tenth of --iters, at least 2000), one-way time per queue and
 * round (a tenth of --duration-ms, at least 10 ms). */
static int run_peers(struct bench *b, struct rb_peers *pr)
{
	int rc;

	pr->rounds = b->o.rounds ? b->o.rounds : b->o.quick ? 3 : 7;
	pr->rtt_iters = b->o.iters / 10 < 2000 ? 2000 : b->o.iters / 10;
	if (pr->rtt_iters > b->o.iters)
		pr->rtt_iters = b->o.iters;
	pr->oneway_ms = b->o.duration_ms / 10 < 10 ? 10 : b->o.duration_ms / 10;
	pr->instructions = b->o.instructions;
	pr->samples = b->samples;
	rc = rb_run_peers(b, pr);
	return rc < 0 ? fail("peers (SPSC queues in two threads)", rc) : 0;
}

/* Accepts the child's TCP connection, giving up if the child dies first
 * (it exits when its connect() fails) rather than waiting for ever. */
static int accept_child(struct bench *b, int lfd)
{
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};
	int64_t deadline = ivl__now_ns() + WAIT_NS;
	int fd, one = 1;

	for (;;) {
		int n = poll(&pfd, 1, 100);

		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			break;
		if (rb_child_gone(b))
			return -ECONNRESET;
		if (ivl__now_ns() > deadline)
			return -ETIMEDOUT;
	}
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int main(int argc, char **argv)
{
	struct bench b = {
	    .child = -1, .tcp_fd = -1, .unix_fd = -1, .efd_parent = -1, .efd_child = -1};
	struct results r;
	int sv[2] = {-1, -1}, lfd = -1, rc = -ENOMEM, st, fd;
	uint16_t port = 0;

	if (parse_opts(argc, argv, &b.o) < 0)
		return 2;
	if (b.o.pairs_key)
		return rb_peers_pairs_main(b.o.pairs_key, b.o.pairs_n ? b.o.pairs_n : 100000);
	memset(&r, 0, sizeof(r));
	signal(SIGPIPE, SIG_IGN);
	/* Last resort against a hang: the child dies with us (PDEATHSIG). */
	alarm(b.o.quick ? 120 : 600);
	pick_cpus(&b);

	fd = memfd_create("ivlink-bench", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, SHM_SIZE) < 0) {
		rc = fail("memfd", -errno);
		if (fd >= 0)
			close(fd);
		return 1;
	}
	b.shm = mmap(NULL, SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	close(fd);
	if (b.shm == MAP_FAILED) {
		fail("mmap", -errno);
		return 1;
	}
	b.ctl = (struct ctl *)(b.shm + OFF_CTL);
	b.ball = (uint64_t *)(b.shm + OFF_BALL);
	b.samples = calloc(b.o.iters, sizeof(*b.samples));
	b.src = aligned_alloc(4096, TPUT_RING_MAX);
	b.dst = aligned_alloc(4096, TPUT_RING_MAX);
	if (!b.samples || !b.src || !b.dst) {
		fail("allocating buffers", rc);
		goto out_mem;
	}
	memset(b.src, 1, TPUT_RING_MAX);
	memset(b.dst, 2, TPUT_RING_MAX);
	b.efd_parent = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	b.efd_child = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (b.efd_parent < 0 || b.efd_child < 0) {
		rc = fail("eventfd", -errno);
		goto out_efd;
	}
	lfd = listen_loopback(&port);
	if (lfd < 0) {
		rc = fail("TCP listen on 127.0.0.1", lfd);
		goto out_efd;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = fail("socketpair", -errno);
		goto out_lfd;
	}

	fflush(NULL);
	b.parent = getpid();
	b.child = fork();
	if (b.child < 0) {
		rc = fail("fork", -errno);
		goto out_sv;
	}
	if (b.child == 0) {
		close(lfd);
		close(sv[0]);
		b.unix_fd = sv[1];
		rb_child_main(&b, port); /* never returns */
	}
	close(sv[1]);
	sv[1] = -1;
	b.unix_fd = sv[0];
	b.efd = (struct ivl_efd_notifier){.kick_fd = b.efd_child,
					  .wait_fd = b.efd_parent,
					  .check = rb_parent_peer_alive,
					  .check_ctx = &b};
	ivl_efd_notifier_bind(&b.notify, &b.efd);

	rc = bench_pin_to(b.cpu[0]);
	if (rc < 0) {
		fail("sched_setaffinity", rc);
		goto out_child;
	}
	b.tcp_fd = accept_child(&b, lfd);
	if (b.tcp_fd < 0) {
		rc = fail("accepting the child's TCP connection", b.tcp_fd);
		goto out_child;
	}

	rc = run_all(&b, &r);
	if (rc == 0) {
		/* The peers run in two threads of this process, one on the
		 * child's CPU: the child must be gone, not idling there. */
		rb_issue(&b, CMD_EXIT);
		waitpid(b.child, &st, 0);
		b.child = -1;
		rc = run_peers(&b, &r.peers);
	}
	if (rc == 0) {
		if (b.o.json)
			rb_print_json(&b, &r);
		else
			rb_print_human(&b, &r);
	}
	close(b.tcp_fd);
out_child:
	if (b.child > 0) {
		if (rc < 0)
			kill(b.child, SIGKILL);
		waitpid(b.child, &st, 0);
	}
out_sv:
	close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
out_lfd:
	close(lfd);
out_efd:
	if (b.efd_parent >= 0)
		close(b.efd_parent);
	if (b.efd_child >= 0)
		close(b.efd_child);
out_mem:
	free(b.dst);
	free(b.src);
	free(b.samples);
	munmap(b.shm, SHM_SIZE);
	return rc < 0 ? 1 : 0;
}
