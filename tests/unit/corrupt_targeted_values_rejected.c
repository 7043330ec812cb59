/* SPDX-License-Identifier: MIT */
/*
 * Targeted corruption: a second process (fork) plays a hostile peer and
 * writes chosen bad values (off by one, huge, negative/wrapped, misaligned)
 * into ring indices, record headers, flags, channel halves, the peer table
 * and the section header, one case at a time. After each write this
 * process calls the reading API and must get the expected clean error
 * (-EPROTO for impossible values), keep getting it (the handle is
 * poisoned), and never touch memory outside the region: the region is
 * mapped between PROT_NONE guard areas, so a stray access kills the test.
 */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>

#include "ivl_test.h"

#define RSIZE  (1u << 20)
#define RING   4096u
#define MAXREC 1024u

static struct ivt_map map;
static int cmd_fd, ack_fd;
static pid_t child;

struct poke {
	uint64_t off;
	uint64_t val;
	uint32_t len; /* 4 or 8; 0 = fill 48 bytes with 'x' */
	uint32_t pad;
};

/* The hostile peer: writes what it is told, where it is told. */
static void poke_server(int in, int out)
{
	struct poke pk;

	while (read(in, &pk, sizeof(pk)) == (ssize_t)sizeof(pk)) {
		uint8_t *p = map.base + pk.off;

		if (pk.off + (pk.len ? pk.len : IVL_NAME_MAX) > map.size)
			_exit(3);
		if (pk.len == 8)
			__atomic_store_n((uint64_t *)p, pk.val, __ATOMIC_RELEASE);
		else if (pk.len == 4)
			__atomic_store_n((uint32_t *)p, (uint32_t)pk.val, __ATOMIC_RELEASE);
		else
			memset(p, 'x', IVL_NAME_MAX);
		if (write(out, "k", 1) != 1)
			_exit(4);
	}
	_exit(0);
}

/* Has the other process write val at p (inside the region). */
static void poke(const void *p, unsigned len, uint64_t val)
{
	struct poke pk = {(uint64_t)((const uint8_t *)p - map.base), val, len, 0};
	char k;

	CHECK(write(cmd_fd, &pk, sizeof(pk)) == (ssize_t)sizeof(pk));
	CHECK(read(ack_fd, &k, 1) == 1, "hostile peer died");
}

/* A fresh region with channel 0<->1; peer 0 produces into ring 0->1,
 * peer 1 consumes it. */
struct fix {
	struct ivt_chan c;
	struct ivl_ring prod, cons;
	struct ivl_ring_prod *rp;
	struct ivl_ring_cons *rc;
	uint8_t *data;
	struct ivl_chan_half *h0, *h1;
};

static void setup(struct fix *f, uint32_t mode)
{
	void *data;

	CHECK_EQ(ivt_chan_setup(&f->c, map.base, RSIZE, mode, RING, MAXREC), 0);
	ivt_chan_ring_ptrs(&f->c, 0, &f->rp, &f->rc, &data);
	f->data = data;
	CHECK_EQ(ivl_ring_init_producer(&f->prod, f->rp, f->rc, data, RING, mode, MAXREC, NULL), 0);
	CHECK_EQ(ivl_ring_init_consumer(&f->cons, f->rp, f->rc, data, RING, mode, MAXREC, NULL), 0);
	f->h0 = ivl_region_chan(&f->c.rg, 0, (uint32_t)f->c.slot[0]);
	f->h1 = ivl_region_chan(&f->c.rg, 1, (uint32_t)f->c.slot[1]);
}

/* Reads every byte of the spans: a span pointing outside the region hits
 * a guard page. */
static void touch(const struct ivl_span sp[2], long n)
{
	volatile uint8_t sink = 0;

	CHECK(sp[0].len + sp[1].len == (size_t)n || n == 0);
	for (int i = 0; i < 2; i++)
		for (size_t j = 0; j < sp[i].len; j++)
			sink ^= ((const uint8_t *)sp[i].base)[j];
	(void)sink;
}

/* The consumer must now fail with want, and keep failing. */
static void expect_consumer(struct fix *f, long want, const char *what)
{
	struct ivl_span sp[2];
	uint8_t buf[RING];
	long rc = ivl_ring_peek(&f->cons, sp);

	CHECK(rc == want, "%s: peek returned %ld, expected %ld", what, rc, want);
	rc = ivl_ring_read(&f->cons, buf, sizeof(buf));
	CHECK(rc == want, "%s: read returned %ld, expected %ld", what, rc, want);
	CHECK(ivl_ring_readable(&f->cons) == 1, "%s: an error must be readable", what);
	CHECK(ivl_ring_wait_readable(&f->cons, -1) == 0, "%s", what);
	if (want == -EPROTO) {
		CHECK(ivl_ring_release(&f->cons, 0, 0) == -EPROTO, "%s", what);
		/* Even a repaired ring stays poisoned for this handle. */
		CHECK(ivl_ring_peek(&f->cons, sp) == -EPROTO, "%s: not sticky", what);
	}
}

