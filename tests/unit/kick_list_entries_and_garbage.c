/* SPDX-License-Identifier: MIT */
/*
 * Kick lists (layout v4, transport/kick.c): what producers push a reader
 * gets once and in order, from the position it started at; a list that
 * moved more than its entries past the reader, a tail behind it, an
 * entry with the wrong tag (being written, or garbage) all make the
 * reader fall back (-EOVERFLOW) and move on to the tail, so that it never
 * takes a slot it cannot trust. Several producer threads at once (the
 * processes of one VM share a list): every slot pushed is read. Random
 * garbage in a list, as a hostile peer writes it, never makes the reader
 * return more slots than the list has or touch memory outside the
 * list (the list sits at the end of a guarded mapping).
 */
#include "ivl_test.h"

#include <pthread.h>

#include <ivlink/kick.h>

/* Entries of the list under test: the longest (what ivlinkd formats in
 * any region of some size), then the shortest. */
static uint32_t E = IVL_KICK_ENTRIES_MAX;

static void test_in_order(struct ivl_kick_list *l)
{
	uint32_t slots[IVL_KICK_ENTRIES_MAX];
	uint64_t pos = ivl_kick_tail(l);

	CHECK_EQ(ivl_kick_read(l, E, &pos, slots), 0);
	for (uint32_t i = 0; i < 5; i++)
		ivl_kick_push(l, E, 100 + i);
	CHECK_EQ(ivl_kick_read(l, E, &pos, slots), 5);
	for (uint32_t i = 0; i < 5; i++)
		CHECK_EQ(slots[i], 100 + i);
	CHECK_EQ(ivl_kick_read(l, E, &pos, slots), 0);
	/* Exactly a full list is still readable; one more is an overflow. */
	for (uint32_t i = 0; i < E; i++)
		ivl_kick_push(l, E, i);
	CHECK_EQ(ivl_kick_read(l, E, &pos, slots), (int)E);
	for (uint32_t i = 0; i < E; i++)
		CHECK_EQ(slots[i], i);
	for (uint32_t i = 0; i < E + 1; i++)
		ivl_kick_push(l, E, i);
	CHECK_EQ(ivl_kick_read(l, E, &pos, slots), -EOVERFLOW);
	CHECK_EQ(pos, ivl_kick_tail(l));
	ivl_kick_push(l, E, 7);
	CHECK_EQ(ivl_kick_read(l, E, &pos, slots), 1);
	CHECK_EQ(slots[0], 7);
}

static void test_bad_entries(struct ivl_kick_list *l)
{
	uint32_t slots[IVL_KICK_ENTRIES_MAX];
	uint64_t pos = ivl_kick_tail(l), t;

	/* A reserved position whose entry is not written yet. */
	ivl_kick_push(l, E, 1);
	t = __atomic_fetch_add(&l->tail, 1, __ATOMIC_ACQ_REL);
	l->ent[t % E].tag = 0xdeadbeef;
	CHECK_EQ(ivl_kick_read(l, E, &pos, slots), -EOVERFLOW);
	CHECK_EQ(pos, t + 1);
	/* A tail behind the reader (a section reset, or garbage). */
	l->tail = pos - 3;
	CHECK_EQ(ivl_kick_read(l, E, &pos, slots), -EOVERFLOW);
	CHECK_EQ(pos, l->tail);
	ivl_kick_push(l, E, 9);
	CHECK_EQ(ivl_kick_read(l, E, &pos, slots), 1);
	CHECK_EQ(slots[0], 9);
	/* A tail near the end of the 64-bit space wraps like any other. */
	l->tail = UINT64_MAX - 1;
	pos = l->tail;
	for (uint32_t i = 0; i < 4; i++)
		ivl_kick_push(l, E, 50 + i);
	CHECK_EQ(ivl_kick_read(l, E, &pos, slots), 4);
	for (uint32_t i = 0; i < 4; i++)
		CHECK_EQ(slots[i], 50 + i);
}

#define THREADS 4
#define PER	20000u

struct prod {
	struct ivl_kick_list *l;
	uint32_t id;
	int *go;
};

