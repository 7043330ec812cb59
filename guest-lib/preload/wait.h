/* SPDX-License-Identifier: MIT */
/*
 * Private to the shim's readiness files (wait_*.c): what one of them
 * provides to the others. shim.h has what the rest of the shim calls.
 */
#ifndef IVLINK_PRELOAD_WAIT_H
#define IVLINK_PRELOAD_WAIT_H

#include <stdint.h>

struct shim_conn;
struct shim_epoll;

/* Endpoint fds a set or a poll watches at most. */
#define SHIM_MAX_EPS 8

/* wait_readiness_fd.c: c's readiness socketpair, created on first use;
 * 0 or -errno. */
int shim_rfd_create(struct shim_conn *c);

/* wait_sleepers.c */
/* Registers the calling thread as sleeping on the vectors in vmask, woken
 * through efd; shim_sleeper_del() ends it. */
void shim_sleeper_add(int efd, uint64_t vmask);
void shim_sleeper_del(void);
/* The calling thread's wake fd for poll, created on first use. */
int shim_thread_efd(void);
/* The bit of c's rx vector in a sleeper's mask. */
uint64_t shim_vbit(const struct shim_conn *c);
/* Empties an eventfd (nothing if it was empty). */
void shim_efd_drain(int fd);

/* wait_epoll_ctl.c: adds the endpoint fds, hidden, to e's epoll set.
 * Caller holds shim_reg_lock. */
void shim_hidden_eps(struct shim_epoll *e);

#endif /* IVLINK_PRELOAD_WAIT_H */
