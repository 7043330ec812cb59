/* SPDX-License-Identifier: MIT */
/*
 * Random corruption: a second process (fork) scribbles continuously on the
 * shared region (ring indices, flags and sleep_seqs, record headers, both
 * channel halves, the peer table, section headers and bitmaps, the region
 * header) with random and targeted values: off by one, off by a record or a
 * ring, huge, negative/wrapped, misaligned. Meanwhile this process keeps
 * using every reading and writing call (write/reserve/commit, peek/read/
 * release, readable/writable, wait with timeout 0, match and attaching a
 * ring from its result, gc, alloc/free, offer, attach). Every call must
 * return a documented value, every span must lie in the ring data, and no
 * access may leave the region, which sits between PROT_NONE guard areas.
 */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>

#include "ivl_test.h"

#define RSIZE  (1u << 20)
#define RING   4096u
#define MAXREC 1024u

static struct ivt_map map;

struct target {
	uint64_t off;
	unsigned len; /* 4 or 8 */
};

#define MAX_TARGETS 256
static struct target targets[MAX_TARGETS];
static int n_targets;

static void add_target(const void *p, unsigned len)
{
	CHECK(n_targets < MAX_TARGETS);
	targets[n_targets].off = (uint64_t)((const uint8_t *)p - map.base);
	targets[n_targets].len = len;
	n_targets++;
}

static void add_half(struct ivl_chan_half *h)
{
	add_target(&h->state, 4);
	add_target(&h->gen, 4);
	add_target(&h->owner_epoch, 4);
	add_target(&h->remote_peer, 4);
	add_target(&h->remote_slot, 4);
	add_target(&h->remote_epoch, 4);
	add_target(&h->remote_gen, 4);
	add_target(&h->mode, 4);
	add_target(&h->rx_vector, 4);
	add_target(&h->tx_data_off, 8);
	add_target(&h->tx_size, 4);
	add_target(&h->max_record, 4);
	add_target(&h->tx_pages, 4);
	add_target(&h->name[0], 4);
	add_target(&h->name[44], 4);
	for (int k = 0; k < 4; k++) { /* the ring blocks weigh more */
		add_target(&h->tx_prod.tail, 8);
		add_target(&h->rx_cons.head, 8);
	}
	add_target(&h->tx_prod.flags, 4);
	add_target(&h->tx_prod.sleep_seq, 4);
	add_target(&h->rx_cons.flags, 4);
	add_target(&h->rx_cons.sleep_seq, 4);
}

static uint64_t mutate(uint64_t *seed, uint64_t cur)
{
	switch (ts_rand_below(seed, 12)) {
	case 0:
		return cur + 1;
	case 1:
		return cur - 1;
	case 2:
		return cur + 8;
	case 3:
		return cur - 8;
	case 4:
		return cur + RING;
	case 5:
		return cur - RING;
	case 6:
		return cur | 3; /* misaligned */
	case 7:
		return 0;
	case 8:
		return UINT64_MAX;
	case 9:
		return 1ULL << ts_rand_below(seed, 64);
	case 10:
		return cur + ts_rand_below(seed, 2 * RING);
	default:
		return ts_rand(seed);
	}
}

static void __attribute__((noreturn)) scribbler(void)
{
	uint64_t seed = 0xbadc0ffee;

	for (unsigned long it = 0;; it++) {
		const struct target *t = &targets[ts_rand_below(&seed, (uint64_t)n_targets)];
		uint8_t *p = map.base + t->off;

		if (t->len == 8)
			__atomic_store_n(
			    (uint64_t *)p,
			    mutate(&seed, __atomic_load_n((uint64_t *)p, __ATOMIC_RELAXED)),
			    __ATOMIC_RELAXED);
		else
			__atomic_store_n((uint32_t *)p,
					 (uint32_t)mutate(&seed, __atomic_load_n((uint32_t *)p,
										 __ATOMIC_RELAXED)),
					 __ATOMIC_RELAXED);
		/* Give the reader time to use a value before the next one;
		 * the pace varies so that both stale and fresh states occur. */
		if ((it & 63) == 0)
			ts_sleep_us((long)ts_rand_below(&seed, 20));
	}
}

static long n_eproto, n_ok, n_calls;

/* Fails unless rc is one of the listed values, or >= 0 when ok_pos. */
static void allowed(const char *what, long rc, int ok_pos, const long *set, int n)
{
	n_calls++;
	if (rc == -EPROTO)
		n_eproto++;
	if (rc >= 0 && ok_pos) {
		n_ok++;
		return;
	}
	for (int i = 0; i < n; i++)
		if (rc == set[i])
			return;
	CHECK(0, "%s returned %ld (%s)", what, rc, rc < 0 ? strerror((int)-rc) : "-");
}

static const long ring_errs[] = {-EAGAIN, -EPROTO, -EPIPE, -ECONNRESET, -EMSGSIZE};
#define RING_ERRS ring_errs, 5

