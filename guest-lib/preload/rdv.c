/* SPDX-License-Identifier: MIT */
/* The socket shim's rendezvous lookups: see rdv.h. */
#include "rdv.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

int ivl__shim_addr_any(int fam, const uint8_t *a)
{
	static const uint8_t zero[16];

	return memcmp(a, zero, fam == AF_INET ? 4 : 16) == 0;
}

int ivl__shim_addr_loopback(int fam, const uint8_t *a)
{
	static const uint8_t lo6[16] = {[15] = 1};

	return fam == AF_INET ? a[0] == 127 : memcmp(a, lo6, 16) == 0;
}

int ivl__shim_find_listener(const struct ivl_region *rg, uint32_t self, int fam, const uint8_t *dst,
			    uint16_t port, uint32_t *peer)
{
	struct ivl_peer_entry *me = ivl_region_peer(rg, self);
	uint32_t my_backend;
	size_t alen = fam == AF_INET ? 4 : 16;

	if (!me)
		return -ENOENT;
	my_backend = __atomic_load_n(&me->backend, __ATOMIC_RELAXED);
	for (uint32_t p = 0; p < rg->hdr.max_peers; p++) {
		struct ivl_peer_view pv;
		uint32_t backend;

		if (ivl_region_peer_view(rg, p, &pv) < 0 || pv.state != IVL_PEER_UP)
			continue;
		if (ivl_section_check(rg, p) < 0)
			continue;
		backend = __atomic_load_n(&ivl_region_peer(rg, p)->backend, __ATOMIC_RELAXED);
		for (uint32_t s = 0; s < rg->hdr.chan_slots; s++) {
			struct ivl_chan_half *h = ivl_region_chan(rg, p, s);
			struct ivl_shim_half sh;
			uint32_t gen;
			int same_host, match = 0;

			/* gen before state, as in ivl_ctab_match_via(). */
			gen = __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE);
			if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != IVL_CHAN_LISTEN)
				continue;
			memcpy(&sh, &h->shim, sizeof(sh));
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (__atomic_load_n(&h->state, __ATOMIC_RELAXED) != IVL_CHAN_LISTEN ||
			    __atomic_load_n(&h->gen, __ATOMIC_RELAXED) != gen ||
			    h->owner_epoch != pv.epoch)
				continue;
			if (sh.kind != IVL_SHIM_LISTEN || sh.lport != port)
				continue;
			same_host = backend == IVL_BACKEND_HOST && my_backend == IVL_BACKEND_HOST;
			if (ivl__shim_addr_loopback(fam, dst)) {
				match = same_host &&
					(ivl__shim_addr_any((int)sh.family, sh.laddr) ||
					 ((int)sh.family == fam && !memcmp(sh.laddr, dst, alen)) ||
					 ((int)sh.family == AF_INET6 && fam == AF_INET &&
					  ivl__shim_addr_any(AF_INET6, sh.laddr)));
			} else if (!ivl__shim_addr_any((int)sh.family, sh.laddr)) {
				match = (int)sh.family == fam && !memcmp(sh.laddr, dst, alen);
			} else {
				for (uint32_t i = 0; i < sh.n_addrs && i < IVL_SHIM_ADDRS; i++)
					if (!memcmp(sh.addrs[i], dst, alen))
						match = 1;
			}
			if (match && p != self) {
				*peer = p;
				return 0;
			}
			if (match && p == self) {
				/* A process talking to itself: both ends are
				 * this peer; the channel table cannot hold
				 * that (remote == self), so stay on TCP. */
				return -ELOOP;
			}
		}
	}
	return -ENOENT;
}

