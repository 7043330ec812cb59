/* SPDX-License-Identifier: MIT */
/*
 * Private header of tests/reliability/, on top of tests/support/support.h
 * (checks, ivlinkd, child processes, streams, cleanup): iteration counts
 * and seeds from the environment, a channel between two endpoints of one
 * process, ivlinkctl's JSON, and guard pages around every region mapping
 * of this process.
 *
 * Every test takes the ivlinkd path as argv[1] (or $IVLINKD) and exits 77
 * (skipped) without one (ts_init_ivlinkd()).
 *
 * Guard pages (rel_guard.c): this file's mmap() interposes the one libivlink
 * calls. A shared, fd-backed mapping of at least 1 MiB at no fixed address,
 * which is how every backend maps a region, is placed between two 64 KiB
 * PROT_NONE areas, so that a read or write just outside the region faults
 * (ASan cannot see such accesses: the region is not heap memory).
 */
#ifndef IVLINK_TESTS_RELIABILITY_REL_H
#define IVLINK_TESTS_RELIABILITY_REL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include <ivlink/ivlink.h>
#include <ivlink/region.h>

#include "support.h"

#define REL_GUARD_SIZE (64u << 10)

/* $IVLINK_RELIABILITY_ITERS scaled: max(dflt, env) (env < dflt allowed
 * only when env > 0: quick local runs). */
unsigned rel_iters(unsigned dflt);
/* $IVLINK_RELIABILITY_SEED, else dflt. */
uint64_t rel_seed(uint64_t dflt);

/*
 * Opens channel name between two endpoints of this process (one side in a
 * helper thread). Returns 0 with *ca and *cb set, or the first -errno.
 */
int rel_pair_open(struct ivl_endpoint *a, struct ivl_endpoint *b, const char *name,
		  const struct ivl_channel_opts *o, int64_t timeout_ns, struct ivl_channel **ca,
		  struct ivl_channel **cb);

/* ---------------------------------------------------------- rel_guard.c */

/* Number of region mappings placed between guard pages so far. */
unsigned rel_guard_count(void);
/* The most recent guarded mapping (the region of the endpoint opened last):
 * attaches a local, validated view of it. Returns 0 or -ENOENT/-EPROTO. */
int rel_guard_region(struct ivl_region *rg);

/* Runs "ivlinkctl status --json --socket <sock>" and returns its exit status
 * (128 + signal if it crashed); its output in out. */
int rel_ivlinkctl_json(const char *ivlinkctl, const char *sock, char *out, size_t len);
/* 1 if s is one syntactically valid JSON value (a small checker). */
int rel_json_valid(const char *s);

#endif /* IVLINK_TESTS_RELIABILITY_REL_H */