static void *producer(void *arg)
{
	struct prod *p = arg;

	while (!__atomic_load_n(p->go, __ATOMIC_ACQUIRE))
		;
	for (uint32_t i = 0; i < PER; i++)
		ivl_kick_push(p->l, E, p->id << 24 | i);
	return NULL;
}

/* Concurrent producers, one reader: each slot is read at most once; the
 * reader misses some only by an overflow it is told of, and then counts
 * what it would have checked; the total equals what was pushed. */
static void test_producers(struct ivl_kick_list *l)
{
	static uint8_t seen[THREADS][PER];
	uint32_t slots[IVL_KICK_ENTRIES_MAX];
	pthread_t th[THREADS];
	struct prod p[THREADS];
	uint64_t pos = ivl_kick_tail(l), start = pos, got = 0, skipped = 0;
	int go = 0, done = 0;

	memset(seen, 0, sizeof(seen));
	for (uint32_t i = 0; i < THREADS; i++) {
		p[i] = (struct prod){l, i, &go};
		CHECK(pthread_create(&th[i], NULL, producer, &p[i]) == 0);
	}
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	while (!done) {
		uint64_t from = pos;
		int n;

		done = ivl_kick_tail(l) - start == (uint64_t)THREADS * PER;
		n = ivl_kick_read(l, E, &pos, slots);
		if (n < 0) {
			skipped += pos - from;
			continue;
		}
		CHECK_EQ((uint64_t)n, pos - from);
		for (int i = 0; i < n; i++) {
			uint32_t t = slots[i] >> 24, k = slots[i] & 0xffffff;

			CHECK(t < THREADS && k < PER, "slot %#x was never pushed", slots[i]);
			CHECK(!seen[t][k], "slot %#x read twice", slots[i]);
			seen[t][k] = 1;
			got++;
		}
	}
	for (uint32_t i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(got + skipped, (uint64_t)THREADS * PER);
	printf("producers: %llu slots read, %llu behind an overflow\n", (unsigned long long)got,
	       (unsigned long long)skipped);
}

/* Random garbage, tail and entries alike: the reader returns a count it
 * has room for or -EOVERFLOW, and only slots that were in the list. */
static void test_garbage(struct ivl_kick_list *l)
{
	uint32_t slots[IVL_KICK_ENTRIES_MAX];
	uint64_t seed = 12, pos = 0;

	for (int round = 0; round < 20000; round++) {
		int n;

		if (ts_rand_below(&seed, 2)) {
			l->tail = ts_rand_below(&seed, 4) ? pos + ts_rand_below(&seed, 600)
							  : ts_rand(&seed);
		}
		for (int i = 0; i < 8; i++) {
			struct ivl_kick_ent *e = &l->ent[ts_rand_below(&seed, E)];

			e->slot = (uint32_t)ts_rand(&seed);
			e->tag = ts_rand_below(&seed, 2)
				     ? (uint32_t)(pos + ts_rand_below(&seed, 300))
				     : (uint32_t)ts_rand(&seed);
		}
		n = ivl_kick_read(l, E, &pos, slots);
		CHECK(n == -EOVERFLOW || (n >= 0 && n <= (int)E), "read %d", n);
		CHECK_EQ(pos, l->tail);
	}
}

int main(void)
{
	struct ivt_map m;
	struct ivl_kick_list *l;

	/* The list ends where the guard begins. */
	ivt_map_create(&m, 1u << 20);
	l = (struct ivl_kick_list *)(m.base + m.size - sizeof(*l));
	memset(l, 0, sizeof(*l));
	test_in_order(l);
	test_bad_entries(l);
	memset(l, 0, sizeof(*l));
	test_producers(l);
	test_garbage(l);
	/* The shortest list, its last entry against the guard too. */
	E = IVL_KICK_ENTRIES_MIN;
	l = (struct ivl_kick_list *)(m.base + m.size - IVL_KICK_LIST_SIZE(E));
	memset(l, 0, IVL_KICK_LIST_SIZE(E));
	test_in_order(l);
	test_bad_entries(l);
	test_garbage(l);
	ivt_map_destroy(&m);
	printf("PASS\n");
	return 0;
}
