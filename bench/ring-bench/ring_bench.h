/* SPDX-License-Identifier: MIT */
/*
 * Private header of bench/ring-bench/: the parts of ivlink-ring-bench shared
 * by its files (main, rings, child, parent, report).
 *
 * ivlink-ring-bench: the ring's latency and throughput next to the floors and
 * baselines it is judged against (issue 2), measured in one run so that the
 * ratios compare like with like (design.md: "quote results as ratios measured
 * in the same run").
 *
 * The process forks; parent and child are pinned to two different CPUs and
 * share a memfd region (ring control blocks, ring data, a control block and a
 * ball cache line) and two eventfds (the ring's blocking path). The parent
 * drives every test and takes every measurement; the child is the echo side
 * of the round trips and the producer of the throughput tests. A run does:
 *
 *   1. cache-line ping-pong: a counter bounced through one shared line. This
 *      is the floor any shared-memory round trip pays (two line transfers).
 *   2. ring round trip, 64-byte messages, message mode, one ring each way:
 *      spinning (the spin budget never runs out) and blocking (no spin at
 *      all: ivl_ring_wait_readable() with spin_ns = 0, so every wait
 *      advertises sleep and is woken by an eventfd kick).
 *   3. TCP loopback (TCP_NODELAY) and UNIX socketpair round trips, 1 and
 *      64 bytes, blocking sockets: the baselines the ring replaces.
 *   4. one-way throughput for 64 B .. 1 MiB messages: message mode with
 *      batching (ivl_ring_write(IVL_MORE) + ivl_ring_flush on the producer,
 *      peek + release(IVL_MORE) + release_flush on the consumer) below
 *      64 KiB, stream mode from 64 KiB up. Both ends copy (from a source
 *      buffer in, to a destination buffer out), as a socket user would.
 *   5. memcpy of the same sizes in one process, source and destination of
 *      the message size reused, so that it measures cache-resident copies
 *      as the ring's data does.
 *   6. a cross-core copy ceiling at 64 KiB (diagnostic): the ring's two
 *      copies and cache-line traffic without the ring, through 64 KiB slots
 *      handed over with a flag. The memcpy goal is read against it.
 *
 * Latencies are per round trip: one clock_gettime(CLOCK_MONOTONIC) per round
 * trip, each sample the difference to the previous one, so the clock's cost
 * (printed as clock_overhead_ns) is inside every figure, the floor's too.
 * Throughputs are the median over several equal time windows.
 *
 * The goals of issue 2 are printed with "met"/"not met" and never asserted:
 * on a machine shared with other builds a missed goal is a measurement, not
 * a failure. The exit status only says whether every test could run.
 *
 * JSON output (--json): one object. Latencies are nanoseconds (nearest-rank
 * percentiles), throughputs messages/s and GB/s (10^9 bytes/s). Every
 * figure below is a number > 0 in a successful run (the CTest smoke test
 * checks exactly that); the metadata keys are marked (meta).
 *
 *   tool                      (meta) "ivlink-ring-bench"
 *   schema                    (meta) 1; bumped when a key changes meaning
 *   quick, pinned             (meta) booleans: --quick given; both processes
 *                             pinned to distinct CPUs
 *   cpus                      (meta) [parent CPU, child CPU], -1 if unpinned
 *   iters                     round trips per spinning latency test
 *   slow_iters                round trips per sleeping latency test (ring
 *                             blocking, TCP, UNIX)
 *   duration_ms               measuring time per throughput size
 *   ring_kib                  throughput ring size, KiB
 *   clock_overhead_ns         cost of one clock_gettime(CLOCK_MONOTONIC)
 *   floor_rtt_ns              cache-line ping-pong round trip, p50
 *   floor_rtt_p99_ns, floor_rtt_p999_ns
 *   floor_pause_rtt_ns        the same with a pause instruction in the spin
 *                             loops, as the ring's waits have, p50
 *   ring_rtt_p50_ns, ring_rtt_p99_ns, ring_rtt_p999_ns
 *                             ring round trip, 64 B messages, spinning
 *   ring_block_rtt_p50_ns, ring_block_rtt_p99_ns, ring_block_rtt_p999_ns
 *                             ring round trip, 64 B, spin_ns = 0 (eventfd)
 *   ring_block_kicks_per_rtt  eventfd kicks per blocking round trip (2.0
 *                             when every wait slept)
 *   ring_lazy_rtt_p50_ns      diagnostic: spinning round trip with the
 *                             consumer publishing its head once per quarter
 *                             ring instead of per record, p50
 *   tcp_rtt_p50_ns, tcp_rtt_p99_ns, tcp_rtt_p999_ns
 *                             TCP loopback round trip, 64 B, TCP_NODELAY
 *   tcp_1b_rtt_p50_ns, tcp_1b_rtt_p99_ns, tcp_1b_rtt_p999_ns   the same, 1 B
 *   unix_rtt_p50_ns, unix_rtt_p99_ns, unix_rtt_p999_ns
 *                             UNIX socketpair round trip, 64 B
 *   unix_1b_rtt_p50_ns, unix_1b_rtt_p99_ns, unix_1b_rtt_p999_ns  the same, 1 B
 *   msgs_per_s_64b            one-way 64 B messages per second (batched)
 *   gbps_64b                  the same in GB/s of payload
 *   gbps_64k                  one-way 64 KiB stream throughput, GB/s
 *   memcpy_gbps_64k           memcpy of 64 KiB, GB/s
 *   ring_rtt_vs_floor         ring_rtt_p50_ns / floor_rtt_ns
 *   tcp_vs_ring_rtt           tcp_rtt_p50_ns / ring_rtt_p50_ns
 *   unix_vs_ring_rtt          unix_rtt_p50_ns / ring_rtt_p50_ns
 *   gbps_64k_pct_of_memcpy    100 * gbps_64k / memcpy_gbps_64k
 *   xcopy_gbps_64k            diagnostic: cross-core copy ceiling, GB/s: the
 *                             child copies into 64 KiB shared slots and hands
 *                             each over with a flag, the parent copies out
 *   gbps_64k_pct_of_xcopy     100 * gbps_64k / xcopy_gbps_64k
 *   sizes                     array: message sizes of the throughput test
 *   tput_mode                 (meta) array: "message" or "stream" per size
 *   tput_msgs_per_s           array: messages/s per size
 *   tput_gbps                 array: ring GB/s per size
 *   memcpy_gbps               array: memcpy GB/s per size
 *   tput_pct_of_memcpy        array: 100 * tput_gbps / memcpy_gbps
 *   tput_commits_per_msg      array, diagnostic: producer commits (publish
 *                             units) per message; above 1 in stream mode
 *                             means messages were cut into pieces
 *   peers                     object, the peers comparison (peers.c):
 *                             rounds, rtt_iters, oneway_ms, msg_bytes (meta);
 *                             instructions (meta) true when counted;
 *                             instr_why (meta) null or why not; rows, an
 *                             array in this order: floor, memcpy, ivlink_msg,
 *                             ivlink_stream, boost_spsc, dpdk_rte_ring, each
 *                             {key, name, built, why_not (meta), rtt_p50_ns,
 *                             rtt_vs_floor, msgs_per_s, instr_per_pair}, a
 *                             figure null where it does not apply (memcpy
 *                             has no round trip, the floor no one-way rate
 *                             nor instructions) or was not measured
 *   goals                     object, one member per goal of issue 2, each
 *                             {"target": x, "value": y, "met": bool}:
 *                             rtt_vs_floor (value <= 2), tcp_vs_ring (value
 *                             >= 100), gbps_64k_pct_of_memcpy (value >= 50),
 *                             msgs_per_s_64b (value >= 1e7)
 */
