/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpus of the fuzz harnesses (tests/fuzz/corpus/<harness>/)
 * from real layouts, so that the fuzzers start from valid regions, rings and
 * channel tables. Run once when a layout changes:
 *   build-fuzz/tests/fuzz/fuzz_gen_seeds tests/fuzz/corpus
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ivlink/region.h>
#include <ivlink/ring.h>

#define RSIZE (1u << 20)

static void put(const char *dir, const char *name, const void *a, size_t alen, const void *b,
		size_t blen)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(a, 1, alen, f) != alen || (blen && fwrite(b, 1, blen, f) != blen)) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

/* A region with peers 0 and 1 UP and channel "c" (mode) matched. */
static void region(uint8_t *base, uint32_t max_peers, uint32_t slots, uint32_t mode,
		   struct ivl_region *rg)
{
	struct ivl_region_params p;
	struct ivl_ctab_params cp = {.name = "c",
				     .mode = mode,
				     .ring_size = 4096,
				     .max_record = mode == IVL_MODE_MESSAGE ? 1000 : 0};
	struct ivl_ctab_remote m;
	long e0, e1;
	int s0, s1;

	memset(base, 0, RSIZE);
	ivl_region_params_default(&p);
	p.size = RSIZE;
	p.max_peers = max_peers;
	p.n_vectors = 4;
	p.chan_slots = slots;
	if (ivl_region_format(base, RSIZE, &p) < 0 || ivl_region_attach(rg, base, RSIZE) < 0)
		exit(1);
	ivl_section_reset(rg, 0, 1);
	ivl_section_reset(rg, 1, 1);
	e0 = ivl_region_peer_set(rg, 0, IVL_PEER_UP, 1, 0, 4);
	e1 = ivl_region_peer_set(rg, 1, IVL_PEER_UP, 2, 0, 4);
	cp.remote = 1;
	s0 = ivl_ctab_offer(rg, 0, (uint32_t)e0, &cp, NULL);
	cp.remote = 0;
	s1 = ivl_ctab_offer(rg, 1, (uint32_t)e1, &cp, NULL);
	if (s0 < 0 || s1 < 0 || ivl_ctab_match(rg, 1, (uint32_t)s1, &m) < 0)
		exit(1);
}

