/* SPDX-License-Identifier: MIT */
/*
 * Kick lists (layout v4): see transport/ivlink/kick.h for the contract and
 * the ordering pairs K1/K2 and KA1/KA2.
 */
#include <errno.h>

#include <ivlink/kick.h>

void ivl_kick_push(struct ivl_kick_list *l, uint32_t entries, uint32_t slot)
{
	/* K1: pairs with KA1 in ivl_kick_read(); after the ring publish. */
	uint64_t pos = __atomic_fetch_add(&l->tail, 1, __ATOMIC_ACQ_REL);
	struct ivl_kick_ent *e = &l->ent[pos & (entries - 1)];

	__atomic_store_n(&e->slot, slot, __ATOMIC_RELAXED);
	/* K2: pairs with KA2; the doorbell is rung after this. */
	__atomic_store_n(&e->tag, (uint32_t)(pos + 1), __ATOMIC_RELEASE);
}

uint64_t ivl_kick_tail(const struct ivl_kick_list *l)
{
	/* KA1: pairs with K1. */
	return __atomic_load_n(&l->tail, __ATOMIC_ACQUIRE);
}

int ivl_kick_read(const struct ivl_kick_list *l, uint32_t entries, uint64_t *pos, uint32_t *slots)
{
	uint64_t from = *pos, tail = ivl_kick_tail(l), again;
	int n = 0, bad = 0;

	if (tail == from)
		return 0;
	*pos = tail;
	/* Unsigned: a tail behind ours (a section reset, or garbage) is a
	 * huge distance too. */
	if (tail - from > entries)
		return -EOVERFLOW;
	for (uint64_t p = from; p != tail; p++) {
		const struct ivl_kick_ent *e = &l->ent[p & (entries - 1)];
		/* KA2: pairs with K2. */
		uint32_t tag = __atomic_load_n(&e->tag, __ATOMIC_ACQUIRE);
		uint32_t slot = __atomic_load_n(&e->slot, __ATOMIC_RELAXED);

		if (tag != (uint32_t)(p + 1))
			bad = 1;
		else
			slots[n++] = slot;
	}
	/* A writer that lapped us while we read may have replaced a slot
	 * under a tag we took for right: the tail tells (the slot loads
	 * above complete before this load). */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	again = __atomic_load_n(&l->tail, __ATOMIC_RELAXED);
	if (again - from > entries)
		bad = 1;
	return bad ? -EOVERFLOW : n;
}
