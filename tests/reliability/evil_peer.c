/* SPDX-License-Identifier: MIT */
/*
 * evil_peer: a hostile peer. It joins a region through ivlinkd like any host
 * process (libivlink's host backend), opens channels with victims by name,
 * runs some legitimate traffic on them, and meanwhile writes adversarial
 * values into everything its scope allows:
 *
 *   --scope own   its own section (section header, page bitmap, its channel
 *                 halves: descriptors, producer and consumer blocks, ring
 *                 data and record headers) and its own peer-table entry,
 *                 daemon line included. This is what a peer controls by
 *                 design: victims read it only for channels with this peer,
 *                 so only those channels may break.
 *   --scope all   everything: region header, every peer entry, every
 *                 section (the victims' halves, their rings between
 *                 themselves, their section headers and bitmaps). ivshmem
 *                 cannot prevent this; victims must still never crash, hang
 *                 or touch memory outside the region.
 *
 *   --mode targeted  chosen bad values one attack at a time: ring indices off
 *                    by one, beyond the ring, behind the consumer, huge,
 *                    wrapped/negative, misaligned; record lengths and magics;
 *                    flags; sleep_seq; descriptors; the peer entry; the
 *                    section header; doorbell storms;
 *   --mode random    random 1/4/8-byte writes of nasty or random values at
 *                    random places of the scope, plus doorbell storms;
 *   --mode both      targeted for the first half of --ms, then random.
 *
 * Usage: evil_peer --uri URI --name NAME --seed N --scope own|all
 *                  --mode targeted|random|both --ms DURATION
 *                  [--chan NAME:PEER:s|m]...
 * Channels are opened in the order given (victims open theirs in the same
 * global order, so nobody waits in a cycle). After --ms the peer stops
 * attacking and sleeps until it is killed (or exits with --exit). Prints one
 * line per attack with -v. Exit status 0, or 2 on a usage error.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ivlink/ivlink.h>
#include <ivlink/region.h>

#include "rel.h"

#define MAX_CHANS 16
#define EVIL_RING (64u << 10)

struct echan {
	char name[IVL_NAME_MAX];
	char peer[IVL_PEER_NAME_MAX];
	uint32_t mode;
	uint32_t remote;
	struct ivl_channel *ch;
	uint32_t slot, rslot;
	uint64_t data_off; /* our tx ring data, copied before any attack */
	uint32_t size;
	uint32_t rx_size;
	uint8_t desc[2 * IVL_CACHELINE]; /* our descriptor as matched */
	pthread_t tx, rx;
};

static struct echan chans[MAX_CHANS];
static unsigned n_chans;
static struct ivl_region rg;
static uint32_t self;
static int scope_all, verbose, stop;
static uint64_t rng, seed0;
static unsigned long writes, storms;
static struct ivl_section_hdr sec_saved;

/* ------------------------------------------------------------ legit traffic */

static void *tx_main(void *arg)
{
	struct echan *c = arg;
	uint8_t buf[4096];
	uint64_t off = 0;

	/* Some honest data first, so that victims have something to read
	 * while the attacks land; errors are expected and ignored. */
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED) && off < (8u << 20)) {
		size_t n = c->mode == IVL_MODE_MESSAGE ? 1 + ts_rand(&rng) % 1000 : sizeof(buf);
		ssize_t w;

		ts_stream_fill(0xe111, off, buf, n);
		w = ivl_send(c->ch, buf, n, 0);
		if (w < 0)
			break;
		off += (uint64_t)w;
	}
	return NULL;
}

static void *rx_main(void *arg)
{
	struct echan *c = arg;
	uint8_t *buf = malloc(c->rx_size);

	while (buf && !__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		ssize_t n = ivl_recv(c->ch, buf, c->rx_size, 0);

		if (n < 0 && n != -ETIMEDOUT && n != -EMSGSIZE)
			break;
		if (n == 0 && c->mode == IVL_MODE_STREAM)
			break;
	}
	free(buf);
	return NULL;
}

