/* SPDX-License-Identifier: MIT */
/*
 * The region validator: every header field corrupted in turn (bad magic,
 * version and sizes, sections or the peer table beyond the mapping, values
 * chosen to overflow 64-bit arithmetic) must be refused with an error, and a
 * mapping shorter than the header claims with -EOVERFLOW. Each corrupted
 * header is also attached for real from a region mapped between PROT_NONE
 * guard pages, and a random mutation run checks that whatever attach()
 * accepts keeps every accessor inside the mapping.
 */
#include <stddef.h>

#include <string.h>

#include "ivl_test.h"

#define RSIZE (4u << 20)

struct field_case {
	const char *what;
	size_t off;   /* offset of the field in struct ivl_region_hdr */
	unsigned len; /* 4 or 8 */
	uint64_t val;
	long want; /* expected error */
};

#define F(field) offsetof(struct ivl_region_hdr, field), sizeof(((struct ivl_region_hdr *)0)->field)

static struct ivl_region_hdr good;

static void set_field(struct ivl_region_hdr *h, size_t off, unsigned len, uint64_t v)
{
	if (len == 4) {
		uint32_t v32 = (uint32_t)v;

		memcpy((uint8_t *)h + off, &v32, 4);
	} else {
		memcpy((uint8_t *)h + off, &v, 8);
	}
}

/* Checks what a successful attach promises, with the mapping's real size. */
static void check_accepted(const struct ivl_region *rg, uint64_t map_size)
{
	const struct ivl_region_hdr *h = &rg->hdr;
	volatile uint8_t sink = 0;

	CHECK(h->region_size <= map_size);
	CHECK(h->section_off + h->section_size * h->max_peers <= h->region_size);
	CHECK(h->peer_table_off + (uint64_t)h->max_peers * IVL_PEER_ENTRY_SIZE <= h->section_off);
	/* Touch the first and last byte of every part the accessors return:
	 * a stray pointer hits a guard page. */
	for (uint32_t i = 0; i < h->max_peers; i++) {
		uint8_t *pe = (uint8_t *)ivl_region_peer(rg, i);
		uint8_t *sec = (uint8_t *)ivl_region_section(rg, i);
		uint8_t *half = (uint8_t *)ivl_region_chan(rg, i, h->chan_slots - 1);

		CHECK(pe && sec && half);
		sink ^= pe[0] ^ pe[IVL_PEER_ENTRY_SIZE - 1];
		sink ^= sec[0] ^ sec[h->section_size - 1];
		sink ^= half[0] ^ half[IVL_CHAN_HALF_SIZE - 1];
		CHECK(half + IVL_CHAN_HALF_SIZE <= sec + h->section_size);
	}
	(void)sink;
}

