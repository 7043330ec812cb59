/* SPDX-License-Identifier: MIT */
/* ivlink-ring-bench: the parent process, which drives every test and takes
 * every measurement. */
#define _GNU_SOURCE
#include "ring_bench.h"

/* ----------------------------------------------------------------- parent */

int rb_child_gone(struct bench *b)
{
	int st;

	if (b->child > 0 && waitpid(b->child, &st, WNOHANG) == b->child) {
		b->child = -1;
		return 1;
	}
	return b->child <= 0;
}

int rb_parent_peer_alive(void *ctx)
{
	return rb_child_gone(ctx) ? -ECONNRESET : 0;
}

/* Hands the child a command; the caller filled the argument fields. */
void rb_issue(struct bench *b, enum cmd cmd)
{
	b->ctl->cmd = cmd;
	/* C1: pairs with the acquire load in child_wait_cmd(). */
	__atomic_store_n(&b->ctl->cmd_seq, ++b->seq, __ATOMIC_RELEASE);
}

static int wait_ack(struct bench *b)
{
	int64_t deadline = ivl__now_ns() + WAIT_NS;
	unsigned spins = 0;

	/* C2: pairs with the release store at the end of child_main()'s loop. */
	while (__atomic_load_n(&b->ctl->ack_seq, __ATOMIC_ACQUIRE) != b->seq) {
		ivl__cpu_relax();
		if ((++spins & 0xfff) == 0) {
			if (rb_child_gone(b))
				return -ECONNRESET;
			if (ivl__now_ns() > deadline)
				return -ETIMEDOUT;
			if (!b->pinned)
				sched_yield();
		}
	}
	return b->ctl->status;
}

double rb_clock_overhead(void)
{
	int64_t t0 = ivl__now_ns(), t1;
	const int n = 100000;

	for (int i = 0; i < n; i++)
		t1 = ivl__now_ns();
	t1 = ivl__now_ns();
	return (double)(t1 - t0) / (n + 1);
}

int rb_run_floor(struct bench *b, int pause, struct lat *out)
{
	size_t iters = b->o.iters, warm = rb_warmup_of(iters), total = iters + warm;
	uint64_t *ball = b->ball;
	int64_t t0, t1;
	int rc;

	__atomic_store_n(ball, 0, __ATOMIC_RELAXED);
	b->ctl->count = total;
	b->ctl->arg = (uint32_t)pause;
	rb_issue(b, CMD_FLOOR);

	t0 = ivl__now_ns();
	for (size_t i = 0; i < total; i++) {
		uint64_t v = 2 * (uint64_t)i + 1;
		unsigned spins = 0;

		/* B1: pairs with the child's acquire load. */
		__atomic_store_n(ball, v, __ATOMIC_RELEASE);
		/* B2: pairs with the child's release store of v + 1. */
		while (__atomic_load_n(ball, __ATOMIC_ACQUIRE) != v + 1) {
			if (pause)
				ivl__cpu_relax();
			if ((++spins & 0xffff) == 0) {
				if (!b->pinned)
					sched_yield();
				/* WAIT_NS since the last round trip: a
				 * silent child, not a long run on a busy
				 * machine. */
				if (ivl__now_ns() > t0 + WAIT_NS || rb_child_gone(b))
					return -ETIMEDOUT;
			}
		}
		t1 = ivl__now_ns();
		if (i >= warm)
			b->samples[i - warm] = t1 - t0;
		t0 = t1;
	}
	rc = wait_ack(b);
	if (rc < 0)
		return rc;
	rb_lat_from(out, b->samples, iters);
	return 0;
}

int rb_run_ring_rtt(struct bench *b, enum rtt_how how, size_t iters, struct lat *out,
		    double *kicks_per_rtt)
{
	size_t warm = rb_warmup_of(iters), total = iters + warm;
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
	rc = rb_rtt_attach(b, &rx, &tx, 1, how);
	if (rc < 0)
		return rc;
	b->ctl->count = total;
	b->ctl->arg = how;
	rb_issue(b, CMD_RING_ECHO);

	t0 = ivl__now_ns();
	for (size_t i = 0; i < total; i++) {
		long n = ivl_ring_write(&tx, msg, sizeof(msg), 0);

		if (n < 0) {
			rc = (int)n;
			break;
		}
		n = rb_rtt_recv(&rx, how, in, &unflushed);
		if (n != (long)sizeof(in)) {
			rc = n < 0 ? (int)n : -EPROTO;
			break;
		}
		t1 = ivl__now_ns();
		if (i >= warm)
			b->samples[i - warm] = t1 - t0;
		t0 = t1;
	}
	rc2 = wait_ack(b);
	if (rc == 0)
		rc = rc2;
	if (rc < 0)
		return rc;
	rb_lat_from(out, b->samples, iters);
	if (kicks_per_rtt) {
		/* Doorbells that woke a sleeping reader (each producer) or
		 * writer (each consumer), per round trip, warm-up included. */
		uint64_t k = ring_prod(b, RING_PING)->kicks + ring_prod(b, RING_PONG)->kicks +
			     ring_cons(b, RING_PING)->kicks + ring_cons(b, RING_PONG)->kicks;

		*kicks_per_rtt = (double)k / (double)total;
	}
	return 0;
}

