/* SPDX-License-Identifier: MIT */
/*
 * Region layout: default parameters, format() then attach() round trip
 * (every header field, through a second mapping at another address, since
 * the layout must hold only offsets), the geometry (peer table, sections
 * and their parts inside the region and disjoint), accessor bounds, the
 * peer table epochs, and format()'s parameter checks. The _Static_asserts
 * in layout.h are checked by compiling this file.
 */
#include "ivl_test.h"

static void test_defaults(void)
{
	struct ivl_region_params p;

	memset(&p, 0xff, sizeof(p));
	ivl_region_params_default(&p);
	CHECK_EQ(p.size, 64u << 20);
	CHECK_EQ(p.max_peers, 8);
	CHECK_EQ(p.n_vectors, 8);
	CHECK_EQ(p.chan_slots, 64);
	CHECK(p.name == NULL);
}

static void check_geometry(const struct ivl_region *rg, const struct ivl_region_params *p)
{
	const struct ivl_region_hdr *h = &rg->hdr;
	uint64_t prev_end = h->section_off;

	CHECK_EQ(h->magic == IVL_REGION_MAGIC, 1);
	CHECK_EQ(h->version, IVL_LAYOUT_VERSION);
	CHECK_EQ(h->hdr_size, IVL_REGION_HDR_SIZE);
	CHECK_EQ(h->region_size, p->size);
	CHECK_EQ(h->max_peers, p->max_peers);
	CHECK_EQ(h->n_vectors, p->n_vectors);
	CHECK_EQ(h->chan_slots, p->chan_slots);
	CHECK_EQ(h->peer_table_off, IVL_REGION_HDR_SIZE);
	CHECK_EQ(h->peer_entry_size, IVL_PEER_ENTRY_SIZE);
	CHECK_EQ(h->chan_half_size, IVL_CHAN_HALF_SIZE);
	CHECK_EQ(h->flags, 0);
	CHECK_EQ(h->section_off % IVL_PAGE_SIZE, 0);
	CHECK(h->section_off >= h->peer_table_off + (uint64_t)h->max_peers * IVL_PEER_ENTRY_SIZE);
	CHECK_EQ(h->section_size % IVL_PAGE_SIZE, 0);
	CHECK(h->section_off + h->section_size * h->max_peers <= h->region_size);
	/* Format uses the space: less than one page per peer is left over. */
	CHECK(h->region_size - (h->section_off + h->section_size * h->max_peers) <
	      (uint64_t)IVL_PAGE_SIZE * h->max_peers);

	CHECK(ivl_region_peer(rg, h->max_peers) == NULL);
	CHECK(ivl_region_section(rg, h->max_peers) == NULL);
	CHECK(ivl_region_chan(rg, 0, h->chan_slots) == NULL);
	CHECK(ivl_region_chan(rg, h->max_peers, 0) == NULL);
	CHECK(ivl_region_peer(rg, UINT32_MAX) == NULL);
	for (uint32_t i = 0; i < h->max_peers; i++) {
		uint8_t *sec = (uint8_t *)ivl_region_section(rg, i);
		uint8_t *last_half = (uint8_t *)ivl_region_chan(rg, i, h->chan_slots - 1);
		struct ivl_section_hdr *s;

		CHECK((uint8_t *)ivl_region_peer(rg, i) ==
		      rg->base + IVL_REGION_HDR_SIZE + i * IVL_PEER_ENTRY_SIZE);
		CHECK(sec == rg->base + prev_end, "section %u not contiguous", i);
		CHECK((uint8_t *)ivl_region_chan(rg, i, 0) == sec + IVL_SECTION_HDR_SIZE);
		CHECK(last_half + IVL_CHAN_HALF_SIZE <= sec + h->section_size);
		/* A fresh section has no magic until the daemon resets it. */
		CHECK_EQ(ivl_section_check(rg, i), -EPROTO);
		CHECK_OK(ivl_section_reset(rg, i, 7));
		CHECK_OK(ivl_section_check(rg, i));
		s = ivl_region_section(rg, i);
		CHECK_EQ(s->owner_epoch, 7);
		CHECK(s->heap_off >= (uint64_t)(last_half + IVL_CHAN_HALF_SIZE - rg->base));
		CHECK_EQ(s->heap_off % IVL_PAGE_SIZE, 0);
		CHECK(s->heap_pages >= 1);
		CHECK(s->heap_off + (uint64_t)s->heap_pages * IVL_PAGE_SIZE <=
		      (uint64_t)(sec - rg->base) + h->section_size);
		CHECK_EQ(ivl_section_pages_used(rg, i), 0);
		prev_end += h->section_size;
	}

	/* ivl_region_ptr: bounds and overflow. */
	CHECK(ivl_region_ptr(rg, 0, h->region_size) == rg->base);
	CHECK(ivl_region_ptr(rg, h->region_size - 1, 1) == rg->base + h->region_size - 1);
	CHECK(ivl_region_ptr(rg, h->region_size, 0) != NULL);
	CHECK(ivl_region_ptr(rg, h->region_size, 1) == NULL);
	CHECK(ivl_region_ptr(rg, h->region_size - 1, 2) == NULL);
	CHECK(ivl_region_ptr(rg, UINT64_MAX, 2) == NULL);
	CHECK(ivl_region_ptr(rg, 1, UINT64_MAX) == NULL);
	CHECK(ivl_region_ptr(rg, 0, h->region_size + 1) == NULL);
}

