/* SPDX-License-Identifier: MIT */
/*
 * Private to the ivlink tree (never installed; libivlink.so does not export
 * these calls). An eventfd-backed ivl_notifier (see ring.h): kick writes 1
 * to the other side's eventfd, block waits on our own. This is how host
 * peers wake each other (the daemon hands out one eventfd per peer and
 * vector) and what the guest backend uses on the receive side (VFIO signals
 * MSI-X vectors on eventfds). Tests and benchmarks use it with a pair of
 * plain eventfds.
 */
#ifndef IVLINK_NOTIFY_H
#define IVLINK_NOTIFY_H

#include <stdint.h>

#include <ivlink/ring.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ivl_efd_notifier {
	int kick_fd; /* the other side's eventfd (we write it) */
	int wait_fd; /* our eventfd, non-blocking (we poll and drain it) */
	/* Optional liveness check, called by the ring between sleeps. */
	int (*check)(void *check_ctx);
	void *check_ctx;
};

/* Fills n so that a ring uses e. e must outlive the ring handle. */
void ivl_efd_notifier_bind(struct ivl_notifier *n, struct ivl_efd_notifier *e);

/* The ops themselves, for backends that wrap them. */
int ivl_efd_kick(void *ctx);
int ivl_efd_block(void *ctx, int64_t timeout_ns);

#ifdef __cplusplus
}
#endif
#endif /* IVLINK_NOTIFY_H */