/* ------------------------------------------------------------ writing */

static void w32(uint64_t off, uint32_t v)
{
	if (off + 4 <= rg.hdr.region_size) {
		__atomic_store_n((uint32_t *)(rg.base + (off & ~3ull)), v, __ATOMIC_RELAXED);
		writes++;
	}
}

static void w64(uint64_t off, uint64_t v)
{
	if (off + 8 <= rg.hdr.region_size) {
		__atomic_store_n((uint64_t *)(rg.base + (off & ~7ull)), v, __ATOMIC_RELAXED);
		writes++;
	}
}

static uint64_t r64(uint64_t off)
{
	return __atomic_load_n((uint64_t *)(rg.base + off), __ATOMIC_RELAXED);
}

static uint64_t off_of(const void *p)
{
	return (uint64_t)((const uint8_t *)p - rg.base);
}

/* Rings every eventfd this process holds: our own vectors and every other
 * peer's (the daemon gave us all of them). */
static void kick_storm(void)
{
	char link[64], path[300];
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");
	uint64_t one = 1;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (strstr(link, "eventfd") && write(atoi(e->d_name), &one, sizeof(one)) > 0)
			storms++;
	}
	closedir(d);
}

static uint64_t nasty64(uint64_t cur, uint64_t size)
{
	const uint64_t v[] = {
	    cur + 1,	cur - 1, cur + size, cur + size + 1, cur - size - 1, UINT64_MAX,
	    1ull << 63, cur + 3, 0,	     cur + 8,	     cur + 2 * size, (uint64_t)-8};

	return ts_rand(&rng) % 5 == 0 ? ts_rand(&rng) : v[ts_rand(&rng) % 12];
}

static uint32_t nasty32(uint32_t cur)
{
	const uint32_t v[] = {0, 1, 2, 3, 7, 0xffffffffu, 0x80000000u, cur ^ 1, cur + 1, cur - 1};

	return ts_rand(&rng) % 5 == 0 ? (uint32_t)ts_rand(&rng) : v[ts_rand(&rng) % 10];
}

/* ------------------------------------------------------------ targeted */

enum attack {
	A_TAIL_BEYOND,	 /* our tail more than a ring ahead of the victim's head */
	A_TAIL_BEHIND,	 /* our tail behind the victim's head (wrapped negative) */
	A_TAIL_HUGE,	 /* UINT64_MAX / 1 << 63 */
	A_TAIL_MISALIGN, /* +3: a record boundary in the middle of nowhere */
	A_REC_LEN,	 /* record header with an impossible length */
	A_REC_MAGIC,	 /* record header with a bad magic */
	A_HEAD_AHEAD,	 /* our consumer head ahead of the victim's tail */
	A_HEAD_BEHIND,	 /* our consumer head more than a ring behind */
	A_HEAD_MISALIGN,
	A_FLAGS,       /* ABORT, then every bit */
	A_SLEEP_SEQ,   /* odd sleep_seqs and doorbell storms */
	A_DESC,	       /* our descriptor: state, gen, data offset, size, mode */
	A_PEER_ENTRY,  /* our own peer-table entry: state, epoch */
	A_SECTION_HDR, /* our section header: magic, heap offset, bitmap */
	A_OWN_COUNT,
	/* --scope all only: */
	A_VICTIM_HALF = A_OWN_COUNT, /* the victim's half of our channel */
	A_REGION_HDR,		     /* ignored by attached peers by design */
	A_VV_INDICES,		     /* indices of channels between the victims */
	A_VV_PEERS,		     /* the victims' peer entries (epoch, state) */
	A_VV_SECTION,		     /* the victims' section headers and bitmaps */
	A_ALL_COUNT,
};