static void test_round_trip(uint64_t size, uint32_t peers, uint32_t vectors, uint32_t slots,
			    const char *name)
{
	struct ivt_map m;
	struct ivl_region_params p;
	struct ivl_region rg, rg2;
	uint8_t *second;

	ivt_map_create(&m, size);
	ivl_region_params_default(&p);
	p.size = size;
	p.max_peers = peers;
	p.n_vectors = vectors;
	p.chan_slots = slots;
	p.name = name;
	memset(m.base, 0xee, 2 * IVL_PAGE_SIZE); /* format must not rely on zeroed memory */
	CHECK_EQ(ivl_region_format(m.base, size, &p), 0);
	CHECK_EQ(ivl_region_attach(&rg, m.base, size), 0);
	CHECK(rg.base == m.base && rg.map_size == size);
	check_geometry(&rg, &p);
	if (name) {
		CHECK(strncmp(rg.hdr.name, name, IVL_REGION_NAME_MAX - 1) == 0);
		CHECK_EQ(strlen(rg.hdr.name), strlen(name) < IVL_REGION_NAME_MAX
						  ? strlen(name)
						  : IVL_REGION_NAME_MAX - 1);
	} else {
		CHECK_EQ(rg.hdr.name[0], 0);
	}
	/* Peer table starts zeroed: all FREE, epoch 0. */
	for (uint32_t i = 0; i < peers; i++) {
		struct ivl_peer_view v;

		CHECK_EQ(ivl_region_peer_view(&rg, i, &v), 0);
		CHECK(v.state == IVL_PEER_FREE && v.epoch == 0);
	}

	/* A second mapping at another address sees the same region. */
	second = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m.fd, 0);
	CHECK(second != MAP_FAILED);
	CHECK_EQ(ivl_region_attach(&rg2, second, size), 0);
	CHECK(memcmp(&rg.hdr, &rg2.hdr, sizeof(rg.hdr)) == 0);
	CHECK_EQ(ivl_region_peer_set(&rg, 0, IVL_PEER_UP, 1, 2, 3), 1);
	{
		struct ivl_peer_view v;

		CHECK_EQ(ivl_region_peer_view(&rg2, 0, &v), 0);
		CHECK(v.state == IVL_PEER_UP && v.epoch == 1);
	}
	munmap(second, size);
	ivt_map_destroy(&m);
}

