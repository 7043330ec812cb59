/* SPDX-License-Identifier: MIT */
/* ivlink-ring-bench: what both processes do with the rings: attach, the
 * round trip's receive, the sleeping wait. */
#define _GNU_SOURCE
#include "ring_bench.h"

int rb_ring_attach(struct bench *b, struct ivl_ring *r, enum ring_id id, int producer,
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

void rb_lat_from(struct lat *l, int64_t *s, size_t n)
{
	bench_sort_i64(s, n);
	l->n = n;
	l->p50 = bench_pct(s, n, 0.50);
	l->p99 = bench_pct(s, n, 0.99);
	l->p999 = bench_pct(s, n, 0.999);
}

/* Warm-up round trips, discarded: the first ones pay page faults, cold
 * caches and the other side still arriving at its loop. */
size_t rb_warmup_of(size_t iters)
{
	size_t w = iters / 10;

	return w < 100 ? 100 : w > 10000 ? 10000 : w;
}

/* -------------------------------------------------------- both processes */

/* Copies n bytes out of up to two ring spans. */
void rb_copy_spans(uint8_t *dst, const struct ivl_span sp[2], size_t n)
{
	size_t first = sp[0].len < n ? sp[0].len : n;

	memcpy(dst, sp[0].base, first);
	if (n > first)
		memcpy(dst + first, sp[1].base, n - first);
}

/* Attaches the two rings of a round trip: the parent produces into PING and
 * consumes PONG, the child the reverse. */
int rb_rtt_attach(struct bench *b, struct ivl_ring *rx, struct ivl_ring *tx, int parent,
		  enum rtt_how how)
{
	int64_t spin_ns = how == RTT_SLEEP ? 0 : SPIN_FOREVER_NS;
	int rc;

	rc = rb_ring_attach(b, rx, parent ? RING_PONG : RING_PING, 0, RTT_RING_SIZE,
			    IVL_MODE_MESSAGE, RTT_MSG, spin_ns);
	if (rc == 0)
		rc = rb_ring_attach(b, tx, parent ? RING_PING : RING_PONG, 1, RTT_RING_SIZE,
				    IVL_MODE_MESSAGE, RTT_MSG, spin_ns);
	return rc;
}

/* Waits for and consumes one record into buf (RTT_MSG bytes). Returns its
 * length or -errno. */
long rb_rtt_recv(struct ivl_ring *rx, enum rtt_how how, uint8_t *buf, uint32_t *unflushed)
{
	struct ivl_span sp[2];
	long n;
	int rc;

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
	rb_copy_spans(buf, sp, (size_t)n);
	rc = ivl_ring_release(rx, 0, IVL_MORE);
	*unflushed += (uint32_t)ivl_rec_footprint((uint64_t)n);
	if (rc == 0 && *unflushed >= LAZY_HEAD_BYTES) {
		*unflushed = 0;
		rc = ivl_ring_release_flush(rx);
	}
	return rc < 0 ? rc : n;
}
