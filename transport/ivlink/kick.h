/* SPDX-License-Identifier: MIT */
/*
 * Private to the ivlink tree (never installed): the kick lists of layout
 * v4 (layout.h, struct ivl_kick_list). A producer that rings a sleeping
 * consumer first names, in its own section's list for that consumer, the
 * consumer's half it rang for; the consumer reads the lists of the peers
 * that may have rung it and looks at those connections only (the socket
 * shim's epoll_wait, guest-lib/preload/wait_epoll.c).
 *
 * Ordering: K1 (ivl_kick_push, the atomic add on tail, acq_rel) comes
 * after the producer's publish of its ring index (R1/R2 in ring.c, before
 * the sleep_seq load that decided to kick), and the entry's tag is stored
 * with release (K2) before the doorbell is rung. The reader's acquire load
 * of tail (KA1) pairs with K1, its acquire load of a tag (KA2) with K2: an
 * entry the reader accepts, and every position below a tail it saw,
 * follows a ring publish it can see. So a position whose tag is not (yet)
 * right needs no wait: a check of every connection finds that publish.
 *
 * Threads: push may run in any thread and process of the producer peer at
 * once; a reader's position is its own (one reader per position).
 */
#ifndef IVLINK_KICK_H
#define IVLINK_KICK_H

#include <stdint.h>

#include <ivlink/layout.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * entries is the region's kick_entries (a power of two from the validated
 * header copy, never read from the list): l has that many entries.
 */

/* Appends slot to l (the producer's own list for a consumer). */
void ivl_kick_push(struct ivl_kick_list *l, uint32_t entries, uint32_t slot);

/* The list's tail now (acquire): where a reader that checks everything
 * afterwards may start. */
uint64_t ivl_kick_tail(const struct ivl_kick_list *l);

/*
 * Reads the entries of l from *pos on into slots (room for entries),
 * private copies, and moves *pos to the tail it read. Returns the number
 * of slots (0: nothing new), or -EOVERFLOW: the list moved more than
 * entries past *pos, or an entry in between had
 * the wrong tag (being written, overwritten, or garbage): the caller
 * checks all of its connections of that producer instead. Slots are not
 * range checked here: the caller's lookup is.
 */
int ivl_kick_read(const struct ivl_kick_list *l, uint32_t entries, uint64_t *pos, uint32_t *slots);

#ifdef __cplusplus
}
#endif
#endif /* IVLINK_KICK_H */
