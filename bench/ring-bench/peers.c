/* SPDX-License-Identifier: MIT */
/*
 * ivlink-ring-bench: ivlink's ring next to its peers, the SPSC queues a
 * Debian machine offers (issue 11), in one harness and one run:
 *
 *   - two threads of this process pinned to the two CPUs the forked tests
 *     use, every queue moving 64-byte messages, both sides copying (send
 *     copies a message in, recv copies one out), every wait a poll with
 *     ivl__cpu_relax() in it;
 *   - rounds interleaved: each round measures every queue's round trip and
 *     one-way rate, starting one queue later each round so that no queue
 *     always runs first; each round trip right after a measurement of the
 *     cache-line floor, its ratio against that floor; the report gives
 *     medians over the rounds;
 *   - the floor is a bare cache-line ping-pong through the same poll loop;
 *     memcpy is the one-thread ceiling: a 64-byte copy in and one out;
 *   - with --instructions, each queue's instructions per send+recv pair in
 *     one thread, counted by callgrind (--toggle-collect=rb_pairs_loop) on
 *     this program re-executed with --pairs: no load on the machine changes
 *     them. perf stat would be faster, but these virtual CPUs expose no
 *     instruction counter.
 *
 * Boost.Lockfree and DPDK are optional at build time (bench/CMakeLists.txt);
 * a row that was not built says so and why.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>

#include "ring_bench.h"
/* The ring's inline fast paths, as channels and the socket shim call them
 * (ivl_ring_write/read are the same code behind one more call). */
#include "ring_inline.h"

#define PEER_TIMEOUT_NS 10000000000LL /* a side silent this long is broken */
#define PAIRS_N		20000	      /* pairs per callgrind run */

/* ------------------------------------------------------------- the queues */

/* ivlink's ring in process memory. The producer and consumer blocks sit on
 * pages of their own, as they do in two peers' sections of a region, and
 * each side's handle on lines of its own. */
struct ivl_q {
	_Alignas(4096) struct ivl_ring_prod prod;
	_Alignas(4096) struct ivl_ring_cons cons;
	_Alignas(128) struct ivl_ring p;
	_Alignas(128) struct ivl_ring c;
	_Alignas(4096) uint8_t data[RB_PEER_RING];
};

static void *ivl_q_create(enum ivl_ring_mode mode)
{
	struct ivl_q *q = aligned_alloc(4096, sizeof(struct ivl_q));
	uint32_t max = mode == IVL_MODE_MESSAGE ? RB_PEER_MSG : 0;

	if (!q)
		return NULL;
	memset(q, 0, sizeof(*q));
	ivl_ring_format(&q->prod, &q->cons);
	if (ivl_ring_init_producer(&q->p, &q->prod, &q->cons, q->data, RB_PEER_RING, mode, max,
				   NULL) < 0 ||
	    ivl_ring_init_consumer(&q->c, &q->prod, &q->cons, q->data, RB_PEER_RING, mode, max,
				   NULL) < 0) {
		free(q);
		return NULL;
	}
	return q;
}

static void *ivl_msg_create(void)
{
	return ivl_q_create(IVL_MODE_MESSAGE);
}

static void *ivl_stream_create(void)
{
	return ivl_q_create(IVL_MODE_STREAM);
}

static void ivl_q_destroy(void *q)
{
	free(q);
}

/* Every write and read is of one whole message: the ring's size is a
 * multiple of it, so a stream never splits one. Each row calls the fast
 * path of its mode, as a caller that knows it does (the socket shim's
 * rings are streams). */
static int ivl_q_result(long n)
{
	return n == RB_PEER_MSG ? 0 : n < 0 ? (int)n : -EPROTO;
}

static int ivl_msg_send(void *q, const struct rb_peer_msg *msg)
{
	return ivl_q_result(ivl__ring_write_msg(&((struct ivl_q *)q)->p, msg, RB_PEER_MSG, 0));
}

