/* SPDX-License-Identifier: MIT */
/*
 * Thread stress: a producer and a consumer thread move a deterministic PRNG
 * byte stream through one ring, with random write and read sizes (stream)
 * or random record lengths (message), mixing the copy calls with
 * reserve/commit and peek/release, IVL_MORE batching and scatter-gather.
 * The consumer regenerates the stream and compares every byte (and in
 * message mode every record length), which proves no loss, duplication or
 * reordering. Both sides block on eventfds after a short spin, and pause
 * now and then, so the sleep/wake handshake runs many times.
 *
 * Usage: ring_threads_no_loss stream|message [MiB]. The default volume is
 * 1 GiB, 64 MiB under ThreadSanitizer; IVL_STRESS_MIB overrides both.
 */
#include <pthread.h>
#include <sys/eventfd.h>

#include <ivlink/notify.h>

#include "ivl_test.h"

#define RING   (64u << 10)
#define MAXREC 4096u

struct side {
	struct ivl_ring r;
	struct ivl_efd_notifier efd;
	uint64_t seed;
	long waits, timeouts;
};

static struct ivt_ring tr;
static uint32_t mode;
static uint64_t total; /* payload bytes to move */

/* Waits with a finite timeout in a loop, so that a lost wake-up shows up
 * as a count instead of a hang; the block slice makes progress anyway. */
static void wait_ready(struct side *s, size_t need)
{
	int rc;

	s->waits++;
	for (;;) {
		rc = s->r.is_producer ? ivl_ring_wait_writable(&s->r, need, 1000000000)
				      : ivl_ring_wait_readable(&s->r, 1000000000);
		if (rc == 0)
			return;
		CHECK(rc == -ETIMEDOUT, "wait: %d", rc);
		s->timeouts++;
	}
}

static void *producer(void *arg)
{
	struct side *s = arg;
	struct ts_stream data, lens;
	uint64_t sent = 0, rnd = s->seed;
	uint8_t buf[MAXREC + 1];
	struct ivl_span sp[2];

	ts_stream_init(&data, 1);
	ts_stream_init(&lens, 2);
	while (sent < total) {
		uint64_t pick = ts_rand(&rnd);
		size_t len;
		unsigned flags = (pick & 7) == 0 ? IVL_MORE : 0;
		long n;

		if (mode == IVL_MODE_MESSAGE) {
			uint16_t l16;

			/* Record lengths come from their own stream, so the
			 * consumer can check them too. */
			ts_stream_next(&lens, &l16, sizeof(l16));
			len = l16 % (MAXREC + 1);
			if (len > total - sent)
				len = (size_t)(total - sent);
		} else {
			len = 1 + (size_t)((pick >> 8) % ((pick & 0x30) ? 512 : MAXREC));
			if (len > total - sent)
				len = (size_t)(total - sent);
		}
		for (;;) {
			if ((pick >> 40) % 3 == 0 && len > 0) {
				/* Zero copy. */
				n = ivl_ring_reserve(&s->r, len, sp);
				if (n > 0) {
					ts_stream_next(&data, sp[0].base, sp[0].len);
					ts_stream_next(&data, sp[1].base, sp[1].len);
					CHECK_EQ(ivl_ring_commit(&s->r, (size_t)n, flags), 0);
				}
			} else {
				struct ts_stream save = data;
				size_t half = len / 3;
				struct iovec iov[2] = {{buf, half}, {buf + half, len - half}};

				ts_stream_next(&data, buf, len);
				n = ivl_ring_writev(&s->r, iov, 2, flags);
				/* A partial stream write: rewind the generator to
				 * what was actually taken. */
				if (n != (long)len) {
					data = save;
					if (n > 0)
						ts_stream_next(&data, buf, (size_t)n);
				}
			}
			if (n >= 0 && !(n == 0 && len > 0))
				break;
			CHECK(n == -EAGAIN, "write: %ld", n);
			CHECK_EQ(ivl_ring_flush(&s->r), 0);
			wait_ready(s, mode == IVL_MODE_MESSAGE ? len : 1);
		}
		sent += (uint64_t)n;
		/* A record shorter than planned never happens in message mode. */
		CHECK(mode == IVL_MODE_STREAM || (size_t)n == len);
		if ((pick & 0xffff) == 0)
			ts_sleep_us(200); /* let the consumer go to sleep */
	}
	CHECK_EQ(ivl_ring_set_flags(&s->r, IVL_RING_F_DONE_WRITING), 0);
	return NULL;
}

