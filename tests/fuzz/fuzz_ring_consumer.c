/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: a ring whose shared state (producer block, consumer
 * block, data and record headers) is whatever the input says, driven by a
 * consumer handle and a producer handle through every call of ring.h.
 *
 * The producer block, the consumer block and the data area are separate
 * heap blocks of exactly their size, so AddressSanitizer reports any access
 * outside them. Every span and length a call returns is checked against the
 * ring (abort() otherwise), and every returned byte is read.
 *
 * Input: mode (1 byte: odd = message), log2 size (1 byte, 6..16),
 * max_record (u32), initial tail and head (u64 each), then a sequence of
 * operations, each an opcode byte and its arguments (see the switch).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/ring.h>

/* The inline fast paths, for the calls with a constant size (ops 23, 24),
 * as a fixed-size receiver makes them. */
#include "ring_inline.h"

struct in {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct in *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes && in->n; i++, in->n--)
		v |= (uint64_t)*in->p++ << (8 * i);
	return v;
}

static volatile uint8_t sink;
static uint8_t *g_data;
static uint32_t g_size;

static void check_span(const struct ivl_span *sp)
{
	const uint8_t *b = sp->base;

	if (sp->len == 0)
		return;
	if (b < g_data || sp->len > g_size || b + sp->len > g_data + g_size)
		abort();
	sink ^= b[0];
	sink ^= b[sp->len - 1];
}

static int kick(void *ctx)
{
	return 0;
}

static int block(void *ctx, int64_t timeout_ns)
{
	return -ETIMEDOUT;
}