static int ivl_msg_recv(void *q, struct rb_peer_msg *msg)
{
	return ivl_q_result(ivl__ring_read_msg(&((struct ivl_q *)q)->c, msg, RB_PEER_MSG));
}

static int ivl_stream_send(void *q, const struct rb_peer_msg *msg)
{
	return ivl_q_result(ivl__ring_write_stream(&((struct ivl_q *)q)->p, msg, RB_PEER_MSG, 0));
}

static int ivl_stream_recv(void *q, struct rb_peer_msg *msg)
{
	return ivl_q_result(ivl__ring_read_stream(&((struct ivl_q *)q)->c, msg, RB_PEER_MSG));
}

/* memcpy as a "queue" of one slot, one thread only: the copies every queue
 * makes, without the queue. */
static void *memcpy_create(void)
{
	return aligned_alloc(64, RB_PEER_MSG);
}

static int memcpy_send(void *q, const struct rb_peer_msg *msg)
{
	memcpy(q, msg, RB_PEER_MSG);
	return 0;
}

static int memcpy_recv(void *q, struct rb_peer_msg *msg)
{
	memcpy(msg, q, RB_PEER_MSG);
	return 0;
}

static const struct rb_queue_ops memcpy_ops = {
    .key = "memcpy",
    .name = "memcpy 64 B in + out, one thread",
    .create = memcpy_create,
    .destroy = ivl_q_destroy,
    .send = memcpy_send,
    .recv = memcpy_recv,
};

static const struct rb_queue_ops ivl_msg_ops = {
    .key = "ivlink_msg",
    .name = "ivlink ring, message mode",
    .create = ivl_msg_create,
    .destroy = ivl_q_destroy,
    .send = ivl_msg_send,
    .recv = ivl_msg_recv,
};

static const struct rb_queue_ops ivl_stream_ops = {
    .key = "ivlink_stream",
    .name = "ivlink ring, stream mode",
    .create = ivl_stream_create,
    .destroy = ivl_q_destroy,
    .send = ivl_stream_send,
    .recv = ivl_stream_recv,
};

#ifndef IVL_HAVE_BOOST
static const struct rb_queue_ops rb_boost_missing = {
    .key = "boost_spsc",
    .name = "Boost.Lockfree spsc_queue",
    .why_not = "not built: Boost.Lockfree or a C++ compiler not found at build time "
	       "(libboost-dev, g++: scripts/ivl-deps bench)",
};
#endif
#ifndef IVL_HAVE_DPDK
static const struct rb_queue_ops rb_dpdk_missing = {
    .key = "dpdk_rte_ring",
    .name = "DPDK rte_ring SP/SC",
    .why_not = "not built: librte_ring not found at build time (dpdk-dev: scripts/ivl-deps "
	       "bench)",
};
#endif

/* The rows of the report, in order; the floor is rows[0] and has no ops. */
static const struct rb_queue_ops *const queues[RB_PEERS - 2] = {
    &ivl_msg_ops,
    &ivl_stream_ops,
#ifdef IVL_HAVE_BOOST
    &rb_boost_ops,
#else
    &rb_boost_missing,
#endif
#ifdef IVL_HAVE_DPDK
    &rb_dpdk_ops,
#else
    &rb_dpdk_missing,
#endif
};

static const struct rb_queue_ops *find_ops(const char *key)
{
	if (strcmp(key, memcpy_ops.key) == 0)
		return &memcpy_ops;
	for (size_t i = 0; i < RB_PEERS - 2; i++)
		if (strcmp(key, queues[i]->key) == 0 && !queues[i]->why_not)
			return queues[i];
	return NULL;
}

/* ------------------------------------------------------------ two threads */

struct job {
	const struct rb_queue_ops *ops; /* NULL: the floor */
	void *q1, *q2;			/* main -> helper, helper -> main */
	uint64_t *ball;
	size_t count; /* round trips (echo, floor) */
	int cpu;
	_Alignas(64) uint32_t stop; /* one-way: main tells the producer */
	_Alignas(64) int rc;
};

