/* SPDX-License-Identifier: MIT */
/*
 * Private header of the unit, corruption and stress tests: assertion
 * macros, a deterministic PRNG byte stream, guarded region mappings, a
 * counting notifier and a two-peer channel fixture built with the real
 * region API. Everything is static so that each test binary stays one file.
 */
#ifndef IVL_TEST_H
#define IVL_TEST_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <ivlink/layout.h>
#include <ivlink/region.h>
#include <ivlink/ring.h>

#define IVL_TEST_SKIP 77

/* Sanitizers slow everything down; stress tests scale their volume with it. */
#if defined(__SANITIZE_THREAD__)
#define IVL_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IVL_TEST_TSAN 1
#endif
#endif
#ifndef IVL_TEST_TSAN
#define IVL_TEST_TSAN 0
#endif

static const char *ivt_name = "test";

static void __attribute__((noreturn, format(printf, 3, 4)))
ivt_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: FAIL at %s:%d: ", ivt_name, file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	/* _exit: a forked child must not run the parent's atexit handlers. */
	_exit(1);
}

/* Fails with a message unless cond holds. The optional arguments are a
 * printf format and its values. */
#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s: CHECK(%s) failed\n", ivt_name, #cond);                \
			ivt_fail(__FILE__, __LINE__, " " __VA_ARGS__);                             \
		}                                                                                  \
	} while (0)

/* Evaluates expr once and fails unless it equals want (both as long). */
#define CHECK_EQ(expr, want)                                                                       \
	do {                                                                                       \
		long ivt_got_ = (long)(expr), ivt_want_ = (long)(want);                            \
		if (ivt_got_ != ivt_want_)                                                         \
			ivt_fail(__FILE__, __LINE__, "%s == %ld (%s), expected %ld (%s)", #expr,   \
				 ivt_got_, ivt_got_ < 0 ? strerror((int)-ivt_got_) : "-",          \
				 ivt_want_, ivt_want_ < 0 ? strerror((int)-ivt_want_) : "-");      \
	} while (0)

/* Fails unless expr (an int-like return) is >= 0. */
#define CHECK_OK(expr)                                                                             \
	do {                                                                                       \
		long ivt_got_ = (long)(expr);                                                      \
		if (ivt_got_ < 0)                                                                  \
			ivt_fail(__FILE__, __LINE__, "%s failed: %ld (%s)", #expr, ivt_got_,       \
				 strerror((int)-ivt_got_));                                        \
	} while (0)

/* ------------------------------------------------------------------ PRNG */

/* splitmix64: a tiny PRNG with good statistics; deterministic from a seed,
 * so a consumer can regenerate exactly what a producer sent. */
static inline uint64_t ivt_splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t ivt_rand_below(uint64_t *s, uint64_t n)
{
	return n ? ivt_splitmix(s) % n : 0;
}

/* A byte stream: the bytes of successive splitmix64 outputs. */
struct ivt_stream {
	uint64_t state;
	uint64_t word;
	unsigned left; /* bytes of word not yet handed out */
};

static inline void ivt_stream_init(struct ivt_stream *g, uint64_t seed)
{
	g->state = seed;
	g->word = 0;
	g->left = 0;
}

/* Writes the next len bytes of the stream to dst. */
static inline void ivt_stream_fill(struct ivt_stream *g, void *dst, size_t len)
{
	uint8_t *d = dst;

	while (len && g->left) {
		*d++ = (uint8_t)g->word;
		g->word >>= 8;
		g->left--;
		len--;
	}
	while (len >= 8) {
		uint64_t w = ivt_splitmix(&g->state);

		memcpy(d, &w, 8);
		d += 8;
		len -= 8;
	}
	if (len) {
		g->word = ivt_splitmix(&g->state);
		g->left = 8;
		while (len) {
			*d++ = (uint8_t)g->word;
			g->word >>= 8;
			g->left--;
			len--;
		}
	}
}