#ifndef IVLINK_RING_BENCH_H
#define IVLINK_RING_BENCH_H

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/notify.h>
#include <ivlink/ring.h>

#include "bench_common.h"
#include "peer_queue.h"

/* ------------------------------------------------------------------ setup */

#define RTT_MSG		      64u	  /* message size of the ring round trips */
#define RTT_RING_SIZE	      (64u << 10) /* ping and pong rings */
#define TPUT_RING_MAX	      (2u << 20)
#define TPUT_RING_DEFAULT_KIB 512u
#define STREAM_FROM	      (64u << 10)     /* sizes from here on use stream mode */
#define BATCH_BYTES	      16384u	      /* message mode: publish about this often */
#define WAIT_NS		      10000000000LL   /* a peer silent this long is broken */
#define SPIN_FOREVER_NS	      3600000000000LL /* "spinning": never block */

/* Default and --quick run lengths. A full run stays well under a minute on
 * the reference machines; --quick under ten seconds, for CI. */
#define ITERS_DEFAULT	    500000u
#define ITERS_QUICK	    20000u
#define SLOW_DIV	    25u /* sleeping tests run iters / SLOW_DIV round trips */
#define SLOW_MIN	    200u
#define DURATION_DEFAULT_MS 300u
#define DURATION_QUICK_MS   40u

