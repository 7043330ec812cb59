/* SPDX-License-Identifier: MIT */
/*
 * Layout v3: a message-mode record of at most one cache line, its 8-byte
 * header included, never crosses a line of the data area, whichever way it
 * was written (write, writev, reserve/commit, IVL_MORE batches) and
 * wherever the tail stood; the pad records the producer puts before such a
 * record are skipped by the consumer (every call: read, readv, peek) and
 * never delivered; records over a line are not padded (they wrap as
 * before); a 64-byte ring, too small for pads, still moves every size; and
 * a pad the consumer cannot trust (one that does not end on a line) is
 * refused with -EPROTO.
 */
#include "ivl_test.h"

#define SZ     1024u
#define MAXREC 200u

static void init_pair(struct ivt_ring *t, struct ivl_ring *p, struct ivl_ring *c, uint32_t size,
		      uint32_t maxrec)
{
	CHECK_EQ(ivl_ring_init_producer(p, t->prod, t->cons, t->data, size, IVL_MODE_MESSAGE,
					maxrec, NULL),
		 0);
	CHECK_EQ(ivl_ring_init_consumer(c, t->prod, t->cons, t->data, size, IVL_MODE_MESSAGE,
					maxrec, NULL),
		 0);
}

/* Writes one record of len bytes from src the way number way says. */
static void put(struct ivl_ring *p, const uint8_t *src, size_t len, int way)
{
	struct ivl_span sp[2];

	switch (way) {
	case 0:
		CHECK_EQ(ivl_ring_write(p, src, len, 0), (long)len);
		break;
	case 1: {
		struct iovec v[2] = {{(void *)src, len / 2},
				     {(void *)(src + len / 2), len - len / 2}};

		CHECK_EQ(ivl_ring_writev(p, v, 2, 0), (long)len);
		break;
	}
	default:
		if (len == 0) {
			CHECK_EQ(ivl_ring_write(p, NULL, 0, 0), 0);
			break;
		}
		CHECK_EQ(ivl_ring_reserve(p, len, sp), (long)len);
		memcpy(sp[0].base, src, sp[0].len);
		memcpy(sp[1].base, src + sp[0].len, sp[1].len);
		CHECK_EQ(ivl_ring_commit(p, len, 0), 0);
		break;
	}
}

/* Peeks the next record: its header must sit on one line with its payload
 * when the record is at most a line, and the payload must be src. */
static void check_next(struct ivt_ring *t, struct ivl_ring *c, const uint8_t *src, size_t len,
		       uint32_t size)
{
	struct ivl_span sp[2];
	size_t fp = (size_t)ivl_rec_footprint(len);
	size_t hdr_off;

	CHECK_EQ(ivl_ring_peek(c, sp), (long)len);
	CHECK_EQ(sp[0].len + sp[1].len, len);
	hdr_off = (size_t)((const uint8_t *)sp[0].base - t->data) - sizeof(struct ivl_rec_hdr);
	if (fp <= IVL_CACHELINE && size >= 2 * IVL_CACHELINE) {
		CHECK(hdr_off / IVL_CACHELINE == (hdr_off + fp - 1) / IVL_CACHELINE,
		      "a %zu-byte record at offset %zu crosses a line", fp, hdr_off);
		CHECK(sp[1].len == 0, "a %zu-byte record wrapped", fp);
	}
	CHECK(memcmp(sp[0].base, src, sp[0].len) == 0, "payload of a %zu-byte record", len);
	CHECK(memcmp(sp[1].base, src + sp[0].len, sp[1].len) == 0, "payload of a %zu-byte record",
	      len);
	CHECK_EQ(ivl_ring_release(c, 0, 0), 0);
}

/* Every small length from every record-aligned offset of a line, written
 * three ways, read by peek: no record crosses, none is lost or reordered,
 * and the pads are never delivered. */
static void test_every_offset(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	uint8_t src[MAXREC];
	struct ts_stream g;
	unsigned records = 0;

	ivt_ring_alloc(&t, SZ);
	init_pair(&t, &p, &c, SZ, MAXREC);
	ts_stream_init(&g, 41);
	ts_stream_next(&g, src, sizeof(src));
	for (int way = 0; way < 3; way++) {
		for (size_t start = 0; start < IVL_CACHELINE; start += 8) {
			for (size_t len = 0; len <= IVL_CACHELINE - 8; len++) {
				/* Move the tail to start within a line: one
				 * filler record of a line or more, so unpadded. */
				size_t at = (size_t)(p.p_tail & (IVL_CACHELINE - 1));
				size_t gap = (start - at) & (IVL_CACHELINE - 1);

				if (gap) {
					put(&p, src, IVL_CACHELINE + gap - 8, 0);
					check_next(&t, &c, src, IVL_CACHELINE + gap - 8, SZ);
				}
				CHECK_EQ(p.p_tail & (IVL_CACHELINE - 1), start);
				put(&p, src + 1, len, way);
				check_next(&t, &c, src + 1, len, SZ);
				records++;
			}
		}
	}
	CHECK_EQ(ivl_ring_readable(&c), 0);
	CHECK(records == 3 * 8 * 57, "records: %u", records);
	ivt_ring_free(&t);
}

/* A batch under IVL_MORE of mixed sizes, read by read() and readv(): the
 * pads inside one publish are skipped, each record arrives whole. */