static const char *const attack_names[] = {
    "tail-beyond", "tail-behind", "tail-huge",	 "tail-misalign", "rec-len",
    "rec-magic",   "head-ahead",  "head-behind", "head-misalign", "flags",
    "sleep-seq",   "descriptor",  "peer-entry",	 "section-hdr",	  "victim-half",
    "region-hdr",  "vv-indices",  "vv-peers",	 "vv-section",
};

static struct ivl_chan_half *half(uint32_t peer, uint32_t slot)
{
	return ivl_region_chan(&rg, peer, slot);
}

/* Channel halves in other sections, not ours, whose remote is not us. */
static void attack_vv(int what)
{
	for (uint32_t p = 0; p < rg.hdr.max_peers; p++) {
		if (p == self)
			continue;
		if (what == A_VV_PEERS) {
			struct ivl_peer_entry *e = ivl_region_peer(&rg, p);

			if (ts_rand(&rng) & 1)
				w32(off_of(&e->epoch), e->epoch + 1);
			else
				w32(off_of(&e->state), nasty32(e->state));
			continue;
		}
		if (what == A_VV_SECTION) {
			struct ivl_section_hdr *s = ivl_region_section(&rg, p);

			w32(off_of(&s->magic), nasty32(s->magic));
			w64(off_of(&s->bitmap[0]), ~0ull);
			continue;
		}
		for (uint32_t s = 0; s < rg.hdr.chan_slots; s++) {
			struct ivl_chan_half *h = half(p, s);

			if (__atomic_load_n(&h->state, __ATOMIC_RELAXED) != IVL_CHAN_OFFERED ||
			    h->remote_peer == self)
				continue;
			w64(off_of(&h->tx_prod.tail), nasty64(h->tx_prod.tail, h->tx_size));
			w64(off_of(&h->rx_cons.head), nasty64(h->rx_cons.head, h->tx_size));
		}
	}
}