/* Compares src with the next len bytes of the stream. Returns the index of
 * the first mismatch, or -1 when all match. */
static inline long ivt_stream_check(struct ivt_stream *g, const void *src, size_t len)
{
	uint8_t tmp[4096];
	const uint8_t *s = src;
	size_t done = 0;

	while (done < len) {
		size_t n = len - done < sizeof(tmp) ? len - done : sizeof(tmp);

		ivt_stream_fill(g, tmp, n);
		if (memcmp(tmp, s + done, n) != 0) {
			for (size_t i = 0; i < n; i++)
				if (tmp[i] != s[done + i])
					return (long)(done + i);
		}
		done += n;
	}
	return -1;
}

/* ------------------------------------------------------------ mappings */

/* A memfd mapped between two PROT_NONE guard areas: any access outside
 * [base, base + size) faults, which is how the corruption tests prove that
 * hostile values never make the code read or write outside the region. */
struct ivt_map {
	int fd;
	uint8_t *base;
	size_t size;
	uint8_t *area; /* whole reservation including guards */
	size_t area_size;
};

#define IVT_GUARD (1u << 20)

static inline void ivt_map_create(struct ivt_map *m, size_t size)
{
	m->fd = memfd_create("ivlink-test", MFD_CLOEXEC);
	CHECK(m->fd >= 0, "memfd_create: %s", strerror(errno));
	CHECK(ftruncate(m->fd, (off_t)size) == 0, "ftruncate: %s", strerror(errno));
	m->size = size;
	m->area_size = size + 2 * (size_t)IVT_GUARD;
	m->area =
	    mmap(NULL, m->area_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(m->area != MAP_FAILED, "mmap guard: %s", strerror(errno));
	m->base = mmap(m->area + IVT_GUARD, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		       m->fd, 0);
	CHECK(m->base == m->area + IVT_GUARD, "mmap fixed: %s", strerror(errno));
}

static inline void ivt_map_destroy(struct ivt_map *m)
{
	munmap(m->area, m->area_size);
	close(m->fd);
	m->fd = -1;
}

/* -------------------------------------------------------------- notifier */

/* A notifier that counts kicks and blocks and can run a callback inside
 * block(): a single-threaded test can thus act as the other side while this
 * side is advertised as sleeping. */
struct ivt_cnt_notifier {
	long kicks;
	long blocks;
	long checks;
	int block_rc;				      /* returned by block() */
	int check_rc;				      /* returned by check() */
	void (*on_block)(struct ivt_cnt_notifier *n); /* may be NULL */
	void *arg;
};

static inline int ivt_cnt_kick(void *ctx)
{
	struct ivt_cnt_notifier *n = ctx;

	n->kicks++;
	return 0;
}

static inline int ivt_cnt_block(void *ctx, int64_t timeout_ns)
{
	struct ivt_cnt_notifier *n = ctx;

	n->blocks++;
	if (n->on_block)
		n->on_block(n);
	return n->block_rc;
}

static inline int ivt_cnt_check(void *ctx)
{
	struct ivt_cnt_notifier *n = ctx;

	n->checks++;
	return n->check_rc;
}

static inline struct ivl_notifier ivt_cnt_bind(struct ivt_cnt_notifier *n)
{
	struct ivl_notifier op = {ivt_cnt_kick, ivt_cnt_block, ivt_cnt_check, n};

	return op;
}

/* ---------------------------------------------------------- local ring */

/* A ring whose control blocks and data live in the process heap: the ring
 * tests need no region, and ASan then checks every data access exactly. */
struct ivt_ring {
	struct ivl_ring_prod *prod;
	struct ivl_ring_cons *cons;
	uint8_t *data;
	uint32_t size;
};

static inline void ivt_ring_alloc(struct ivt_ring *t, uint32_t size)
{
	t->prod = aligned_alloc(IVL_CACHELINE, sizeof(*t->prod));
	t->cons = aligned_alloc(IVL_CACHELINE, sizeof(*t->cons));
	t->data = aligned_alloc(IVL_CACHELINE, size);
	CHECK(t->prod && t->cons && t->data);
	memset(t->data, 0xa5, size);
	ivl_ring_format(t->prod, t->cons);
	t->size = size;
}

static inline void ivt_ring_free(struct ivt_ring *t)
{
	free(t->prod);
	free(t->cons);
	free(t->data);
}

/* ------------------------------------------------------ channel fixture */

/*
 * Two peers (0 and 1) with a channel "chan" between them, made with the
 * region API exactly as libivlink does: format, both peers UP, sections
 * reset, both halves offered and matched. ring_ptrs() then gives the three
 * pieces of the ring from peer `from` to the other peer.
 */
struct ivt_chan {
	struct ivl_region rg;
	uint32_t epoch[2];
	int slot[2];
	struct ivl_ctab_remote m[2]; /* what peer i matched */
	uint32_t mode, ring_size, max_record;
};

static inline int ivt_chan_setup(struct ivt_chan *c, void *base, uint64_t size, uint32_t mode,
				 uint32_t ring_size, uint32_t max_record)
{
	struct ivl_region_params p;
	struct ivl_ctab_params cp;
	int rc;

	memset(c, 0, sizeof(*c));
	ivl_region_params_default(&p);
	p.size = size;
	p.max_peers = 2;
	p.chan_slots = 4;
	p.name = "ivt";
	rc = ivl_region_format(base, size, &p);
	if (rc < 0)
		return rc;
	rc = ivl_region_attach(&c->rg, base, size);
	if (rc < 0)
		return rc;
	for (uint32_t i = 0; i < 2; i++) {
		long e = ivl_region_peer_set(&c->rg, i, IVL_PEER_UP, 100 + i, 0, p.n_vectors);

		if (e < 0)
			return (int)e;
		c->epoch[i] = (uint32_t)e;
		rc = ivl_section_reset(&c->rg, i, c->epoch[i]);
		if (rc < 0)
			return rc;
	}
	c->mode = mode;
	c->ring_size = ring_size;
	c->max_record = max_record;
	for (uint32_t i = 0; i < 2; i++) {
		memset(&cp, 0, sizeof(cp));
		cp.name = "chan";
		cp.remote = 1 - i;
		cp.mode = mode;
		cp.ring_size = ring_size;
		cp.max_record = max_record;
		cp.rx_vector = 1;
		cp.owner_pid = 100 + i;
		c->slot[i] = ivl_ctab_offer(&c->rg, i, c->epoch[i], &cp, NULL);
		if (c->slot[i] < 0)
			return c->slot[i];
	}
	for (uint32_t i = 0; i < 2; i++) {
		rc = ivl_ctab_match(&c->rg, i, (uint32_t)c->slot[i], &c->m[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The ring from peer `from` to peer 1 - from: producer block and data in
 * from's half and heap, consumer block in the receiver's half. The data
 * offset comes from the receiver's validated match result, as a real
 * receiver would use it. */
static inline void ivt_chan_ring_ptrs(const struct ivt_chan *c, uint32_t from,
				      struct ivl_ring_prod **prod, struct ivl_ring_cons **cons,
				      void **data)
{
	uint32_t to = 1 - from;
	const struct ivl_ctab_remote *m = &c->m[to];
	struct ivl_chan_half *src = ivl_region_chan(&c->rg, from, m->remote_slot);
	struct ivl_chan_half *dst = ivl_region_chan(&c->rg, to, (uint32_t)c->slot[to]);

	*prod = &src->tx_prod;
	*cons = &dst->rx_cons;
	*data = ivl_region_ptr(&c->rg, m->remote_tx_data_off, m->remote_tx_size);
}

static inline int64_t ivt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void ivt_sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

#endif /* IVL_TEST_H */
