/* SPDX-License-Identifier: MIT */
/*
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
 *      all: every wait advertises sleep and is woken by an eventfd kick;
 *      see wait_readable_sleeping() for why not ivl_ring_wait_readable()).
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
 *   ring_lib_spin0_rtt_p50_ns diagnostic: round trip through
 *                             ivl_ring_wait_readable() with spin_ns = 0, p50
 *   ring_lib_spin0_kicks_per_rtt  diagnostic, may be 0: its kicks per round
 *                             trip (below 2.0: some waits never slept)
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
 *   goals                     object, one member per goal of issue 2, each
 *                             {"target": x, "value": y, "met": bool}:
 *                             rtt_vs_floor (value <= 2), tcp_vs_ring (value
 *                             >= 100), gbps_64k_pct_of_memcpy (value >= 50),
 *                             msgs_per_s_64b (value >= 1e7)
 */
#define _GNU_SOURCE
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

static const uint32_t tput_sizes[] = {
    64, 256, 1024, 4096, 16384, 65536, 262144, 1048576,
};
#define N_SIZES (sizeof(tput_sizes) / sizeof(tput_sizes[0]))

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

struct results {
	double clock_ns;
	struct lat floor, floor_pause, ring, ring_block;
	double block_kicks_per_rtt;
	struct lat ring_spin0, ring_lazy; /* diagnostics */
	double spin0_kicks_per_rtt;
	double xcopy_gbps; /* diagnostic: cross-core copy ceiling, 64 KiB */
	struct lat tcp64, tcp1, unix64, unix1;
	struct tput tp[N_SIZES];
};

struct opts {
	uint32_t iters, slow_iters, duration_ms, ring_kib;
	bool json, quick;
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

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#else
	__asm__ volatile("" ::: "memory");
#endif
}

