/* SPDX-License-Identifier: MIT */
/*
 * Moves of a stream ring's data (layout v4, transport/ring.c "Moves"), on
 * a real region with the real allocator, every byte checked:
 *  - hundreds of grows and shrinks in both directions of a channel, with
 *    a reader that lags (the old area still holds unread bytes when the
 *    next writes go to the new one), and no page leaked at the end;
 *  - a writer thread and a slow reader thread, the old areas freed and
 *    reused as soon as the reader switched (an early free would show as
 *    wrong bytes);
 *  - a writer that _exit()s right after writing past a move: the reader
 *    still gets every byte;
 *  - ring ends shared by two processes in turn: a stale handle adopts
 *    more than a ring of the other's reads and writes, and a switch;
 *  - a hostile producer's move records (outside its heap, bad sizes, a
 *    move point the old area cannot hold) and a hostile consumer's heads:
 *    -EPROTO, no access outside the region (guard pages), no free.
 */
#include <pthread.h>
#include <sched.h>
#include <sys/wait.h>

#include "ivl_test.h"

#define RSIZE (8u << 20)
#define SEED  0x6d6f7665ull

struct fx {
	struct ivt_map map;
	struct ivt_chan ch;
	uint32_t from; /* the producer's peer */
	struct ivl_ring p, c;
	uint64_t cur_off, old_off;
	uint32_t cur_pages, old_pages;
	long moves;
};

static int map_area(void *ctx, uint64_t off, uint32_t size, uint8_t **data)
{
	struct fx *f = ctx;

	*data = ivl_region_ring_area(&f->ch.rg, f->from, off, size);
	return *data ? 0 : -EPROTO;
}

static void fx_init(struct fx *f, uint32_t from, uint32_t size, int accept_moves)
{
	struct ivl_ring_prod *prod;
	struct ivl_ring_cons *cons;
	void *data;

	memset(f, 0, sizeof(*f));
	ivt_map_create(&f->map, RSIZE);
	CHECK_OK(ivt_chan_setup(&f->ch, f->map.base, RSIZE, IVL_MODE_STREAM, size, 0));
	f->from = from;
	ivt_chan_ring_ptrs(&f->ch, from, &prod, &cons, &data);
	CHECK_OK(ivl_ring_init_producer(&f->p, prod, cons, data, size, IVL_MODE_STREAM, 0, NULL));
	CHECK_OK(ivl_ring_init_consumer(&f->c, prod, cons, data, size, IVL_MODE_STREAM, 0, NULL));
	if (accept_moves)
		ivl_ring_set_move_map(&f->c, map_area, f);
	f->cur_off = f->ch.m[1 - from].remote_tx_data_off;
	f->cur_pages = size / IVL_PAGE_SIZE;
}

static void fx_fini(struct fx *f)
{
	ivt_map_destroy(&f->map);
}

/* The producer's side of a move, as the shim does it: free the area of a
 * followed move, then a new area. 1 if moved, 0 if the last one is still
 * pending. */
static int fx_move(struct fx *f, uint32_t size)
{
	struct ivl_region *rg = &f->ch.rg;
	int64_t off;

	if (f->old_pages) {
		int rc = ivl_ring_move_pending(&f->p);

		CHECK(rc >= 0, "move_pending: %d", rc);
		if (rc)
			return 0;
		CHECK_OK(ivl_section_free(rg, f->from, f->old_off, f->old_pages));
		f->old_pages = 0;
	}
	off = ivl_section_alloc(rg, f->from, size / IVL_PAGE_SIZE);
	CHECK(off > 0, "alloc %u: %lld", size, (long long)off);
	CHECK_OK(
	    ivl_ring_move(&f->p, ivl_region_ptr(rg, (uint64_t)off, size), (uint64_t)off, size));
	CHECK_EQ(ivl_ring_move(&f->p, ivl_region_ptr(rg, (uint64_t)off, size), (uint64_t)off, size),
		 -EBUSY);
	f->old_off = f->cur_off;
	f->old_pages = f->cur_pages;
	f->cur_off = (uint64_t)off;
	f->cur_pages = size / IVL_PAGE_SIZE;
	f->moves++;
	return 1;
}

