/* SPDX-License-Identifier: MIT */
/*
 * Private header of tests/reliability/: the shim tests' driver side.
 * Starts shim_peer (a plain TCP program) under libivlink-preload.so with
 * its stdin and stdout on pipes, reads its report lines with timeouts, and
 * looks at the region the way ivlinkctl does (peer by pid, accelerated
 * connections, section pages).
 *
 * In an ASan build the shim and shim_peer are ASan-built, and the ASan
 * runtime must come first in the initial library list: the driver (an ASan
 * program itself) finds its own libasan/libubsan in /proc/self/maps and
 * puts them in front of the shim in LD_PRELOAD.
 */
#ifndef IVLINK_TESTS_RELIABILITY_SHIM_REL_H
#define IVLINK_TESTS_RELIABILITY_SHIM_REL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ivlink/region.h>

#include "rel.h"

struct shim_proc {
	pid_t pid;
	int in;	 /* its stdin (write end), -1 once closed */
	int out; /* its stdout (read end) */
	char buf[4096];
	size_t len;
};

/* Environment of the shimmed children: the daemon's endpoint, the shim's
 * ring size and spin budget. */
void shim_rel_setup(const struct ts_daemon *d, const char *preload, unsigned ring_size);
/* 1 when this process (and so its shim children) runs under ASan/UBSan. */
int shim_rel_sanitized(void);
/* Fork + exec argv (NULL terminated) with pipes; shimmed or plain. The
 * child is tracked by support.c (killed at exit). */
void shim_proc_start(struct shim_proc *p, char *const *argv, int shimmed);
/* One line without its newline: 1, 0 on EOF, -ETIMEDOUT. */
int shim_proc_line(struct shim_proc *p, char *line, size_t len, int timeout_ms);
/* Reads lines until one starts with prefix (others are echoed to stderr
 * when they start with "BAD"); fails the test on EOF or timeout. */
void shim_proc_expect(struct shim_proc *p, const char *prefix, char *line, size_t len,
		      int timeout_ms);
void shim_proc_send(struct shim_proc *p, const char *line);
/* SIGTERM, wait (SIGKILL after timeout_ms); returns the exit status as
 * ts_wait() does. Closes the pipes. */
int shim_proc_stop(struct shim_proc *p, int sig, unsigned timeout_ms);
void shim_proc_kill9(struct shim_proc *p);

/* A free TCP port on 127.0.0.1 (bound then released). */
int shim_free_port(void);
/* The peer id that process pid holds (UP), or -ENOENT. */
int shim_peer_of(const struct ivl_region *rg, pid_t pid);
/* Channel halves of peer id that are accelerated shim connections (a
 * confirmed proposal or a matched accept). */
unsigned shim_accel_halves(const struct ivl_region *rg, uint32_t id);
/* Halves of peer id not FREE (any state). */
unsigned shim_used_halves(const struct ivl_region *rg, uint32_t id);
/* Prints a histogram of peer id's non-free halves (state, shim kind). */
void shim_dump_halves(const struct ivl_region *rg, uint32_t id);

#endif /* IVLINK_TESTS_RELIABILITY_SHIM_REL_H */
