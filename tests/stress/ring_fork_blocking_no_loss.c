/* SPDX-License-Identifier: MIT */
/*
 * Two-process stress: a region in a memfd shared by fork(), the channel set
 * up through the region API (format, peers UP, offer, match), a 4 KiB ring
 * and eventfds inherited across fork as the notifier. The parent (peer 0)
 * writes a PRNG byte stream, random sizes or records; the child (peer 1)
 * regenerates and compares it. The child is deliberately slow: every other
 * 256 KiB it stops until the producer is asleep (its sleep_seq is odd), and
 * the producer likewise waits for the consumer to fall asleep on the other
 * 256 KiB blocks, so both blocking paths run many times. The kick counters
 * in the shared ring blocks must show that both sides were woken.
 *
 * Usage: ring_fork_blocking_no_loss stream|message [MiB] (default 128, or
 * IVL_STRESS_MIB).
 */
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <ivlink/notify.h>

#include "ivl_test.h"

#define RSIZE  (4u << 20)
#define RING   4096u
#define MAXREC 1000u
#define BLOCK  (256u << 10)

static uint32_t mode;
static uint64_t total;
static pid_t child;

/* The producer's liveness check (called between sleeps): a consumer that
 * died must fail the test, not leave the producer waiting for space. */
static int child_alive(void *ctx)
{
	int st;

	if (waitpid(child, &st, WNOHANG) == child)
		FAIL("consumer process exited early (status %d)", st);
	return 0;
}

static void wait_ready(struct ivl_ring *r, size_t need)
{
	int rc;

	do {
		rc = r->is_producer ? ivl_ring_wait_writable(r, need, -1)
				    : ivl_ring_wait_readable(r, -1);
	} while (rc == -EINTR);
	CHECK(rc == 0, "wait: %d", rc);
}

static void run_producer(struct ivl_ring *r)
{
	struct ts_stream data;
	uint64_t sent = 0, rnd = 5, block = 0;
	uint8_t buf[3000]; /* stream writes are up to 3000 bytes, records up to MAXREC */

	ts_stream_init(&data, 77);
	while (sent < total) {
		uint64_t pick = ts_rand(&rnd);
		size_t len = mode == IVL_MODE_MESSAGE ? (size_t)(pick % (MAXREC + 1))
						      : 1 + (size_t)(pick % 3000);
		struct ts_stream save = data;
		long n;

		if (len > total - sent)
			len = (size_t)(total - sent);
		ts_stream_next(&data, buf, len);
		while ((n = ivl_ring_write(r, buf, len, (pick >> 20) % 4 == 0 ? IVL_MORE : 0)) ==
		       -EAGAIN) {
			CHECK_EQ(ivl_ring_flush(r), 0);
			wait_ready(r, mode == IVL_MODE_MESSAGE ? len : 1);
		}
		CHECK(n >= 0, "write: %ld", n);
		if (n != (long)len) {
			CHECK(mode == IVL_MODE_STREAM);
			data = save;
			ts_stream_next(&data, buf, (size_t)n);
		}
		sent += (uint64_t)n;
		/* On entering an even block, wait for the consumer to drain the
		 * ring and fall asleep: our next write must kick it. */
		if (sent / BLOCK != block) {
			block = sent / BLOCK;
			if (block % 2 == 0 && sent < total) {
				CHECK_EQ(ivl_ring_flush(r), 0);
				while (
				    !(__atomic_load_n(&r->cons->sleep_seq, __ATOMIC_ACQUIRE) & 1)) {
					child_alive(NULL);
					ts_sleep_us(20);
				}
			}
		}
	}
	CHECK_EQ(ivl_ring_set_flags(r, IVL_RING_F_DONE_WRITING), 0);
}