/* Polls until the call stops saying -EAGAIN, with a deadline read every
 * 64 Ki polls. */
static int spin_deadline(unsigned spins, int64_t *deadline)
{
	int64_t now;

	if ((spins & 0xffff) != 0)
		return 0;
	now = ivl__now_ns();
	if (!*deadline)
		*deadline = now + PEER_TIMEOUT_NS;
	return now > *deadline ? -ETIMEDOUT : 0;
}

static int send_wait(const struct rb_queue_ops *ops, void *q, const struct rb_peer_msg *msg)
{
	int64_t deadline = 0;

	for (unsigned spins = 1;; spins++) {
		int rc = ops->send(q, msg);

		if (rc != -EAGAIN)
			return rc;
		if (spin_deadline(spins, &deadline) < 0)
			return -ETIMEDOUT;
		ivl__cpu_relax();
	}
}

static int recv_wait(const struct rb_queue_ops *ops, void *q, struct rb_peer_msg *msg)
{
	int64_t deadline = 0;

	for (unsigned spins = 1;; spins++) {
		int rc = ops->recv(q, msg);

		if (rc != -EAGAIN)
			return rc;
		if (spin_deadline(spins, &deadline) < 0)
			return -ETIMEDOUT;
		ivl__cpu_relax();
	}
}

/* The floor's helper half: B1/B2 as in child.c's floor, pause included. */
static int floor_echo(struct job *j)
{
	for (uint64_t i = 0; i < j->count; i++) {
		uint64_t want = 2 * i + 1;
		int64_t deadline = 0;

		/* B1: pairs with the main thread's release store of want. */
		for (unsigned spins = 1; __atomic_load_n(j->ball, __ATOMIC_ACQUIRE) != want;
		     spins++) {
			ivl__cpu_relax();
			if (spin_deadline(spins, &deadline) < 0)
				return -ETIMEDOUT;
		}
		/* B2: pairs with the main thread's acquire load of want + 1. */
		__atomic_store_n(j->ball, want + 1, __ATOMIC_RELEASE);
	}
	return 0;
}

static void *helper_echo(void *arg)
{
	struct job *j = arg;
	struct rb_peer_msg msg;
	int rc = bench_pin_to(j->cpu);

	if (rc == 0 && !j->ops)
		rc = floor_echo(j);
	for (size_t i = 0; rc == 0 && j->ops && i < j->count; i++) {
		rc = recv_wait(j->ops, j->q1, &msg);
		if (rc == 0)
			rc = send_wait(j->ops, j->q2, &msg);
	}
	j->rc = rc;
	return NULL;
}

/* One-way producer: sends until told to stop, polling the stop word only
 * while the queue is full or every 64 messages, so that its line stays in
 * this CPU's cache. */
static void *helper_produce(void *arg)
{
	struct job *j = arg;
	struct rb_peer_msg msg;
	int rc = bench_pin_to(j->cpu);

	memset(&msg, 0x5a, sizeof(msg));
	for (unsigned i = 0; rc == 0; i++) {
		rc = j->ops->send(j->q1, &msg);
		if (rc == -EAGAIN) {
			rc = 0;
			ivl__cpu_relax();
		} else if (rc < 0 || (i & 63) != 0) {
			continue;
		}
		if (__atomic_load_n(&j->stop, __ATOMIC_RELAXED))
			break;
	}
	j->rc = rc;
	return NULL;
}

/* Round trips through q1 (to the helper) and q2 (back), or the ball for
 * the floor; p50 of iters samples after a warm-up. */