static void test_batch_read(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	uint8_t src[MAXREC], out[MAXREC];
	static const size_t lens[] = {40, 40, 8, 56, 56, 0, 100, 24, 48, 16, 56, 120, 32};
	const size_t n = sizeof(lens) / sizeof(lens[0]);
	struct ts_stream g;

	ivt_ring_alloc(&t, SZ);
	init_pair(&t, &p, &c, SZ, MAXREC);
	ts_stream_init(&g, 42);
	ts_stream_next(&g, src, sizeof(src));
	for (int round = 0; round < 20; round++) {
		for (size_t i = 0; i < n; i++) {
			long w = ivl_ring_write(&p, src + i, lens[i], IVL_MORE);

			CHECK_EQ(w, (long)lens[i]);
		}
		CHECK_EQ(ivl_ring_flush(&p), 0);
		for (size_t i = 0; i < n; i++) {
			long r;

			memset(out, 0, sizeof(out));
			if (i & 1) {
				struct iovec v[2] = {{out, 3}, {out + 3, sizeof(out) - 3}};

				r = ivl_ring_readv(&c, v, 2);
			} else {
				r = ivl_ring_read(&c, out, sizeof(out));
			}
			CHECK_EQ(r, (long)lens[i]);
			CHECK(memcmp(out, src + i, lens[i]) == 0, "round %d record %zu", round, i);
		}
		CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), -EAGAIN);
	}
	/* The consumer gave back every byte, pads included. */
	CHECK_EQ(t.cons->head, p.p_tail);
	ivt_ring_free(&t);
}

/* Records over a line are not padded: from any offset, the tail moves by
 * the footprint alone. */
static void test_large_not_padded(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	uint8_t src[MAXREC], out[MAXREC];
	uint64_t before;

	ivt_ring_alloc(&t, SZ);
	init_pair(&t, &p, &c, SZ, MAXREC);
	memset(src, 0x5c, sizeof(src));
	CHECK_EQ(ivl_ring_write(&p, src, 16, 0), 16); /* tail at 24 */
	CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), 16);
	for (size_t len = IVL_CACHELINE - 7; len <= MAXREC; len += 13) {
		before = p.p_tail;
		CHECK_EQ(ivl_ring_write(&p, src, len, 0), (long)len);
		CHECK_EQ(p.p_tail - before, ivl_rec_footprint(len));
		CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), (long)len);
		CHECK(memcmp(out, src, len) == 0, "a %zu-byte record", len);
	}
	ivt_ring_free(&t);
}

/* A 64-byte ring has no room for a pad and a record: no pads there, and
 * every record that fits still goes through. */
static void test_one_line_ring(void)
{
	struct ivt_ring t;
	struct ivl_ring p, c;
	uint8_t src[56], out[56];

	ivt_ring_alloc(&t, IVL_CACHELINE);
	init_pair(&t, &p, &c, IVL_CACHELINE, 56);
	memset(src, 0x33, sizeof(src));
	for (int i = 0; i < 50; i++) {
		size_t len = (size_t)(i * 7) % 57;

		CHECK_EQ(ivl_ring_write(&p, src, len, 0), (long)len);
		CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), (long)len);
	}
	ivt_ring_free(&t);
}

/* A pad that does not end on a line, or claims a line or more, is not one
 * this build writes: the consumer is poisoned (-EPROTO), not misled. */
static void test_bad_pad(void)
{
	static const uint32_t bad_len[] = {0, 16, 56, 64, 1000};
	struct ivt_ring t;
	struct ivl_ring p, c;
	uint8_t out[MAXREC];

	for (size_t i = 0; i < sizeof(bad_len) / sizeof(bad_len[0]); i++) {
		uint32_t h[2] = {bad_len[i], IVL_REC_PAD_MAGIC};

		ivt_ring_alloc(&t, SZ);
		init_pair(&t, &p, &c, SZ, MAXREC);
		/* A pad at offset 8 (after an empty record), then a record. */
		CHECK_EQ(ivl_ring_write(&p, NULL, 0, 0), 0);
		memcpy(t.data + 8, h, sizeof(h));
		__atomic_store_n(&t.prod->tail, 88, __ATOMIC_RELEASE);
		CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), 0);
		CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), -EPROTO);
		ivt_ring_free(&t);
	}
	/* The good pad at 8 (len 48, ends at 64) is skipped. */
	{
		uint32_t h[2] = {48, IVL_REC_PAD_MAGIC}, r[2] = {4, IVL_REC_MAGIC};

		ivt_ring_alloc(&t, SZ);
		init_pair(&t, &p, &c, SZ, MAXREC);
		CHECK_EQ(ivl_ring_write(&p, NULL, 0, 0), 0);
		memcpy(t.data + 8, h, sizeof(h));
		memcpy(t.data + 64, r, sizeof(r));
		memcpy(t.data + 72, "abcd", 4);
		__atomic_store_n(&t.prod->tail, 80, __ATOMIC_RELEASE);
		CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), 0);
		CHECK_EQ(ivl_ring_read(&c, out, sizeof(out)), 4);
		CHECK(memcmp(out, "abcd", 4) == 0, "the record after the pad");
		ivt_ring_free(&t);
	}
}

int main(void)
{
	test_every_offset();
	test_batch_read();
	test_large_not_padded();
	test_one_line_ring();
	test_bad_pad();
	printf("ring_message_small_records_one_line: ok\n");
	return 0;
}