static int check(void *ctx)
{
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[1 << 16];
	struct ivl_notifier n = {kick, block, check, NULL};
	struct in in = {data, size};
	struct ivl_ring_prod *prod = calloc(1, sizeof(*prod));
	struct ivl_ring_cons *cons = calloc(1, sizeof(*cons));
	struct ivl_ring c, p;
	uint32_t mode, lg, max_record;
	int have_p;

	mode = (take(&in, 1) & 1) ? IVL_MODE_MESSAGE : IVL_MODE_STREAM;
	lg = 6 + (uint32_t)(take(&in, 1) % 11);
	max_record = (uint32_t)take(&in, 4);
	g_size = 1u << lg;
	g_data = malloc(g_size);
	if (!prod || !cons || !g_data)
		goto out;
	memset(g_data, 0, g_size);
	prod->tail = take(&in, 8);
	cons->head = take(&in, 8);
	if (mode == IVL_MODE_MESSAGE && ivl_rec_footprint(max_record) > g_size)
		max_record = g_size / 4;
	if (ivl_ring_init_consumer(&c, prod, cons, g_data, g_size, mode, max_record, &n) < 0)
		goto out;
	c.spin_ns = 0;
	have_p = ivl_ring_init_producer(&p, prod, cons, g_data, g_size, mode, max_record, &n) == 0;
	p.spin_ns = 0;

	while (in.n) {
		struct ivl_span sp[2] = {{0}};
		unsigned op = (unsigned)take(&in, 1) % 26;
		long r;

		switch (op) {
		case 0: /* the producer's tail, anything */
			prod->tail = take(&in, 8);
			break;
		case 1: /* the tail a little further */
			prod->tail += take(&in, 2);
			break;
		case 2:
			prod->flags = (uint32_t)take(&in, 4);
			break;
		case 3: { /* bytes into the data */
			uint32_t off = (uint32_t)take(&in, 2) & (g_size - 1);
			uint32_t len = (uint32_t)take(&in, 1);

			for (uint32_t i = 0; i < len && in.n; i++)
				g_data[(off + i) & (g_size - 1)] = (uint8_t)take(&in, 1);
			break;
		}
		case 4: { /* a record header where the consumer reads next */
			uint32_t h[2];

			h[0] = (uint32_t)take(&in, 4);
			switch (take(&in, 1) & 3) {
			case 0:
				h[1] = (uint32_t)take(&in, 4);
				break;
			case 2: /* layout v3: a pad record, of any length */
				h[1] = IVL_REC_PAD_MAGIC;
				break;
			default:
				h[1] = IVL_REC_MAGIC;
				break;
			}
			memcpy(g_data + ((uint32_t)c.c_head & (g_size - 1) & ~7u), h, sizeof(h));
			break;
		}
		case 5:
			r = ivl_ring_peek(&c, sp);
			if (r > (long)g_size)
				abort();
			if (r >= 0 && (size_t)r != sp[0].len + sp[1].len)
				abort();
			if (r >= 0) {
				check_span(&sp[0]);
				check_span(&sp[1]);
			}
			break;
		case 6:
			ivl_ring_release(&c, (size_t)take(&in, 2),
					 (unsigned)take(&in, 1) & IVL_MORE);
			break;
		case 7: {
			size_t len = (size_t)take(&in, 2);

			r = ivl_ring_read(&c, buf, len);
			if (r > (long)len && mode == IVL_MODE_STREAM)
				abort();
			if (r > (long)g_size)
				abort();
			break;
		}
		case 8:
			ivl_ring_readable(&c);
			break;
		case 9: {
			struct iovec iov[3] = {
			    {buf, (size_t)take(&in, 1)},
			    {buf + 256, (size_t)take(&in, 2) % 4096},
			    {buf + 8192, (size_t)take(&in, 2) % (sizeof(buf) - 8192)}};

			r = ivl_ring_readv(&c, iov, 3);
			if (r > (long)(iov[0].iov_len + iov[1].iov_len + iov[2].iov_len))
				abort();
			break;
		}
		case 10:
			ivl_ring_wait_readable(&c, 0);
			break;
		case 11:
			ivl_ring_release_flush(&c);
			break;
		case 12:
			ivl_ring_set_cons_flags(&c, (uint32_t)take(&in, 4));
			break;
		case 13: /* the consumer's head, anything (producer side) */
			cons->head = take(&in, 8);
			break;
		case 14:
			cons->head += take(&in, 2);
			break;
		case 15:
			cons->flags = (uint32_t)take(&in, 4);
			break;
		case 16:
			if (have_p) {
				size_t len = (size_t)take(&in, 2);

				r = ivl_ring_reserve(&p, len, sp);
				if (r > (long)g_size || (r >= 0 && (size_t)r > len))
					abort();
				if (r >= 0) {
					check_span(&sp[0]);
					check_span(&sp[1]);
					if (sp[0].len)
						memset(sp[0].base, 0xa5, sp[0].len);
					if (sp[1].len)
						memset(sp[1].base, 0x5a, sp[1].len);
					ivl_ring_commit(&p, (size_t)take(&in, 2) % ((size_t)r + 1),
							(unsigned)take(&in, 1) & IVL_MORE);
				}
			}
			break;
		case 17:
			if (have_p) {
				size_t len = (size_t)take(&in, 2);

				r = ivl_ring_write(&p, buf, len, (unsigned)take(&in, 1) & IVL_MORE);
				if (r > (long)len)
					abort();
			}
			break;
		case 18:
			if (have_p)
				ivl_ring_writable(&p, (size_t)take(&in, 2));
			break;
		case 19:
			if (have_p)
				ivl_ring_flush(&p);
			break;
		case 20:
			if (have_p)
				ivl_ring_set_flags(&p, (uint32_t)take(&in, 4));
			break;
		case 21:
			if (have_p)
				ivl_ring_wait_writable(&p, (size_t)take(&in, 2), 0);
			break;
		case 22:
			prod->sleep_seq = (uint32_t)take(&in, 4);
			cons->sleep_seq = (uint32_t)take(&in, 4);
			break;
		case 23: /* a fixed-size receiver of 64-byte records */
			r = ivl__ring_read_msg(&c, buf, 64);
			if (r > 64)
				abort();
			break;
		case 24: /* a fixed-size receiver of a stream, 16 bytes a call */
			r = ivl__ring_read_stream(&c, buf, 16);
			if (r > 16)
				abort();
			break;
		default:
			if (have_p) {
				struct iovec iov[2] = {{buf, (size_t)take(&in, 2)}, {NULL, 0}};

				ivl_ring_writev(&p, iov, 2, 0);
			}
			break;
		}
		if (ivl_ring_free(&p) > g_size && have_p)
			abort();
	}
out:
	free(g_data);
	free(prod);
	free(cons);
	return 0;
}
