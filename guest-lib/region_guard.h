/* SPDX-License-Identifier: MIT */
/*
 * Region guard: survives a region file that shrinks under its mappings.
 *
 * A named (/dev/shm) or hugetlbfs region cannot be sealed, and every client
 * holds a read-write fd of it: one ftruncate() and each access beyond the
 * new end raises SIGBUS in every process that maps it. A guarded mapping
 * turns that into corrupt region contents, which every reader validates
 * already: the SIGBUS handler puts the file's size back (ftruncate on the
 * fd given here; the lost pages read as zeros) and the faulting access is
 * retried. If the size cannot be restored, the mapping is replaced, in
 * this process only, by zero pages, and ivl__guard_broken() says so.
 * Faults outside guarded mappings go to the handler installed before ours.
 * A program that installs its own SIGBUS handler after attaching replaces
 * the guard (documented in RELIABILITY.md).
 */
#ifndef IVLINK_REGION_GUARD_H
#define IVLINK_REGION_GUARD_H

#include <stdint.h>

/* Guards [base, base + size), backed by fd (not closed by the guard; -1:
 * no fd, zero pages only). Returns 0, -ENOSPC (too many mappings), or
 * -errno of sigaction(). */
int ivl__guard_add(void *base, uint64_t size, int fd);

/* Stops guarding the mapping at base (before munmap and close of its fd). */
void ivl__guard_remove(void *base);

/* Faults survived in the mapping at base so far (0: none, or not guarded). */
uint64_t ivl__guard_faults(const void *base);

/* 1 once the mapping at base was replaced by private zero pages. */
int ivl__guard_broken(const void *base);

#endif /* IVLINK_REGION_GUARD_H */