static int rtt_p50(struct rb_peers *pr, const struct rb_queue_ops *ops, int cpu, int64_t *p50)
{
	size_t iters = pr->rtt_iters, warm = rb_warmup_of(iters), total = iters + warm;
	struct job j = {.ops = ops, .count = total, .cpu = cpu, .ball = pr->ball};
	struct rb_peer_msg msg, in;
	int64_t t0, t1;
	pthread_t th;
	int rc = 0;

	memset(&msg, 0xa5, sizeof(msg));
	__atomic_store_n(pr->ball, 0, __ATOMIC_RELAXED);
	if (ops) {
		j.q1 = ops->create();
		j.q2 = ops->create();
		if (!j.q1 || !j.q2) {
			rc = -ENOMEM;
			goto out;
		}
	}
	rc = -pthread_create(&th, NULL, helper_echo, &j);
	if (rc < 0)
		goto out;
	t0 = ivl__now_ns();
	for (size_t i = 0; i < total && rc == 0; i++) {
		if (ops) {
			rc = send_wait(ops, j.q1, &msg);
			if (rc == 0)
				rc = recv_wait(ops, j.q2, &in);
		} else {
			uint64_t v = 2 * (uint64_t)i + 1;
			int64_t deadline = t0 + PEER_TIMEOUT_NS;

			/* B1: pairs with floor_echo()'s acquire load. */
			__atomic_store_n(pr->ball, v, __ATOMIC_RELEASE);
			/* B2: pairs with floor_echo()'s release store. */
			for (unsigned spins = 1;
			     __atomic_load_n(pr->ball, __ATOMIC_ACQUIRE) != v + 1; spins++) {
				ivl__cpu_relax();
				if ((spins & 0xffff) == 0 && ivl__now_ns() > deadline) {
					rc = -ETIMEDOUT;
					break;
				}
			}
		}
		t1 = ivl__now_ns();
		if (i >= warm)
			pr->samples[i - warm] = t1 - t0;
		t0 = t1;
	}
	if (rc < 0) {
		/* The helper may wait for a message that will never come: it
		 * gives up at its own timeout; a stuck bench is worse. */
		fprintf(stderr, "ivlink-ring-bench: peers: %s: %s\n", ops ? ops->name : "floor",
			strerror(-rc));
	}
	pthread_join(th, NULL);
	if (rc == 0)
		rc = j.rc;
	if (rc == 0) {
		bench_sort_i64(pr->samples, iters);
		*p50 = bench_pct(pr->samples, iters, 0.50);
	}
out:
	if (ops) {
		if (j.q1)
			ops->destroy(j.q1);
		if (j.q2)
			ops->destroy(j.q2);
	}
	return rc;
}

/* One-way messages per second: the helper produces, this thread consumes
 * for ms milliseconds after a warm-up of a fifth of that. */