static void attack(struct echan *c, int a)
{
	struct ivl_chan_half *e = half(self, c->slot);
	struct ivl_chan_half *v = c->rslot < rg.hdr.chan_slots ? half(c->remote, c->rslot) : NULL;
	uint64_t vhead = v ? __atomic_load_n(&v->rx_cons.head, __ATOMIC_ACQUIRE) : 0;
	uint64_t vtail = v ? __atomic_load_n(&v->tx_prod.tail, __ATOMIC_ACQUIRE) : 0;
	uint64_t tail = r64(off_of(&e->tx_prod.tail));
	uint64_t data = c->data_off;
	uint32_t hdr[2];

	switch (a) {
	case A_TAIL_BEYOND:
		w64(off_of(&e->tx_prod.tail), vhead + c->size + 8);
		break;
	case A_TAIL_BEHIND:
		w64(off_of(&e->tx_prod.tail), vhead - 8);
		break;
	case A_TAIL_HUGE:
		w64(off_of(&e->tx_prod.tail), ts_rand(&rng) & 1 ? UINT64_MAX : 1ull << 63);
		break;
	case A_TAIL_MISALIGN:
		w64(off_of(&e->tx_prod.tail), tail + 3);
		break;
	case A_REC_LEN:
	case A_REC_MAGIC:
		/* A record at the victim's head, then a tail that shows it. */
		hdr[0] = a == A_REC_LEN ? (ts_rand(&rng) & 1 ? 0xffffffffu : c->size) : 16;
		hdr[1] = a == A_REC_LEN ? IVL_REC_MAGIC : 0xbadbad00u;
		w32(data + (vhead & (c->size - 1)), hdr[0]);
		w32(data + (vhead & (c->size - 1)) + 4, hdr[1]);
		w64(off_of(&e->tx_prod.tail), vhead + 24);
		break;
	case A_HEAD_AHEAD:
		w64(off_of(&e->rx_cons.head), vtail + 8);
		break;
	case A_HEAD_BEHIND:
		w64(off_of(&e->rx_cons.head), vtail - (uint64_t)c->rx_size - 8);
		break;
	case A_HEAD_MISALIGN:
		w64(off_of(&e->rx_cons.head), r64(off_of(&e->rx_cons.head)) + 3);
		break;
	case A_FLAGS:
		w32(off_of(&e->tx_prod.flags), ts_rand(&rng) & 1 ? IVL_RING_F_ABORT : 0xffffffffu);
		w32(off_of(&e->rx_cons.flags), nasty32(0));
		break;
	case A_SLEEP_SEQ:
		for (int i = 0; i < 100; i++) {
			w32(off_of(&e->tx_prod.sleep_seq), (uint32_t)ts_rand(&rng) | 1u);
			w32(off_of(&e->rx_cons.sleep_seq), (uint32_t)ts_rand(&rng) | 1u);
			kick_storm();
			usleep(100);
		}
		break;
	case A_DESC:
		w32(off_of(&e->state), nasty32(e->state));
		w32(off_of(&e->gen), e->gen + 1);
		w64(off_of(&e->tx_data_off), nasty64(e->tx_data_off, rg.hdr.region_size));
		w32(off_of(&e->tx_size), nasty32(e->tx_size));
		w32(off_of(&e->mode), nasty32(e->mode));
		w32(off_of(&e->remote_slot), nasty32(e->remote_slot));
		break;
	case A_PEER_ENTRY: {
		struct ivl_peer_entry *pe = ivl_region_peer(&rg, self);

		if (ts_rand(&rng) & 1)
			w32(off_of(&pe->epoch), pe->epoch + 1);
		else
			w32(off_of(&pe->state), ts_rand(&rng) & 1 ? IVL_PEER_GONE : 7);
		break;
	}
	case A_SECTION_HDR: {
		struct ivl_section_hdr *s = ivl_region_section(&rg, self);

		w32(off_of(&s->magic), nasty32(s->magic));
		w64(off_of(&s->heap_off), nasty64(s->heap_off, rg.hdr.region_size));
		w64(off_of(&s->bitmap[0]), ~0ull);
		break;
	}
	case A_VICTIM_HALF:
		if (v) {
			w64(off_of(&v->tx_prod.tail), nasty64(vtail, c->rx_size));
			w64(off_of(&v->rx_cons.head), nasty64(vhead, c->size));
			w32(off_of(&v->remote_slot), nasty32(v->remote_slot));
			w64(off_of(&v->tx_data_off), nasty64(v->tx_data_off, rg.hdr.region_size));
			w32(off_of(&v->tx_pages), nasty32(v->tx_pages));
		}
		break;
	case A_REGION_HDR:
		for (int i = 0; i < 32; i++)
			w64((ts_rand(&rng) % (IVL_REGION_HDR_SIZE / 8)) * 8, nasty64(0, 1u << 20));
		break;
	default:
		attack_vv(a);
		break;
	}
}

/* ------------------------------------------------------------ random */

struct area {
	uint64_t off, len;
};

static unsigned areas_of_scope(struct area *a, unsigned max)
{
	uint64_t sec = rg.hdr.section_off + (uint64_t)self * rg.hdr.section_size;
	unsigned n = 0;

	/* Our section, weighted towards the header and channel table where
	 * the interesting fields are, and our peer entry. */
	a[n++] = (struct area){sec, IVL_SECTION_HDR_SIZE + rg.hdr.chan_slots * IVL_CHAN_HALF_SIZE};
	a[n++] = (struct area){sec, rg.hdr.section_size};
	a[n++] = (struct area){off_of(ivl_region_peer(&rg, self)), IVL_PEER_ENTRY_SIZE};
	for (unsigned i = 0; i < n_chans && n < max; i++)
		a[n++] = (struct area){off_of(half(self, chans[i].slot)), IVL_CHAN_HALF_SIZE};
	if (!scope_all)
		return n;
	a[n++] = (struct area){0, IVL_REGION_HDR_SIZE};
	a[n++] =
	    (struct area){rg.hdr.peer_table_off, (uint64_t)rg.hdr.max_peers * IVL_PEER_ENTRY_SIZE};
	for (uint32_t p = 0; p < rg.hdr.max_peers && n + 1 < max; p++) {
		uint64_t s = rg.hdr.section_off + (uint64_t)p * rg.hdr.section_size;

		if (p == self)
			continue;
		a[n++] =
		    (struct area){s, IVL_SECTION_HDR_SIZE + rg.hdr.chan_slots * IVL_CHAN_HALF_SIZE};
		a[n++] = (struct area){s, rg.hdr.section_size};
	}
	return n;
}