#define N_SIZES 8u /* entries of rb_tput_sizes[] */

/* Region layout (offsets from the start of the memfd mapping). Each ring's
 * producer and consumer blocks get a page of their own, as they live in two
 * different peers' sections in a real region (layout.h), so the only line
 * the two sides share per index is the one the protocol requires. */
#define OFF_CTL	    0u
#define OFF_BALL    4096u
#define OFF_BLOCKS  8192u /* ring i: prod at +8 KiB*i, cons 4 KiB later */
#define OFF_DATA    (1u << 20)
#define DATA_STRIDE TPUT_RING_MAX
#define XCOPY_SIZE  (64u << 10) /* cross-core copy ceiling: slot size */
#define SHM_SIZE    (OFF_DATA + 3u * DATA_STRIDE)

enum ring_id { RING_PING = 0, RING_PONG = 1, RING_TPUT = 2 };

enum cmd {
	CMD_NONE = 0,
	CMD_FLOOR,     /* bounce the ball count times (arg: pause or not) */
	CMD_RING_ECHO, /* echo count messages PING -> PONG */
	CMD_SOCK_ECHO, /* echo count messages of size on a socket (arg) */
	CMD_TPUT,      /* produce size-byte messages into TPUT until stop */
	CMD_XCOPY,     /* fill XCOPY_SIZE slots of the TPUT data until stop */
	CMD_EXIT,
};

/*
 * The control block. Each line has one writer, so that a side polling for a
 * command or an acknowledgement never steals a line the other is writing.
 */
struct ctl {
	/* Line 0, parent: the command. Arguments are written first, then
	 * cmd_seq with release (C1); the child reads cmd_seq with acquire. */
	_Alignas(64) uint32_t cmd_seq;
	uint32_t cmd;
	uint32_t size;
	uint32_t ring_size;
	uint64_t count;
	uint32_t arg;
	/* Line 1, parent: stops a throughput producer. */
	_Alignas(64) uint32_t stop;
	/* Line 2, child: the acknowledgement. status first, then ack_seq with
	 * release (C2); the parent reads ack_seq with acquire. */
	_Alignas(64) uint32_t ack_seq;
	int32_t status;
};

struct lat {
	size_t n;
	int64_t p50, p99, p999;
};

struct tput {
	uint32_t size;
	int stream;
	double msgs_per_s, gbps, memcpy_gbps;
	double commits_per_msg, releases_per_msg; /* diagnostics */
};

/* The peers comparison (peers.c): rows in report order. */
#define RB_PEERS	   6 /* floor, memcpy, ivlink message, ivlink stream, Boost, DPDK */
#define RB_PEER_ROUNDS_MAX 15u

struct rb_peer_row {
	const char *key, *name;
	const char *why_not; /* NULL: measured; else why not (not built) */
	/* Medians over the rounds; -1: does not apply (the floor has no
	 * one-way rate, memcpy no round trip) or was not measured. */
	double rtt_p50_ns, rtt_vs_floor, msgs_per_s;
	double instr_per_pair; /* callgrind, --instructions */
};

struct rb_peers {
	unsigned rounds, oneway_ms;
	size_t rtt_iters;
	bool instructions, instr_done; /* asked for; counted */
	const char *instr_why;	       /* why not counted, or NULL */
	uint64_t *ball;		       /* the floor's line */
	int64_t *samples;	       /* rtt_iters entries */
	struct rb_peer_row row[RB_PEERS];
};

struct results {
	double clock_ns;
	struct lat floor, floor_pause, ring, ring_block;
	double block_kicks_per_rtt;
	struct lat ring_lazy; /* diagnostic */
	double xcopy_gbps;    /* diagnostic: cross-core copy ceiling, 64 KiB */
	struct lat tcp64, tcp1, unix64, unix1;
	struct tput tp[N_SIZES];
	struct rb_peers peers;
};

struct opts {
	uint32_t iters, slow_iters, duration_ms, ring_kib;
	uint32_t rounds; /* peers: rounds (0: default) */
	bool json, quick;
	bool instructions;     /* peers: callgrind counts */
	const char *pairs_key; /* --pairs: run rb_pairs_loop() only */
	uint32_t pairs_n;
};