static void test_peer_table(void)
{
	struct ivt_map m;
	struct ivl_region_params p;
	struct ivl_region rg;
	struct ivl_peer_view v;
	struct ivl_peer_entry *e;

	ivt_map_create(&m, 1u << 20);
	ivl_region_params_default(&p);
	p.size = 1u << 20;
	p.max_peers = 4;
	p.chan_slots = 4;
	CHECK_EQ(ivl_region_format(m.base, p.size, &p), 0);
	CHECK_EQ(ivl_region_attach(&rg, m.base, p.size), 0);
	CHECK_EQ(ivl_region_peer_set(&rg, 2, IVL_PEER_UP, 42, 1000, 5), 1);
	e = ivl_region_peer(&rg, 2);
	CHECK(e->pid == 42 && e->uid == 1000 && e->n_vectors == 5);
	CHECK_EQ(ivl_region_peer_set(&rg, 2, IVL_PEER_GONE, 0, 0, 0), 2);
	CHECK_EQ(ivl_region_peer_view(&rg, 2, &v), 0);
	CHECK(v.state == IVL_PEER_GONE && v.epoch == 2);
	CHECK_EQ(ivl_region_peer_set(&rg, 2, IVL_PEER_UP, 43, 0, 5), 3);
	CHECK_EQ(ivl_region_peer_set(&rg, 4, IVL_PEER_UP, 0, 0, 0), -EINVAL);
	CHECK_EQ(ivl_region_peer_set(&rg, 1, 3, 0, 0, 0), -EINVAL);
	CHECK_EQ(ivl_region_peer_view(&rg, 4, &v), -EINVAL);
	/* The epoch never becomes 0 ("not matched") when it wraps. */
	e->epoch = UINT32_MAX;
	CHECK_EQ(ivl_region_peer_set(&rg, 2, IVL_PEER_UP, 0, 0, 0), 1);
	/* A state written by nobody honest is reported, not trusted. */
	e->state = 77;
	CHECK_EQ(ivl_region_peer_view(&rg, 2, &v), -EPROTO);
	ivt_map_destroy(&m);
}

static void test_format_rejects(void)
{
	static uint8_t buf[2u << 20] __attribute__((aligned(4096)));
	struct ivl_region_params p, q;

	ivl_region_params_default(&p);
	p.size = sizeof(buf);
	CHECK_EQ(ivl_region_format(buf, p.size, &p), 0);
	CHECK_EQ(ivl_region_format(NULL, p.size, &p), -EINVAL);
	CHECK_EQ(ivl_region_format(buf, p.size, NULL), -EINVAL);
	CHECK_EQ(ivl_region_format(buf, 3u << 19, &p), -EINVAL); /* not a power of two */
	CHECK_EQ(ivl_region_format(buf, IVL_REGION_MIN_SIZE / 2, &p), -EINVAL);
	q = p, q.max_peers = 0;
	CHECK_EQ(ivl_region_format(buf, p.size, &q), -EINVAL);
	q = p, q.max_peers = IVL_PEERS_LIMIT + 1;
	CHECK_EQ(ivl_region_format(buf, p.size, &q), -EINVAL);
	q = p, q.n_vectors = 0;
	CHECK_EQ(ivl_region_format(buf, p.size, &q), -EINVAL);
	q = p, q.n_vectors = IVL_VECTORS_LIMIT + 1;
	CHECK_EQ(ivl_region_format(buf, p.size, &q), -EINVAL);
	q = p, q.chan_slots = 0;
	CHECK_EQ(ivl_region_format(buf, p.size, &q), -EINVAL);
	q = p, q.chan_slots = IVL_CHAN_SLOTS_LIMIT + 1;
	CHECK_EQ(ivl_region_format(buf, p.size, &q), -EINVAL);
	/* 64 peers with 4096 slots each (2 MiB of table) do not fit in 2 MiB. */
	q = p, q.max_peers = IVL_PEERS_LIMIT, q.chan_slots = IVL_CHAN_SLOTS_LIMIT;
	CHECK_EQ(ivl_region_format(buf, p.size, &q), -EINVAL);
	/* The smallest legal region still gives every peer a heap page. */
	q = p, q.max_peers = IVL_PEERS_LIMIT, q.chan_slots = 1;
	CHECK_EQ(ivl_region_format(buf, IVL_REGION_MIN_SIZE, &q), 0);
}

int main(void)
{
	char long_name[100];

	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	test_defaults();
	test_round_trip(64u << 20, 8, 8, 64, "west-east");
	test_round_trip(IVL_REGION_MIN_SIZE, IVL_PEERS_LIMIT, 1, 1, NULL);
	test_round_trip(4u << 20, 3, IVL_VECTORS_LIMIT, 100, long_name);
	test_round_trip(256u << 20, 2, 2, IVL_CHAN_SLOTS_LIMIT, "big");
	test_peer_table();
	test_format_rejects();
	printf("layout_format_attach_round_trip: ok\n");
	return 0;
}