static void random_burst(const struct area *a, unsigned n)
{
	for (int i = 0; i < 64; i++) {
		const struct area *x = &a[ts_rand(&rng) % n];
		uint64_t off = x->off + ts_rand(&rng) % x->len;
		unsigned kind = ts_rand(&rng) % 8;

		if (kind < 4)
			w64(off, nasty64(off + 8 <= rg.hdr.region_size ? r64(off & ~7ull) : 0,
					 EVIL_RING));
		else if (kind < 7)
			w32(off, nasty32(0));
		else if (off < rg.hdr.region_size)
			rg.base[off] = (uint8_t)ts_rand(&rng), writes++;
	}
}

/*
 * The last act, for ivlinkctl to show: our section header and descriptors
 * as they were (so that the tool lists our channels), with impossible ring
 * indices and ABORT in every producer block of ours.
 */
static void final_damage(void)
{
	struct ivl_section_hdr *s = ivl_region_section(&rg, self);

	memcpy(s, &sec_saved, offsetof(struct ivl_section_hdr, bitmap));
	for (unsigned i = 0; i < n_chans; i++) {
		struct ivl_chan_half *e = half(self, chans[i].slot);

		memcpy(e, chans[i].desc, sizeof(chans[i].desc));
		w64(off_of(&e->tx_prod.tail), UINT64_MAX - 5);
		w32(off_of(&e->tx_prod.flags), IVL_RING_F_ABORT);
	}
}

/* ------------------------------------------------------------ main */

static void usage(void)
{
	fprintf(stderr, "usage: evil_peer --uri URI --name NAME [--seed N] [--scope own|all]\n"
			"       [--mode targeted|random|both] [--ms N] [--exit] [-v]\n"
			"       [--chan NAME:PEER:s|m]...\n");
	exit(2);
}

static int64_t now_ms(void)
{
	return ts_now_ns() / 1000000;
}