static void *consumer(void *arg)
{
	struct side *s = arg;
	struct ts_stream data, lens;
	uint64_t got = 0, rnd = s->seed;
	uint8_t buf[MAXREC + 16];
	struct ivl_span sp[2];
	long n, bad;

	ts_stream_init(&data, 1);
	ts_stream_init(&lens, 2);
	for (;;) {
		uint64_t pick = ts_rand(&rnd);
		unsigned flags = (pick & 3) == 0 ? IVL_MORE : 0;

		if (pick % 3 == 0) {
			n = ivl_ring_peek(&s->r, sp);
			if (n > 0 || (n == 0 && mode == IVL_MODE_MESSAGE)) {
				size_t take = (size_t)n;

				if (mode == IVL_MODE_STREAM && (pick & 0x100))
					take = 1 + (size_t)((pick >> 16) % (size_t)n);
				if (take <= sp[0].len) {
					bad = ts_stream_next_check(&data, sp[0].base, take);
				} else {
					bad = ts_stream_next_check(&data, sp[0].base, sp[0].len);
					if (bad < 0)
						bad = ts_stream_next_check(&data, sp[1].base,
									   take - sp[0].len);
				}
				CHECK(bad < 0, "data mismatch at byte %llu",
				      (unsigned long long)got);
				CHECK_EQ(ivl_ring_release(&s->r, take, flags), 0);
				n = (long)take;
			}
		} else {
			size_t cap = mode == IVL_MODE_MESSAGE
					 ? sizeof(buf)
					 : 1 + (size_t)((pick >> 8) % sizeof(buf));
			struct iovec iov[2] = {{buf, cap / 2}, {buf + cap / 2, cap - cap / 2}};

			n = ivl_ring_readv(&s->r, iov, 2);
			if (n > 0) {
				bad = ts_stream_next_check(&data, buf, (size_t)n);
				CHECK(bad < 0, "data mismatch at byte %llu",
				      (unsigned long long)(got + (uint64_t)bad));
			}
		}
		if (n == -EAGAIN) {
			CHECK_EQ(ivl_ring_release_flush(&s->r), 0);
			wait_ready(s, 0);
			continue;
		}
		if ((mode == IVL_MODE_STREAM && n == 0) || n == -EPIPE)
			break; /* EOF */
		CHECK(n >= 0, "read: %ld", n);
		if (mode == IVL_MODE_MESSAGE) {
			uint16_t l16;
			size_t want;

			ts_stream_next(&lens, &l16, sizeof(l16));
			want = l16 % (MAXREC + 1);
			if (want > total - got)
				want = (size_t)(total - got);
			CHECK((size_t)n == want, "record length %ld, expected %zu", n, want);
		}
		got += (uint64_t)n;
		CHECK(got <= total, "more bytes than were sent");
		if ((pick & 0xffff) == 1)
			ts_sleep_us(200); /* let the producer fill the ring and sleep */
	}
	CHECK_EQ(ivl_ring_release_flush(&s->r), 0);
	CHECK(got == total, "EOF after %llu of %llu bytes", (unsigned long long)got,
	      (unsigned long long)total);
	return NULL;
}

int main(int argc, char **argv)
{
	struct side ps, cs;
	struct ivl_notifier op;
	pthread_t tp, tc;
	int efd_p, efd_c;
	uint64_t mib = IVL_TEST_TSAN ? 64 : 1024;
	int64_t t0;
	double secs;

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

	efd_p = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	efd_c = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	CHECK(efd_p >= 0 && efd_c >= 0, "eventfd: %s", strerror(errno));
	ivt_ring_alloc(&tr, RING);
	memset(&ps, 0, sizeof(ps));
	memset(&cs, 0, sizeof(cs));
	ps.efd = (struct ivl_efd_notifier){.kick_fd = efd_c, .wait_fd = efd_p};
	cs.efd = (struct ivl_efd_notifier){.kick_fd = efd_p, .wait_fd = efd_c};
	ps.seed = 11;
	cs.seed = 12;
	ivl_efd_notifier_bind(&op, &ps.efd);
	CHECK_EQ(ivl_ring_init_producer(&ps.r, tr.prod, tr.cons, tr.data, RING, mode, MAXREC, &op),
		 0);
	ivl_efd_notifier_bind(&op, &cs.efd);
	CHECK_EQ(ivl_ring_init_consumer(&cs.r, tr.prod, tr.cons, tr.data, RING, mode, MAXREC, &op),
		 0);
	/* A short spin so that both sides really sleep on the eventfds. */
	ps.r.spin_ns = 2000;
	cs.r.spin_ns = 2000;

	t0 = ts_now_ns();
	CHECK(pthread_create(&tc, NULL, consumer, &cs) == 0);
	CHECK(pthread_create(&tp, NULL, producer, &ps) == 0);
	CHECK(pthread_join(tp, NULL) == 0);
	CHECK(pthread_join(tc, NULL) == 0);
	secs = (double)(ts_now_ns() - t0) / 1e9;

	printf("%s: %llu MiB in %.2f s; producer waits %ld, kicks %llu (suppressed %llu); "
	       "consumer waits %ld, kicks %llu; 1 s wait timeouts %ld/%ld\n",
	       argv[1], (unsigned long long)mib, secs, ps.waits, (unsigned long long)tr.prod->kicks,
	       (unsigned long long)tr.prod->kicks_suppressed, cs.waits,
	       (unsigned long long)tr.cons->kicks, ps.timeouts, cs.timeouts);
	close(efd_p);
	close(efd_c);
	ivt_ring_free(&tr);
	printf("ring_threads_no_loss: ok\n");
	return 0;
}