static int oneway_rate(const struct rb_queue_ops *ops, int cpu, unsigned ms, double *rate)
{
	struct job j = {.ops = ops, .cpu = cpu};
	int64_t warm_ns = (int64_t)ms * 200000, win_ns = (int64_t)ms * 1000000;
	struct rb_peer_msg in;
	uint64_t n = 0, n0 = 0;
	int64_t t, t0 = 0, t_end;
	pthread_t th;
	int rc;

	j.q1 = ops->create();
	if (!j.q1)
		return -ENOMEM;
	rc = -pthread_create(&th, NULL, helper_produce, &j);
	if (rc < 0) {
		ops->destroy(j.q1);
		return rc;
	}
	t_end = ivl__now_ns() + warm_ns;
	for (;;) {
		rc = recv_wait(ops, j.q1, &in);
		if (rc < 0)
			break;
		/* The clock every 256 messages: often enough for windows of
		 * milliseconds, rarely enough to cost nothing per message. */
		if ((++n & 255) != 0)
			continue;
		t = ivl__now_ns();
		if (t < t_end)
			continue;
		if (t0) {
			*rate = (double)(n - n0) / ((double)(t - t0) / 1e9);
			break;
		}
		t0 = t;
		n0 = n;
		t_end = t + win_ns;
	}
	__atomic_store_n(&j.stop, 1, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	if (rc == 0)
		rc = j.rc;
	ops->destroy(j.q1);
	return rc;
}

/* memcpy's rate: pairs of copies per second in this thread. */
static int memcpy_rate(unsigned ms, double *rate)
{
	struct rb_peer_msg src, dst;
	void *slot = memcpy_ops.create();
	int64_t t0, t, win_ns = (int64_t)ms * 1000000;
	uint64_t n = 0;

	if (!slot)
		return -ENOMEM;
	memset(&src, 0x11, sizeof(src));
	t0 = ivl__now_ns();
	do {
		for (int i = 0; i < 1024; i++) {
			memcpy_ops.send(slot, &src);
			memcpy_ops.recv(slot, &dst);
			clobber(&dst);
		}
		n += 1024;
		t = ivl__now_ns();
	} while (t - t0 < win_ns);
	*rate = (double)n / ((double)(t - t0) / 1e9);
	memcpy_ops.destroy(slot);
	return 0;
}

/* -------------------------------------------------- instructions per pair */

/* n send+recv pairs in one thread. Not inlined and not static: callgrind's
 * --toggle-collect names it, and counts it and what it calls. */
__attribute__((noinline)) long rb_pairs_loop(const struct rb_queue_ops *ops, void *q, long n)
{
	struct rb_peer_msg in, out;
	long done = 0;

	memset(&in, 0x3c, sizeof(in));
	for (long i = 0; i < n; i++) {
		if (ops->send(q, &in) != 0 || ops->recv(q, &out) != 0)
			break;
		done++;
	}
	clobber(&out);
	return done;
}

int rb_peers_pairs_main(const char *key, long n)
{
	const struct rb_queue_ops *ops = find_ops(key);
	void *q;
	long done;

	if (!ops) {
		fprintf(stderr,
			"ivlink-ring-bench: --pairs: no queue '%s' in this build\n"
			"Try 'ivlink-ring-bench --help' for more information.\n",
			key);
		return 2;
	}
	q = ops->create();
	if (!q)
		return 1;
	done = rb_pairs_loop(ops, q, n);
	ops->destroy(q);
	if (done != n) {
		fprintf(stderr, "ivlink-ring-bench: --pairs %s: %ld of %ld pairs\n", key, done, n);
		return 1;
	}
	return 0;
}

/* Ir of the collected part from a callgrind output file: its "summary:"
 * (or "totals:") line. */
static double callgrind_ir(const char *path)
{
	char line[512];
	double ir = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;

		if ((sscanf(line, "summary: %llu", &v) == 1 ||
		     sscanf(line, "totals: %llu", &v) == 1))
			ir = (double)v;
	}
	fclose(f);
	return ir;
}

/* Runs this program under callgrind with --pairs key; instructions per
 * pair, or -1. */
static double count_instr(const char *self, const char *dir, const char *key)
{
	char out[PATH_MAX], arg_out[PATH_MAX + 32], n[16];
	pid_t pid;
	int st;
	double ir;

	snprintf(out, sizeof(out), "%s/callgrind.%s", dir, key);
	snprintf(arg_out, sizeof(arg_out), "--callgrind-out-file=%s", out);
	snprintf(n, sizeof(n), "%d", PAIRS_N);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execlp("valgrind", "valgrind", "--tool=callgrind", arg_out,
		       "--toggle-collect=rb_pairs_loop", self, "--pairs", key, "--pairs-n", n,
		       (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		unlink(out);
		return -1;
	}
	ir = callgrind_ir(out);
	unlink(out);
	return ir > 0 ? ir / PAIRS_N : -1;
}

/* valgrind on the PATH? */
static int have_valgrind(void)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	for (const char *p = path ? path : ""; *p;) {
		size_t len = strcspn(p, ":");

		if (len && len + sizeof("/valgrind") < sizeof(buf)) {
			memcpy(buf, p, len);
			memcpy(buf + len, "/valgrind", sizeof("/valgrind"));
			if (access(buf, X_OK) == 0)
				return 1;
		}
		p += len + (p[len] == ':');
	}
	return 0;
}