static void check_spans(const struct ivl_ring *r, const struct ivl_span sp[2], long n, int write)
{
	for (int i = 0; i < 2; i++) {
		uint8_t *b = sp[i].base;

		if (sp[i].len == 0)
			continue;
		CHECK(b >= r->data && b + sp[i].len <= r->data + r->size, "span outside ring data");
		if (write)
			memset(b, 0x3c, sp[i].len);
		else {
			volatile uint8_t sink = 0;

			for (size_t j = 0; j < sp[i].len; j += 64)
				sink ^= b[j];
			sink ^= b[sp[i].len - 1];
			(void)sink;
		}
	}
	CHECK(sp[0].len + sp[1].len == (size_t)n, "spans of %zu+%zu bytes for a count of %ld",
	      sp[0].len, sp[1].len, n);
}

static void exercise_ring(struct ivl_ring *p, struct ivl_ring *c, uint64_t *seed)
{
	uint8_t buf[RING];
	struct ivl_span sp[2];
	long rc;

	for (int op = 0; op < 40; op++) {
		size_t len = (size_t)ts_rand_below(seed, MAXREC + 64);

		switch (ts_rand_below(seed, 10)) {
		case 0:
		case 1:
			rc =
			    ivl_ring_write(p, buf, len, ts_rand_below(seed, 4) == 0 ? IVL_MORE : 0);
			allowed("write", rc, 1, RING_ERRS);
			break;
		case 2:
			rc = ivl_ring_reserve(p, len ? len : 1, sp);
			allowed("reserve", rc, 1, RING_ERRS);
			if (rc >= 0) {
				check_spans(p, sp, rc, 1);
				allowed("commit", ivl_ring_commit(p, (size_t)rc, 0), 1,
					(const long[]){-EPROTO}, 1);
			}
			break;
		case 3:
		case 4:
			rc = ivl_ring_peek(c, sp);
			allowed("peek", rc, 1, RING_ERRS);
			/* 0 in stream mode is EOF: no spans. */
			if (rc > 0 || (rc == 0 && c->mode == IVL_MODE_MESSAGE)) {
				check_spans(c, sp, rc, 0);
				allowed("release", ivl_ring_release(c, (size_t)rc, 0), 1,
					(const long[]){-EPROTO, -EINVAL}, 2);
			}
			break;
		case 5:
		case 6:
			rc = ivl_ring_read(c, buf, ts_rand_below(seed, 2) ? sizeof(buf) : len);
			allowed("read", rc, 1, RING_ERRS);
			break;
		case 7:
			allowed("readable", ivl_ring_readable(c), 1, NULL, 0);
			allowed("writable", ivl_ring_writable(p, len), 1, NULL, 0);
			break;
		case 8:
			allowed("wait_readable", ivl_ring_wait_readable(c, 0), 1,
				(const long[]){-ETIMEDOUT, -EPROTO}, 2);
			allowed("wait_writable", ivl_ring_wait_writable(p, len, 0), 1,
				(const long[]){-ETIMEDOUT, -EPROTO}, 2);
			break;
		default:
			allowed("flush", ivl_ring_flush(p), 1, (const long[]){-EPROTO}, 1);
			allowed("release_flush", ivl_ring_release_flush(c), 1,
				(const long[]){-EPROTO}, 1);
			break;
		}
	}
}

/* Matches from peer `self` and, if that succeeds, attaches a consumer to
 * the remote's ring exactly as a receiver would, and reads from it. */
static void exercise_match(struct ivt_chan *ch, uint32_t self, uint64_t *seed)
{
	struct ivl_ctab_remote m;
	struct ivl_ring c;
	struct ivl_span sp[2];
	uint8_t buf[RING];
	uint32_t mode = ch->mode;
	long rc = ivl_ctab_match(&ch->rg, self, (uint32_t)ch->slot[self], &m);

	allowed("match", rc, 0, (const long[]){0, -EAGAIN, -EPROTO, -ECONNRESET}, 4);
	if (rc != 0)
		return;
	void *data = ivl_region_ptr(&ch->rg, m.remote_tx_data_off, m.remote_tx_size);
	struct ivl_chan_half *rh = ivl_region_chan(&ch->rg, 1 - self, m.remote_slot);
	struct ivl_chan_half *mine = ivl_region_chan(&ch->rg, self, (uint32_t)ch->slot[self]);

	CHECK(data != NULL && rh != NULL, "match accepted a ring outside the region");
	rc = ivl_ring_init_consumer(&c, &rh->tx_prod, &mine->rx_cons, data, m.remote_tx_size, mode,
				    m.remote_max_record, NULL);
	allowed("init_consumer", rc, 0, (const long[]){0, -EPROTO}, 2);
	if (rc != 0)
		return;
	for (int i = 0; i < 4; i++) {
		rc = ivl_ring_peek(&c, sp);
		allowed("peek(matched)", rc, 1, RING_ERRS);
		if (rc > 0 || (rc == 0 && mode == IVL_MODE_MESSAGE))
			check_spans(&c, sp, rc, 0);
		rc = ivl_ring_read(&c, buf, ts_rand_below(seed, 2) ? sizeof(buf) : 16);
		allowed("read(matched)", rc, 1, RING_ERRS);
	}
}

