/* SPDX-License-Identifier: MIT */
/*
 * The section heap allocator: first fit, reuse of freed holes,
 * fragmentation (free pages that are not contiguous do not satisfy a larger
 * request), exhaustion with -ENOMEM, runs across bitmap words, argument and
 * state checks, pages_used, and two threads allocating concurrently (as two
 * processes of one VM would) never getting overlapping pages.
 */
#include <pthread.h>

#include "ivl_test.h"

#define RSIZE (4u << 20)
#define PG    IVL_PAGE_SIZE

static struct ivl_region rg;
static uint64_t heap;
static uint32_t npages;

/* Page index of an offset returned by alloc. */
static long page_of(int64_t off)
{
	CHECK(off > 0, "alloc failed: %lld", (long long)off);
	CHECK((uint64_t)off >= heap && ((uint64_t)off - heap) % PG == 0);
	return (long)(((uint64_t)off - heap) / PG);
}

static void test_first_fit(void)
{
	int64_t a, b, c, d;

	CHECK_EQ(ivl_section_pages_used(&rg, 0), 0);
	a = ivl_section_alloc(&rg, 0, 1);
	b = ivl_section_alloc(&rg, 0, 2);
	c = ivl_section_alloc(&rg, 0, 3);
	CHECK_EQ(page_of(a), 0);
	CHECK_EQ(page_of(b), 1);
	CHECK_EQ(page_of(c), 3);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), 6);
	CHECK_EQ(ivl_region_section(&rg, 0)->pages_used, 6);

	/* Free the 2-page block: a 1-page request takes the hole's start,
	 * a 2-page one no longer fits there and goes to the end, the next
	 * 1-page one fills the rest of the hole. */
	CHECK_EQ(ivl_section_free(&rg, 0, (uint64_t)b, 2), 0);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), 4);
	CHECK_EQ(page_of(ivl_section_alloc(&rg, 0, 1)), 1);
	d = ivl_section_alloc(&rg, 0, 2);
	CHECK_EQ(page_of(d), 6);
	CHECK_EQ(page_of(ivl_section_alloc(&rg, 0, 1)), 2);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), 8);

	/* The other peer's heap is independent. */
	CHECK_EQ(ivl_section_pages_used(&rg, 1), 0);
	CHECK(ivl_section_alloc(&rg, 1, 1) > 0);
	CHECK_EQ(ivl_section_pages_used(&rg, 1), 1);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), 8);

	/* Reset wipes the heap. */
	CHECK_OK(ivl_section_reset(&rg, 0, 3));
	CHECK_EQ(ivl_section_pages_used(&rg, 0), 0);
	CHECK_EQ(ivl_region_section(&rg, 0)->pages_used, 0);
	CHECK_EQ(page_of(ivl_section_alloc(&rg, 0, 5)), 0);
	CHECK_OK(ivl_section_reset(&rg, 0, 3));
}

static void test_fragmentation_exhaustion(void)
{
	int64_t off;

	/* Every page one at a time, then nothing is left. */
	for (uint32_t i = 0; i < npages; i++)
		CHECK_EQ(page_of(ivl_section_alloc(&rg, 0, 1)), (long)i);
	CHECK_EQ(ivl_section_alloc(&rg, 0, 1), -ENOMEM);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), npages);

	/* Free every other page: half the heap is free but no two free pages
	 * are adjacent. */
	for (uint32_t i = 0; i < npages; i += 2)
		CHECK_EQ(ivl_section_free(&rg, 0, heap + (uint64_t)i * PG, 1), 0);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), npages / 2);
	CHECK_EQ(ivl_section_alloc(&rg, 0, 2), -ENOMEM);
	CHECK_EQ(page_of(ivl_section_alloc(&rg, 0, 1)), 0);

	/* Free a run crossing a 64-bit bitmap word (pages 60..69 made free). */
	for (uint32_t i = 61; i < 70; i += 2)
		CHECK_EQ(ivl_section_free(&rg, 0, heap + (uint64_t)i * PG, 1), 0);
	/* Pages 60, 62, ... are already free; now 60..69 are all free. */
	off = ivl_section_alloc(&rg, 0, 10);
	CHECK_EQ(page_of(off), 60);
	CHECK_EQ(ivl_section_alloc(&rg, 0, 2), -ENOMEM);
	CHECK_EQ(ivl_section_free(&rg, 0, (uint64_t)off, 10), 0);
	CHECK_EQ(page_of(ivl_section_alloc(&rg, 0, 3)), 60);

	/* Everything back, then the whole heap in one piece. */
	CHECK_OK(ivl_section_reset(&rg, 0, 3));
	off = ivl_section_alloc(&rg, 0, npages);
	CHECK_EQ(page_of(off), 0);
	CHECK_EQ(ivl_section_alloc(&rg, 0, 1), -ENOMEM);
	CHECK_EQ(ivl_section_free(&rg, 0, (uint64_t)off, npages), 0);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), 0);
	CHECK_EQ(ivl_section_alloc(&rg, 0, npages + 1), -ENOMEM);
	CHECK_EQ(ivl_section_alloc(&rg, 0, UINT32_MAX), -ENOMEM);
}