/* Reads up to max bytes and checks them against the stream at *roff. */
static long fx_read(struct fx *f, uint8_t *buf, size_t max, uint64_t *roff)
{
	long n = ivl_ring_read(&f->c, buf, max);

	if (n == -EAGAIN)
		return 0;
	CHECK(n >= 0, "read: %ld", n);
	CHECK(ts_stream_check(SEED, *roff, buf, (size_t)n) == (size_t)n,
	      "byte %llu differs after %ld moves", (unsigned long long)*roff, f->moves);
	*roff += (uint64_t)n;
	return n;
}

/* Many grows and shrinks in one thread, the reader lagging. */
static void many_moves(uint32_t from)
{
	static uint8_t wbuf[20000], rbuf[30000];
	struct fx f;
	uint64_t rng = 42 + from, woff = 0, roff = 0;
	const uint64_t total = 12u << 20;

	fx_init(&f, from, 4096, 1);
	while (woff < total) {
		size_t len = 1 + ts_rand_below(&rng, sizeof(wbuf));
		long n;

		if (len > total - woff)
			len = (size_t)(total - woff);
		ts_stream_fill(SEED, woff, wbuf, len);
		n = ivl_ring_write(&f.p, wbuf, len, 0);
		CHECK(n > 0 || n == -EAGAIN, "write: %ld", n);
		if (n > 0)
			woff += (uint64_t)n;
		/* Sizes from one page to 64 KiB: grows and shrinks. */
		if (ts_rand_below(&rng, 4) == 0)
			fx_move(&f, IVL_PAGE_SIZE << ts_rand_below(&rng, 5));
		/* A slow reader: it reads in one pass of three, less than the
		 * writer wrote, unless the ring is full. */
		if (n == -EAGAIN || ts_rand_below(&rng, 3) == 0)
			fx_read(&f, rbuf, 1 + ts_rand_below(&rng, sizeof(rbuf)), &roff);
	}
	while (roff < woff) {
		long n = fx_read(&f, rbuf, sizeof(rbuf), &roff);

		CHECK(n > 0, "the reader got %llu of %llu bytes", (unsigned long long)roff,
		      (unsigned long long)woff);
	}
	CHECK(f.moves >= 200, "only %ld moves", f.moves);
	CHECK_EQ(ivl_ring_move_pending(&f.p), 0);
	CHECK_OK(ivl_section_free(&f.ch.rg, from, f.old_off, f.old_pages));
	/* The fixture offered one ring per peer: only the current area is
	 * left in the producer's heap. */
	CHECK_EQ(ivl_section_pages_used(&f.ch.rg, from), (long)f.cur_pages);
	printf("ok: %u -> %u: %llu bytes, %ld moves, every byte checked\n", from, 1 - from,
	       (unsigned long long)woff, f.moves);
	fx_fini(&f);
}

/* ------------------------------------------------------------ threads */

struct thr {
	struct fx *f;
	uint64_t total;
	uint64_t done;
};

static void *writer(void *arg)
{
	static uint8_t buf[50000];
	struct thr *t = arg;
	uint64_t rng = 7, off = 0;

	while (off < t->total) {
		size_t len = 1 + ts_rand_below(&rng, sizeof(buf));
		long n;

		if (len > t->total - off)
			len = (size_t)(t->total - off);
		ts_stream_fill(SEED, off, buf, len);
		n = ivl_ring_write(&t->f->p, buf, len, 0);
		CHECK(n > 0 || n == -EAGAIN, "write: %ld", n);
		if (n > 0) {
			off += (uint64_t)n;
			continue;
		}
		/* Full: grow, or back to a page now and then, as soon as the
		 * last move was followed; else wait for the reader. */
		if (!fx_move(t->f, ts_rand_below(&rng, 4) ? IVL_PAGE_SIZE << ts_rand_below(&rng, 6)
							  : IVL_PAGE_SIZE))
			sched_yield();
	}
	t->done = off;
	return NULL;
}

static void *reader(void *arg)
{
	static uint8_t buf[40000];
	struct thr *t = arg;
	uint64_t rng = 9, off = 0;

	while (off < t->total) {
		if (fx_read(t->f, buf, 1 + ts_rand_below(&rng, sizeof(buf)), &off) == 0 ||
		    ts_rand_below(&rng, 64) == 0)
			ts_sleep_us(ts_rand_below(&rng, 2) ? 0 : 200); /* a slow reader */
	}
	t->done = off;
	return NULL;
}