int main(int argc, char **argv)
{
	struct ivt_chan ch;
	struct ivl_region rg2;
	uint64_t seed = 42;
	long rounds = argc > 1 ? atol(argv[1]) : 100000;
	long setups_failed = 0;
	int st;

	ivt_map_create(&map, RSIZE);
	CHECK_EQ(ivt_chan_setup(&ch, map.base, RSIZE, IVL_MODE_MESSAGE, RING, MAXREC), 0);
	for (uint32_t i = 0; i < 2; i++) {
		struct ivl_section_hdr *s = ivl_region_section(&ch.rg, i);
		struct ivl_peer_entry *e = ivl_region_peer(&ch.rg, i);
		uint8_t *data =
		    ivl_region_ptr(&ch.rg, ivl_region_chan(&ch.rg, i, 0)->tx_data_off, RING);

		add_half(ivl_region_chan(&ch.rg, i, (uint32_t)ch.slot[i]));
		add_target(&e->state, 4);
		add_target(&e->epoch, 4);
		add_target(&s->magic, 4);
		add_target(&s->heap_pages, 4);
		add_target(&s->bitmap[0], 8);
		add_target(&s->bitmap[1], 8);
		/* Record headers: a few positions in each ring's data. */
		for (uint32_t k = 0; k < 8; k++) {
			add_target(data + k * 8, 4);
			add_target(data + RING - 8 - k * 64, 4);
			add_target(data + RING - 4 - k * 64, 4);
		}
	}
	add_target(&((struct ivl_region_hdr *)map.base)->section_size, 8);
	add_target(&((struct ivl_region_hdr *)map.base)->max_peers, 4);

	pid_t child = fork();
	CHECK(child >= 0, "fork: %s", strerror(errno));
	if (child == 0)
		scribbler();

	for (long round = 0; round < rounds; round++) {
		uint32_t mode = (round & 1) ? IVL_MODE_MESSAGE : IVL_MODE_STREAM;
		struct ivl_ring_prod *rp;
		struct ivl_ring_cons *rc;
		struct ivl_ring p, c;
		void *data;
		long r;

		/* The scribbler may hit the region while it is being set up:
		 * then every step must still fail cleanly. */
		r = ivt_chan_setup(&ch, map.base, RSIZE, mode, RING, MAXREC);
		allowed("setup", r, 0,
			(const long[]){0, -EPROTO, -EAGAIN, -ECONNRESET, -ENOMEM, -EEXIST,
				       -EOVERFLOW, -EINVAL, -ENOSPC},
			9);
		if (r != 0) {
			setups_failed++;
			continue;
		}
		ivt_chan_ring_ptrs(&ch, 0, &rp, &rc, &data);
		CHECK(data != NULL);
		r = ivl_ring_init_producer(&p, rp, rc, data, RING, mode, MAXREC, NULL);
		allowed("init_producer", r, 0, (const long[]){0, -EPROTO}, 2);
		if (r == 0) {
			r = ivl_ring_init_consumer(&c, rp, rc, data, RING, mode, MAXREC, NULL);
			allowed("init_consumer", r, 0, (const long[]){0, -EPROTO}, 2);
			if (r == 0)
				exercise_ring(&p, &c, &seed);
		}
		exercise_match(&ch, 0, &seed);
		exercise_match(&ch, 1, &seed);
		allowed("gc", ivl_ctab_gc(&ch.rg, (uint32_t)ts_rand_below(&seed, 2)), 1, NULL, 0);
		{
			int64_t off =
			    ivl_section_alloc(&ch.rg, 0, 1 + (uint32_t)ts_rand_below(&seed, 4));

			allowed("alloc", off > 0 ? 0 : off, 0, (const long[]){0, -ENOMEM, -EPROTO},
				3);
		}
		if (ts_rand_below(&seed, 8) == 0) {
			struct ivl_ctab_params cp = {.name = "x",
						     .remote = 1,
						     .mode = mode,
						     .ring_size = 4096,
						     .max_record = 8,
						     .rx_vector = 1};

			allowed("offer", ivl_ctab_offer(&ch.rg, 0, ch.epoch[0], &cp, NULL), 1,
				(const long[]){-EEXIST, -ENOSPC, -ENOMEM, -EPROTO}, 4);
			allowed("attach", ivl_region_attach(&rg2, map.base, RSIZE), 0,
				(const long[]){0, -EPROTO, -EOVERFLOW}, 3);
		}
	}

	CHECK(kill(child, SIGKILL) == 0);
	CHECK(waitpid(child, &st, 0) == child);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "scribbler died on its own: %d", st);
	printf("%ld rounds (%ld setups refused), %ld calls: %ld succeeded, %ld -EPROTO\n", rounds,
	       setups_failed, n_calls, n_ok, n_eproto);
	/* The corruption must actually have been seen, or this proved nothing. */
	CHECK(n_eproto > 0 && n_ok > 0);
	ivt_map_destroy(&map);
	printf("corrupt_random_scribble_stays_in_region: ok\n");
	return 0;
}