int main(void)
{
	struct ivt_map m;
	struct ivl_region_params p;
	struct ivl_region rg;
	uint64_t rs = RSIZE;
	uint64_t peer_end;

	ivt_map_create(&m, RSIZE);
	ivl_region_params_default(&p);
	p.size = RSIZE;
	/* 8 peers in 4 MiB: sections of 508 KiB, too small for 1024 slots. */
	p.max_peers = 8;
	p.chan_slots = 16;
	CHECK_EQ(ivl_region_format(m.base, RSIZE, &p), 0);
	memcpy(&good, m.base, sizeof(good));
	CHECK_EQ(ivl_region_hdr_validate(&good, RSIZE), 0);
	peer_end = good.peer_table_off + (uint64_t)good.max_peers * IVL_PEER_ENTRY_SIZE;

	const struct field_case cases[] = {
	    {"magic 0", F(magic), 0, -EPROTO},
	    {"magic off by one", F(magic), IVL_REGION_MAGIC + 1, -EPROTO},
	    {"magic byte-swapped", F(magic), __builtin_bswap64(IVL_REGION_MAGIC), -EPROTO},
	    {"version 0", F(version), 0, -EPROTONOSUPPORT},
	    {"version 1 (layout v1)", F(version), 1, -EPROTONOSUPPORT},
	    {"version 2 (layout v2)", F(version), 2, -EPROTONOSUPPORT},
	    {"version 3 (layout v3)", F(version), 3, -EPROTONOSUPPORT},
	    {"version 5", F(version), 5, -EPROTONOSUPPORT},
	    {"version -1", F(version), UINT32_MAX, -EPROTONOSUPPORT},
	    {"hdr_size 0", F(hdr_size), 0, -EPROTO},
	    {"hdr_size 4095", F(hdr_size), 4095, -EPROTO},
	    {"hdr_size 8192", F(hdr_size), 8192, -EPROTO},
	    {"region_size 0", F(region_size), 0, -EPROTO},
	    {"region_size below minimum", F(region_size), IVL_REGION_MIN_SIZE / 2, -EPROTO},
	    {"region_size not a power of two", F(region_size), rs - IVL_PAGE_SIZE, -EPROTO},
	    {"region_size - 1", F(region_size), rs - 1, -EPROTO},
	    {"region_size beyond mapping", F(region_size), rs * 2, -EOVERFLOW},
	    {"region_size 2^63", F(region_size), 1ULL << 63, -EOVERFLOW},
	    {"region_size -1", F(region_size), UINT64_MAX, -EPROTO},
	    {"region_size half (sections beyond it)", F(region_size), rs / 2, -EPROTO},
	    {"max_peers 0", F(max_peers), 0, -EPROTO},
	    {"max_peers 65", F(max_peers), IVL_PEERS_LIMIT + 1, -EPROTO},
	    {"max_peers -1", F(max_peers), UINT32_MAX, -EPROTO},
	    {"max_peers +1 (last section beyond region)", F(max_peers), 9, -EPROTO},
	    {"max_peers 64 (peer table over sections)", F(max_peers), 64, -EPROTO},
	    {"n_vectors 0", F(n_vectors), 0, -EPROTO},
	    {"n_vectors 65", F(n_vectors), IVL_VECTORS_LIMIT + 1, -EPROTO},
	    {"n_vectors -1", F(n_vectors), UINT32_MAX, -EPROTO},
	    {"peer_table_off 0 (over header)", F(peer_table_off), 0, -EPROTO},
	    {"peer_table_off 4095", F(peer_table_off), 4095, -EPROTO},
	    {"peer_table_off misaligned", F(peer_table_off), 4097, -EPROTO},
	    {"peer_table_off at region end", F(peer_table_off), rs, -EPROTO},
	    {"peer_table_off beyond region", F(peer_table_off), rs + 4096, -EPROTO},
	    {"peer_table_off -64", F(peer_table_off), UINT64_MAX - 63, -EPROTO},
	    {"peer_table_off into sections", F(peer_table_off), good.section_off, -EPROTO},
	    {"peer_entry_size 0", F(peer_entry_size), 0, -EPROTO},
	    {"peer_entry_size 128", F(peer_entry_size), 128, -EPROTO},
	    {"peer_entry_size 257", F(peer_entry_size), 257, -EPROTO},
	    {"chan_slots 0", F(chan_slots), 0, -EPROTO},
	    {"chan_slots 1025", F(chan_slots), IVL_CHAN_SLOTS_LIMIT + 1, -EPROTO},
	    {"chan_slots -1", F(chan_slots), UINT32_MAX, -EPROTO},
	    {"chan_slots 1024 (table beyond section)", F(chan_slots), 1024, -EPROTO},
	    {"section_off 0", F(section_off), 0, -EPROTO},
	    {"section_off over peer table", F(section_off), IVL_PAGE_SIZE, -EPROTO},
	    {"section_off end of peer table, misaligned", F(section_off), peer_end, -EPROTO},
	    {"section_off misaligned", F(section_off), good.section_off + 1, -EPROTO},
	    {"section_off + page (last section beyond)", F(section_off),
	     good.section_off + 16 * IVL_PAGE_SIZE, -EPROTO},
	    {"section_off at region end", F(section_off), rs, -EPROTO},
	    {"section_off -4096", F(section_off), UINT64_MAX & ~4095ULL, -EPROTO},
	    {"section_size 0", F(section_size), 0, -EPROTO},
	    {"section_size one page", F(section_size), IVL_PAGE_SIZE, -EPROTO},
	    {"section_size misaligned", F(section_size), good.section_size + 1, -EPROTO},
	    {"section_size + page", F(section_size), good.section_size + IVL_PAGE_SIZE, -EPROTO},
	    {"section_size region", F(section_size), rs, -EPROTO},
	    {"section_size 2^62 (product wraps)", F(section_size), 1ULL << 62, -EPROTO},
	    {"section_size -4096", F(section_size), UINT64_MAX & ~4095ULL, -EPROTO},
	    {"chan_half_size 0", F(chan_half_size), 0, -EPROTO},
	    {"chan_half_size 256", F(chan_half_size), 256, -EPROTO},
	    {"chan_half_size 1024", F(chan_half_size), 1024, -EPROTO},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct field_case *c = &cases[i];
		struct ivl_region_hdr h = good;
		int rc;

		set_field(&h, c->off, c->len, c->val);
		rc = ivl_region_hdr_validate(&h, RSIZE);
		CHECK(rc == c->want, "%s: validate returned %d, expected %ld", c->what, rc,
		      c->want);
		/* The same header in the real, guarded mapping. */
		memcpy(m.base, &h, sizeof(h));
		rc = ivl_region_attach(&rg, m.base, RSIZE);
		CHECK(rc == c->want, "%s: attach returned %d, expected %ld", c->what, rc, c->want);
		CHECK(rg.base == NULL, "%s: a failed attach left a usable handle", c->what);
	}
	/* A layout v1, v2 or v3 region (an older ivlinkd's) is refused by
	 * its version, and the message names both versions. */
	for (uint32_t old = 1; old <= 3; old++) {
		struct ivl_region_hdr h = good;
		char why[256], want[32];

		h.version = old;
		memcpy(m.base, &h, sizeof(h));
		CHECK_EQ(ivl_region_attach(&rg, m.base, RSIZE), -EPROTONOSUPPORT);
		ivl_region_strerror(-EPROTONOSUPPORT, m.base, RSIZE, why, sizeof(why));
		snprintf(want, sizeof(want), "region layout v%u,", old);
		CHECK(strstr(why, want) && strstr(why, "reads layout v4 only"), "message: %s", why);
		ivl_region_strerror(-EPROTO, m.base, RSIZE, why, sizeof(why));
		CHECK(strcmp(why, strerror(EPROTO)) == 0, "message: %s", why);
	}
	memcpy(m.base, &good, sizeof(good));
	CHECK_EQ(ivl_region_attach(&rg, m.base, RSIZE), 0);

	/* Truncated mappings: the header claims more than is mapped. */
	CHECK_EQ(ivl_region_attach(&rg, m.base, RSIZE - 1), -EOVERFLOW);
	CHECK_EQ(ivl_region_attach(&rg, m.base, RSIZE / 2), -EOVERFLOW);
	CHECK_EQ(ivl_region_attach(&rg, m.base, IVL_REGION_HDR_SIZE), -EOVERFLOW);
	CHECK_EQ(ivl_region_attach(&rg, m.base, IVL_REGION_HDR_SIZE - 1), -EOVERFLOW);
	CHECK_EQ(ivl_region_attach(&rg, m.base, 0), -EOVERFLOW);
	CHECK_EQ(ivl_region_hdr_validate(&good, RSIZE - IVL_PAGE_SIZE), -EOVERFLOW);
	/* A real short mapping: only the first 1 MiB of the file mapped,
	 * right before the guard. The header is read, nothing beyond. */
	{
		uint8_t *shortmap = m.area + IVT_GUARD + RSIZE - (1u << 20);
		uint8_t *mp = mmap(shortmap, 1u << 20, PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_FIXED, m.fd, 0);

		CHECK(mp == shortmap);
		CHECK_EQ(ivl_region_attach(&rg, mp, 1u << 20), -EOVERFLOW);
		/* Restore the full mapping for the random run. */
		CHECK(mmap(m.base, RSIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, m.fd,
			   0) == m.base);
	}
	/* A larger mapping than the region is fine (BARs can be padded). */
	CHECK_EQ(ivl_region_hdr_validate(&good, RSIZE * 2), 0);

	/* Random mutations of 1-3 header words with interesting values:
	 * whatever is accepted must keep all accessors inside the mapping. */
	{
		static const size_t offs[] = {8,  12, 16, 24, 28, 32, 40, 44,
					      48, 56, 64, 68, 72, 80, 88, 96};
		uint64_t seed = 12345;
		long accepted = 0, refused = 0;

		for (int it = 0; it < 200000; it++) {
			struct ivl_region_hdr h = good;
			int n = 1 + (int)ts_rand_below(&seed, 3);
			int rc;

			for (int k = 0; k < n; k++) {
				size_t off =
				    offs[ts_rand_below(&seed, sizeof(offs) / sizeof(offs[0]))];
				unsigned len =
				    (off == 16 || off == 32 || off == 48 || off == 56) ? 8 : 4;
				uint64_t cur = 0, v;

				memcpy(&cur, (uint8_t *)&h + off, len);
				switch (ts_rand_below(&seed, 6)) {
				case 0:
					v = cur + 1;
					break;
				case 1:
					v = cur - 1;
					break;
				case 2:
					v = cur + IVL_PAGE_SIZE * (1 + ts_rand_below(&seed, 64));
					break;
				case 3:
					v = cur - IVL_PAGE_SIZE * (1 + ts_rand_below(&seed, 64));
					break;
				case 4:
					v = 1ULL << ts_rand_below(&seed, 64);
					break;
				default:
					v = ts_rand(&seed);
					break;
				}
				set_field(&h, off, len, v);
			}
			memcpy(m.base, &h, sizeof(h));
			rc = ivl_region_attach(&rg, m.base, RSIZE);
			if (rc == 0) {
				accepted++;
				check_accepted(&rg, RSIZE);
			} else {
				CHECK(rc == -EPROTO || rc == -EPROTONOSUPPORT || rc == -EOVERFLOW,
				      "attach returned %d", rc);
				refused++;
			}
		}
		printf("random headers: %ld accepted, %ld refused\n", accepted, refused);
		CHECK(accepted > 0 && refused > 0);
	}
	ivt_map_destroy(&m);
	printf("region_validate_rejects_corrupt_header: ok\n");
	return 0;
}