/* Keeps the compiler from dropping copies whose result nobody reads. */
static inline void clobber(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

static struct ivl_ring_prod *ring_prod(struct bench *b, enum ring_id id)
{
	return (struct ivl_ring_prod *)(b->shm + OFF_BLOCKS + 8192u * id);
}

static struct ivl_ring_cons *ring_cons(struct bench *b, enum ring_id id)
{
	return (struct ivl_ring_cons *)(b->shm + OFF_BLOCKS + 8192u * id + 4096u);
}

static void *ring_data(struct bench *b, enum ring_id id)
{
	return b->shm + OFF_DATA + (size_t)DATA_STRIDE * id;
}

/* Hand-over flag of cross-core copy slot i, one line each, after the ball. */
static uint32_t *xcopy_flag(struct bench *b, uint32_t i)
{
	return (uint32_t *)(b->shm + OFF_BALL + 64u * (i + 1));
}

static int ring_attach(struct bench *b, struct ivl_ring *r, enum ring_id id, int producer,
		       uint32_t size, enum ivl_ring_mode mode, uint32_t max_record, int64_t spin_ns)
{
	int rc;

	if (producer)
		rc = ivl_ring_init_producer(r, ring_prod(b, id), ring_cons(b, id), ring_data(b, id),
					    size, mode, max_record, &b->notify);
	else
		rc = ivl_ring_init_consumer(r, ring_prod(b, id), ring_cons(b, id), ring_data(b, id),
					    size, mode, max_record, &b->notify);
	if (rc == 0)
		r->spin_ns = spin_ns;
	return rc;
}

static void lat_from(struct lat *l, int64_t *s, size_t n)
{
	bench_sort_i64(s, n);
	l->n = n;
	l->p50 = bench_pct(s, n, 0.50);
	l->p99 = bench_pct(s, n, 0.99);
	l->p999 = bench_pct(s, n, 0.999);
}

/* Warm-up round trips, discarded: the first ones pay page faults, cold
 * caches and the other side still arriving at its loop. */
static size_t warmup_of(size_t iters)
{
	size_t w = iters / 10;

	return w < 100 ? 100 : w > 10000 ? 10000 : w;
}

/* -------------------------------------------------------- both processes */

/* Copies n bytes out of up to two ring spans. */
static void copy_spans(uint8_t *dst, const struct ivl_span sp[2], size_t n)
{
	size_t first = sp[0].len < n ? sp[0].len : n;

	memcpy(dst, sp[0].base, first);
	if (n > first)
		memcpy(dst + first, sp[1].base, n - first);
}

/*
 * How a ring round trip waits and consumes. RTT_SPIN and RTT_SLEEP are the
 * two figures issue 2 asks for; the other two are diagnostics for the ring's
 * owners (see the report in print_human()).
 */
enum rtt_how {
	RTT_SPIN,      /* ivl_ring_wait_readable, spin budget never runs out */
	RTT_SLEEP,     /* every wait advertises sleep and blocks, no spin */
	RTT_LIB_SPIN0, /* ivl_ring_wait_readable with spin_ns = 0 */
	RTT_LAZY_HEAD, /* RTT_SPIN, but the consumer publishes its head lazily */
};

/* Lazy head publication: once per this many bytes consumed. A ping-pong
 * never has more than one record in flight, so the producer never waits for
 * space and no flush before waiting is needed. */
#define LAZY_HEAD_BYTES (RTT_RING_SIZE / 4)

/*
 * Waits for data without spinning at all: advertise sleep, re-check, block,
 * the handshake ring.h describes and ring.c's wait_loop() runs after its
 * spin phase, through ring.c's own ivl_ring_arm()/ivl_ring_disarm() (the
 * handshake lives in ring.c only).
 *
 * WORKAROUND: ivl_ring_wait_readable() with spin_ns = 0 still polls the ring
 * 64 times before it first reads the clock (wait_loop() tests the time only
 * when (++i & 63) == 0), a few microseconds with pause. In a ping-pong the
 * reply nearly always lands inside that poll, so the "blocking" figure would
 * really be a spinning one (RTT_LIB_SPIN0 shows it: well under one kick per
 * round trip). Go back to ivl_ring_wait_readable() once ring.c skips the
 * spin phase when spin_ns is 0.
 */
static int wait_readable_sleeping(struct ivl_ring *r, int64_t timeout_ns)
{
	int64_t deadline = bench_now_ns() + timeout_ns;
	int rc;

	while (!ivl_ring_readable(r)) {
		if (r->notify.check) {
			rc = r->notify.check(r->notify.ctx);
			if (rc < 0)
				return rc;
		}
		/* Odd sleep_seq and F1: either we see the producer's tail
		 * below or it sees our sleep and kicks. */
		ivl_ring_arm(r);
		if (ivl_ring_readable(r)) {
			ivl_ring_disarm(r);
			return 0;
		}
		if (bench_now_ns() > deadline) {
			ivl_ring_disarm(r);
			return -ETIMEDOUT;
		}
		rc = r->notify.block(r->notify.ctx, IVL_BLOCK_SLICE_NS);
		ivl_ring_disarm(r);
		if (rc < 0 && rc != -ETIMEDOUT)
			return rc;
	}
	return 0;
}

/* Attaches the two rings of a round trip: the parent produces into PING and
 * consumes PONG, the child the reverse. */
static int rtt_attach(struct bench *b, struct ivl_ring *rx, struct ivl_ring *tx, int parent,
		      enum rtt_how how)
{
	int64_t spin_ns = how == RTT_SLEEP || how == RTT_LIB_SPIN0 ? 0 : SPIN_FOREVER_NS;
	int rc;

	rc = ring_attach(b, rx, parent ? RING_PONG : RING_PING, 0, RTT_RING_SIZE, IVL_MODE_MESSAGE,
			 RTT_MSG, spin_ns);
	if (rc == 0)
		rc = ring_attach(b, tx, parent ? RING_PING : RING_PONG, 1, RTT_RING_SIZE,
				 IVL_MODE_MESSAGE, RTT_MSG, spin_ns);
	return rc;
}

/* Waits for and consumes one record into buf (RTT_MSG bytes). Returns its
 * length or -errno. */
static long rtt_recv(struct ivl_ring *rx, enum rtt_how how, uint8_t *buf, uint32_t *unflushed)
{
	struct ivl_span sp[2];
	long n;
	int rc;

	if (how == RTT_SLEEP)
		rc = wait_readable_sleeping(rx, WAIT_NS);
	else
		rc = ivl_ring_wait_readable(rx, WAIT_NS);
	if (rc < 0)
		return rc;
	if (how != RTT_LAZY_HEAD)
		return ivl_ring_read(rx, buf, RTT_MSG);
	n = ivl_ring_peek(rx, sp);
	if (n < 0)
		return n;
	if (n > (long)RTT_MSG)
		return -EMSGSIZE;
	copy_spans(buf, sp, (size_t)n);
	rc = ivl_ring_release(rx, 0, IVL_MORE);
	*unflushed += (uint32_t)ivl_rec_footprint((uint64_t)n);
	if (rc == 0 && *unflushed >= LAZY_HEAD_BYTES) {
		*unflushed = 0;
		rc = ivl_ring_release_flush(rx);
	}
	return rc < 0 ? rc : n;
}

/* ------------------------------------------------------------------ child */

static int child_floor(struct bench *b, uint64_t count, int pause)
{
	uint64_t *ball = b->ball;
	int64_t deadline = bench_now_ns() + WAIT_NS;

	for (uint64_t i = 0; i < count; i++) {
		uint64_t want = 2 * i + 1;
		unsigned spins = 0;

		/* B1: pairs with the parent's release store of want. */
		while (__atomic_load_n(ball, __ATOMIC_ACQUIRE) != want) {
			if (pause)
				cpu_relax();
			if ((++spins & 0xffff) == 0) {
				if (!b->pinned)
					sched_yield();
				if (bench_now_ns() > deadline)
					return -ETIMEDOUT;
			}
		}
		/* B2: pairs with the parent's acquire load. */
		__atomic_store_n(ball, want + 1, __ATOMIC_RELEASE);
	}
	return 0;
}

static int child_ring_echo(struct bench *b, uint64_t count, enum rtt_how how)
{
	struct ivl_ring rx, tx;
	uint8_t msg[RTT_MSG];
	uint32_t unflushed = 0;
	long n;
	int rc;

	rc = rtt_attach(b, &rx, &tx, 0, how);
	for (uint64_t i = 0; rc == 0 && i < count; i++) {
		n = rtt_recv(&rx, how, msg, &unflushed);
		if (n < 0) {
			rc = (int)n;
			break;
		}
		n = ivl_ring_write(&tx, msg, (size_t)n, 0);
		if (n < 0)
			rc = (int)n;
	}
	return rc;
}

static int child_sock_echo(struct bench *b, int fd, uint64_t count, uint32_t size)
{
	uint8_t buf[RTT_MSG];
	int rc = 0;

	for (uint64_t i = 0; rc == 0 && i < count; i++) {
		rc = bench_recv_all(fd, buf, size);
		if (rc == 0)
			rc = bench_send_all(fd, buf, size);
	}
	return rc;
}

/* Producer of a throughput test: message mode writes records with IVL_MORE
 * and publishes once per batch; stream mode writes each message with as many
 * (partial) writes as the ring's free space allows, publishing each. */
static int child_tput(struct bench *b, uint32_t size, uint32_t ring_size)
{
	int stream = size >= STREAM_FROM;
	uint32_t fp = (uint32_t)ivl_rec_footprint(size);
	uint32_t batch = stream ? 1 : BATCH_BYTES / fp;
	struct ivl_ring tx;
	int rc;

	if (batch == 0)
		batch = 1;
	rc = ring_attach(b, &tx, RING_TPUT, 1, ring_size,
			 stream ? IVL_MODE_STREAM : IVL_MODE_MESSAGE, stream ? 0 : size,
			 IVL_SPIN_NS_DEFAULT);
	if (rc < 0)
		return rc;
	memset(b->src, 0x5a, size);

	while (rc == 0 && !__atomic_load_n(&b->ctl->stop, __ATOMIC_RELAXED)) {
		for (uint32_t i = 0; i < batch && rc == 0;) {
			size_t off = 0;
			long n;

			if (!stream) {
				n = ivl_ring_write(&tx, b->src, size, IVL_MORE);
				if (n >= 0) {
					i++;
					continue;
				}
			} else {
				for (;;) {
					n = ivl_ring_write(&tx, b->src + off, size - off, 0);
					if (n < 0)
						break;
					off += (size_t)n;
					if (off == size)
						break;
				}
				if (n >= 0) {
					i++;
					continue;
				}
			}
			if (n != -EAGAIN) {
				rc = (int)n;
				break;
			}
			/* Full: publish what the batch holds, then wait. A
			 * short timeout lets a stop request end the wait. */
			rc = ivl_ring_flush(&tx);
			if (rc == 0)
				rc = ivl_ring_wait_writable(&tx, stream ? 1 : size, 1000000);
			if (rc == -ETIMEDOUT)
				rc = 0;
			if (__atomic_load_n(&b->ctl->stop, __ATOMIC_RELAXED))
				break;
			if (stream && off > 0) {
				/* Finish the message we started so that the
				 * consumer sees whole messages. */
				while (rc == 0 && off < size) {
					n = ivl_ring_write(&tx, b->src + off, size - off, 0);
					if (n == -EAGAIN) {
						rc = ivl_ring_wait_writable(&tx, 1, 1000000);
						if (rc == -ETIMEDOUT)
							rc = 0;
						continue;
					}
					if (n < 0)
						rc = (int)n;
					else
						off += (size_t)n;
				}
				i++;
			}
		}
		if (rc == 0)
			rc = ivl_ring_flush(&tx);
	}
	/* EOF tells the consumer the last message is in: it drains and stops. */
	if (rc == 0)
		rc = ivl_ring_set_flags(&tx, IVL_RING_F_DONE_WRITING);
	return rc;
}

/* Producer half of the cross-core copy ceiling: copy into each free slot
 * and hand it over with one flag, no ring code at all. */
static int child_xcopy(struct bench *b, uint32_t nslots)
{
	uint8_t *slots = ring_data(b, RING_TPUT);
	int64_t deadline = bench_now_ns() + WAIT_NS;

	for (uint32_t i = 0;; i = (i + 1) % nslots) {
		uint32_t *flag = xcopy_flag(b, i);

		/* X2: pairs with the parent's release store of 0: its reads
		 * of the slot are done before we overwrite it. */
		for (unsigned spins = 1; __atomic_load_n(flag, __ATOMIC_ACQUIRE) != 0; spins++) {
			if (__atomic_load_n(&b->ctl->stop, __ATOMIC_RELAXED))
				return 0;
			if ((spins & 0xfff) == 0 && bench_now_ns() > deadline)
				return -ETIMEDOUT;
			cpu_relax();
		}
		memcpy(slots + (size_t)i * XCOPY_SIZE, b->src, XCOPY_SIZE);
		/* X1: pairs with the parent's acquire load of 1. */
		__atomic_store_n(flag, 1, __ATOMIC_RELEASE);
		deadline = bench_now_ns() + WAIT_NS;
	}
}

/* Idle until the next command: spin briefly (commands come back to back),
 * then sleep in short steps so an idle child does not burn a shared CPU. */
static uint32_t child_wait_cmd(struct bench *b, uint32_t last)
{
	int64_t spin_end = bench_now_ns() + 1000000;
	uint32_t seq;

	for (;;) {
		/* C1: pairs with the parent's release store in issue(). */
		seq = __atomic_load_n(&b->ctl->cmd_seq, __ATOMIC_ACQUIRE);
		if (seq != last)
			return seq;
		if (getppid() != b->parent)
			_exit(1); /* orphaned: the parent died */
		if (bench_now_ns() < spin_end) {
			cpu_relax();
		} else {
			struct timespec ts = {0, 20000};

			nanosleep(&ts, NULL);
		}
	}
}

static int child_peer_alive(void *ctx)
{
	const struct bench *b = ctx;

	return getppid() != b->parent ? -ECONNRESET : 0;
}

static _Noreturn void child_main(struct bench *b, uint16_t tcp_port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(tcp_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	uint32_t seq = 0;
	int one = 1;

	/* The child must never outlive the parent (it would spin forever). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != b->parent)
		_exit(1);
	if (bench_pin_to(b->cpu[1]) < 0)
		_exit(1);
	b->efd = (struct ivl_efd_notifier){.kick_fd = b->efd_parent,
					   .wait_fd = b->efd_child,
					   .check = child_peer_alive,
					   .check_ctx = b};
	ivl_efd_notifier_bind(&b->notify, &b->efd);

	b->tcp_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (b->tcp_fd < 0 || connect(b->tcp_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		_exit(1);
	setsockopt(b->tcp_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	for (;;) {
		struct ctl *c = b->ctl;
		int rc = 0;

		seq = child_wait_cmd(b, seq);
		switch (c->cmd) {
		case CMD_FLOOR:
			rc = child_floor(b, c->count, (int)c->arg);
			break;
		case CMD_RING_ECHO:
			rc = child_ring_echo(b, c->count, (enum rtt_how)c->arg);
			break;
		case CMD_SOCK_ECHO:
			rc = child_sock_echo(b, c->arg ? b->unix_fd : b->tcp_fd, c->count, c->size);
			break;
		case CMD_TPUT:
			rc = child_tput(b, c->size, c->ring_size);
			break;
		case CMD_XCOPY:
			rc = child_xcopy(b, c->ring_size / XCOPY_SIZE);
			break;
		case CMD_EXIT:
			_exit(0);
		default:
			rc = -EINVAL;
		}
		c->status = rc;
		/* C2: pairs with the parent's acquire load in wait_ack(). */
		__atomic_store_n(&c->ack_seq, seq, __ATOMIC_RELEASE);
	}
}

/* ----------------------------------------------------------------- parent */

static int child_gone(struct bench *b)
{
	int st;

	if (b->child > 0 && waitpid(b->child, &st, WNOHANG) == b->child) {
		b->child = -1;
		return 1;
	}
	return b->child <= 0;
}

static int parent_peer_alive(void *ctx)
{
	return child_gone(ctx) ? -ECONNRESET : 0;
}

/* Hands the child a command; the caller filled the argument fields. */
static void issue(struct bench *b, enum cmd cmd)
{
	b->ctl->cmd = cmd;
	/* C1: pairs with the acquire load in child_wait_cmd(). */
	__atomic_store_n(&b->ctl->cmd_seq, ++b->seq, __ATOMIC_RELEASE);
}

static int wait_ack(struct bench *b)
{
	int64_t deadline = bench_now_ns() + WAIT_NS;
	unsigned spins = 0;

	/* C2: pairs with the release store at the end of child_main()'s loop. */
	while (__atomic_load_n(&b->ctl->ack_seq, __ATOMIC_ACQUIRE) != b->seq) {
		cpu_relax();
		if ((++spins & 0xfff) == 0) {
			if (child_gone(b))
				return -ECONNRESET;
			if (bench_now_ns() > deadline)
				return -ETIMEDOUT;
			if (!b->pinned)
				sched_yield();
		}
	}
	return b->ctl->status;
}

static double clock_overhead(void)
{
	int64_t t0 = bench_now_ns(), t1;
	const int n = 100000;

	for (int i = 0; i < n; i++)
		t1 = bench_now_ns();
	t1 = bench_now_ns();
	return (double)(t1 - t0) / (n + 1);
}

static int run_floor(struct bench *b, int pause, struct lat *out)
{
	size_t iters = b->o.iters, warm = warmup_of(iters), total = iters + warm;
	uint64_t *ball = b->ball;
	int64_t t0, t1, deadline = bench_now_ns() + WAIT_NS;
	int rc;

	__atomic_store_n(ball, 0, __ATOMIC_RELAXED);
	b->ctl->count = total;
	b->ctl->arg = (uint32_t)pause;
	issue(b, CMD_FLOOR);

	t0 = bench_now_ns();
	for (size_t i = 0; i < total; i++) {
		uint64_t v = 2 * (uint64_t)i + 1;
		unsigned spins = 0;

		/* B1: pairs with the child's acquire load. */
		__atomic_store_n(ball, v, __ATOMIC_RELEASE);
		/* B2: pairs with the child's release store of v + 1. */
		while (__atomic_load_n(ball, __ATOMIC_ACQUIRE) != v + 1) {
			if (pause)
				cpu_relax();
			if ((++spins & 0xffff) == 0) {
				if (!b->pinned)
					sched_yield();
				if (bench_now_ns() > deadline || child_gone(b))
					return -ETIMEDOUT;
			}
		}
		t1 = bench_now_ns();
		if (i >= warm)
			b->samples[i - warm] = t1 - t0;
		t0 = t1;
	}
	rc = wait_ack(b);
	if (rc < 0)
		return rc;
	lat_from(out, b->samples, iters);
	return 0;
}

static int run_ring_rtt(struct bench *b, enum rtt_how how, size_t iters, struct lat *out,
			double *kicks_per_rtt)
{
	size_t warm = warmup_of(iters), total = iters + warm;
	struct ivl_ring tx, rx;
	uint8_t msg[RTT_MSG], in[RTT_MSG];
	uint32_t unflushed = 0;
	uint64_t stale;
	int64_t t0, t1;
	int rc, rc2;

	memset(msg, 0xa5, sizeof(msg));
	ivl_ring_format(ring_prod(b, RING_PING), ring_cons(b, RING_PING));
	ivl_ring_format(ring_prod(b, RING_PONG), ring_cons(b, RING_PONG));
	/* Drain eventfd counts left by an earlier test, so that the first
	 * sleeps of this one are not cut short by stale kicks. */
	while (read(b->efd_parent, &stale, sizeof(stale)) > 0)
		;
	while (read(b->efd_child, &stale, sizeof(stale)) > 0)
		;
	rc = rtt_attach(b, &rx, &tx, 1, how);
	if (rc < 0)
		return rc;
	b->ctl->count = total;
	b->ctl->arg = how;
	issue(b, CMD_RING_ECHO);

	t0 = bench_now_ns();
	for (size_t i = 0; i < total; i++) {
		long n = ivl_ring_write(&tx, msg, sizeof(msg), 0);

		if (n < 0) {
			rc = (int)n;
			break;
		}
		n = rtt_recv(&rx, how, in, &unflushed);
		if (n != (long)sizeof(in)) {
			rc = n < 0 ? (int)n : -EPROTO;
			break;
		}
		t1 = bench_now_ns();
		if (i >= warm)
			b->samples[i - warm] = t1 - t0;
		t0 = t1;
	}
	rc2 = wait_ack(b);
	if (rc == 0)
		rc = rc2;
	if (rc < 0)
		return rc;
	lat_from(out, b->samples, iters);
	if (kicks_per_rtt) {
		/* Doorbells that woke a sleeping reader (each producer) or
		 * writer (each consumer), per round trip, warm-up included. */
		uint64_t k = ring_prod(b, RING_PING)->kicks + ring_prod(b, RING_PONG)->kicks +
			     ring_cons(b, RING_PING)->kicks + ring_cons(b, RING_PONG)->kicks;

		*kicks_per_rtt = (double)k / (double)total;
	}
	return 0;
}

static int run_sock_rtt(struct bench *b, int unix_sock, uint32_t size, struct lat *out)
{
	size_t iters = b->o.slow_iters, warm = warmup_of(iters), total = iters + warm;
	int fd = unix_sock ? b->unix_fd : b->tcp_fd;
	uint8_t buf[RTT_MSG];
	int64_t t0, t1;
	int rc = 0, rc2;

	memset(buf, 0x3c, sizeof(buf));
	b->ctl->count = total;
	b->ctl->size = size;
	b->ctl->arg = (uint32_t)unix_sock;
	issue(b, CMD_SOCK_ECHO);
	t0 = bench_now_ns();
	for (size_t i = 0; i < total && rc == 0; i++) {
		rc = bench_send_all(fd, buf, size);
		if (rc == 0)
			rc = bench_recv_all(fd, buf, size);
		t1 = bench_now_ns();
		if (i >= warm)
			b->samples[i - warm] = t1 - t0;
		t0 = t1;
	}
	if (rc < 0) {
		/* The child may be blocked in recv() on this socket: shutting
		 * it down makes that return instead of waiting forever. */
		shutdown(fd, SHUT_RDWR);
	}
	rc2 = wait_ack(b);
	if (rc == 0)
		rc = rc2;
	if (rc < 0)
		return rc;
	lat_from(out, b->samples, iters);
	return 0;
}

/*
 * Consumer of a throughput test. After a warm-up window it measures nwin
 * windows of equal length and keeps the median rate; then it stops the
 * producer and drains the ring up to the producer's EOF.
 */
static int run_tput(struct bench *b, uint32_t size, struct tput *res)
{
	int stream = size >= STREAM_FROM;
	uint32_t ring_size = b->o.ring_kib * 1024u;
	uint32_t fp = (uint32_t)ivl_rec_footprint(size);
	uint32_t batch = stream ? 1 : BATCH_BYTES / fp;
	/* Read the clock about every 64 KiB: often enough for windows of a
	 * few milliseconds, rarely enough to cost nothing at 64 B. */
	uint32_t check_every = size >= 65536 ? 1 : 65536 / size;
	size_t chunk = ring_size / 4;
	unsigned nwin = b->o.quick ? 3 : 5;
	int64_t win_ns = (int64_t)b->o.duration_ms * 1000000 / nwin;
	double rate_m[8], rate_b[8];
	uint64_t msgs = 0, bytes = 0, m0 = 0, b0 = 0;
	uint32_t since_check = 0, since_flush = 0;
	size_t moff = 0;
	int64_t t_start, t_win, t_end;
	int w = -1; /* -1: warm-up window */
	int stopping = 0, rc = 0, rc2;
	struct ivl_ring rx;
	struct ivl_span sp[2];

	if (batch == 0)
		batch = 1;
	ivl_ring_format(ring_prod(b, RING_TPUT), ring_cons(b, RING_TPUT));
	rc = ring_attach(b, &rx, RING_TPUT, 0, ring_size,
			 stream ? IVL_MODE_STREAM : IVL_MODE_MESSAGE, stream ? 0 : size,
			 IVL_SPIN_NS_DEFAULT);
	if (rc < 0)
		return rc;
	__atomic_store_n(&b->ctl->stop, 0, __ATOMIC_RELAXED);
	b->ctl->size = size;
	b->ctl->ring_size = ring_size;
	issue(b, CMD_TPUT);

	t_start = bench_now_ns();
	t_win = t_start;
	t_end = t_start + win_ns / 2; /* warm-up: half a window */
	for (;;) {
		long n = ivl_ring_peek(&rx, sp);

		if (n == -EAGAIN) {
			/* Publish released space before waiting, or a
			 * producer waiting for it would wait on us. */
			rc = ivl_ring_release_flush(&rx);
			if (rc == 0)
				rc = ivl_ring_wait_readable(&rx, WAIT_NS);
			if (rc < 0)
				break;
			continue;
		}
		if (n == -EPIPE || (stream && n == 0)) {
			rc = stopping ? 0 : -EPIPE; /* EOF only after stop */
			break;
		}
		if (n < 0) {
			rc = (int)n;
			break;
		}
		if (!stream) {
			copy_spans(b->dst, sp, (size_t)n);
			rc = ivl_ring_release(&rx, 0, IVL_MORE);
			if (rc == 0 && ++since_flush >= batch) {
				since_flush = 0;
				rc = ivl_ring_release_flush(&rx);
			}
			msgs++;
			bytes += (uint64_t)n;
		} else {
			size_t take = (size_t)n < size - moff ? (size_t)n : size - moff;

			/* Release in pieces of at most a quarter ring: a
			 * consumer that copies the whole ring before releasing
			 * any of it leaves the producer nothing to do, and it
			 * falls asleep (a wake-up costs more than the copy). */
			if (take > chunk)
				take = chunk;

			copy_spans(b->dst + moff, sp, take);
			rc = ivl_ring_release(&rx, take, 0);
			moff += take;
			bytes += take;
			if (moff == size) {
				moff = 0;
				msgs++;
			}
		}
		if (rc < 0)
			break;
		clobber(b->dst);
		if (stopping || ++since_check < check_every)
			continue;
		since_check = 0;
		int64_t t = bench_now_ns();

		if (t < t_end)
			continue;
		if (w >= 0) {
			double secs = (double)(t - t_win) / 1e9;

			rate_m[w] = (double)(msgs - m0) / secs;
			rate_b[w] = (double)(bytes - b0) / secs;
		}
		if (++w == (int)nwin) {
			stopping = 1;
			__atomic_store_n(&b->ctl->stop, 1, __ATOMIC_RELAXED);
			continue;
		}
		m0 = msgs;
		b0 = bytes;
		t_win = t;
		t_end = t + win_ns;
	}
	if (rc < 0)
		__atomic_store_n(&b->ctl->stop, 1, __ATOMIC_RELAXED);
	rc2 = wait_ack(b);
	if (rc == 0)
		rc = rc2;
	if (rc < 0)
		return rc;
	res->size = size;
	res->stream = stream;
	/* The shared counters trail the handles' until a flush (the
	 * producer's set_flags at its end flushed its own). */
	ivl_ring_flush_stats(&rx);
	/* Ring calls per message, whole run: how finely the ring chops a
	 * message (stream mode) or how well batching holds (message mode). */
	res->commits_per_msg = (double)ring_prod(b, RING_TPUT)->msgs / (double)msgs;
	res->releases_per_msg = (double)ring_cons(b, RING_TPUT)->msgs / (double)msgs;
	res->msgs_per_s = bench_median_dbl(rate_m, nwin);
	res->gbps = bench_median_dbl(rate_b, nwin) / 1e9;
	return 0;
}

/*
 * The cross-core copy ceiling at 64 KiB: the child copies a source buffer
 * into 64 KiB slots of shared memory and hands each over with a flag, the
 * parent copies it out to a destination buffer and hands it back. Same
 * copies and the same cache-line traffic as a ring transfer, none of the
 * ring's bookkeeping: what a ring could reach on this machine, so that the
 * ring/memcpy goal can be read against what the hardware allows.
 */
static int run_xcopy(struct bench *b, double *gbps)
{
	uint32_t nslots = b->o.ring_kib * 1024u / XCOPY_SIZE;
	uint8_t *slots = ring_data(b, RING_TPUT);
	unsigned nwin = b->o.quick ? 3 : 5;
	int64_t win_ns = (int64_t)b->o.duration_ms * 1000000 / nwin;
	int64_t t, t_win, t_end, deadline;
	double rate[8];
	uint64_t bytes = 0, b0 = 0;
	int w = -1, rc = 0, rc2;

	if (nslots < 2)
		nslots = 2;
	for (uint32_t i = 0; i < nslots; i++)
		__atomic_store_n(xcopy_flag(b, i), 0, __ATOMIC_RELAXED);
	__atomic_store_n(&b->ctl->stop, 0, __ATOMIC_RELAXED);
	b->ctl->ring_size = nslots * XCOPY_SIZE;
	issue(b, CMD_XCOPY);

	t = bench_now_ns();
	t_win = t;
	t_end = t + win_ns / 2;
	for (uint32_t i = 0; w < (int)nwin; i = (i + 1) % nslots) {
		uint32_t *flag = xcopy_flag(b, i);

		deadline = bench_now_ns() + WAIT_NS;
		/* X1: pairs with the child's release store of 1. */
		for (unsigned spins = 1; __atomic_load_n(flag, __ATOMIC_ACQUIRE) != 1; spins++) {
			cpu_relax();
			if ((spins & 0xfff) == 0 && (bench_now_ns() > deadline || child_gone(b))) {
				rc = -ETIMEDOUT;
				goto out;
			}
		}
		memcpy(b->dst, slots + (size_t)i * XCOPY_SIZE, XCOPY_SIZE);
		clobber(b->dst);
		/* X2: pairs with the child's acquire load of 0. */
		__atomic_store_n(flag, 0, __ATOMIC_RELEASE);
		bytes += XCOPY_SIZE;
		t = bench_now_ns();
		if (t < t_end)
			continue;
		if (w >= 0)
			rate[w] = (double)(bytes - b0) / ((double)(t - t_win) / 1e9);
		w++;
		b0 = bytes;
		t_win = t;
		t_end = t + win_ns;
	}
out:
	__atomic_store_n(&b->ctl->stop, 1, __ATOMIC_RELAXED);
	rc2 = wait_ack(b);
	if (rc == 0)
		rc = rc2;
	if (rc == 0)
		*gbps = bench_median_dbl(rate, nwin) / 1e9;
	return rc;
}

/* memcpy of size bytes between two buffers of that size, over and over: the
 * cache-resident copy rate the ring's one-way transfer is compared with. */
static double run_memcpy(struct bench *b, uint32_t size)
{
	unsigned nwin = b->o.quick ? 3 : 5;
	int64_t win_ns = (int64_t)b->o.duration_ms * 1000000 / 3 / nwin;
	uint32_t per_check = size >= 65536 ? 1 : 65536 / size;
	double rate[8];
	int64_t t0, t;

	memset(b->src, 0x11, size);
	memset(b->dst, 0x22, size);
	for (unsigned i = 0; i < 64; i++) /* warm the caches */
		memcpy(b->dst, b->src, size);
	for (unsigned w = 0; w < nwin; w++) {
		uint64_t copies = 0;

		t0 = bench_now_ns();
		do {
			for (uint32_t i = 0; i < per_check; i++) {
				memcpy(b->dst, b->src, size);
				clobber(b->dst);
			}
			copies += per_check;
			t = bench_now_ns();
		} while (t - t0 < win_ns);
		rate[w] = (double)copies * size / ((double)(t - t0) / 1e9);
	}
	return bench_median_dbl(rate, nwin) / 1e9;
}

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

static void print_human(const struct bench *b, const struct results *r)
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
	print_lat("diag: ring, library wait spin_ns=0", &r->ring_spin0);
	print_lat("TCP loopback 1 B, TCP_NODELAY", &r->tcp1);
	print_lat("TCP loopback 64 B, TCP_NODELAY", &r->tcp64);
	print_lat("UNIX socketpair 1 B", &r->unix1);
	print_lat("UNIX socketpair 64 B", &r->unix64);
	printf("  (eventfd kicks per round trip, 2.00 when every wait slept: blocking %.2f,\n"
	       "   library wait with spin_ns=0 %.2f)\n\n",
	       r->block_kicks_per_rtt, r->spin0_kicks_per_rtt);

	printf("One-way throughput (median of %u windows, ring %u KiB; batched below 64 KiB)\n",
	       b->o.quick ? 3 : 5, b->o.ring_kib);
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

static void print_json(const struct bench *b, const struct results *r)
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
	printf("  \"ring_lib_spin0_rtt_p50_ns\": %" PRId64 ",\n", r->ring_spin0.p50);
	printf("  \"ring_lib_spin0_kicks_per_rtt\": %.3f,\n", r->spin0_kicks_per_rtt);
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
	printf("  \"goals\": {\n");
	for (int i = 0; i < 4; i++)
		printf("    \"%s\": {\"target\": %g, \"value\": %.3f, \"met\": %s}%s\n",
		       goal_keys[i], g.target[i], g.value[i], g.met[i] ? "true" : "false",
		       i < 3 ? "," : "");
	printf("  }\n}\n");
}