struct bench {
	uint8_t *shm;
	struct ctl *ctl;
	uint64_t *ball;
	pid_t child, parent;
	int cpu[2];
	bool pinned;
	int efd_parent, efd_child;
	int tcp_fd, unix_fd; /* this process's end */
	struct ivl_efd_notifier efd;
	struct ivl_notifier notify;
	uint32_t seq;
	struct opts o;
	int64_t *samples;   /* o.iters entries */
	uint8_t *src, *dst; /* message buffers, TPUT_RING_MAX bytes each */
};

/* Keeps the compiler from dropping copies whose result nobody reads. */
static inline void clobber(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

static inline struct ivl_ring_prod *ring_prod(struct bench *b, enum ring_id id)
{
	return (struct ivl_ring_prod *)(b->shm + OFF_BLOCKS + 8192u * id);
}

static inline struct ivl_ring_cons *ring_cons(struct bench *b, enum ring_id id)
{
	return (struct ivl_ring_cons *)(b->shm + OFF_BLOCKS + 8192u * id + 4096u);
}

static inline void *ring_data(struct bench *b, enum ring_id id)
{
	return b->shm + OFF_DATA + (size_t)DATA_STRIDE * id;
}

/* Hand-over flag of cross-core copy slot i, one line each, after the ball. */
static inline uint32_t *xcopy_flag(struct bench *b, uint32_t i)
{
	return (uint32_t *)(b->shm + OFF_BALL + 64u * (i + 1));
}

/*
 * How a ring round trip waits and consumes. RTT_SPIN and RTT_SLEEP are the
 * two figures issue 2 asks for; RTT_LAZY_HEAD is a diagnostic for the ring's
 * owners (see the report in rb_print_human()).
 */
enum rtt_how {
	RTT_SPIN,      /* ivl_ring_wait_readable, spin budget never runs out */
	RTT_SLEEP,     /* ivl_ring_wait_readable with spin_ns = 0: every wait sleeps */
	RTT_LAZY_HEAD, /* RTT_SPIN, but the consumer publishes its head lazily */
};

/* Lazy head publication: once per this many bytes consumed. A ping-pong
 * never has more than one record in flight, so the producer never waits for
 * space and no flush before waiting is needed. */
#define LAZY_HEAD_BYTES (RTT_RING_SIZE / 4)

/* rings.c */
int rb_ring_attach(struct bench *b, struct ivl_ring *r, enum ring_id id, int producer,
		   uint32_t size, enum ivl_ring_mode mode, uint32_t max_record, int64_t spin_ns);
void rb_lat_from(struct lat *l, int64_t *s, size_t n);
size_t rb_warmup_of(size_t iters);
void rb_copy_spans(uint8_t *dst, const struct ivl_span sp[2], size_t n);
int rb_rtt_attach(struct bench *b, struct ivl_ring *rx, struct ivl_ring *tx, int parent,
		  enum rtt_how how);
long rb_rtt_recv(struct ivl_ring *rx, enum rtt_how how, uint8_t *buf, uint32_t *unflushed);

/* child.c */
_Noreturn void rb_child_main(struct bench *b, uint16_t tcp_port);

/* parent.c */
int rb_child_gone(struct bench *b);
int rb_parent_peer_alive(void *ctx);
void rb_issue(struct bench *b, enum cmd cmd);
double rb_clock_overhead(void);
int rb_run_floor(struct bench *b, int pause, struct lat *out);
int rb_run_ring_rtt(struct bench *b, enum rtt_how how, size_t iters, struct lat *out,
		    double *kicks_per_rtt);
int rb_run_sock_rtt(struct bench *b, int unix_sock, uint32_t size, struct lat *out);
int rb_run_tput(struct bench *b, uint32_t size, struct tput *res);
int rb_run_xcopy(struct bench *b, double *gbps);
double rb_run_memcpy(struct bench *b, uint32_t size);

/* report.c */
void rb_print_human(const struct bench *b, const struct results *r);
void rb_print_json(const struct bench *b, const struct results *r);

/* main.c */
extern const uint32_t rb_tput_sizes[N_SIZES];

/* peers.c */
int rb_run_peers(struct bench *b, struct rb_peers *pr);
long rb_pairs_loop(const struct rb_queue_ops *ops, void *q, long n);
int rb_peers_pairs_main(const char *key, long n);

#endif /* IVLINK_RING_BENCH_H */