static void threaded(void)
{
	struct fx f;
	struct thr w, r;
	pthread_t tw, tr;

	fx_init(&f, 0, 4096, 1);
	w = (struct thr){&f, IVL_TEST_TSAN ? 4u << 20 : 32u << 20, 0};
	r = w;
	CHECK_EQ(pthread_create(&tw, NULL, writer, &w), 0);
	CHECK_EQ(pthread_create(&tr, NULL, reader, &r), 0);
	pthread_join(tw, NULL);
	pthread_join(tr, NULL);
	CHECK_EQ(r.done, w.total);
	CHECK(f.moves >= 20, "only %ld moves", f.moves);
	printf("ok: threads: %llu bytes, %ld moves, every byte checked\n",
	       (unsigned long long)r.done, f.moves);
	fx_fini(&f);
}

/* ------------------------------------------------------------ _exit */

static void writer_exits(void)
{
	static uint8_t buf[70000];
	struct fx f;
	uint64_t roff = 0;
	pid_t pid;
	int st;

	fx_init(&f, 1, 4096, 1);
	pid = ts_fork();
	if (pid == 0) {
		/* Fill the old area, move, write most of the new one, and
		 * leave at once: nothing but the shared memory remains. */
		ts_stream_fill(SEED, 0, buf, 4096 + 60000);
		if (ivl_ring_write(&f.p, buf, 4096, 0) != 4096 || !fx_move(&f, 65536) ||
		    ivl_ring_write(&f.p, buf + 4096, 60000, 0) != 60000)
			_exit(1);
		_exit(0);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "the writer failed");
	ts_forget_pid(pid);
	while (fx_read(&f, buf, sizeof(buf), &roff) > 0)
		;
	CHECK_EQ(roff, 4096u + 60000u);
	printf("ok: a writer that _exit()s after a move: %llu bytes, all there\n",
	       (unsigned long long)roff);
	fx_fini(&f);
}

/* ------------------------------------------------------------ shared */

/* Ring ends used by two processes in turn (a socket shared over fork):
 * a stale handle adopts what the other moved, more than a ring of reads
 * or writes, and a switch to a new area. */
static void shared_ends(void)
{
	static uint8_t buf[20000];
	struct fx f;
	struct ivl_ring p2, c2, stale;
	uint64_t woff = 0, roff = 0;

	fx_init(&f, 0, 4096, 1);
	p2 = f.p;
	c2 = f.c;
	stale = f.c;
	/* Three rings' worth written by one pair of handles. */
	for (int i = 0; i < 3; i++) {
		ts_stream_fill(SEED, woff, buf, 4096);
		CHECK_EQ(ivl_ring_write(&f.p, buf, 4096, 0), 4096);
		woff += 4096;
		CHECK_EQ(fx_read(&f, buf, sizeof(buf), &roff), 4096);
	}
	/* The other pair takes over: it adopts more than a ring of moves. */
	CHECK_OK(ivl_ring_adopt(&p2));
	CHECK_OK(ivl_ring_adopt(&c2));
	f.p = p2;
	f.c = c2;
	ts_stream_fill(SEED, woff, buf, 1000);
	CHECK_EQ(ivl_ring_write(&f.p, buf, 1000, 0), 1000);
	woff += 1000;
	CHECK_EQ(fx_read(&f, buf, sizeof(buf), &roff), 1000);
	/* A move, followed by c2, and more bytes past it. */
	CHECK_EQ(fx_move(&f, 16384), 1);
	ts_stream_fill(SEED, woff, buf, 10000);
	CHECK_EQ(ivl_ring_write(&f.p, buf, 10000, 0), 10000);
	woff += 10000;
	CHECK_EQ(fx_read(&f, buf, sizeof(buf), &roff), 10000);
	CHECK_EQ(ivl_ring_move_pending(&f.p), 0);
	ts_stream_fill(SEED, woff, buf, 500);
	CHECK_EQ(ivl_ring_write(&f.p, buf, 500, 0), 500);
	woff += 500;
	/* The handle that saw nothing of it adopts the switch and reads on
	 * in the new area. */
	f.c = stale;
	CHECK_OK(ivl_ring_adopt(&f.c));
	CHECK_EQ(fx_read(&f, buf, sizeof(buf), &roff), 500);
	CHECK_EQ(roff, woff);
	printf("ok: shared ends adopt more than a ring and a move\n");
	fx_fini(&f);
}