static void usage(FILE *f)
{
	fprintf(f,
		"NAME\n"
		"    ivlink-ring-bench - ivlink ring latency and throughput against their floors\n"
		"    and baselines\n"
		"\n"
		"SYNOPSIS\n"
		"    ivlink-ring-bench [--quick] [--json] [--iters N] [--duration-ms MS]\n"
		"                      [--ring-kib K]\n"
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
		"      shared 64 KiB slots handed over with one flag each, no ring code.\n"
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
		"    --json\n"
		"        Print one JSON object instead of the human report.\n"
		"    -h, --help\n"
		"        Print this page and exit.\n"
		"    --version\n"
		"        Print the version and exit.\n"
		"\n"
		"OUTPUT\n"
		"    The human report has four parts: latencies (samples, p50, p99, p99.9 in\n"
		"    ns), throughput per size (msgs/s, GB/s = 10^9 bytes/s, memcpy GB/s and\n"
		"    the ring's share of it), ratios, and the goals.\n"
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
		"      ring_lib_spin0_rtt_p50_ns  diagnostic: ivl_ring_wait_readable() with\n"
		"                            spin_ns = 0, p50\n"
		"      ring_lib_spin0_kicks_per_rtt  diagnostic (may be 0): its kicks per\n"
		"                            round trip\n"
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
		DURATION_QUICK_MS, TPUT_RING_MAX >> 10, TPUT_RING_DEFAULT_KIB);
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

	r->clock_ns = clock_overhead();
	if ((rc = run_floor(b, 0, &r->floor)) < 0)
		return fail("cache-line ping-pong", rc);
	if ((rc = run_floor(b, 1, &r->floor_pause)) < 0)
		return fail("cache-line ping-pong with pause", rc);
	if ((rc = run_ring_rtt(b, RTT_SPIN, b->o.iters, &r->ring, NULL)) < 0)
		return fail("ring round trip (spinning)", rc);
	if ((rc = run_ring_rtt(b, RTT_SLEEP, b->o.slow_iters, &r->ring_block,
			       &r->block_kicks_per_rtt)) < 0)
		return fail("ring round trip (blocking)", rc);
	if ((rc = run_ring_rtt(b, RTT_LIB_SPIN0, b->o.slow_iters, &r->ring_spin0,
			       &r->spin0_kicks_per_rtt)) < 0)
		return fail("ring round trip (library wait, spin_ns = 0)", rc);
	if ((rc = run_ring_rtt(b, RTT_LAZY_HEAD, b->o.iters, &r->ring_lazy, NULL)) < 0)
		return fail("ring round trip (lazy head)", rc);
	if ((rc = run_sock_rtt(b, 0, 1, &r->tcp1)) < 0)
		return fail("TCP round trip (1 B)", rc);
	if ((rc = run_sock_rtt(b, 0, RTT_MSG, &r->tcp64)) < 0)
		return fail("TCP round trip (64 B)", rc);
	if ((rc = run_sock_rtt(b, 1, 1, &r->unix1)) < 0)
		return fail("UNIX round trip (1 B)", rc);
	if ((rc = run_sock_rtt(b, 1, RTT_MSG, &r->unix64)) < 0)
		return fail("UNIX round trip (64 B)", rc);
	for (size_t i = 0; i < N_SIZES; i++) {
		char what[64];

		rc = run_tput(b, tput_sizes[i], &r->tp[i]);
		if (rc < 0) {
			snprintf(what, sizeof(what), "throughput (%u B)", tput_sizes[i]);
			return fail(what, rc);
		}
		r->tp[i].memcpy_gbps = run_memcpy(b, tput_sizes[i]);
		/* Right after the ring at the same size: on a shared machine
		 * conditions drift, and the two are compared. */
		if (tput_sizes[i] == XCOPY_SIZE && (rc = run_xcopy(b, &r->xcopy_gbps)) < 0)
			return fail("cross-core copy ceiling", rc);
	}
	return 0;
}

/* Accepts the child's TCP connection, giving up if the child dies first
 * (it exits when its connect() fails) rather than waiting for ever. */
static int accept_child(struct bench *b, int lfd)
{
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};
	int64_t deadline = bench_now_ns() + WAIT_NS;
	int fd, one = 1;

	for (;;) {
		int n = poll(&pfd, 1, 100);

		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			break;
		if (child_gone(b))
			return -ECONNRESET;
		if (bench_now_ns() > deadline)
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
		child_main(&b, port); /* never returns */
	}
	close(sv[1]);
	sv[1] = -1;
	b.unix_fd = sv[0];
	b.efd = (struct ivl_efd_notifier){.kick_fd = b.efd_child,
					  .wait_fd = b.efd_parent,
					  .check = parent_peer_alive,
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
		issue(&b, CMD_EXIT);
		if (b.o.json)
			print_json(&b, &r);
		else
			print_human(&b, &r);
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