static void run_consumer(struct ivl_ring *r)
{
	struct ts_stream data;
	uint64_t got = 0, rnd = 5, block = 0;
	uint8_t buf[4096];
	long n;

	ts_stream_init(&data, 77);
	for (;;) {
		n = ivl_ring_read(
		    r, buf, mode == IVL_MODE_MESSAGE ? sizeof(buf) : 1 + (size_t)(got % 4096));
		if (n == -EAGAIN) {
			wait_ready(r, 0);
			continue;
		}
		if ((mode == IVL_MODE_STREAM && n == 0) || n == -EPIPE)
			break;
		CHECK(n >= 0, "read: %ld", n);
		if (mode == IVL_MODE_MESSAGE) {
			/* The producer's length sequence, regenerated. */
			uint64_t pick = ts_rand(&rnd);
			size_t want = (size_t)(pick % (MAXREC + 1));

			if (want > total - got)
				want = (size_t)(total - got);
			CHECK((size_t)n == want, "record length %ld, expected %zu", n, want);
		}
		CHECK(ts_stream_next_check(&data, buf, (size_t)n) < 0,
		      "data mismatch near byte %llu", (unsigned long long)got);
		got += (uint64_t)n;
		CHECK(got <= total);
		/* On entering an odd block, stop until the producer has filled
		 * the ring and sleeps: our next read must kick it. */
		if (got / BLOCK != block) {
			block = got / BLOCK;
			if (block % 2 == 1)
				while (
				    !(__atomic_load_n(&r->prod->sleep_seq, __ATOMIC_ACQUIRE) & 1) &&
				    !(__atomic_load_n(&r->prod->flags, __ATOMIC_ACQUIRE) &
				      IVL_RING_F_DONE_WRITING))
					ts_sleep_us(20);
		}
	}
	CHECK(got == total, "EOF after %llu of %llu bytes", (unsigned long long)got,
	      (unsigned long long)total);
}

int main(int argc, char **argv)
{
	struct ivt_map m;
	struct ivt_chan ch;
	struct ivl_ring_prod *rp;
	struct ivl_ring_cons *rc;
	struct ivl_efd_notifier pe, ce;
	struct ivl_notifier op;
	struct ivl_ring r;
	void *data;
	uint64_t mib = 128;
	int efd_p, efd_c, st;
	int64_t t0;

	if (argc < 2 || (strcmp(argv[1], "stream") && strcmp(argv[1], "message"))) {
		fprintf(stderr, "usage: %s stream|message [MiB]\n", argv[0]);
		return 2;
	}
	mode = strcmp(argv[1], "stream") == 0 ? IVL_MODE_STREAM : IVL_MODE_MESSAGE;
	if (getenv("IVL_STRESS_MIB"))
		mib = strtoull(getenv("IVL_STRESS_MIB"), NULL, 0);
	if (argc > 2)
		mib = strtoull(argv[2], NULL, 0);
	total = mib << 20;

	ivt_map_create(&m, RSIZE);
	CHECK_EQ(ivt_chan_setup(&ch, m.base, RSIZE, mode, RING, MAXREC), 0);
	ivt_chan_ring_ptrs(&ch, 0, &rp, &rc, &data);
	CHECK(data != NULL);
	efd_p = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	efd_c = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	CHECK(efd_p >= 0 && efd_c >= 0, "eventfd: %s", strerror(errno));

	t0 = ts_now_ns();
	child = fork();
	CHECK(child >= 0, "fork: %s", strerror(errno));
	if (child == 0) {
		/* Peer 1: consumer. Attaches its own handle after fork, and
		 * dies with the producer rather than wait for it forever. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(1);
		ce = (struct ivl_efd_notifier){.kick_fd = efd_p, .wait_fd = efd_c};
		ivl_efd_notifier_bind(&op, &ce);
		CHECK_EQ(ivl_ring_init_consumer(&r, rp, rc, data, ch.m[1].remote_tx_size, mode,
						ch.m[1].remote_max_record, &op),
			 0);
		r.spin_ns = 1000;
		run_consumer(&r);
		_exit(0);
	}
	pe = (struct ivl_efd_notifier){.kick_fd = efd_c, .wait_fd = efd_p, .check = child_alive};
	ivl_efd_notifier_bind(&op, &pe);
	CHECK_EQ(ivl_ring_init_producer(&r, rp, rc, data, RING, mode, MAXREC, &op), 0);
	r.spin_ns = 1000;
	run_producer(&r);
	CHECK(waitpid(child, &st, 0) == child);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "consumer process failed (status %d)", st);

	printf("%s: %llu MiB through a %u-byte ring in %.2f s; producer kicked the consumer "
	       "%llu times (%llu suppressed), consumer kicked the producer %llu times\n",
	       argv[1], (unsigned long long)mib, RING, (double)(ts_now_ns() - t0) / 1e9,
	       (unsigned long long)rp->kicks, (unsigned long long)rp->kicks_suppressed,
	       (unsigned long long)rc->kicks);
	/* The blocking path must really have run on both sides. */
	CHECK(rp->kicks > 0, "the consumer never needed a wake-up");
	CHECK(rc->kicks > 0, "the producer never needed a wake-up");
	CHECK(rp->msgs > 0 && rc->msgs > 0);
	close(efd_p);
	close(efd_c);
	ivt_map_destroy(&m);
	printf("ring_fork_blocking_no_loss: ok\n");
	return 0;
}