int main(int argc, char **argv)
{
	const char *uri = NULL, *name = "evil", *mode = "both";
	struct ivl_endpoint_opts o = {0};
	struct ivl_endpoint *ep;
	struct area areas[64];
	unsigned n_areas, n_attacks, a_idx = 0;
	int64_t start, end, ms = 3000;
	int do_exit = 0, rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	rng = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--uri") && v)
			uri = argv[++i];
		else if (!strcmp(a, "--name") && v)
			name = argv[++i];
		else if (!strcmp(a, "--seed") && v)
			rng = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(a, "--scope") && v)
			scope_all = !strcmp(argv[++i], "all");
		else if (!strcmp(a, "--mode") && v)
			mode = argv[++i];
		else if (!strcmp(a, "--ms") && v)
			ms = strtoll(argv[++i], NULL, 0);
		else if (!strcmp(a, "--exit"))
			do_exit = 1;
		else if (!strcmp(a, "-v"))
			verbose = 1;
		else if (!strcmp(a, "--chan") && v && n_chans < MAX_CHANS) {
			struct echan *c = &chans[n_chans++];
			char *s = argv[++i], *p1 = strchr(s, ':'),
			     *p2 = p1 ? strchr(p1 + 1, ':') : 0;

			if (!p1 || !p2 || (size_t)(p1 - s) >= sizeof(c->name) ||
			    (size_t)(p2 - p1 - 1) >= sizeof(c->peer))
				usage();
			memcpy(c->name, s, (size_t)(p1 - s));
			memcpy(c->peer, p1 + 1, (size_t)(p2 - p1 - 1));
			c->mode = p2[1] == 'm' ? IVL_MODE_MESSAGE : IVL_MODE_STREAM;
		} else
			usage();
	}
	if (!uri)
		usage();
	seed0 = rng;

	o.uri = uri;
	o.name = name;
	rc = ivl_endpoint_open(&ep, &o);
	if (rc < 0) {
		fprintf(stderr, "evil: ivl_endpoint_open: %s\n", strerror(-rc));
		return 1;
	}
	self = ivl_endpoint_id(ep);
	if (rel_guard_region(&rg) < 0) {
		fprintf(stderr, "evil: cannot find the region mapping\n");
		return 1;
	}
	for (unsigned i = 0; i < n_chans; i++) {
		struct echan *c = &chans[i];
		struct ivl_channel_opts co = {.mode = c->mode, .ring_size = EVIL_RING};
		struct ivl_channel_stats st;
		int id = ts_find_peer(ep, c->peer, 20000000000LL);

		if (id < 0) {
			fprintf(stderr, "evil: peer %s never appeared\n", c->peer);
			return 1;
		}
		c->remote = (uint32_t)id;
		rc = ivl_channel_open(ep, c->name, c->remote, &co, 20000000000LL, &c->ch);
		if (rc < 0) {
			fprintf(stderr, "evil: open %s: %s\n", c->name, strerror(-rc));
			return 1;
		}
		ivl_channel_set_timeouts(c->ch, 500000000LL, 500000000LL);
		ivl_channel_stats(c->ch, &st);
		c->slot = st.slot;
		c->size = st.tx_ring_size;
		c->rx_size = st.rx_ring_size;
		c->rslot = half(self, c->slot)->remote_slot;
		c->data_off = half(self, c->slot)->tx_data_off;
		memcpy(c->desc, half(self, c->slot), sizeof(c->desc));
		pthread_create(&c->tx, NULL, tx_main, c);
		pthread_create(&c->rx, NULL, rx_main, c);
	}
	memcpy(&sec_saved, ivl_region_section(&rg, self), sizeof(sec_saved));
	printf("evil: peer %u, %u channels, scope %s, mode %s\n", self, n_chans,
	       scope_all ? "all" : "own", mode);

	/* Let some honest traffic flow before the first attack. */
	usleep(50000);
	n_attacks = scope_all ? A_ALL_COUNT : A_OWN_COUNT;
	n_areas = areas_of_scope(areas, 64);
	start = now_ms();
	end = start + ms;
	while (now_ms() < end) {
		int targeted = !strcmp(mode, "targeted") ||
			       (!strcmp(mode, "both") && now_ms() < start + ms / 2);

		if (targeted && n_chans) {
			/* Every attack in turn, each on the next channel. */
			struct echan *c = &chans[a_idx % n_chans];
			int a = (int)((a_idx + seed0) % n_attacks);

			if (verbose)
				printf("evil: %s on %s\n", attack_names[a], c->name);
			attack(c, a);
			a_idx++;
			usleep(20000);
		} else {
			random_burst(areas, n_areas);
			if (ts_rand(&rng) % 16 == 0)
				kick_storm();
			usleep(200);
		}
	}
	/* Our own traffic threads would republish our tail over the final
	 * damage: stop them first (their calls time out within 0.5 s). */
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < n_chans; i++) {
		pthread_join(chans[i].tx, NULL);
		pthread_join(chans[i].rx, NULL);
	}
	final_damage();
	printf("evil: done: %lu writes, %lu doorbells, %u targeted attacks\n", writes, storms,
	       a_idx);
	if (do_exit)
		_exit(0); /* no clean close: the daemon marks us GONE */
	for (;;)
		pause();
}
