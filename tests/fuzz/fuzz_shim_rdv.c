/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: the socket shim's rendezvous lookups
 * (guest-lib/preload/rdv.c, the code the shim runs on connect and accept)
 * over a remote section that is whatever the input says. Peer 0 (us) and
 * peer 1 are UP in a freshly formatted 1 MiB region (a heap block of
 * exactly that size: AddressSanitizer reports any access outside it).
 *
 * Input: byte 0 selects the lookup's arguments (bit 0: IPv6; bits 1-2: a
 * loopback, a routable or a wildcard-listed destination; bit 3: our
 * backend is VFIO rather than host); then peer 1's peer-table line (state,
 * epoch: 8 bytes), its backend (4 bytes), and its section header and
 * channel table (8 halves, their shim blocks included).
 *
 * ivl__shim_find_listener() must return 0 only with peer 1 (never
 * ourselves, never an id out of range), -ELOOP or -ENOENT;
 * ivl__shim_find_proposal() 0 only with a slot in range and a
 * NUL-terminated name, -ESTALE or -ENOENT; ivl__shim_addr_known() 0 or 1
 * (and, as all of them, no read outside the region).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ivlink/region.h>

#include "fuzz_region.h"

#include "rdv.h"

#define RSIZE (1u << 20)
#define SLOTS 8u

static uint8_t *base;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t lo4[16] = {127, 0, 0, 1}, lo6[16] = {[15] = 1};
	static const uint8_t net4[16] = {192, 0, 2, 1}, list4[16] = {192, 0, 2, 7};
	static const uint8_t net6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
	struct ivl_region rg;
	struct shim_proposal pr;
	const uint8_t *dst;
	uint32_t peer = 99, backend;
	uint8_t sel;
	size_t sec_len = IVL_SECTION_HDR_SIZE + SLOTS * IVL_CHAN_HALF_SIZE;
	int fam, rc;

	if (size < 1)
		return 0;
	if (!fuzz_two_peers(&base, RSIZE, SLOTS, &rg))
		return 0;

	sel = data[0];
	data++, size--;
	backend = sel & 8 ? IVL_BACKEND_VFIO : IVL_BACKEND_HOST;
	ivl_region_peer(&rg, 0)->backend = backend;
	if (size >= 8) {
		memcpy(ivl_region_peer(&rg, 1), data, 8);
		data += 8, size -= 8;
	}
	if (size >= 4) {
		memcpy(&ivl_region_peer(&rg, 1)->backend, data, 4);
		data += 4, size -= 4;
	}
	memcpy(ivl_region_section(&rg, 1), data, size < sec_len ? size : sec_len);

	fam = sel & 1 ? AF_INET6 : AF_INET;
	switch ((sel >> 1) & 3) {
	case 0:
		dst = fam == AF_INET ? lo4 : lo6;
		break;
	case 1:
		dst = fam == AF_INET ? net4 : net6;
		break;
	default:
		dst = list4;
		break;
	}
	rc = ivl__shim_find_listener(&rg, 0, fam, dst, htons(8080), &peer);
	if ((rc == 0 && peer != 1) || (rc < 0 && rc != -ELOOP && rc != -ENOENT))
		abort();

	memset(&pr, 0xa5, sizeof(pr));
	rc = ivl__shim_find_proposal(&rg, 0, fam, dst, htons(40000), fam == AF_INET ? lo4 : lo6,
				     htons(8080), &pr);
	if (rc == 0 &&
	    (pr.peer != 1 || pr.slot >= SLOTS || memchr(pr.name, '\0', sizeof(pr.name)) == NULL))
		abort();
	if (rc < 0 && rc != -ESTALE && rc != -ENOENT)
		abort();

	{
		uint8_t a[16] = {0};

		memcpy(a, dst, fam == AF_INET ? 4 : 16);
		rc = ivl__shim_addr_known(&rg, a);
		if (rc != 0 && rc != 1)
			abort();
	}
	return 0;
}