int rb_run_sock_rtt(struct bench *b, int unix_sock, uint32_t size, struct lat *out)
{
	size_t iters = b->o.slow_iters, warm = rb_warmup_of(iters), total = iters + warm;
	int fd = unix_sock ? b->unix_fd : b->tcp_fd;
	uint8_t buf[RTT_MSG];
	int64_t t0, t1;
	int rc = 0, rc2;

	memset(buf, 0x3c, sizeof(buf));
	b->ctl->count = total;
	b->ctl->size = size;
	b->ctl->arg = (uint32_t)unix_sock;
	rb_issue(b, CMD_SOCK_ECHO);
	t0 = ivl__now_ns();
	for (size_t i = 0; i < total && rc == 0; i++) {
		rc = bench_send_all(fd, buf, size);
		if (rc == 0)
			rc = bench_recv_all(fd, buf, size);
		t1 = ivl__now_ns();
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
	rb_lat_from(out, b->samples, iters);
	return 0;
}

/*
 * Consumer of a throughput test. After a warm-up window it measures nwin
 * windows of equal length and keeps the median rate; then it stops the
 * producer and drains the ring up to the producer's EOF.
 */
int rb_run_tput(struct bench *b, uint32_t size, struct tput *res)
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
	rc = rb_ring_attach(b, &rx, RING_TPUT, 0, ring_size,
			    stream ? IVL_MODE_STREAM : IVL_MODE_MESSAGE, stream ? 0 : size,
			    IVL_SPIN_NS_DEFAULT);
	if (rc < 0)
		return rc;
	__atomic_store_n(&b->ctl->stop, 0, __ATOMIC_RELAXED);
	b->ctl->size = size;
	b->ctl->ring_size = ring_size;
	rb_issue(b, CMD_TPUT);

	t_start = ivl__now_ns();
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
			rb_copy_spans(b->dst, sp, (size_t)n);
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

			rb_copy_spans(b->dst + moff, sp, take);
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
		int64_t t = ivl__now_ns();

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
int rb_run_xcopy(struct bench *b, double *gbps)
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
	rb_issue(b, CMD_XCOPY);

	t = ivl__now_ns();
	t_win = t;
	t_end = t + win_ns / 2;
	for (uint32_t i = 0; w < (int)nwin; i = (i + 1) % nslots) {
		uint32_t *flag = xcopy_flag(b, i);

		deadline = ivl__now_ns() + WAIT_NS;
		/* X1: pairs with the child's release store of 1. */
		for (unsigned spins = 1; __atomic_load_n(flag, __ATOMIC_ACQUIRE) != 1; spins++) {
			ivl__cpu_relax();
			if ((spins & 0xfff) == 0 &&
			    (ivl__now_ns() > deadline || rb_child_gone(b))) {
				rc = -ETIMEDOUT;
				goto out;
			}
		}
		memcpy(b->dst, slots + (size_t)i * XCOPY_SIZE, XCOPY_SIZE);
		clobber(b->dst);
		/* X2: pairs with the child's acquire load of 0. */
		__atomic_store_n(flag, 0, __ATOMIC_RELEASE);
		bytes += XCOPY_SIZE;
		t = ivl__now_ns();
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
double rb_run_memcpy(struct bench *b, uint32_t size)
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

		t0 = ivl__now_ns();
		do {
			for (uint32_t i = 0; i < per_check; i++) {
				memcpy(b->dst, b->src, size);
				clobber(b->dst);
			}
			copies += per_check;
			t = ivl__now_ns();
		} while (t - t0 < win_ns);
		rate[w] = (double)copies * size / ((double)(t - t0) / 1e9);
	}
	return bench_median_dbl(rate, nwin) / 1e9;
}