static void test_consumer_indices(uint32_t mode)
{
	struct fix f;
	uint8_t buf[64] = {0};
	const char *m = mode == IVL_MODE_STREAM ? "stream" : "message";
	struct {
		const char *what;
		int64_t delta; /* tail = head + delta ... */
		int absolute;  /* ... or tail = delta */
		int msg_only;  /* only invalid in message mode */
	} cases[] = {
	    {"tail one past a full ring", RING + 1, 0, 0},
	    {"tail a record past a full ring", RING + 8, 0, 0},
	    {"tail behind head", -8, 0, 0},
	    {"tail one behind head", -1, 0, 0},
	    {"tail -1", -1, 1, 0},
	    {"tail 2^63", INT64_MIN, 1, 0},
	    {"tail misaligned", 12, 0, 1},
	    {"tail huge", 1LL << 40, 0, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t head;

		setup(&f, mode);
		/* Move the indices off zero so that "behind" is not trivially 0. */
		CHECK_EQ(ivl_ring_write(&f.prod, buf, 40, 0), 40);
		CHECK_EQ(ivl_ring_read(&f.cons, buf, sizeof(buf)), 40);
		head = f.rc->head;
		poke(&f.rp->tail, 8,
		     cases[i].absolute ? (uint64_t)cases[i].delta
				       : head + (uint64_t)cases[i].delta);
		if (cases[i].msg_only && mode == IVL_MODE_STREAM) {
			struct ivl_span sp[2];
			long n = ivl_ring_peek(&f.cons, sp);

			CHECK(n > 0, "%s %s: %ld", m, cases[i].what, n);
			touch(sp, n);
			continue;
		}
		expect_consumer(&f, -EPROTO, cases[i].what);
		/* A new handle refuses the ring at attach. */
		CHECK_EQ(
		    ivl_ring_init_consumer(&f.cons, f.rp, f.rc, f.data, RING, mode, MAXREC, NULL),
		    -EPROTO);
	}

	/* A full ring of garbage is legal in stream mode, and stays in
	 * bounds however it wraps. */
	if (mode == IVL_MODE_STREAM) {
		struct ivl_span sp[2];

		setup(&f, mode);
		CHECK_EQ(ivl_ring_write(&f.prod, buf, 40, 0), 40);
		CHECK_EQ(ivl_ring_read(&f.cons, buf, sizeof(buf)), 40);
		poke(&f.rp->tail, 8, f.rc->head + RING);
		CHECK_EQ(ivl_ring_peek(&f.cons, sp), RING);
		touch(sp, RING);
		CHECK(sp[0].base == f.data + 40 && sp[1].base == f.data && sp[1].len == 40);
	}
}

static void test_record_headers(void)
{
	struct fix f;
	uint8_t buf[MAXREC] = {0};
	struct {
		const char *what;
		int field; /* 0 = len, 1 = magic */
		uint32_t val;
	} cases[] = {
	    {"magic 0", 1, 0},
	    {"magic off by one", 1, IVL_REC_MAGIC + 1},
	    {"len max_record + 1", 0, MAXREC + 1},
	    {"len -1", 0, UINT32_MAX},
	    {"len -8", 0, UINT32_MAX - 7},
	    {"len 2^31", 0, 1u << 31},
	    {"len one past the published bytes", 0, 0}, /* filled in below */
	    {"len beyond the ring", 0, RING},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *hdr;
		uint32_t v = cases[i].val;

		setup(&f, IVL_MODE_MESSAGE);
		/* Put the record across the wrap: four 1000-byte records move
		 * the indices to 4032, so the next payload wraps. */
		for (int k = 0; k < 4; k++) {
			CHECK_EQ(ivl_ring_write(&f.prod, buf, 1000, 0), 1000);
			CHECK_EQ(ivl_ring_read(&f.cons, buf, sizeof(buf)), 1000);
		}
		CHECK_EQ(f.rc->head, 4032);
		CHECK_EQ(ivl_ring_write(&f.prod, buf, 100, 0), 100);
		hdr = f.data + (f.rc->head & (RING - 1));
		if (v == 0 && cases[i].field == 0)
			v = 100 + 8 + 1; /* footprint 8 + 112 > the 112 bytes published */
		poke(hdr + (cases[i].field ? 4 : 0), 4, v);
		expect_consumer(&f, -EPROTO, cases[i].what);
	}
}

static void test_producer_indices(uint32_t mode)
{
	struct fix f;
	uint8_t buf[RING] = {0};
	struct {
		const char *what;
		int64_t delta; /* head = tail + delta */
		int msg_only;
	} cases[] = {
	    {"head ahead of tail by one", 1, 0},
	    {"head ahead of tail", 8, 0},
	    {"head more than a ring behind", -(int64_t)RING - 8, 0},
	    {"head one more than a ring behind", -(int64_t)RING - 1, 0},
	    {"head -tail (wraps to huge)", INT64_MIN, 0},
	    {"head misaligned", -4, 1},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ivl_span sp[2];
		long rc;

		setup(&f, mode);
		/* A full ring, so that the producer must look at the head. */
		while (ivl_ring_write(&f.prod, buf, mode == IVL_MODE_STREAM ? RING : 504, 0) > 0)
			;
		poke(&f.rc->head, 8, f.prod.p_tail + (uint64_t)cases[i].delta);
		rc = ivl_ring_write(&f.prod, buf, 8, 0);
		if (cases[i].msg_only && mode == IVL_MODE_STREAM) {
			CHECK(rc == 8, "%s: %ld", cases[i].what, rc); /* legal in stream mode */
			continue;
		}
		CHECK(rc == -EPROTO, "%s: write returned %ld", cases[i].what, rc);
		CHECK_EQ(ivl_ring_reserve(&f.prod, 8, sp), -EPROTO);
		CHECK_EQ(ivl_ring_writable(&f.prod, 8), 1);
		CHECK_EQ(ivl_ring_wait_writable(&f.prod, 8, -1), 0);
		CHECK_EQ(
		    ivl_ring_init_producer(&f.prod, f.rp, f.rc, f.data, RING, mode, MAXREC, NULL),
		    -EPROTO);
	}
}

static void test_flags(uint32_t mode)
{
	struct fix f;
	uint8_t buf[64] = {0};
	struct ivl_span sp[2];

	/* All producer flag bits: ABORT wins, a clean -ECONNRESET. */
	setup(&f, mode);
	CHECK_EQ(ivl_ring_write(&f.prod, buf, 10, 0), 10);
	poke(&f.rp->flags, 4, UINT32_MAX);
	expect_consumer(&f, -ECONNRESET, "prod flags all ones");

	/* Unknown bits only: ignored; an empty ring stays "not readable" so
	 * that waiting sleeps instead of spinning. */
	setup(&f, mode);
	poke(&f.rp->flags, 4, 0xfffffff8u);
	CHECK_EQ(ivl_ring_readable(&f.cons), 0);
	CHECK_EQ(ivl_ring_peek(&f.cons, sp), -EAGAIN);
	CHECK_EQ(ivl_ring_wait_readable(&f.cons, 1000), -ETIMEDOUT);

	/* All consumer flag bits: the producer gets -ECONNRESET. */
	setup(&f, mode);
	poke(&f.rc->flags, 4, UINT32_MAX);
	CHECK_EQ(ivl_ring_write(&f.prod, buf, 8, 0), -ECONNRESET);
	CHECK_EQ(ivl_ring_writable(&f.prod, 8), 1);

	/* A hostile sleep_seq only costs spurious kicks. */
	setup(&f, mode);
	poke(&f.rc->sleep_seq, 4, 0xffffffffu);
	CHECK_EQ(ivl_ring_write(&f.prod, buf, 8, 0), 8);
	CHECK_EQ(ivl_ring_read(&f.cons, buf, sizeof(buf)), 8);
}

static void test_chan_half(uint32_t mode)
{
	struct fix f;
	struct ivl_ctab_remote m;
	uint64_t heap1, heap_end1, heap0;
	struct {
		const char *what;
		size_t field; /* offset in struct ivl_chan_half, or SIZE_MAX */
		unsigned len;
		uint64_t val;
		long want;
	} cases[] = {
	    {"tx_data_off 0", offsetof(struct ivl_chan_half, tx_data_off), 8, 0, -EPROTO},
	    {"tx_data_off misaligned", offsetof(struct ivl_chan_half, tx_data_off), 8, 1,
	     -EPROTO}, /* relative: added below */
	    {"tx_data_off in the channel table", offsetof(struct ivl_chan_half, tx_data_off), 8, 2,
	     -EPROTO},
	    {"tx_data_off at heap end", offsetof(struct ivl_chan_half, tx_data_off), 8, 3, -EPROTO},
	    {"tx_data_off last heap page (ring straddles the end)",
	     offsetof(struct ivl_chan_half, tx_data_off), 8, 4, -EPROTO},
	    {"tx_data_off in the other peer's heap", offsetof(struct ivl_chan_half, tx_data_off), 8,
	     5, -EPROTO},
	    {"tx_data_off -4096", offsetof(struct ivl_chan_half, tx_data_off), 8,
	     UINT64_MAX & ~4095ULL, -EPROTO},
	    {"tx_size 0", offsetof(struct ivl_chan_half, tx_size), 4, 0, -EPROTO},
	    {"tx_size 2048", offsetof(struct ivl_chan_half, tx_size), 4, 2048, -EPROTO},
	    {"tx_size 4097", offsetof(struct ivl_chan_half, tx_size), 4, 4097, -EPROTO},
	    {"tx_size 2^31", offsetof(struct ivl_chan_half, tx_size), 4, 1u << 31, -EPROTO},
	    {"tx_size -1", offsetof(struct ivl_chan_half, tx_size), 4, UINT32_MAX, -EPROTO},
	    {"tx_size heap", offsetof(struct ivl_chan_half, tx_size), 4, 1u << 19, -EPROTO},
	    {"rx_vector n_vectors", offsetof(struct ivl_chan_half, rx_vector), 4, 8, -EPROTO},
	    {"rx_vector -1", offsetof(struct ivl_chan_half, rx_vector), 4, UINT32_MAX, -EPROTO},
	    {"mode 7", offsetof(struct ivl_chan_half, mode), 4, 7, -EAGAIN},
	    {"state 99", offsetof(struct ivl_chan_half, state), 4, 99, -EAGAIN},
	    {"owner_epoch + 1", offsetof(struct ivl_chan_half, owner_epoch), 4, 6, -EAGAIN},
	    {"remote_slot another", offsetof(struct ivl_chan_half, remote_slot), 4, 3, -EAGAIN},
	    {"remote_slot -2", offsetof(struct ivl_chan_half, remote_slot), 4, UINT32_MAX - 1,
	     -EAGAIN},
	    {"remote_peer 5", offsetof(struct ivl_chan_half, remote_peer), 4, 5, -EAGAIN},
	    {"name without NUL", offsetof(struct ivl_chan_half, name), 0, 0, -EAGAIN},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = cases[i].val;

		setup(&f, mode);
		heap0 = ivl_region_section(&f.c.rg, 0)->heap_off;
		heap1 = ivl_region_section(&f.c.rg, 1)->heap_off;
		heap_end1 = heap1 + (uint64_t)ivl_region_section(&f.c.rg, 1)->heap_pages * 4096;
		if (cases[i].field == offsetof(struct ivl_chan_half, tx_data_off) && v > 0 && v < 6)
			v = v == 1   ? f.h1->tx_data_off + 1
			    : v == 2 ? heap1 - 4096
			    : v == 3 ? heap_end1
			    : v == 4 ? heap_end1 - 4096
				     : heap0;
		if (cases[i].val == 4 &&
		    cases[i].field == offsetof(struct ivl_chan_half, tx_data_off))
			poke(&f.h1->tx_size, 4, 8192); /* a legal size that no longer fits */
		if (cases[i].field == offsetof(struct ivl_chan_half, owner_epoch))
			v = f.h1->owner_epoch + 1;
		poke((uint8_t *)f.h1 + cases[i].field, cases[i].len, v);
		long rc = ivl_ctab_match(&f.c.rg, 0, (uint32_t)f.c.slot[0], &m);
		CHECK(rc == cases[i].want, "%s: match returned %ld, expected %ld", cases[i].what,
		      rc, cases[i].want);
	}

	/* max_record, message mode only. */
	if (mode == IVL_MODE_MESSAGE) {
		uint32_t vals[] = {UINT32_MAX, RING - 7, RING};

		for (size_t i = 0; i < 3; i++) {
			setup(&f, mode);
			poke(&f.h1->max_record, 4, vals[i]);
			CHECK_EQ(ivl_ctab_match(&f.c.rg, 0, (uint32_t)f.c.slot[0], &m), -EPROTO);
		}
	}

	/* The peer table and the remote's section header. */
	setup(&f, mode);
	poke(&ivl_region_peer(&f.c.rg, 1)->state, 4, 1234);
	CHECK_EQ(ivl_ctab_match(&f.c.rg, 0, (uint32_t)f.c.slot[0], &m), -EPROTO);
	setup(&f, mode);
	poke(&ivl_region_peer(&f.c.rg, 1)->epoch, 4, f.c.epoch[1] + 1);
	CHECK_EQ(ivl_ctab_match(&f.c.rg, 0, (uint32_t)f.c.slot[0], &m), -EAGAIN);
	setup(&f, mode);
	poke(&ivl_region_section(&f.c.rg, 1)->magic, 4, 0);
	CHECK_EQ(ivl_ctab_match(&f.c.rg, 0, (uint32_t)f.c.slot[0], &m), -EAGAIN);
	setup(&f, mode);
	poke(&ivl_region_section(&f.c.rg, 1)->heap_pages, 4, UINT32_MAX);
	CHECK_EQ(ivl_ctab_match(&f.c.rg, 0, (uint32_t)f.c.slot[0], &m), -EAGAIN);

	/* Our own half scribbled: remote_peer out of range. */
	setup(&f, mode);
	poke(&f.h0->remote_peer, 4, 1000);
	CHECK_EQ(ivl_ctab_match(&f.c.rg, 0, (uint32_t)f.c.slot[0], &m), -EPROTO);
	setup(&f, mode);
	poke(&f.h0->remote_peer, 4, 0); /* ourselves: would match our own half */
	CHECK_EQ(ivl_ctab_match(&f.c.rg, 0, (uint32_t)f.c.slot[0], &m), -EPROTO);
}

/* gc trusts nothing in a closed half: pages are freed only when the range
 * lies inside our heap. */
static void test_gc(void)
{
	struct fix f;
	long used;

	setup(&f, IVL_MODE_STREAM);
	used = ivl_section_pages_used(&f.c.rg, 0);
	CHECK_OK(ivl_ctab_close(&f.c.rg, 0, (uint32_t)f.c.slot[0]));
	poke(&f.h0->tx_pages, 4, UINT32_MAX);
	poke(&f.h0->remote_peer, 4, 1000);
	CHECK_EQ(ivl_ctab_gc(&f.c.rg, 0), 1);
	CHECK_EQ(ivl_section_pages_used(&f.c.rg, 0), used);

	setup(&f, IVL_MODE_STREAM);
	CHECK_OK(ivl_ctab_close(&f.c.rg, 0, (uint32_t)f.c.slot[0]));
	poke(&f.h0->tx_data_off, 8, ivl_region_section(&f.c.rg, 1)->heap_off);
	poke(&f.h0->remote_slot, 4, UINT32_MAX - 1);
	CHECK_EQ(ivl_ctab_gc(&f.c.rg, 0), 1);
	CHECK_EQ(ivl_section_pages_used(&f.c.rg, 1), 1); /* peer 1's own ring */

	/* A bitmap with every bit set: allocation fails cleanly. */
	setup(&f, IVL_MODE_STREAM);
	for (int w = 0; w < 8; w++)
		poke(&ivl_region_section(&f.c.rg, 0)->bitmap[w], 8, UINT64_MAX);
	CHECK_EQ(ivl_section_alloc(&f.c.rg, 0, 1), -ENOMEM);
}

int main(void)
{
	int cmd[2], ack[2], st;

	ivt_map_create(&map, RSIZE);
	CHECK(pipe(cmd) == 0 && pipe(ack) == 0);
	child = fork();
	CHECK(child >= 0, "fork: %s", strerror(errno));
	if (child == 0) {
		close(cmd[1]);
		close(ack[0]);
		poke_server(cmd[0], ack[1]);
	}
	close(cmd[0]);
	close(ack[1]);
	cmd_fd = cmd[1];
	ack_fd = ack[0];

	test_consumer_indices(IVL_MODE_STREAM);
	test_consumer_indices(IVL_MODE_MESSAGE);
	test_record_headers();
	test_producer_indices(IVL_MODE_STREAM);
	test_producer_indices(IVL_MODE_MESSAGE);
	test_flags(IVL_MODE_STREAM);
	test_flags(IVL_MODE_MESSAGE);
	test_chan_half(IVL_MODE_STREAM);
	test_chan_half(IVL_MODE_MESSAGE);
	test_gc();

	close(cmd_fd);
	CHECK(waitpid(child, &st, 0) == child);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "hostile peer exited with status %d", st);
	ivt_map_destroy(&map);
	printf("corrupt_targeted_values_rejected: ok\n");
	return 0;
}