int main(int argc, char **argv)
{
	static uint8_t base[RSIZE];
	static uint8_t buf[65536];
	struct ivl_region rg;
	char dir[512];
	const char *root = argc > 1 ? argv[1] : "tests/fuzz/corpus";

	/* fuzz_region_attach: raw header + peer table, 1 and 2 MiB flags. */
	snprintf(dir, sizeof(dir), "%s/region_attach", root);
	region(base, 8, 64, IVL_MODE_STREAM, &rg);
	buf[0] = 0;
	put(dir, "raw-1m", buf, 1, base, 8192);
	buf[0] = 4; /* half mapped */
	put(dir, "raw-truncated", buf, 1, base, 8192);
	{
		struct ivl_region_params p;
		static uint8_t big[2u << 20];

		ivl_region_params_default(&p);
		p.size = sizeof(big);
		ivl_region_format(big, sizeof(big), &p);
		buf[0] = 1;
		put(dir, "raw-2m", buf, 1, big, 8192);
	}
	/* Patch mode: a peer state, a channel half's data offset, max_peers. */
	{
		uint8_t pt[64];
		uint32_t off;
		size_t n = 0;

		pt[n++] = 2;
		off = 24; /* max_peers */
		memcpy(pt + n, &off, 4), n += 4, pt[n++] = 4;
		pt[n++] = 64, pt[n++] = 0, pt[n++] = 0, pt[n++] = 0;
		off = IVL_REGION_HDR_SIZE + IVL_PEER_ENTRY_SIZE; /* peer 1 state */
		memcpy(pt + n, &off, 4), n += 4, pt[n++] = 4;
		pt[n++] = 2, pt[n++] = 0, pt[n++] = 0, pt[n++] = 0;
		put(dir, "patch-peers", pt, n, NULL, 0);
		n = 0;
		pt[n++] = 2;
		off = (uint32_t)(rg.hdr.section_off + IVL_SECTION_HDR_SIZE + 40); /* tx_data_off */
		memcpy(pt + n, &off, 4), n += 4, pt[n++] = 8;
		memset(pt + n, 0xff, 8), n += 8;
		put(dir, "patch-half", pt, n, NULL, 0);
	}

	/* fuzz_ctab_match: the remote's peer line + section, honest. */
	snprintf(dir, sizeof(dir), "%s/ctab_match", root);
	for (int mode = IVL_MODE_STREAM; mode <= IVL_MODE_MESSAGE; mode++) {
		size_t sec = IVL_SECTION_HDR_SIZE + 8 * IVL_CHAN_HALF_SIZE;

		region(base, 2, 8, (uint32_t)mode, &rg);
		memcpy(buf, ivl_region_peer(&rg, 1), 8);
		memcpy(buf + 8, ivl_region_section(&rg, 1), sec);
		buf[8 + sec] = mode == IVL_MODE_MESSAGE;
		put(dir, mode == IVL_MODE_STREAM ? "honest-stream" : "honest-message", buf, 9 + sec,
		    NULL, 0);
		buf[8 + sec] ^= 1; /* the other mode: no match */
		put(dir, mode == IVL_MODE_STREAM ? "mode-mismatch-1" : "mode-mismatch-2", buf,
		    9 + sec, NULL, 0);
	}

	/* fuzz_shim_rdv: selector, peer 1's line and backend, its section
	 * holding honest rendezvous records of each kind. */
	snprintf(dir, sizeof(dir), "%s/shim_rdv", root);
	for (int k = 0; k < 4; k++) {
		static const char *const names[] = {"listen-loopback", "listen-wildcard-addrs",
						    "proposal", "fallback-note"};
		static const uint8_t sel[] = {0, 4, 0, 0};
		size_t sec = IVL_SECTION_HDR_SIZE + 8 * IVL_CHAN_HALF_SIZE;
		struct ivl_shim_half sh;
		uint32_t backend = IVL_BACKEND_HOST;
		long e1;

		region(base, 2, 8, IVL_MODE_STREAM, &rg);
		e1 = (long)ivl_region_peer(&rg, 1)->epoch;
		memset(&sh, 0, sizeof(sh));
		sh.family = 2; /* AF_INET */
		sh.owner_pid = 2;
		if (k < 2) {
			sh.kind = IVL_SHIM_LISTEN;
			sh.lport = htons(8080);
			if (k == 0) {
				sh.laddr[0] = 127, sh.laddr[3] = 1;
			} else {
				sh.n_addrs = 1;
				memcpy(sh.addrs[0], (uint8_t[]){192, 0, 2, 7}, 4);
			}
			ivl_ctab_note(&rg, 1, (uint32_t)e1, IVL_CHAN_LISTEN, IVL_SLOT_NONE,
				      "listen", &sh);
		} else {
			struct ivl_ctab_params cp = {.name = "tcp:127.0.0.1:40000>127.0.0.1:8080",
						     .remote = 0,
						     .mode = IVL_MODE_STREAM,
						     .ring_size = 4096,
						     .rx_vector = 1};

			sh.kind = k == 2 ? IVL_SHIM_PROPOSAL : IVL_SHIM_FALLBACK;
			sh.rdv = k == 2 ? IVL_RDV_PROPOSED : IVL_RDV_NONE;
			sh.lport = htons(40000);
			sh.rport = htons(8080);
			sh.laddr[0] = 127, sh.laddr[3] = 1;
			sh.raddr[0] = 127, sh.raddr[3] = 1;
			if (k == 2)
				ivl_ctab_offer_shim(&rg, 1, (uint32_t)e1, &cp, &sh, NULL);
			else
				ivl_ctab_note(&rg, 1, (uint32_t)e1, IVL_CHAN_NOTE, 0, cp.name, &sh);
		}
		buf[0] = sel[k];
		memcpy(buf + 1, ivl_region_peer(&rg, 1), 8);
		memcpy(buf + 9, &backend, 4);
		memcpy(buf + 13, ivl_region_section(&rg, 1), sec);
		put(dir, names[k], buf, 13 + sec, NULL, 0);
	}

	/* fuzz_ring_consumer: stream and message sessions. */
	snprintf(dir, sizeof(dir), "%s/ring_consumer", root);
	{
		static const uint8_t stream[] = {
		    0,	4,   0,	 0,   0,  0,   0, 0, 0, 0, 0, 0,   0,  0, 0, 0,	 0, 0,
		    0,	0,   0,	 0,   17, 100, 0, 0, /* write 100 */
		    5,				     /* peek */
		    6,	50,  0,	 0,		     /* release 50 */
		    7,	200, 0,			     /* read 200 */
		    16, 200, 3,	 100, 0,  0,	     /* reserve 1000, commit 100 */
		    9,	10,  20, 0,   30, 0,	     /* readv */
		    1,	0,   8,			     /* tail += 2048: beyond the ring */
		    5,	8,   10, 13,  0,  0,   0, 0, 0, 0, 0, 128, 18, 1, 0, 21, 1, 0,
		};
		static const uint8_t message[] = {
		    1,	6,  0, 2, 0,  0,   0,	0,   0, 0, 0, 0, 0,   0,   0,	0,   0, 0,
		    0,	0,  0, 0, 17, 100, 0,	0, /* record of 100 */
		    17, 0,  0, 0,		   /* empty record */
		    5,	6,  0, 0, 0,  7,   255, 255, 7, 0, 0, 4, 255, 255, 255, 255, 1, /* huge
											   length at
											   the head
											 */
		    1,	16, 0, 5, 7,  16,  0,
		};
		static const uint8_t wrapped[] = {
		    0,	  0,	0,    0,    0,	  0,	0xc0, 0xff, 0xff, 0xff, 0xff,
		    0xff, 0xff, 0xff, 0xc0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		    17,	  40,	0,    0,    5,	  7,	255,  0,    17,	  40,	0,
		    1,	  19,	5,    6,    3,	  0,	0,    7,    64,	  0,
		};

		put(dir, "stream", stream, sizeof(stream), NULL, 0);
		put(dir, "message", message, sizeof(message), NULL, 0);
		put(dir, "wrapped", wrapped, sizeof(wrapped), NULL, 0);
	}
	return 0;
}