static void run_instructions(struct rb_peers *pr)
{
	char self[PATH_MAX], dir[] = "/tmp/ivlink-ring-bench.XXXXXX";
	ssize_t len;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* Their runtimes reserve the address space valgrind needs. */
	pr->instr_why = "sanitizer build: valgrind cannot run it";
	return;
#endif
	if (!have_valgrind()) {
		pr->instr_why = "valgrind not found (scripts/ivl-deps bench)";
		return;
	}
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0 || !mkdtemp(dir)) {
		pr->instr_why = "cannot find this program or make a temporary directory";
		return;
	}
	self[len] = 0;
	for (int i = 1; i < RB_PEERS; i++) {
		struct rb_peer_row *row = &pr->row[i];

		if (!row->why_not)
			row->instr_per_pair = count_instr(self, dir, row->key);
	}
	rmdir(dir);
	pr->instr_done = true;
}

/* ------------------------------------------------------------------ rounds */

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_dbl);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int rb_run_peers(struct bench *b, struct rb_peers *pr)
{
	double rtt[RB_PEERS][RB_PEER_ROUNDS_MAX], ratio[RB_PEERS][RB_PEER_ROUNDS_MAX];
	double mps[RB_PEERS][RB_PEER_ROUNDS_MAX];
	double floors[(RB_PEERS - 2) * RB_PEER_ROUNDS_MAX];
	unsigned n_floors = 0;
	const unsigned nq = RB_PEERS - 2; /* queues[], without floor and memcpy */
	unsigned rounds = pr->rounds;
	int rc = 0;

	pr->row[0] = (struct rb_peer_row){.key = "floor", .name = "cache-line ping-pong (floor)"};
	pr->row[1] = (struct rb_peer_row){.key = memcpy_ops.key, .name = memcpy_ops.name};
	for (unsigned i = 0; i < nq; i++)
		pr->row[2 + i] = (struct rb_peer_row){
		    .key = queues[i]->key, .name = queues[i]->name, .why_not = queues[i]->why_not};
	for (int i = 0; i < RB_PEERS; i++)
		pr->row[i].instr_per_pair = -1;
	pr->ball = (uint64_t *)(b->shm + OFF_BALL);

	/* The floor is measured again right before each queue's round trips,
	 * and the queue's ratio taken against that one: the two vCPUs can
	 * move between a shared core complex and distant cores within a
	 * round (BENCHMARKS.md), and a ratio must compare one placement. */
	for (unsigned r = 0; r < rounds && rc == 0; r++) {
		rc = memcpy_rate(pr->oneway_ms, &mps[1][r]);
		for (unsigned k = 0; k < nq && rc == 0; k++) {
			unsigned i = (r + k) % nq; /* a different queue first each round */
			const struct rb_queue_ops *ops = queues[i];
			int64_t floor_p50, p50 = 0;

			if (ops->why_not)
				continue;
			rc = rtt_p50(pr, NULL, b->cpu[1], &floor_p50);
			if (rc == 0)
				rc = rtt_p50(pr, ops, b->cpu[1], &p50);
			if (rc == 0)
				rc = oneway_rate(ops, b->cpu[1], pr->oneway_ms, &mps[2 + i][r]);
			if (rc < 0)
				break;
			floors[n_floors++] = (double)floor_p50;
			rtt[2 + i][r] = (double)p50;
			ratio[2 + i][r] = (double)p50 / (double)floor_p50;
		}
	}
	if (rc < 0)
		return rc;
	for (int i = 0; i < RB_PEERS; i++) {
		struct rb_peer_row *row = &pr->row[i];

		if (row->why_not)
			continue;
		if (i == 0) {
			row->rtt_p50_ns = median(floors, n_floors);
			row->rtt_vs_floor = 1.0;
		} else {
			row->rtt_p50_ns = i == 1 ? -1 : median(rtt[i], rounds);
			row->rtt_vs_floor = i == 1 ? -1 : median(ratio[i], rounds);
		}
		row->msgs_per_s = i == 0 ? -1 : median(mps[i], rounds);
	}
	if (pr->instructions)
		run_instructions(pr);
	return 0;
}