int ivl__shim_addr_known(const struct ivl_region *rg, const uint8_t *addr)
{
	for (uint32_t p = 0; p < rg->hdr.max_peers; p++) {
		struct ivl_peer_view pv;

		if (ivl_region_peer_view(rg, p, &pv) < 0 || pv.state != IVL_PEER_UP ||
		    ivl_section_check(rg, p) < 0)
			continue;
		for (uint32_t s = 0; s < rg->hdr.chan_slots; s++) {
			struct ivl_chan_half *h = ivl_region_chan(rg, p, s);
			struct ivl_shim_half sh;
			uint32_t gen = __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE), n;
			uint32_t st = __atomic_load_n(&h->state, __ATOMIC_ACQUIRE);

			if (st != IVL_CHAN_LISTEN && st != IVL_CHAN_OFFERED && st != IVL_CHAN_NOTE)
				continue;
			memcpy(&sh, &h->shim, sizeof(sh));
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (__atomic_load_n(&h->state, __ATOMIC_RELAXED) != st ||
			    __atomic_load_n(&h->gen, __ATOMIC_RELAXED) != gen ||
			    h->owner_epoch != pv.epoch || sh.kind == 0)
				continue;
			if (!ivl__shim_addr_any((int)sh.family, sh.laddr) &&
			    !memcmp(sh.laddr, addr, 16))
				return 1;
			if (sh.kind != IVL_SHIM_LISTEN)
				continue;
			n = sh.n_addrs < IVL_SHIM_ADDRS ? sh.n_addrs : IVL_SHIM_ADDRS;
			for (uint32_t i = 0; i < n; i++)
				if (!memcmp(sh.addrs[i], addr, 16))
					return 1;
		}
	}
	return 0;
}

int ivl__shim_find_proposal(const struct ivl_region *rg, uint32_t self, int fam,
			    const uint8_t *caddr, uint16_t cport, const uint8_t *saddr,
			    uint16_t sport, struct shim_proposal *out)
{
	size_t alen = fam == AF_INET ? 4 : 16;

	for (uint32_t p = 0; p < rg->hdr.max_peers; p++) {
		struct ivl_peer_view pv;

		if (p == self || ivl_region_peer_view(rg, p, &pv) < 0 || pv.state != IVL_PEER_UP ||
		    ivl_section_check(rg, p) < 0)
			continue;
		for (uint32_t s = 0; s < rg->hdr.chan_slots; s++) {
			struct ivl_chan_half *h = ivl_region_chan(rg, p, s);
			struct ivl_shim_half sh;
			uint32_t remote, epoch;
			uint32_t gen = __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE);
			uint32_t st = __atomic_load_n(&h->state, __ATOMIC_ACQUIRE);

			/* A fallback note with our 4-tuple: the client withdrew
			 * (timeout) before we accepted. */
			if (st != IVL_CHAN_OFFERED && st != IVL_CHAN_NOTE)
				continue;
			remote = h->remote_peer;
			epoch = h->owner_epoch;
			memcpy(&sh, &h->shim, sizeof(sh));
			memcpy(out->name, h->name, IVL_NAME_MAX);
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (__atomic_load_n(&h->state, __ATOMIC_RELAXED) != st ||
			    __atomic_load_n(&h->gen, __ATOMIC_RELAXED) != gen)
				continue;
			if (st == IVL_CHAN_NOTE && sh.kind == IVL_SHIM_FALLBACK && remote == self &&
			    (int)sh.family == fam && sh.lport == cport && sh.rport == sport &&
			    !memcmp(sh.laddr, caddr, alen) && !memcmp(sh.raddr, saddr, alen))
				return -ESTALE;
			if (st != IVL_CHAN_OFFERED || sh.kind != IVL_SHIM_PROPOSAL ||
			    remote != self || epoch != pv.epoch || (int)sh.family != fam ||
			    sh.lport != cport || sh.rport != sport ||
			    memcmp(sh.laddr, caddr, alen) || memcmp(sh.raddr, saddr, alen))
				continue;
			out->name[IVL_NAME_MAX - 1] = '\0';
			out->peer = p;
			out->slot = s;
			out->gen = gen;
			out->epoch = pv.epoch;
			return sh.rdv == IVL_RDV_PROPOSED ? 0 : -ESTALE;
		}
	}
	return -ENOENT;
}