/* ------------------------------------------------------------ hostile */

/* A producer that publishes a move record and a tail of its choosing. */
static void bad_record(const char *what, uint64_t at_delta, uint64_t off, uint32_t size,
		       uint64_t tail_after)
{
	uint8_t buf[256];
	struct fx f;
	uint64_t roff = 0, x;

	fx_init(&f, 0, 8192, 1);
	ts_stream_fill(SEED, 0, buf, 100);
	CHECK_EQ(ivl_ring_write(&f.p, buf, 100, 0), 100);
	CHECK_EQ(fx_read(&f, buf, sizeof(buf), &roff), 100);
	x = 100 + at_delta;
	f.p.prod->move_at = x;
	f.p.prod->move_off = off;
	f.p.prod->move_size = size;
	__atomic_store_n(&f.p.prod->tail, x + IVL_RING_MOVE_GAP + tail_after, __ATOMIC_RELEASE);
	/* Reading on must fail with -EPROTO, and keep failing. */
	CHECK_EQ(ivl_ring_read(&f.c, buf, sizeof(buf)), -EPROTO);
	CHECK_EQ(ivl_ring_read(&f.c, buf, sizeof(buf)), -EPROTO);
	CHECK_EQ(ivl_ring_readable(&f.c), 1);
	printf("ok: refused: %s\n", what);
	fx_fini(&f);
}

static void hostile(void)
{
	struct fx f;
	uint64_t heap, sec1;
	uint8_t buf[64];

	fx_init(&f, 0, 8192, 1);
	heap = f.cur_off;		     /* the fixture's ring is the first heap area */
	sec1 = f.ch.m[0].remote_tx_data_off; /* peer 1's ring, in its heap */
	fx_fini(&f);

	bad_record("the region header", 0, 0, 8192, 10);
	bad_record("the other peer's heap", 0, sec1, 8192, 10);
	bad_record("an unaligned area", 0, heap + 8, 8192, 10);
	bad_record("a size that is no power of two", 0, heap + 16384, 12288, 10);
	bad_record("a size past the heap", 0, heap, 1u << 30, 10);
	bad_record("a tail past the new area", 0, heap + 16384, 8192, 8193);
	bad_record("a move point the old area cannot hold", 9000, heap + 16384, 8192, 10);
	bad_record("a move point before what was published", (uint64_t)-50, heap + 16384, 8192, 10);

	/* A consumer that does not take moves (a native channel). */
	fx_init(&f, 0, 8192, 0);
	CHECK_OK(fx_move(&f, 16384) - 1);
	CHECK_EQ(ivl_ring_write(&f.p, "x", 1, 0), 1);
	CHECK_EQ(ivl_ring_read(&f.c, buf, sizeof(buf)), -EPROTO);
	fx_fini(&f);
	printf("ok: refused: a move to a consumer without a move map\n");

	/* Hostile consumers: a head between the old end and the new start,
	 * or past the tail. The producer refuses and frees nothing. */
	for (int k = 0; k < 2; k++) {
		long used;

		fx_init(&f, 0, 8192, 1);
		CHECK_EQ(ivl_ring_write(&f.p, "abc", 3, 0), 3);
		CHECK_OK(fx_move(&f, 16384) - 1);
		CHECK_EQ(ivl_ring_write(&f.p, "defg", 4, 0), 4);
		used = ivl_section_pages_used(&f.ch.rg, 0);
		__atomic_store_n(&f.p.cons->head, k ? 3 + IVL_RING_MOVE_GAP + 5 : 3 + 1000,
				 __ATOMIC_RELEASE);
		CHECK_EQ(ivl_ring_move_pending(&f.p), -EPROTO);
		CHECK_EQ(
		    ivl_ring_move(&f.p, ivl_region_ptr(&f.ch.rg, f.cur_off, 8192), f.cur_off, 8192),
		    -EPROTO);
		CHECK_EQ(ivl_section_pages_used(&f.ch.rg, 0), used);
		fx_fini(&f);
	}
	printf("ok: refused: a consumer head inside the gap or past the tail\n");
}

int main(void)
{
	ts_init("ring_move_grow_shrink", 120);
	many_moves(0);
	many_moves(1);
	threaded();
	writer_exits();
	shared_ends();
	hostile();
	return 0;
}