static void test_args(void)
{
	struct ivl_section_hdr *s = ivl_region_section(&rg, 0);

	CHECK_EQ(ivl_section_alloc(&rg, 0, 0), -EINVAL);
	CHECK_EQ(ivl_section_alloc(&rg, 2, 1), -EINVAL);
	CHECK_EQ(ivl_section_free(&rg, 0, heap, 0), -EINVAL);
	CHECK_EQ(ivl_section_free(&rg, 0, heap - PG, 1), -EINVAL);
	CHECK_EQ(ivl_section_free(&rg, 0, heap + 1, 1), -EINVAL);
	CHECK_EQ(ivl_section_free(&rg, 0, heap + (uint64_t)npages * PG, 1), -EINVAL);
	CHECK_EQ(ivl_section_free(&rg, 0, heap + (uint64_t)(npages - 1) * PG, 2), -EINVAL);
	CHECK_EQ(ivl_section_free(&rg, 0, UINT64_MAX & ~(uint64_t)(PG - 1), 1), -EINVAL);
	CHECK_EQ(ivl_section_free(&rg, 0, heap, UINT32_MAX), -EINVAL);
	CHECK_EQ(ivl_section_free(&rg, 2, heap, 1), -EINVAL);
	CHECK_EQ(ivl_section_pages_used(&rg, 2), -EINVAL);

	/* Bits beyond the heap's last page (never valid) are not counted,
	 * and never handed out. */
	if (npages % 64) {
		s->bitmap[npages / 64] |= ~0ULL << (npages % 64);
		CHECK_EQ(ivl_section_pages_used(&rg, 0), 0);
		s->bitmap[npages / 64] &= ~(~0ULL << (npages % 64));
	}
	/* A section whose header was wiped (or never initialised) refuses. */
	s->magic = 0;
	CHECK_EQ(ivl_section_alloc(&rg, 0, 1), -EPROTO);
	CHECK_EQ(ivl_section_check(&rg, 0), -EPROTO);
	CHECK_OK(ivl_section_reset(&rg, 0, 3));
	s->heap_pages++;
	CHECK_EQ(ivl_section_check(&rg, 0), -EPROTO);
	CHECK_OK(ivl_section_reset(&rg, 0, 3));
	s->heap_off += PG;
	CHECK_EQ(ivl_section_check(&rg, 0), -EPROTO);
	CHECK_OK(ivl_section_reset(&rg, 0, 3));
}

/* Two threads allocate and free random runs; each stamps its pages and
 * checks the stamps before freeing, so an overlap is caught. */
#define THREAD_ITERS 20000

static void *alloc_thread(void *arg)
{
	uint64_t id = (uint64_t)(uintptr_t)arg, seed = id * 7919 + 1;
	struct {
		int64_t off;
		uint32_t n;
	} held[8] = {{0, 0}};

	for (int it = 0; it < THREAD_ITERS; it++) {
		int k = (int)ts_rand_below(&seed, 8);

		if (held[k].n) {
			for (uint32_t pgi = 0; pgi < held[k].n; pgi++) {
				uint64_t *w =
				    ivl_region_ptr(&rg, (uint64_t)held[k].off + pgi * PG, 8);

				CHECK((*w >> 32) == id, "page stamped by another thread: overlap");
			}
			CHECK_EQ(ivl_section_free(&rg, 0, (uint64_t)held[k].off, held[k].n), 0);
			held[k].n = 0;
		} else {
			uint32_t n = 1 + (uint32_t)ts_rand_below(&seed, 5);
			int64_t off = ivl_section_alloc(&rg, 0, n);

			if (off == -ENOMEM)
				continue;
			CHECK(off > 0, "alloc: %lld", (long long)off);
			for (uint32_t pgi = 0; pgi < n; pgi++) {
				uint64_t *w = ivl_region_ptr(&rg, (uint64_t)off + pgi * PG, 8);

				*w = id << 32 | (uint32_t)it;
			}
			held[k].off = off;
			held[k].n = n;
		}
	}
	for (int k = 0; k < 8; k++)
		if (held[k].n)
			CHECK_EQ(ivl_section_free(&rg, 0, (uint64_t)held[k].off, held[k].n), 0);
	return NULL;
}

static void test_concurrent(void)
{
	pthread_t t[2];

	CHECK_OK(ivl_section_reset(&rg, 0, 3));
	for (uintptr_t i = 0; i < 2; i++)
		CHECK(pthread_create(&t[i], NULL, alloc_thread, (void *)(i + 1)) == 0);
	for (int i = 0; i < 2; i++)
		CHECK(pthread_join(t[i], NULL) == 0);
	CHECK_EQ(ivl_section_pages_used(&rg, 0), 0);
	CHECK_EQ(ivl_region_section(&rg, 0)->pages_used, 0);
}

int main(void)
{
	struct ivt_map m;
	struct ivl_region_params p;

	ivt_map_create(&m, RSIZE);
	ivl_region_params_default(&p);
	p.size = RSIZE;
	p.max_peers = 2;
	p.chan_slots = 8;
	CHECK_EQ(ivl_region_format(m.base, RSIZE, &p), 0);
	CHECK_EQ(ivl_region_attach(&rg, m.base, RSIZE), 0);
	CHECK_EQ(ivl_section_alloc(&rg, 0, 1), -EPROTO); /* not reset yet */
	CHECK_OK(ivl_section_reset(&rg, 0, 3));
	CHECK_OK(ivl_section_reset(&rg, 1, 3));
	heap = ivl_region_section(&rg, 0)->heap_off;
	npages = ivl_region_section(&rg, 0)->heap_pages;
	CHECK(npages > 128 && npages % 64 != 0, "unexpected geometry: %u pages", npages);

	test_first_fit();
	test_fragmentation_exhaustion();
	test_args();
	test_concurrent();
	ivt_map_destroy(&m);
	printf("section_alloc_first_fit: ok\n");
	return 0;
}
